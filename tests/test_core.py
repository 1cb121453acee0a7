"""Unit tests of the core library: profiles, runtime, results, chapters, runner, cli, anchors
and plotting.

Everything writes under pytest's ``tmp_path``: results go to ``REPROBOOK_RESULTS_DIR`` and the
runner tests point ``REPROBOOK_ROOT`` at a temporary checkout, so no test touches notebooks/,
results/ or _build/ of the real repository.
"""

import json
import random
import textwrap
import time
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from reprobook import anchors, chapters, cli, plotting, profiles, results, runner, runtime

# --------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------

TABLE = {
    "smoke": {"n_episodes": 100, "C": 0.1, "alphas": [0.1, 0.01], "verbose": False, "name": "s"},
    "full": {"n_episodes": 10_000, "C": 0.1, "alphas": [0.1, 0.01], "verbose": False, "name": "f"},
}


def test_resolve_profile_picks_a_row():
    config = profiles.resolve_profile(TABLE, "full")
    assert config == TABLE["full"]
    assert config is not TABLE["full"]


def test_resolve_profile_does_not_mutate_the_table():
    profiles.resolve_profile(TABLE, "smoke", {"n_episodes": 7})
    assert TABLE["smoke"]["n_episodes"] == 100


def test_resolve_profile_ignores_none_overrides():
    config = profiles.resolve_profile(TABLE, "smoke", {"n_episodes": None, "C": None})
    assert config == TABLE["smoke"]


def test_resolve_profile_applies_a_real_override():
    config = profiles.resolve_profile(TABLE, "smoke", {"n_episodes": 7, "alphas": (0.5,)})
    assert config["n_episodes"] == 7
    assert config["alphas"] == (0.5,)
    assert config["C"] == 0.1


def test_resolve_profile_accepts_an_int_for_a_float_knob():
    config = profiles.resolve_profile(TABLE, "smoke", {"C": 1})
    assert config["C"] == 1.0
    assert isinstance(config["C"], float)


def test_resolve_profile_unknown_profile_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown profile 'nope'.*smoke, full"):
        profiles.resolve_profile(TABLE, "nope")


def test_resolve_profile_unknown_setting_raises():
    with pytest.raises(ValueError, match=r"unknown setting 'bogus'.*n_episodes"):
        profiles.resolve_profile(TABLE, "smoke", {"bogus": 1})


@pytest.mark.parametrize(
    "overrides",
    [
        {"n_episodes": 1.5},  # float for an int knob
        {"n_episodes": "10"},  # str for an int knob
        {"n_episodes": True},  # bool is not an int here
        {"C": "0.1"},  # str for a float knob
        {"C": True},  # bool is not a float
        {"verbose": 1},  # int for a bool knob
        {"alphas": 0.1},  # scalar for a list knob
        {"name": 3},  # int for a str knob
    ],
)
def test_resolve_profile_wrong_type_raises(overrides):
    with pytest.raises(ValueError, match="must be of type"):
        profiles.resolve_profile(TABLE, "smoke", overrides)


def test_resolve_profile_failing_check_raises_with_its_description():
    checks = {"C": (lambda c: 0 < c <= 1, "in (0, 1]")}
    assert profiles.resolve_profile(TABLE, "smoke", {"C": 0.5}, checks).C == 0.5
    with pytest.raises(ValueError, match=r"C must be in \(0, 1\], got 2\.0"):
        profiles.resolve_profile(TABLE, "smoke", {"C": 2}, checks)


def test_resolve_profile_check_of_unknown_setting_raises():
    with pytest.raises(ValueError, match="unknown setting 'bogus'"):
        profiles.resolve_profile(TABLE, "smoke", checks={"bogus": (bool, "true")})


