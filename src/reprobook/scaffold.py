"""``python -m reprobook new chNN-slug "Title"``: a new chapter from the template.

Creates the MyST notebook from ``notebooks/_template.md``, the results folder with an
``anchors.yaml`` stub, the ``_toc.yml`` entry in its part, and, when the topic package does not
exist yet, a ``study``/``report`` pair that follows the report protocol with a unit test. The
chapter tests are parametrized over every chapter, so the new one is wired into them at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from reprobook.chapters import CHAPTER_PATTERN, is_package_name, repo_root

TEMPLATE = Path("notebooks") / "_template.md"

ANCHORS_STUB = """\
# Paper numbers of {chapter_id}, each with where it was read. Replace the stub with real entries:
# never type a paper number into the chapter, and mark what you could not check verified: false.
anchors:
  - id: headline
    quantity: "the paper's headline number"
    paper: "to be read from the paper"
    source: "arXiv XXXX.XXXXX"
    figure: "Table 1"
    tag: P
    verified: false
"""

STUDY_STUB = '''\
"""{title}: profiles and experiments (config -> metrics)."""

from __future__ import annotations

import torch

from reprobook.profiles import Config, resolve_profile

METRICS_VERSION = 1
PROFILES = {{
    "smoke": {{"n_samples": 64}},
    "full": {{"n_samples": 4096}},
}}
CONFIG_CHECKS = {{"n_samples": (lambda v: v >= 2, "an integer >= 2")}}


def resolve_config(profile: str, **overrides) -> Config:
    """The profile's settings with the reader's overrides, validated."""
    return resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)


def run_experiment(config: Config, seed: int) -> dict:
    """A placeholder experiment: replace with the chapter's method."""
    x = torch.randn(config.n_samples, generator=torch.Generator().manual_seed(seed))
    return {{"metrics_version": METRICS_VERSION, "mean": float(x.mean()), "n": config.n_samples}}
'''

REPORT_STUB = '''\
"""{title}: the reading of the metrics (claims, findings, numbers for the prose)."""

from __future__ import annotations

from reprobook.{package}.study import METRICS_VERSION

REQUIRED_KEYS = ("mean", "n", "claims")
PAPER_CLAIM = "The paper's headline claim, in one sentence."
CLAIMS = {{"sanity": "the sample mean is within 4 standard errors of 0"}}
HEADLINE_CLAIMS = ("sanity",)
KEY_ANCHOR = "headline"

__all__ = ["METRICS_VERSION"]


def check_claims(metrics: dict) -> dict[str, bool]:
    """Each claim, computed from the metrics."""
    return {{"sanity": abs(metrics["mean"]) < 4 / metrics["n"] ** 0.5}}


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this run found, keyed by anchor id."""
    return {{"headline": f"mean {{metrics['mean']:.3f}} over {{metrics['n']}} samples"}}


def key_number(metrics: dict) -> str:
    return f"mean {{metrics['mean']:.3f}}"


def prose_numbers(metrics: dict) -> dict[str, str]:
    """Every number the prose discusses, formatted, for ``report.glue_prose``."""
    return {{"example_number": f"{{metrics['mean']:.3f}}"}}
'''

TEST_STUB = '''\
"""Unit tests of reprobook.{package}."""

import pytest

from reprobook import report
from reprobook.{package} import report as chapter
from reprobook.{package} import study


def test_protocols():
    assert not report.protocol_gaps(chapter, report.ChapterReport)
    assert not report.protocol_gaps(study, report.ChapterStudy)


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="valid profiles"):
        study.resolve_config("nope")


def test_claims_on_a_hand_case():
    assert chapter.check_claims({{"mean": 0.0, "n": 100}}) == {{"sanity": True}}
    assert chapter.check_claims({{"mean": 1.0, "n": 100}}) == {{"sanity": False}}
'''


def _insert_toc_entry(toc: str, chapter_id: str, part: str) -> str:
    """``_toc.yml`` with ``notebooks/<chapter_id>`` added to ``part``, in chapter order."""
    lines = toc.splitlines()
    starts = [i for i, ln in enumerate(lines) if re.match(r"\s*- caption:\s*", ln)]
    captions = {lines[i].split("caption:", 1)[1].strip().strip("\"'"): i for i in starts}
    if part not in captions:
        raise ValueError(f"unknown part {part!r}; parts: {', '.join(captions)}")
    start = captions[part]
    end = next((i for i in starts if i > start), len(lines))
    entries = [i for i in range(start, end) if "- file:" in lines[i]]
    if not entries:
        raise ValueError(f"part {part!r} has no chapters list to add to")
    indent = lines[entries[0]][: lines[entries[0]].index("- file:")]
    at = entries[-1] + 1
    for i in entries:
        name = lines[i].split("- file:", 1)[1].strip()
        if name.startswith("notebooks/") and name.split("/", 1)[1] > chapter_id:
            at = i
            break
    lines.insert(at, f"{indent}- file: notebooks/{chapter_id}")
    return "\n".join(lines) + "\n"


def new_chapter(chapter_id: str, title: str, part: str, package: str) -> list[Path]:
    """Create a chapter's skeleton; return the files written. Refuses to overwrite anything."""
    if not CHAPTER_PATTERN.match(chapter_id):
        raise ValueError(f"chapter id {chapter_id!r} must look like ch14-short-slug")
    if not is_package_name(package):
        raise ValueError(
            f"package {package!r} must be a lower-case Python name, e.g. cells or "
            "gfn.generalization"
        )
    if not title.strip():
        raise ValueError("the title must not be empty")
    root = repo_root()
    notebook = root / "notebooks" / f"{chapter_id}.md"
    anchors = root / "results" / chapter_id / "anchors.yaml"
    for path in (notebook, anchors):
        if path.exists():
            raise ValueError(f"{path} already exists; choose another chapter id")
    toc_path = root / "_toc.yml"
    toc = _insert_toc_entry(toc_path.read_text(), chapter_id, part)
    fields = {"chapter_id": chapter_id, "title": title.replace('"', "'"), "package": package}
    written = []
    notebook.write_text((root / TEMPLATE).read_text().format(**fields))
    written.append(notebook)
    anchors.parent.mkdir(parents=True, exist_ok=True)
    anchors.write_text(ANCHORS_STUB.format(**fields))
    written.append(anchors)
    toc_path.write_text(toc)
    written.append(toc_path)
    pkg = root / "src" / "reprobook" / package.replace(".", "/")
    if not pkg.exists():
        pkg.mkdir(parents=True)
        stubs = {
            pkg / "__init__.py": f'"""{title}: the {package} topic package."""\n',
            pkg / "study.py": STUDY_STUB.format(**fields),
            pkg / "report.py": REPORT_STUB.format(**fields),
            root / "tests" / f"test_{package.replace('.', '_')}.py": TEST_STUB.format(**fields),
        }
        for path, text in stubs.items():
            path.write_text(text)
            written.append(path)
    return written
