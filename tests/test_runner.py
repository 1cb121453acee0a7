"""Unit tests of ``reprobook.runner``: parameters and running a chapter with papermill.

The runner tests point ``REPROBOOK_ROOT`` at a temporary checkout (the ``fake_root``
fixture), so no test touches notebooks/, results/ or _build/ of the real repository."""

import json
import time

import nbformat
import pytest

from conftest import _chapter_md
from reprobook import chapters, fingerprint, runner


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", 3), ("-2", -2), ("0.5", 0.5), ("1e-3", 1e-3), ("abc", "abc"), ("smoke", "smoke")],
)
def test_parse_value(text, expected):
    value = runner.parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"), [("True", True), ("true", True), ("False", False), ("None", None)]
)
def test_parse_value_words(text, expected):
    assert runner.parse_value(text) is expected


def _notebook(*cells):
    """A notebook of code cells; a cell given as (source, tags) carries those tags."""
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        source, tags = cell if isinstance(cell, tuple) else (cell, [])
        nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}))
    return nb


PARAMS_SOURCE = 'profile = "smoke"\nseed = 0\nC = 0.1'


def test_parameter_defaults():
    nb = _notebook("import math", (PARAMS_SOURCE, ["parameters"]), "print(seed)")
    assert runner.parameter_defaults(nb) == {"profile": "smoke", "seed": 0, "C": 0.1}


def test_parameter_defaults_allows_literal_containers_and_comments():
    nb = _notebook(("# knobs\nalphas = [0.1, 1e-3]\nn = None\nflag = -1", ["parameters"]))
    assert runner.parameter_defaults(nb) == {"alphas": [0.1, 1e-3], "n": None, "flag": -1}


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([(PARAMS_SOURCE, ["parameters"]), ("seed = 1", ["parameters"])], "exactly one cell"),
        (["seed = 0"], "exactly one cell"),
        ([("x = f(1)", ["parameters"])], "'x' is not a literal"),
        ([("import os", ["parameters"])], "simple assignments"),
        ([("a = b = 1", ["parameters"])], "simple assignments"),
        ([("a, b = 1, 2", ["parameters"])], "plain names"),
    ],
)
def test_parameter_defaults_refuses(cells, message):
    with pytest.raises(ValueError, match=message):
        runner.parameter_defaults(_notebook(*cells))


@pytest.fixture
def budget_chapter(tmp_path):
    return chapters.Chapter(
        id="ch42-test", source=tmp_path / "ch42-test.md", title="t", profiles={"smoke": 60.0}
    )


DEFAULTS = {"profile": "smoke", "seed": 0, "C": 0.1, "note": None}


def test_validate_parameters_accepts_good_ones(budget_chapter):
    runner.validate_parameters(budget_chapter, DEFAULTS, {})
    runner.validate_parameters(budget_chapter, DEFAULTS, {"seed": 3, "C": 0.5, "note": "x"})
    runner.validate_parameters(budget_chapter, DEFAULTS, {"C": 1})  # int for a float knob
    runner.validate_parameters(budget_chapter, DEFAULTS, {"seed": None})


def test_validate_parameters_unknown_name_lists_known_ones(budget_chapter):
    with pytest.raises(ValueError, match=r"unknown parameter 'sede'.*profile, seed, C"):
        runner.validate_parameters(budget_chapter, DEFAULTS, {"sede": 1})


@pytest.mark.parametrize("params", [{"seed": "a"}, {"seed": 1.5}, {"seed": True}, {"C": "x"}])
def test_validate_parameters_wrong_type(budget_chapter, params):
    with pytest.raises(ValueError, match="like its default"):
        runner.validate_parameters(budget_chapter, DEFAULTS, params)


def test_validate_parameters_unknown_profile(budget_chapter):
    with pytest.raises(ValueError, match=r"unknown profile 'nope'.*choose one of: smoke"):
        runner.validate_parameters(budget_chapter, DEFAULTS, {"profile": "nope"})