def test_config_attribute_access_and_table():
    config = profiles.resolve_profile(TABLE, "smoke")
    assert config.n_episodes == 100
    assert config.alphas == [0.1, 0.01]
    with pytest.raises(AttributeError):
        _ = config.missing
    table = config.table()
    assert isinstance(table, pd.DataFrame)
    assert table.index.name == "setting"
    assert list(table.index) == list(TABLE["smoke"])
    assert list(table.columns) == ["value"]
    assert table.loc["alphas", "value"] == "0.1, 0.01"
    assert table.loc["C", "value"] == "0.1"
    assert table.loc["n_episodes", "value"] == "100"


# --------------------------------------------------------------------------------------------
# runtime
# --------------------------------------------------------------------------------------------


def test_seed_everything_makes_every_rng_reproducible():
    gen = runtime.seed_everything(3)
    first = (torch.rand(4), np.random.rand(4), random.random(), torch.rand(3, generator=gen))  # noqa: NPY002
    gen = runtime.seed_everything(3)
    second = (torch.rand(4), np.random.rand(4), random.random(), torch.rand(3, generator=gen))  # noqa: NPY002
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]
    assert torch.equal(first[3], second[3])
    assert isinstance(gen, torch.Generator)
    assert gen.initial_seed() == 3


def test_seed_everything_accepts_seeds_beyond_32_bits():
    runtime.seed_everything(2**40)


@pytest.mark.parametrize("seed", [-1, True, 1.0, "3", None])
def test_seed_everything_refuses_bad_seeds(seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        runtime.seed_everything(seed)


def test_configure_threads():
    before = torch.get_num_threads()
    try:
        assert runtime.configure_threads(1) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_configure_threads_from_environment(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("REPROBOOK_THREADS", "1")
    try:
        assert runtime.configure_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_configure_threads_refuses_zero():
    with pytest.raises(ValueError, match=">= 1"):
        runtime.configure_threads(0)


def test_pick_and_describe_device():
    assert runtime.pick_device(prefer_gpu=False) == torch.device("cpu")
    assert runtime.describe_device("cpu").startswith("cpu:")


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------

CH = "ch99-test-chapter"
PROVENANCE_KEYS = {
    "git_sha",
    "git_dirty",
    "command",
    "parameters",
    "versions",
    "device",
    "wall_time_s",
    "started_utc",
    "finished_utc",
}


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    root = tmp_path / "results"
    monkeypatch.setenv("REPROBOOK_RESULTS_DIR", str(root))
    return root


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".tmp-", ".old-")))


class ExplodingFigure:
    """Stands in for a matplotlib figure whose savefig fails half-way through a save."""

    def savefig(self, *args, **kwargs):
        raise RuntimeError("disk full")


def test_start_run_and_save_write_metrics_provenance_and_figure(results_dir):
    run = results.start_run(CH, "smoke", {"seed": 1, "profile": "smoke"})
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    try:
        out = run.save(
            {"accuracy": 0.5, "curve": [1, 2.5], "nested": {"n": 3, "ok": True, "x": None}},
            figures={"curve": fig},
            files={"table.csv": "a,b\n1,2\n", "blob.bin": b"\x00\x01"},
        )
    finally:
        plt.close(fig)
    assert out == results_dir.resolve() / CH / "smoke"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == {
        "accuracy": 0.5,
        "curve": [1, 2.5],
        "nested": {"n": 3, "ok": True, "x": None},
    }
    provenance = json.loads((out / "provenance.json").read_text())
    assert set(provenance) >= PROVENANCE_KEYS
    assert provenance["chapter"] == CH
    assert provenance["profile"] == "smoke"
    assert provenance["parameters"] == {"seed": 1, "profile": "smoke"}
    assert "torch" in provenance["versions"]
    assert provenance["versions"]["torch"].startswith(torch.__version__.split("+")[0])
    assert provenance["wall_time_s"] >= 0
    assert provenance["device"].startswith("cpu")
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "table.csv").read_text() == "a,b\n1,2\n"
    assert (out / "blob.bin").read_bytes() == b"\x00\x01"
    assert _leftovers(out.parent) == []


