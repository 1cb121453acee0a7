"""Every chapter in notebooks/: its declaration, a papermill smoke run, and the book build."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from reprobook.chapters import find_chapters, repo_root
from reprobook.runner import ChapterRunError, parameter_defaults, read_notebook, run_chapter

CHAPTERS = find_chapters()
IDS = [c.id for c in CHAPTERS]
ROOT = repo_root()


def _finite_leaves(obj, path="metrics"):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _finite_leaves(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _finite_leaves(value, f"{path}[{i}]")
    elif isinstance(obj, float):
        yield path, math.isfinite(obj)


def test_some_chapter_exists():
    assert CHAPTERS, "no chapter notebooks found in notebooks/"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_chapter_declaration(chapter):
    """Front matter, parameters cell of literals, the skeleton's sections, no stored outputs."""
    assert {"smoke", "full"} <= set(chapter.profiles), "declare both smoke and full budgets"
    assert chapter.profiles["smoke"] <= 150, "smoke must fit in 150 s on 2 cores"
    assert chapter.profiles["full"] <= 1800, "full must fit in 30 min on 2 cores"
    assert chapter.metrics_keys, "declare the metrics.json keys the smoke test checks"
    nb = read_notebook(chapter)
    defaults = parameter_defaults(nb)
    assert defaults.get("profile") == "smoke" and isinstance(defaults.get("seed"), int)
    text = chapter.source.read_text()
    for heading in ("## Method", "## Result vs paper", "## Limits and deviations",
                    "## How to reproduce", "## References"):  # fmt: skip
        assert heading in text, f"{chapter.id} lacks the section {heading!r}"
    assert (ROOT / "results" / chapter.id / "anchors.yaml").is_file(), "anchors.yaml missing"
    for cell in jupytext.read(chapter.source).cells:
        assert not cell.get("outputs"), "the MyST source must not hold outputs"


def test_no_committed_ipynb():
    tracked = subprocess.run(
        ["git", "ls-files", "notebooks/*.ipynb", "book/*.ipynb"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    assert not tracked, f"generated notebooks are committed: {tracked}"


@pytest.mark.smoke
@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_chapter_smoke_run(chapter, run_smoke):
    """The chapter executes in the smoke profile within 240 s and writes sane metrics."""
    run = run_smoke(chapter)
    assert not run.error, run.error
    assert run.wall_s <= 240, f"smoke run took {run.wall_s:.0f} s (> 240 s hard cap)"
    out = run.results_dir / chapter.id / "smoke"
    metrics = json.loads((out / "metrics.json").read_text())
    missing = set(chapter.metrics_keys) - set(metrics)
    assert not missing, f"metrics.json lacks declared keys {sorted(missing)}"
    bad = [path for path, ok in _finite_leaves(metrics) if not ok]
    assert not bad, f"non-finite metrics: {bad}"
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["profile"] == "smoke" and provenance["wall_time_s"] > 0
    assert "reprobook run " + chapter.id in provenance["command"]


def test_bad_profile_fails_at_once():
    start = subprocess.run(
        [sys.executable, "-m", "reprobook", "run", CHAPTERS[0].id, "-p", "profile", "nope"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert start.returncode == 2
    assert "unknown profile 'nope'" in start.stderr and "smoke" in start.stderr


def test_interrupted_run_keeps_previous_results(tmp_path):
    """A run killed by its budget leaves the last good artefacts untouched."""
    chapter = CHAPTERS[0]
    previous = tmp_path / chapter.id / "smoke"
    previous.mkdir(parents=True)
    (previous / "metrics.json").write_text('{"sentinel": 1}')
    output = tmp_path / "interrupted.ipynb"
    with pytest.raises(ChapterRunError, match="time budget"):
        run_chapter(chapter, {"profile": "smoke"}, budget_s=4, results_dir=tmp_path,
                    output=output, quiet=True)  # fmt: skip
    assert json.loads((previous / "metrics.json").read_text()) == {"sentinel": 1}
    assert not list((tmp_path / chapter.id).glob(".tmp-*")), "a half-written artefact remains"
    assert "exceeded its time budget" in output.read_text()


@pytest.mark.book
def test_book_builds_with_every_chapter(run_smoke):
    """jupyter-book -W renders every chapter's executed notebook, figures included."""
    for chapter in CHAPTERS:
        assert not run_smoke(chapter).error, f"{chapter.id} did not execute"
    jb = Path(sys.executable).with_name("jupyter-book")
    shutil.rmtree(ROOT / "_build" / "html", ignore_errors=True)
    build = subprocess.run(
        [str(jb), "build", str(ROOT), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    html = ROOT / "_build" / "html"
    assert (html / "index.html").is_file()
    for page in ("book/intro.html", "book/how-to-run.html", "book/conventions.html"):
        assert (html / page).is_file(), f"{page} was not rendered"
    for chapter in CHAPTERS:
        page = html / "notebooks" / f"{chapter.id}.html"
        assert page.is_file(), f"{chapter.id} has no page"
        executed = nbformat.read(chapter.executed_path, as_version=4)
        n_figures = sum(
            "image/png" in out.get("data", {})
            for cell in executed.cells
            for out in cell.get("outputs", [])
        )
        images = re.findall(r'<img[^>]+src="([^"]+\.png)"', page.read_text())
        assert n_figures >= 1, f"{chapter.id} produced no figure"
        assert len(images) >= n_figures, f"{chapter.id}: {n_figures} figures, {len(images)} shown"
        for src in images:
            assert (page.parent / src).resolve().is_file(), f"missing image {src}"