def test_chapter_md_reads_back_as_a_notebook(fake_root):
    chapter = _chapter_md(fake_root / "notebooks" / "ch97-read.md", "x = 1")
    nb = runner.read_notebook(chapter)
    assert runner.parameter_defaults(nb) == {"profile": "smoke", "seed": 0}
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert sum(c.cell_type == "code" for c in nb.cells) == 2


@pytest.mark.parametrize("budget", [-1, 0])
def test_run_chapter_refuses_a_non_positive_budget_before_running(fake_root, budget):
    chapter = _chapter_md(fake_root / "notebooks" / "ch97-budget.md", "x = 1")
    output = fake_root / "out.ipynb"
    with pytest.raises(ValueError, match="time budget must be positive"):
        runner.run_chapter(chapter, {}, budget_s=budget, output=output, quiet=True)
    assert not output.exists()
    assert not runner.runs_log_path().exists()


def test_run_chapter_refuses_bad_parameters_before_running(fake_root):
    chapter = _chapter_md(fake_root / "notebooks" / "ch97-params.md", "x = 1")
    output = fake_root / "out.ipynb"
    with pytest.raises(ValueError, match="unknown parameter"):
        runner.run_chapter(chapter, {"bogus": 1}, output=output, quiet=True)
    with pytest.raises(ValueError, match="unknown profile"):
        runner.run_chapter(chapter, {"profile": "full"}, output=output, quiet=True)
    assert not output.exists()


# The tests below that run a chapter start a real Jupyter kernel (a few seconds each).


def test_run_chapter_end_to_end(fake_root, tmp_path):
    chapter = _chapter_md(
        fake_root / "notebooks" / "ch97-e2e.md", "assert seed == 1\nprint('seed ok')"
    )
    good = tmp_path / "good.ipynb"
    record = runner.run_chapter(chapter, {"seed": 1}, output=good, quiet=True)
    assert record.ok
    assert record.chapter == "ch97-e2e"
    assert record.profile == "smoke"
    assert record.budget_s == 120
    assert record.executed_notebook == str(good)
    executed = nbformat.read(good, as_version=4)
    assert "seed ok" in json.dumps(executed.cells[-1].outputs)
    assert runner.last_runs()[("ch97-e2e", "smoke")]["ok"] is True

    bad = tmp_path / "bad.ipynb"
    with pytest.raises(runner.ChapterRunError, match="ch97-e2e failed"):
        runner.run_chapter(chapter, {"seed": 2}, output=bad, quiet=True)
    assert bad.is_file()
    assert "AssertionError" in bad.read_text()
    assert runner.last_runs()[("ch97-e2e", "smoke")]["ok"] is False
    assert not chapter.executed_path.exists()  # output= was honoured


SAVE_THEN_CHECK = """from reprobook import results
results.start_run("ch97-keep", profile, {"seed": seed}).save({"seed": seed})
assert seed == 1, "the claim failed after the save"
"""


def test_a_run_that_fails_after_saving_leaves_the_artefacts_as_they_were(fake_root, tmp_path):
    chapter = _chapter_md(fake_root / "notebooks" / "ch97-keep.md", SAVE_THEN_CHECK)
    folder = runner.results_folder(chapter, "smoke")
    assert folder == tmp_path / "results" / "ch97-keep" / "smoke"
    with pytest.raises(runner.ChapterRunError):  # no folder before: none after
        runner.run_chapter(chapter, {"seed": 2}, output=tmp_path / "a.ipynb", quiet=True)
    assert not folder.exists()
    runner.run_chapter(chapter, {"seed": 1}, output=tmp_path / "b.ipynb", quiet=True)
    good = (folder / "metrics.json").read_text()
    assert json.loads(good) == {"seed": 1}
    with pytest.raises(runner.ChapterRunError, match="the claim failed"):
        runner.run_chapter(chapter, {"seed": 2}, output=tmp_path / "c.ipynb", quiet=True)
    assert (folder / "metrics.json").read_text() == good  # the failed run's save is undone
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "provenance.json"]
    assert not list((fake_root / "_build" / ".run").glob("kept-*"))  # no copy left behind
    slow = _chapter_md(
        fake_root / "notebooks" / "ch97-keep.md",
        SAVE_THEN_CHECK.replace("assert seed == 1", "import time\ntime.sleep(60)\nassert seed"),
    )
    with pytest.raises(runner.ChapterRunError, match="time budget"):  # saved, then too slow
        runner.run_chapter(slow, {"seed": 3}, budget_s=15, output=tmp_path / "d.ipynb", quiet=True)
    assert (folder / "metrics.json").read_text() == good