def test_save_replaces_the_previous_artefacts(results_dir):
    run = results.start_run(CH, "smoke", {})
    out = run.save({"v": 1}, files={"old.txt": "x"})
    run.save({"v": 2})
    assert json.loads((out / "metrics.json").read_text()) == {"v": 2}
    assert not (out / "old.txt").exists()
    assert _leftovers(out.parent) == []


def test_run_parameters_are_copied(results_dir):
    params = {"seed": 1}
    run = results.start_run(CH, "smoke", params)
    params["seed"] = 2
    assert run.parameters == {"seed": 1}


@pytest.mark.parametrize(
    "bad",
    [
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": -float("inf")},
        {"a": {"b": [1.0, float("nan")]}},
        {"a": [0.0, (1.0, float("inf"))]},
        {"a": np.float64("nan")},
    ],
)
def test_non_finite_metrics_are_refused_and_keep_the_last_good_artefacts(results_dir, bad):
    run = results.start_run(CH, "smoke", {})
    out = run.save({"good": 1.0})
    with pytest.raises(ValueError, match="not finite"):
        run.save(bad)
    assert json.loads((out / "metrics.json").read_text()) == {"good": 1.0}
    assert (out / "provenance.json").is_file()
    assert _leftovers(out.parent) == []


def test_numpy_scalars_and_arrays_are_stored_as_plain_values(results_dir):
    run = results.start_run(CH, "smoke", {})
    out = run.save({"i": np.int64(3), "f": np.float32(0.5), "v": np.arange(3)})
    assert json.loads((out / "metrics.json").read_text()) == {"i": 3, "f": 0.5, "v": [0, 1, 2]}
    with pytest.raises(ValueError, match="not finite"):
        run.save({"x": np.float32("nan")})


@pytest.mark.parametrize("bad", [{1: 2.0}, {"a": object()}, {"a": {1, 2}}])
def test_metrics_json_cannot_store_are_refused(results_dir, bad):
    run = results.start_run(CH, "smoke", {})
    with pytest.raises(ValueError):
        run.save(bad)
    assert not (results_dir / CH / "smoke").exists()


def test_save_failing_half_way_keeps_the_last_good_artefacts(results_dir):
    run = results.start_run(CH, "smoke", {})
    out = run.save({"good": 1.0}, files={"keep.txt": "kept"})
    with pytest.raises(RuntimeError, match="disk full"):
        run.save({"good": 2.0}, figures={"broken": ExplodingFigure()})
    assert json.loads((out / "metrics.json").read_text()) == {"good": 1.0}
    assert (out / "keep.txt").read_text() == "kept"
    assert not (out / "broken.png").exists()
    assert _leftovers(out.parent) == []


def test_save_failing_on_the_first_run_leaves_nothing(results_dir):
    run = results.start_run(CH, "smoke", {})
    with pytest.raises(RuntimeError, match="disk full"):
        run.save({"good": 2.0}, figures={"broken": ExplodingFigure()})
    assert not (results_dir / CH / "smoke").exists()
    assert _leftovers(results_dir / CH) == []


@pytest.mark.parametrize("name", ["a/b", ".x", "metrics.json", "provenance.json"])
def test_bad_artefact_names_are_refused(results_dir, name):
    run = results.start_run(CH, "smoke", {})
    with pytest.raises(ValueError, match="plain file name"):
        run.save({"v": 1}, files={name: "x"})
    with pytest.raises(ValueError, match="plain file name"):
        run.save({"v": 1}, figures={name: ExplodingFigure()})
    assert not (results_dir / CH / "smoke").exists()


def test_start_run_refuses_a_results_dir_that_is_a_file(tmp_path, monkeypatch):
    target = tmp_path / "results"
    target.write_text("not a folder")
    monkeypatch.setenv("REPROBOOK_RESULTS_DIR", str(target))
    with pytest.raises(ValueError, match="not a directory"):
        results.start_run(CH, "smoke", {})


