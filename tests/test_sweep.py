"""``reprobook sweep``: grid expansion, validation, gathering, and the executors.

No chapter notebook runs here: the executors are driven with cheap fake jobs, and a tiny fake
chapter in ``tmp_path`` stands in for validation. Everything writes under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from reprobook import runner, sweep
from reprobook.chapters import Chapter, load_chapter
from reprobook.sweep import RunOutcome

FAKE_CHAPTER = """\
---
reprobook:
  title: A fake chapter
  profiles:
    smoke: 60
    full: 600
---

# A fake chapter

```{code-cell} ipython3
:tags: [parameters]

profile = "smoke"
seed = 0
lr = 0.1
flag = False
```
"""


@pytest.fixture
def chapter(tmp_path: Path) -> Chapter:
    path = tmp_path / "notebooks" / "ch99-fake.md"
    path.parent.mkdir()
    path.write_text(FAKE_CHAPTER)
    return load_chapter(path)


@pytest.fixture
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's job processes unpickle the fake jobs by name: let them import this module."""
    here = str(Path(__file__).parent)
    paths = [here, os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


# --- fake jobs: module level, so process pools and submitit can pickle them ----------------------


def fake_job(chapter: Chapter, params: dict, run_dir: Path, budget_s: float | None) -> dict:
    """Writes a metrics.json like a chapter would; lr == 0.3 raises, lr == 0.2 fails politely."""
    if params.get("lr") == 0.3:
        raise RuntimeError("boom in the worker")
    if params.get("lr") == 0.2:
        return {"ok": False, "reason": "papermill exited 1", "wall_time_s": 0.5}
    out = Path(run_dir) / "results" / chapter.id / params.get("profile", "smoke")
    out.mkdir(parents=True)
    metrics = {
        "loss": params.get("seed", 0) + params.get("lr", 0.1),
        "eval": {"acc": 0.5, "passed": True, "curve": [1, 2, 3], "note": "text"},
        "n": 3,
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    return {"ok": True, "reason": "", "wall_time_s": 0.01}


def echo_job(x: int) -> dict:
    return {"ok": x >= 0, "reason": "" if x >= 0 else "negative", "wall_time_s": float(x)}


def raising_job(x: int) -> dict:
    if x == 1:
        raise ValueError("no ones here")
    return {"ok": True, "reason": "", "wall_time_s": 0.0}


# --- the grid -----------------------------------------------------------------------------------


def test_expand_grid_crosses_seeds_with_axes_in_order():
    assert sweep.expand_grid([0, 1], {"lr": [0.1, 0.2]}) == [
        {"seed": 0, "lr": 0.1},
        {"seed": 0, "lr": 0.2},
        {"seed": 1, "lr": 0.1},
        {"seed": 1, "lr": 0.2},
    ]
    assert sweep.expand_grid(None, {"a": [1, 2], "b": ["x"]}) == [
        {"a": 1, "b": "x"},
        {"a": 2, "b": "x"},
    ]
    assert sweep.expand_grid([3]) == [{"seed": 3}]
    assert sweep.expand_grid() == [{}]  # the notebook's defaults


def test_expand_grid_refuses_ambiguous_grids():
    with pytest.raises(ValueError, match="--seeds or with -p seed"):
        sweep.expand_grid([0], {"seed": [1]})
    with pytest.raises(ValueError, match="lists the value 0.1 twice"):
        sweep.expand_grid(None, {"lr": [0.1, 0.1]})
    with pytest.raises(ValueError, match="'seed' lists the value 2 twice"):
        sweep.expand_grid([2, 2])


def test_parse_axes_reads_values_like_run():
    axes = sweep.parse_axes([["lr", "0.1", "1e-3"], ["flag", "true"], ["name", "abc", "[1, 2]"]])
    assert axes == {"lr": [0.1, 0.001], "flag": [True], "name": ["abc", [1, 2]]}
    with pytest.raises(ValueError, match="at least one value"):
        sweep.parse_axes([["lr"]])
    with pytest.raises(ValueError, match="'lr' is given twice"):
        sweep.parse_axes([["lr", "1"], ["lr", "2"]])


def test_run_names_are_unique_readable_folder_names():
    assert sweep.run_name(3, {"seed": 1, "lr": 0.1}) == "003_seed=1_lr=0.1"
    assert sweep.run_name(0, {}) == "000_defaults"
    assert sweep.run_name(12, {"sizes": [1, 2], "tag": "a b/c"}) == "012_sizes=1_2_tag=a_b_c"


# --- validation ---------------------------------------------------------------------------------


def test_plan_validates_every_point_before_running(chapter: Chapter):
    assert sweep.plan(chapter, [0, 1], {"profile": ["smoke", "full"]}) == [
        {"seed": 0, "profile": "smoke"},
        {"seed": 0, "profile": "full"},
        {"seed": 1, "profile": "smoke"},
        {"seed": 1, "profile": "full"},
    ]
    with pytest.raises(ValueError, match=r"unknown parameter 'nope'.*profile, seed, lr, flag"):
        sweep.plan(chapter, None, {"nope": [1]})
    with pytest.raises(ValueError, match=r"unknown profile 'huge'.*choose one of: smoke, full"):
        sweep.plan(chapter, None, {"profile": ["smoke", "huge"]})
    with pytest.raises(ValueError, match="must be bool"):
        sweep.plan(chapter, None, {"flag": [True, 3]})
    with pytest.raises(ValueError, match="budget must be positive"):
        sweep.plan(chapter, [0], None, budget_s=0)


def test_run_sweep_refuses_bad_input_before_creating_anything(chapter: Chapter, tmp_path: Path):
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        sweep.run_sweep(chapter, axes={"nope": [1]}, folder=out, job=fake_job, quiet=True)
    with pytest.raises(ValueError, match="unknown executor 'pbs'"):
        sweep.run_sweep(chapter, [0], executor="pbs", folder=out, job=fake_job, quiet=True)
    with pytest.raises(ValueError, match="at least 1"):
        sweep.run_sweep(chapter, [0], workers=0, folder=out, job=fake_job, quiet=True)
    assert not out.exists()


def test_slurm_needs_a_cluster(chapter: Chapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="sbatch and srun"):
        sweep.run_sweep(chapter, [0], executor="slurm", folder=tmp_path / "s", quiet=True)


def test_slurm_executor_gets_partition_time_and_array(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    options = sweep.SlurmOptions(partition="cpu", cpus_per_task=4, mem_gb=8)
    with sweep._executor("slurm", tmp_path / "s", 3, 42, options) as ex:
        params = ex._executor.parameters
    assert params["partition"] == "cpu"
    assert params["time"] == 42
    assert params["cpus_per_task"] == 4
    assert params["mem"] == "8GB"
    assert params["array_parallelism"] == 3


def test_timeout_covers_the_longest_run(chapter: Chapter):
    assert sweep.default_timeout_min(chapter, [{"seed": 0}]) == 7  # 60 s smoke * 1.2 + 5 min
    # a full run (600 s) is followed by the fingerprint's smoke run (60 s)
    assert sweep.default_timeout_min(chapter, [{}, {"profile": "full"}]) == 14 + 5
    assert sweep.default_timeout_min(chapter, [{}], budget_s=3000) == 60 + 5


# --- gathering ----------------------------------------------------------------------------------


def test_flatten_metrics_keeps_scalar_leaves_only():
    metrics = {
        "a": 1,
        "b": {"c": 2.5, "d": {"e": True}, "skip": [1, {"x": 1}], "s": "text", "none": None},
        "f": False,
    }
    assert sweep.flatten_metrics(metrics) == {"a": 1, "b.c": 2.5, "b.d.e": True, "f": False}
    assert sweep.flatten_metrics([1, 2]) == {}


def _write_metrics(run_dir: Path, metrics: dict | str, profile: str = "smoke") -> None:
    out = run_dir / "results" / "ch99-fake" / profile
    out.mkdir(parents=True)
    text = metrics if isinstance(metrics, str) else json.dumps(metrics)
    (out / "metrics.json").write_text(text)


def test_summary_table_one_row_per_run(tmp_path: Path):
    _write_metrics(tmp_path / "a", {"loss": 0.5, "eval": {"acc": 0.9, "curve": [1]}, "seed": 7})
    _write_metrics(tmp_path / "b", {"loss": 0.25, "extra": {"n": 3}})
    _write_metrics(tmp_path / "d", "{not json")
    outcomes = [
        RunOutcome("a", {"seed": 0, "lr": 0.1}, tmp_path / "a", True, "", 1.5),
        RunOutcome("b", {"seed": 1, "lr": 0.1}, tmp_path / "b", True, "", 2.0),
        RunOutcome("c", {"seed": 2, "lr": 0.1}, tmp_path / "c", False, "papermill exited 1", 0.5),
        RunOutcome("d", {"seed": 3, "lr": 0.1}, tmp_path / "d", True, "", 1.0),
    ]
    table = sweep.summary_table(outcomes)
    assert list(table.columns) == [
        "run", "seed", "lr", "ok", "reason", "wall_time_s",
        "loss", "eval.acc", "metrics.seed", "extra.n",
    ]  # fmt: skip
    assert table["ok"].tolist() == [True, True, False, False]
    assert table.loc[0, "eval.acc"] == 0.9 and table.loc[0, "metrics.seed"] == 7
    assert table.loc[1, "extra.n"] == 3 and pd.isna(table.loc[0, "extra.n"])
    assert table.loc[2, "reason"] == "papermill exited 1" and pd.isna(table.loc[2, "loss"])
    assert "cannot read" in table.loc[3, "reason"]


def test_write_summary_csv_and_markdown(tmp_path: Path):
    table = pd.DataFrame(
        {"run": ["000_seed=0"], "ok": [True], "reason": ["a|b"], "x": [1 / 3], "y": [None]}
    )
    csv_path, md_path = sweep.write_summary(table, tmp_path)
    assert pd.read_csv(csv_path)["x"].iloc[0] == pytest.approx(1 / 3)
    assert md_path.read_text().splitlines() == [
        "| run | ok | reason | x | y |",
        "|---|---|---|---|---|",
        "| 000_seed=0 | True | a\\|b | 0.333333 |  |",
    ]


# --- executors (fake jobs) ----------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["local", "submitit-local"])
def test_run_jobs_keeps_order_and_turns_errors_into_failures(
    executor: str, tmp_path: Path, importable_tests: None
):
    seen = []
    results = sweep.run_jobs(
        echo_job, [(2,), (-1,), (0,)], executor, tmp_path, workers=2,
        on_done=lambda i, r: seen.append(i),
    )  # fmt: skip
    assert [r["wall_time_s"] for r in results] == [2.0, -1.0, 0.0]
    assert [r["ok"] for r in results] == [True, False, True]
    assert sorted(seen) == [0, 1, 2]
    results = sweep.run_jobs(raising_job, [(0,), (1,)], executor, tmp_path / "again")
    assert results[0]["ok"] and not results[1]["ok"]
    assert results[1]["reason"] == "ValueError: no ones here"


def test_run_sweep_end_to_end_with_submitit(
    chapter: Chapter, tmp_path: Path, importable_tests: None, capsys: pytest.CaptureFixture
):
    out = tmp_path / "sweep"
    table = sweep.run_sweep(
        chapter, [0, 1], {"lr": [0.1, 0.2, 0.3]}, executor="submitit-local", workers=2,
        folder=out, job=fake_job,
    )  # fmt: skip
    assert table["run"].tolist() == [
        "000_seed=0_lr=0.1", "001_seed=0_lr=0.2", "002_seed=0_lr=0.3",
        "003_seed=1_lr=0.1", "004_seed=1_lr=0.2", "005_seed=1_lr=0.3",
    ]  # fmt: skip
    assert table["ok"].tolist() == [True, False, False] * 2
    assert table.loc[3, "loss"] == pytest.approx(1.1)
    assert table.loc[0, "eval.acc"] == 0.5 and table.loc[0, "eval.passed"]
    assert "eval.curve" not in table.columns and "eval.note" not in table.columns
    assert "boom in the worker" in table.loc[2, "reason"]
    assert table.loc[1, "reason"] == "papermill exited 1"
    saved = pd.read_csv(out / "summary.csv")
    assert saved["run"].tolist() == table["run"].tolist()
    assert (out / "summary.md").read_text().startswith("| run | seed | lr | ok |")
    grid = json.loads((out / "grid.json").read_text())
    assert grid["chapter"] == "ch99-fake" and len(grid["runs"]) == 6
    printed = capsys.readouterr().out
    assert "6 runs via submitit-local" in printed and "000_seed=0_lr=0.1" in printed
    with pytest.raises(ValueError, match="not empty"):
        sweep.run_sweep(chapter, [0], folder=out, job=fake_job, quiet=True)


def test_run_sweep_with_the_process_pool(chapter: Chapter, tmp_path: Path):
    table = sweep.run_sweep(
        chapter, None, {"flag": [True, False]}, folder=tmp_path / "s", job=fake_job, quiet=True
    )
    assert table["ok"].all() and table["flag"].tolist() == [True, False]
    assert (tmp_path / "s" / "001_flag=False" / "results" / "ch99-fake" / "smoke").is_dir()


def test_each_point_gets_its_own_scratch_folder(tmp_path: Path, monkeypatch):
    seen = {}

    def fake_run_chapter(chapter, params, budget_s, **kwargs):
        seen.update(kwargs)
        raise runner.ChapterRunError("stopped by the test")

    monkeypatch.setattr(runner, "run_chapter", fake_run_chapter)
    result = sweep.run_point(types.SimpleNamespace(id="ch99-fake"), {}, tmp_path / "p")
    assert not result["ok"] and "stopped by the test" in result["reason"]
    assert seen["work_dir"] == tmp_path / "p" / "scratch"
    assert seen["results_dir"] == tmp_path / "p" / "results"


# --- command line -------------------------------------------------------------------------------


def test_cli_refuses_an_unknown_parameter_at_once(tmp_path: Path):
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "reprobook", "sweep", "ch10", "-p", "nope", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "error: unknown parameter 'nope' for ch10-bayesian-oracle; parameters:" in proc.stderr
    assert "seed" in proc.stderr
    assert not out.exists()


def test_cli_refuses_seeds_given_twice(tmp_path: Path, capsys: pytest.CaptureFixture):
    from reprobook.cli import main

    out = tmp_path / "sweep"
    argv = ["sweep", "ch10", "--seeds", "0", "1", "-p", "seed", "2", "--out", str(out)]
    assert main(argv) == 2
    assert "--seeds or with -p seed" in capsys.readouterr().err
    assert not out.exists()