def test_run_chapter_kills_a_run_past_its_budget(fake_root, tmp_path):
    chapter = _chapter_md(fake_root / "notebooks" / "ch97-slow.md", "import time\ntime.sleep(60)")
    output = tmp_path / "slow.ipynb"
    start = time.monotonic()
    with pytest.raises(runner.ChapterRunError, match="time budget"):
        runner.run_chapter(chapter, {}, budget_s=5, output=output, quiet=True)
    assert time.monotonic() - start < 30
    assert output.is_file()
    executed = nbformat.read(output, as_version=4)
    assert "stopped" in executed.cells[-1].source
    record = runner.last_runs()[("ch97-slow", "smoke")]
    assert record["ok"] is False
    assert "time budget" in record["reason"]


# --------------------------------------------------------------------------------------------
# regressions: bugs found in review
# --------------------------------------------------------------------------------------------


def test_parse_value_keeps_empty_text_and_refuses_broken_lists():
    assert runner.parse_value("") == ""
    assert runner.parse_value("[1, 2.5]") == [1, 2.5]
    with pytest.raises(ValueError, match="list or mapping"):
        runner.parse_value("[1,")


def test_bool_is_not_a_float_parameter(budget_chapter):
    with pytest.raises(ValueError, match="must be float"):
        runner.validate_parameters(budget_chapter, DEFAULTS, {"C": True})


def test_migrate_fingerprint_rewrites_a_current_version_1_record(fake_root, tmp_path):
    """A version 1 record becomes version 2 with the distributions a smoke run imported; a
    record whose smoke metrics have moved is refused and left as it was."""
    code = (
        "import numpy\nfrom reprobook import results\n"
        "run = results.start_run('ch97-migrate', profile, {'seed': seed})\n"
        "run.save({'score': 1.0})"
    )
    chapter = _chapter_md(fake_root / "notebooks" / "ch97-migrate.md", code)
    for name in fingerprint.REQUIREMENT_FILES:
        (fake_root / name).write_text("numpy==1.26.4\n")
    smoke, distributions = runner._fingerprint_smoke(chapter, True, tmp_path)
    assert "numpy" in distributions and "reprobook" not in distributions
    record = fingerprint.make(chapter, smoke, "a" * 40, distributions=distributions)
    del record["distributions"]
    record.update(fingerprint_version=1, requirements_sha256=fingerprint.requirements_hash())
    path = fingerprint.write(record, fingerprint.path_for(chapter.id))
    assert runner.migrate_fingerprint(chapter, quiet=True, work_dir=tmp_path) == path
    migrated = fingerprint.load(chapter.id)
    assert migrated["fingerprint_version"] == 2
    assert migrated["distributions"]["numpy"] == distributions["numpy"]

    stale = {**record, "smoke_metrics": {**record["smoke_metrics"], "score": 2.0}}
    fingerprint.write(stale, path)
    with pytest.raises(ValueError, match="stale"):
        runner.migrate_fingerprint(chapter, quiet=True, work_dir=tmp_path)
    assert fingerprint.load(chapter.id)["fingerprint_version"] == 1