def test_start_run_refuses_a_results_dir_below_a_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("REPROBOOK_RESULTS_DIR", str(tmp_path / "file" / "results"))
    with pytest.raises(ValueError, match="results directory"):
        results.start_run(CH, "smoke", {})


@pytest.mark.parametrize("chapter", ["ten", "ch1-x", "ch10", "ch10_x", "CH10-x", "ch10-X"])
def test_start_run_refuses_a_bad_chapter_id(results_dir, chapter):
    with pytest.raises(ValueError, match="chNN-<slug>"):
        results.start_run(chapter, "smoke", {})


def test_results_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROBOOK_RESULTS_DIR", str(tmp_path))
    assert results.results_root() == tmp_path.resolve()
    monkeypatch.delenv("REPROBOOK_RESULTS_DIR")
    assert results.results_root() == results.committed_results_root()


def test_load_results_missing_gives_the_make_run_hint(tmp_path):
    loaded = results.load_results(CH, "full", root=tmp_path)
    assert loaded.status == "missing"
    assert not loaded.available
    assert f"make run CH={CH}" in loaded.message
    assert "profile full" in loaded.message
    assert loaded.metrics == {}


def _saved(results_dir, git_sha):
    out = results.start_run(CH, "full", {"seed": 0}).save({"score": 0.25})
    prov_file = out / "provenance.json"
    provenance = json.loads(prov_file.read_text())
    provenance["git_sha"] = git_sha
    provenance["git_dirty"] = False
    prov_file.write_text(json.dumps(provenance))
    return out


def test_load_results_at_the_current_commit(results_dir):
    head = results.git_state()["git_sha"]
    if head is None:
        pytest.skip("not a git checkout")
    _saved(results_dir, head)
    loaded = results.load_results(CH, "full", root=results_dir)
    assert loaded.status in ("ok", "stale")
    assert loaded.available
    assert loaded.message
    assert head[:10] in loaded.message
    assert loaded.metrics == {"score": 0.25}
    assert loaded.provenance["git_sha"] == head


def test_load_results_at_an_unknown_commit(results_dir):
    _saved(results_dir, "0" * 40)
    loaded = results.load_results(CH, "full", root=results_dir)
    assert loaded.status == "ok"
    assert "could not compare" in loaded.message
    assert loaded.metrics == {"score": 0.25}


def test_load_results_without_a_commit(results_dir):
    _saved(results_dir, None)
    loaded = results.load_results(CH, "full", root=results_dir)
    assert loaded.status == "ok"
    assert "could not compare" in loaded.message


def test_git_state_keys():
    state = results.git_state()
    assert set(state) == {"git_sha", "git_dirty"}
    if state["git_sha"] is not None:
        assert len(state["git_sha"]) == 40


# --------------------------------------------------------------------------------------------
# chapters
# --------------------------------------------------------------------------------------------


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def _front_matter(reprobook_block):
    return (
        "---\n"
        + yaml.safe_dump({"reprobook": reprobook_block}, sort_keys=False)
        + "---\n\n# Body\n"
    )


GOOD_BLOCK = {
    "title": "A test chapter",
    "profiles": {"smoke": 100, "full": 1000},
    "metrics_keys": ["a", "b"],
}


def test_load_chapter_parses_the_reprobook_block(tmp_path):
    path = _write(tmp_path / "ch42-test.md", _front_matter(GOOD_BLOCK))
    chapter = chapters.load_chapter(path)
    assert chapter.id == "ch42-test"
    assert chapter.source == path
    assert chapter.title == "A test chapter"
    assert chapter.profiles == {"smoke": 100.0, "full": 1000.0}
    assert chapter.metrics_keys == ("a", "b")
    assert chapter.budget("smoke") == 100.0
    assert chapter.executed_path == tmp_path / "ch42-test.ipynb"


