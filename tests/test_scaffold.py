"""Unit tests of reprobook.scaffold: ``reprobook new`` writes a chapter that the book can use."""

import importlib.util
import shutil
import sys

import pytest

from reprobook import report, runner, scaffold
from reprobook.chapters import load_chapter, repo_root

TOC = """\
format: jb-book
root: book/intro
parts:
  - caption: Safety
    chapters:
      - file: book/parts/safety
      - file: notebooks/ch10-bayesian-oracle
  - caption: Vision and hardware
    chapters:
      - file: book/parts/vision
      - file: notebooks/ch13-enet-fpga-hls4ml
"""


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "src" / "reprobook").mkdir(parents=True)
    shutil.copy(repo_root() / scaffold.TEMPLATE, root / scaffold.TEMPLATE)
    (root / "_toc.yml").write_text(TOC)
    monkeypatch.setenv("REPROBOOK_ROOT", str(root))
    return root


def _import(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_toc_entry_goes_into_its_part_in_chapter_order():
    toc = scaffold._insert_toc_entry(TOC, "ch11-harmaug", "Safety")
    assert (
        "      - file: notebooks/ch10-bayesian-oracle\n      - file: notebooks/ch11-harmaug\n"
        in toc
    )
    toc = scaffold._insert_toc_entry(TOC, "ch12-objects", "Vision and hardware")
    assert toc.index("ch12-objects") < toc.index("ch13-enet")
    with pytest.raises(ValueError, match="unknown part"):
        scaffold._insert_toc_entry(TOC, "ch12-objects", "Nope")


def test_new_chapter_writes_a_working_skeleton(checkout, monkeypatch):
    written = scaffold.new_chapter("ch11-harmaug", "HarmAug in miniature", "Safety", "harmtoy")
    names = {p.relative_to(checkout).as_posix() for p in written}
    assert {
        "notebooks/ch11-harmaug.md", "results/ch11-harmaug/anchors.yaml", "_toc.yml",
        "src/reprobook/harmtoy/study.py", "src/reprobook/harmtoy/report.py",
        "tests/test_harmtoy.py",
    } <= names  # fmt: skip
    chapter = load_chapter(checkout / "notebooks" / "ch11-harmaug.md")
    assert chapter.title == "HarmAug in miniature" and chapter.package == "harmtoy"
    nb = runner.read_notebook(chapter)
    assert runner.parameter_defaults(nb) == {"profile": "smoke", "seed": 0}
    text = chapter.source.read_text()
    for heading in ("At a glance", "## Method", "## Result vs paper", "## Limits and deviations",
                    "## Takeaways", "## How to reproduce", "## References"):  # fmt: skip
        assert heading in text
    assert "from reprobook.harmtoy import report as chapter" in text

    monkeypatch.syspath_prepend(str(checkout / "src"))
    pkg = checkout / "src" / "reprobook" / "harmtoy"
    _import("reprobook.harmtoy", pkg / "__init__.py")
    study = _import("reprobook.harmtoy.study", pkg / "study.py")
    chapter_report = _import("reprobook.harmtoy.report", pkg / "report.py")
    assert report.protocol_gaps(study, report.ChapterStudy) == []
    assert report.protocol_gaps(chapter_report, report.ChapterReport) == []
    metrics = study.run_experiment(study.resolve_config("smoke"), 0)
    assert chapter_report.check_claims(metrics) == {"sanity": True}
    for name in ("reprobook.harmtoy", "reprobook.harmtoy.study", "reprobook.harmtoy.report"):
        sys.modules.pop(name)


def test_new_chapter_refuses_bad_input_and_overwrites(checkout):
    with pytest.raises(ValueError, match="must look like"):
        scaffold.new_chapter("chapter-11", "x", "Safety", "harmtoy")
    with pytest.raises(ValueError, match="lower-case"):
        scaffold.new_chapter("ch11-x", "x", "Safety", "Harm-Toy")
    with pytest.raises(ValueError, match="unknown part"):
        scaffold.new_chapter("ch11-x", "x", "Cells", "harmtoy")
    scaffold.new_chapter("ch11-x", "x", "Safety", "harmtoy")
    with pytest.raises(ValueError, match="already exists"):
        scaffold.new_chapter("ch11-x", "x", "Safety", "harmtoy")
