"""Unit tests of ``reprobook.results``: saving and loading a run's artefacts.

Results go to ``REPROBOOK_RESULTS_DIR`` under pytest's ``tmp_path``, never to the real
results/."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from conftest import CH
from reprobook import results

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


def test_load_results_without_a_fingerprint_is_stale(results_dir):
    _saved(results_dir, "0" * 40)
    loaded = results.load_results(CH, "full", root=results_dir)
    assert loaded.status == "stale"
    assert "no behaviour fingerprint" in loaded.message
    assert loaded.metrics == {"score": 0.25}


def test_provenance_records_the_reprobook_modules_the_run_imported(results_dir):
    out = results.start_run(CH, "full", {"seed": 0}).save({"score": 0.25})
    modules = json.loads((out / "provenance.json").read_text())["reprobook_modules"]
    assert "reprobook.results" in modules and modules == sorted(modules)
    assert all(m == "reprobook" or m.startswith("reprobook.") for m in modules)


def test_git_state_keys():
    state = results.git_state()
    assert set(state) == {"git_sha", "git_dirty"}
    if state["git_sha"] is not None:
        assert len(state["git_sha"]) == 40


# --------------------------------------------------------------------------------------------
# regressions: bugs found in review
# --------------------------------------------------------------------------------------------


def test_dumps_puts_number_lists_on_one_line_and_round_trips():
    from reprobook.results import dumps

    obj = {"curve": [1, 2.5, -3e-05], "points": [[0.1, 0.2], [0.3, -0.4]], "mixed": ["a", 1]}
    text = dumps(obj)
    assert json.loads(text) == obj
    assert '"curve": [1, 2.5, -3e-05]' in text and "[0.3, -0.4]" in text
    assert '"a",\n' in text  # lists with strings keep one item per line