def test_chapter_budget_of_unknown_profile_names_the_valid_ones(tmp_path):
    chapter = chapters.load_chapter(_write(tmp_path / "ch42-test.md", _front_matter(GOOD_BLOCK)))
    with pytest.raises(ValueError, match=r"unknown profile 'nope'.*smoke, full"):
        chapter.budget("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# no front matter at all\n", "no 'reprobook:' block"),
        ("---\ntitle: x\n---\n", "no 'reprobook:' block"),
        ("---\nreprobook: 3\n---\n", "no 'reprobook:' block"),
        (_front_matter({"title": "t", "profiles": {"full": 10}}), "at least 'smoke'"),
        (_front_matter({"title": "t"}), "at least 'smoke'"),
        (_front_matter({"title": "t", "profiles": {"smoke": 0}}), "positive number"),
        (_front_matter({"title": "t", "profiles": {"smoke": 10, "full": -5}}), "positive number"),
        (_front_matter({"title": "t", "profiles": {"smoke": "fast"}}), "positive number"),
        ("---\nreprobook:\n  title: t\n", "never closed"),
    ],
)
def test_load_chapter_refuses_incomplete_metadata(tmp_path, text, message):
    path = _write(tmp_path / "ch42-test.md", text)
    with pytest.raises(ValueError, match=message):
        chapters.load_chapter(path)


def test_get_chapter_unknown():
    with pytest.raises(ValueError, match="unknown chapter 'nope'"):
        chapters.get_chapter("nope")


def test_get_chapter_by_number_prefix():
    if not (chapters.notebooks_dir() / "ch10-bayesian-oracle.md").is_file():
        pytest.skip("notebooks/ch10-bayesian-oracle.md does not exist yet")
    assert chapters.get_chapter("ch10").id == "ch10-bayesian-oracle"
    assert chapters.get_chapter("ch10-bayesian-oracle").id == "ch10-bayesian-oracle"


def test_find_chapters_in_a_temporary_root(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROBOOK_ROOT", str(tmp_path))
    _write(tmp_path / "notebooks" / "ch02-b.md", _front_matter(GOOD_BLOCK))
    _write(tmp_path / "notebooks" / "ch01-a.md", _front_matter(GOOD_BLOCK))
    _write(tmp_path / "notebooks" / "notes.md", "# not a chapter\n")
    assert [c.id for c in chapters.find_chapters()] == ["ch01-a", "ch02-b"]
    assert chapters.get_chapter("ch02").id == "ch02-b"


# --------------------------------------------------------------------------------------------
# runner
# --------------------------------------------------------------------------------------------


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


def _chapter_md(path, *code_cells, profiles_block=None):
    """A minimal jupytext MyST chapter: a parameters cell, then ``code_cells``."""
    front = {
        "jupytext": {
            "text_representation": {"extension": ".md", "format_name": "myst"},
        },
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "reprobook": {"title": "Runner test", "profiles": profiles_block or {"smoke": 120}},
    }
    cells = ['```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = "smoke"\nseed = 0\n```']
    cells += [f"```{{code-cell}} ipython3\n{src}\n```" for src in code_cells]
    text = (
        "---\n"
        + yaml.safe_dump(front, sort_keys=False)
        + "---\n\n# Runner test\n\n"
        + "\n\n".join(cells)
        + "\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return chapters.load_chapter(path)


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """A temporary checkout: the runner's scratch files and run log go under it."""
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    monkeypatch.setenv("REPROBOOK_ROOT", str(root))
    monkeypatch.setenv("REPROBOOK_RESULTS_DIR", str(tmp_path / "results"))
    return root


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


# The three tests below start a real Jupyter kernel through papermill (a few seconds each).


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
# cli
# --------------------------------------------------------------------------------------------


def test_cli_run_unknown_chapter(capsys):
    assert cli.main(["run", "nope"]) == 2
    assert "unknown chapter" in capsys.readouterr().err


def test_cli_run_bad_parameter(fake_root, capsys):
    _chapter_md(fake_root / "notebooks" / "ch97-cli.md", "x = 1")
    assert cli.main(["run", "ch97", "-p", "bogus", "1"]) == 2
    assert "unknown parameter 'bogus'" in capsys.readouterr().err


def test_cli_list(fake_root, capsys):
    _chapter_md(fake_root / "notebooks" / "ch97-cli.md", "x = 1")
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ch97-cli" in out
    assert "never run here" in out
    assert "missing" in out


def test_cli_list_in_the_real_checkout(capsys):
    assert cli.main(["list"]) == 0
    assert "chapter" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# anchors
# --------------------------------------------------------------------------------------------


def _anchor(id_, verified=True, **changes):
    entry = {
        "id": id_,
        "quantity": f"quantity {id_}",
        "paper": f"value {id_}",
        "source": "arXiv:0000.00000v1",
        "figure": "Fig. 1",
        "tag": "P",
        "verified": verified,
    }
    entry.update(changes)
    return entry


def _anchors_file(tmp_path, entries):
    path = tmp_path / "anchors.yaml"
    path.write_text(yaml.safe_dump({"anchors": entries}, sort_keys=False))
    return path


def test_load_anchors(tmp_path):
    path = _anchors_file(tmp_path, [_anchor("b"), _anchor("a", verified=False, tag="S")])
    loaded = anchors.load_anchors(CH, path)
    assert list(loaded) == ["b", "a"]
    assert loaded["a"] == anchors.Anchor(
        "a", "quantity a", "value a", "arXiv:0000.00000v1", "Fig. 1", "S", False
    )
    assert loaded["b"].verified is True


def test_load_anchors_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no anchors file"):
        anchors.load_anchors(CH, tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{k: v for k, v in _anchor("a").items() if k != "source"}], "lacks source"),
        ([{k: v for k, v in _anchor("a").items() if k != "verified"}], "lacks verified"),
        ([_anchor("a", tag="X")], "tag 'X'"),
        ([_anchor("a"), _anchor("a")], "'a' appears twice"),
    ],
)
def test_load_anchors_refuses_bad_entries(tmp_path, entries, message):
    with pytest.raises(ValueError, match=message):
        anchors.load_anchors(CH, _anchors_file(tmp_path, entries))


def test_comparison_table(tmp_path):
    path = _anchors_file(tmp_path, [_anchor("x"), _anchor("y", verified=False, tag="S")])
    loaded = anchors.load_anchors(CH, path)
    table = anchors.comparison_table(loaded, {"x": "0.93 ± 0.01"})
    assert list(table.columns) == ["quantity", "paper", "read from", "this miniature"]
    assert list(table["quantity"]) == ["quantity x", "quantity y"]
    assert list(table["paper"]) == ["value x", "value y (not verified)"]
    assert list(table["this miniature"]) == ["0.93 ± 0.01", "not measured here"]
    assert table["read from"][1] == "Fig. 1; arXiv:0000.00000v1 [S]"


def test_comparison_table_refuses_unknown_ids(tmp_path):
    loaded = anchors.load_anchors(CH, _anchors_file(tmp_path, [_anchor("x")]))
    with pytest.raises(ValueError, match="unknown anchors: zz"):
        anchors.comparison_table(loaded, {"x": "1", "zz": "2"})


# --------------------------------------------------------------------------------------------
# plotting
# --------------------------------------------------------------------------------------------


def test_use_book_style_runs():
    with plt.rc_context():
        plotting.use_book_style()
        assert plt.rcParams["savefig.dpi"] == 110
    assert len(plotting.colors(3)) == 3


def test_errorbar_line_draws_one_line():
    fig, ax = plt.subplots()
    try:
        plotting.errorbar_line(ax, [1, 2, 3], [0.1, 0.2, 0.3], [0.01, 0.02, 0.01], label="m")
        assert len(ax.lines) == 1
        np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.1, 0.2, 0.3])
        assert len(ax.collections) == 1  # the shaded band
        assert ax.get_legend_handles_labels()[1] == ["m"]
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("x", "mean", "err"),
    [([1, 2, 3], [0.1, 0.2], [0.1, 0.2, 0.3]), ([1, 2], [0.1, 0.2], [0.1]), ([1, 2], [1, 2], 0.1)],
)
def test_errorbar_line_refuses_mismatched_shapes(x, mean, err):
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match="one shape"):
            plotting.errorbar_line(ax, x, mean, err, label="m")
        assert len(ax.lines) == 0
    finally:
        plt.close(fig)


def test_band_hline():
    fig, ax = plt.subplots()
    try:
        plotting.band_hline(ax, 0.5, 0.1, label="baseline")
        assert len(ax.lines) == 1
        assert ax.lines[0].get_ydata()[0] == 0.5
    finally:
        plt.close(fig)


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


@pytest.mark.parametrize("profiles_yaml", ["[smoke]", "{smoke: true}"])
def test_chapter_budgets_must_be_a_mapping_of_numbers(tmp_path, profiles_yaml):
    path = tmp_path / "ch99-bad.md"
    path.write_text(f"---\nreprobook:\n  profiles: {profiles_yaml}\n---\n# x\n")
    with pytest.raises(ValueError):
        chapters.load_chapter(path)


def test_anchor_verified_must_be_a_boolean(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "anchors:\n  - {id: a, quantity: q, paper: p, source: s, figure: f, tag: P, "
        "verified: 'false'}\n"
    )
    with pytest.raises(ValueError, match="verified must be true or false"):
        anchors.load_anchors("ch99-x", path)


@pytest.mark.parametrize(
    ("path", "packages", "expected"),
    [
        ("src/reprobook/results.py", ("gfn",), True),  # shared top-level module: always counts
        ("src/reprobook/gfn/grid.py", ("gfn",), True),
        ("src/reprobook/gfn/grid.py", ("rnn",), False),  # another chapter's package
        ("src/reprobook/rnn/cells.py", ("rnn", "gfn"), True),
        ("src/reprobook/gfn/grid.py", None, True),  # nothing declared: every change counts
        ("src/other.py", ("rnn",), True),
    ],
)
def test_affects_scopes_changes_to_the_packages_a_chapter_uses(path, packages, expected):
    assert results.affects(path, packages) is expected


def test_load_results_ignores_changes_in_packages_the_chapter_does_not_use(
    results_dir, monkeypatch
):
    _saved(results_dir, "a" * 40)
    monkeypatch.setattr(results, "_src_changed_since", lambda sha: ["src/reprobook/gfn/grid.py"])
    other = results.load_results(CH, "full", root=results_dir, packages=("rnn",))
    assert other.status == "ok" and "unchanged" in other.message
    own = results.load_results(CH, "full", root=results_dir, packages=("gfn",))
    assert own.status == "stale" and "src/reprobook/gfn/grid.py" in own.message
    undeclared = results.load_results(CH, "full", root=results_dir)  # CH declares nothing
    assert undeclared.status == "stale"


def test_chapter_src_packages_are_read_and_checked(tmp_path):
    source = tmp_path / "ch98-x.md"
    body = "---\nreprobook:\n  title: x\n  profiles: {smoke: 10}\n  src_packages: %s\n---\n"
    source.write_text(body % "[gfn, rnn]")
    assert chapters.load_chapter(source).src_packages == ("gfn", "rnn")
    source.write_text(body % "gfn")
    with pytest.raises(ValueError, match="src_packages"):
        chapters.load_chapter(source)


def test_every_chapter_declares_existing_src_packages():
    package_root = Path(results.__file__).parent
    for chapter in chapters.find_chapters():
        assert chapter.src_packages, f"{chapter.id} should declare reprobook.src_packages"
        for package in chapter.src_packages:
            assert (package_root / package / "__init__.py").is_file(), (chapter.id, package)
