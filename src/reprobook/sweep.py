"""Sweep one chapter over a grid of seeds and parameters, and gather the runs into one table.

Each grid point is one ``run_chapter`` call with its own results folder and executed notebook
under the sweep folder (default ``_build/sweeps/<chapter>-<UTC time>/<run>/``), so a sweep never
writes to the committed ``results/``. Runs go through an executor: a local process pool, SLURM
(submitit) or submitit's local executor. A failed run becomes a row with ``ok=False``; the sweep
goes on. Afterwards every run's scalar metrics are flattened into ``summary.csv`` and
``summary.md`` in the sweep folder.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import multiprocessing
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import nbformat
import pandas as pd

from reprobook import fingerprint, runner
from reprobook.chapters import Chapter, repo_root

EXECUTORS = ("local", "slurm", "submitit-local")
POLL_S = {"local": 0.2, "submitit-local": 0.5, "slurm": 15.0}
FIXED_COLUMNS = ("run", "ok", "reason", "wall_time_s")


class JobResult(TypedDict):
    """What a job returns: whether its run succeeded, why not, and how long it took."""

    ok: bool
    reason: str
    wall_time_s: float | None


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each SLURM job (one grid point per job, submitted as one job array)."""

    partition: str | None = None  # None: the cluster's default partition
    timeout_min: int | None = None  # None: from the chapter's budget (``default_timeout_min``)
    cpus_per_task: int = 2  # each run uses two torch threads
    mem_gb: float | None = None  # None: the cluster's default


@dataclass
class RunOutcome:
    """One grid point after it ran: its name, its parameters, its folder and how it went."""

    run: str
    params: dict[str, Any]
    run_dir: Path
    ok: bool
    reason: str = ""
    wall_time_s: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


# --- the grid -------------------------------------------------------------------------------


def parse_axes(raw: Sequence[Sequence[str]]) -> dict[str, list[Any]]:
    """``-p NAME VALUE [VALUE ...]`` groups as ``{name: [values]}``, values via ``parse_value``."""
    axes: dict[str, list[Any]] = {}
    for group in raw:
        if len(group) < 2:
            raise ValueError(f"-p needs a name and at least one value, got {' '.join(group)!r}")
        name, *texts = group
        if name in axes:
            raise ValueError(f"parameter {name!r} is given twice; list all its values after one -p")
        axes[name] = [runner.parse_value(text) for text in texts]
    return axes


def expand_grid(
    seeds: Sequence[int] | None = None, axes: Mapping[str, Sequence[Any]] | None = None
) -> list[dict[str, Any]]:
    """Every combination of the seeds and the axes' values, seed first, the last axis fastest.

    No seeds and no axes give one point: the notebook's defaults.
    """
    full: dict[str, Sequence[Any]] = {}
    if seeds:
        if axes and "seed" in axes:
            raise ValueError("give seeds either with --seeds or with -p seed, not both")
        full["seed"] = list(seeds)
    full.update(axes or {})
    for name, values in full.items():
        if not values:
            raise ValueError(f"parameter {name!r} has no values")
        for i, value in enumerate(values):
            if value in values[:i]:
                raise ValueError(f"parameter {name!r} lists the value {value!r} twice")
    return [dict(zip(full, combo, strict=True)) for combo in itertools.product(*full.values())]


def run_name(index: int, params: Mapping[str, Any]) -> str:
    """A folder name for one grid point: its index, then its values (``003_seed=1_lr=0.1``)."""
    parts = [f"{index:03d}"]
    for name, value in params.items():
        text = re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value)).strip("_")[:30]
        parts.append(f"{name}={text}")
    return "_".join(parts)[:120] if params else f"{index:03d}_defaults"


def plan(
    chapter: Chapter,
    seeds: Sequence[int] | None = None,
    axes: Mapping[str, Sequence[Any]] | None = None,
    budget_s: float | None = None,
) -> list[dict[str, Any]]:
    """The grid's points, each checked like a single run (names, types, profiles), before any runs.

    Raises ``ValueError`` naming the allowed parameters or profiles.
    """
    points = expand_grid(seeds, axes)
    defaults = runner.parameter_defaults(runner.read_notebook(chapter))
    for params in points:
        runner.validate_parameters(chapter, defaults, params)
    if budget_s is not None and budget_s <= 0:
        raise ValueError(f"time budget must be positive, got {budget_s} s")
    return points


def default_timeout_min(
    chapter: Chapter, points: Sequence[Mapping[str, Any]], budget_s: float | None = None
) -> int:
    """A job's wall-clock limit: the longest run's budget (plus the fingerprint's smoke run after
    a full run), with margin, so the runner's own budget stops a run first and says why."""
    default_profile = runner.parameter_defaults(runner.read_notebook(chapter)).get("profile")
    longest = 0.0
    for params in points:
        profile = params.get("profile", default_profile or "smoke")
        seconds = budget_s if budget_s is not None else chapter.budget(profile)
        if profile == "full":
            seconds += chapter.budget("smoke")
        longest = max(longest, seconds)
    return math.ceil(longest * 1.2 / 60) + 5


# --- one run ----------------------------------------------------------------------------------


def run_point(
    chapter: Chapter, params: dict[str, Any], run_dir: Path, budget_s: float | None = None
) -> JobResult:
    """Run one grid point (in an executor's worker): artefacts in ``run_dir/results``, the executed
    notebook in ``run_dir/<chapter>.ipynb``. Failures of the chapter are returned, not raised."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    output = run_dir / f"{chapter.id}.ipynb"
    start = time.monotonic()
    try:
        runner.run_chapter(
            chapter, params, budget_s, results_dir=run_dir / "results", output=output,
            quiet=True, work_dir=run_dir / "scratch",
        )  # fmt: skip
    except runner.ChapterRunError as err:
        reason = str(err).splitlines()[0]
        return {"ok": False, "reason": reason, "wall_time_s": round(time.monotonic() - start, 2)}
    wall = round(time.monotonic() - start, 2)
    ran_with = nbformat.read(output, as_version=4).metadata.get("papermill", {}).get("parameters")
    if ran_with != params:
        reason = f"the notebook ran with parameters {ran_with}, not the requested {params}"
        return {"ok": False, "reason": reason, "wall_time_s": wall}
    return {"ok": True, "reason": "", "wall_time_s": wall}


# --- executors ------------------------------------------------------------------------------


@contextlib.contextmanager
def _executor(
    kind: str,
    folder: Path,
    workers: int | None,
    timeout_min: int | None,
    slurm: SlurmOptions | None,
) -> Iterator[Any]:
    """An object with ``submit(fn, *args)`` whose handles have ``done``, ``result``, ``cancel``."""
    if kind == "local":
        # spawn: workers start clean instead of forking a parent that may hold torch's threads
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers or 1, mp_context=spawn) as pool:
            yield pool
        return
    import submitit

    if kind == "submitit-local":
        executor = submitit.LocalExecutor(folder=folder / "submitit" / "%j")
        executor.update_parameters(timeout_min=timeout_min or 60 * 24)
    elif kind == "slurm":
        slurm = slurm or SlurmOptions()
        executor = submitit.AutoExecutor(folder=folder / "submitit" / "%j", cluster="slurm")
        options: dict[str, Any] = {
            "name": f"reprobook-{folder.name}",
            "timeout_min": slurm.timeout_min or timeout_min or 60,
            "cpus_per_task": slurm.cpus_per_task,
            "slurm_array_parallelism": workers or 256,
        }
        if slurm.partition:
            options["slurm_partition"] = slurm.partition
        if slurm.mem_gb:
            options["mem_gb"] = slurm.mem_gb
        executor.update_parameters(**options)
    else:
        raise ValueError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
    yield executor


def _failure(err: BaseException) -> str:
    """One line saying why a job failed. submitit wraps a job's traceback between dashed lines
    (its last line names the error); its other errors say what happened before any dashes."""
    text = str(err).strip()
    blocks = re.split(r"\n-{10,}\n", text)
    if type(err).__name__ == "FailedJobError" and len(blocks) > 1 and blocks[1].strip():
        return blocks[1].strip().splitlines()[-1].strip()
    if type(err).__name__ == "UncompletedJobError":
        return " ".join(line.strip() for line in blocks[0].splitlines()[:2])
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0].strip()}" if lines else type(err).__name__


def _failed(err: BaseException) -> JobResult:
    return {"ok": False, "reason": _failure(err), "wall_time_s": None}


def run_jobs(
    job: Callable[..., JobResult],
    tasks: Sequence[tuple[Any, ...]],
    executor: str = "local",
    folder: Path | None = None,
    *,
    workers: int | None = None,
    timeout_min: int | None = None,
    slurm: SlurmOptions | None = None,
    on_done: Callable[[int, JobResult], None] | None = None,
) -> list[JobResult]:
    """Run ``job(*task)`` for every task through ``executor``; results in the tasks' order.

    ``local`` is a process pool of ``workers`` (default 1); ``submitit-local`` runs at most
    ``workers`` (default 1) submitit jobs at a time; ``slurm`` submits one job array, at most
    ``workers`` running at once (default: as the cluster allows). A job that raises, or whose
    worker dies, gives ``ok=False`` with the error as the reason.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if executor != "local" and folder is None:
        raise ValueError(f"the {executor} executor needs a folder for its job files")
    results: list[JobResult | None] = [None] * len(tasks)
    limit = None if executor == "slurm" else (workers or 1)
    pending = list(enumerate(tasks))
    running: dict[int, Any] = {}
    with _executor(executor, Path(folder or "."), workers, timeout_min, slurm) as ex:
        try:
            if limit is None and pending:  # one job array
                jobs = ex.map_array(job, *zip(*(task for _, task in pending), strict=True))
                running = {i: handle for (i, _), handle in zip(pending, jobs, strict=True)}
                pending = []
            while pending or running:
                finished: list[tuple[int, JobResult]] = []
                while pending and (limit is None or len(running) < limit):
                    i, task = pending.pop(0)
                    try:
                        running[i] = ex.submit(job, *task)
                    except Exception as err:  # e.g. a pool broken by a worker that died
                        finished.append((i, _failed(err)))
                for i in [i for i, handle in running.items() if handle.done()]:
                    try:
                        finished.append((i, running.pop(i).result()))
                    except Exception as err:  # the job raised, or its worker died
                        finished.append((i, _failed(err)))
                if not finished:
                    time.sleep(POLL_S[executor])
                for i, result in finished:
                    results[i] = result
                    if on_done is not None:
                        on_done(i, result)
        except BaseException:  # Ctrl-C: do not leave jobs behind
            for handle in running.values():
                with contextlib.suppress(Exception):
                    handle.cancel()
            raise
    return [r for r in results if r is not None]


# --- gathering ------------------------------------------------------------------------------


def flatten_metrics(metrics: Any, prefix: str = "") -> dict[str, int | float | bool]:
    """The scalar (int, float, bool) leaves of nested mappings, as ``{"a.b.c": value}``.

    Lists, strings and ``None`` are left out.
    """
    leaves = fingerprint.flatten(metrics, prefix, into_lists=False)
    return {path: value for path, value in leaves if isinstance(value, bool | int | float)}


def read_metrics(run_dir: Path) -> dict[str, int | float | bool]:
    """The flattened ``metrics.json`` of one run (``run_dir/results/<chapter>/<profile>/``);
    empty if the run saved none. Raises ``ValueError`` if it is not valid JSON."""
    paths = sorted(Path(run_dir).glob("results/*/*/metrics.json"))
    if not paths:
        return {}
    if len(paths) > 1:
        raise ValueError(f"{run_dir} holds several metrics.json: {', '.join(map(str, paths))}")
    try:
        return flatten_metrics(json.loads(paths[0].read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {paths[0]}: {err}") from err


def summary_table(outcomes: Sequence[RunOutcome]) -> pd.DataFrame:
    """One row per run: name, grid parameters, ok, reason, wall time, then every scalar metric.

    Reads each run's ``metrics.json``; an unreadable one turns its row into a failure.
    """
    grid: list[str] = []
    metric_names: list[str] = []
    rows = []
    for outcome in outcomes:
        try:
            outcome.metrics = read_metrics(outcome.run_dir)
        except ValueError as err:
            outcome.ok, outcome.reason = False, str(err)
        grid += [k for k in outcome.params if k not in grid]
        row: dict[str, Any] = {"run": outcome.run, **outcome.params}
        row.update(ok=outcome.ok, reason=outcome.reason, wall_time_s=outcome.wall_time_s)
        for key, value in outcome.metrics.items():
            column = f"metrics.{key}" if key in row or key in FIXED_COLUMNS else key
            row[column] = value
            if column not in metric_names:
                metric_names.append(column)
        rows.append(row)
    columns = ["run", *grid, "ok", "reason", "wall_time_s", *metric_names]
    return pd.DataFrame(rows, columns=columns)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (no extra dependency)."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(map(str, table.columns)) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_summary(table: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.md`` into the sweep folder."""
    csv_path, md_path = Path(folder) / "summary.csv", Path(folder) / "summary.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(table))
    return csv_path, md_path


# --- the whole sweep --------------------------------------------------------------------------


def default_folder(chapter: Chapter) -> Path:
    """``_build/sweeps/<chapter>-<UTC time>``: outside ``results/``, one per sweep."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return repo_root() / "_build" / "sweeps" / f"{chapter.id}-{stamp}"


def run_sweep(
    chapter: Chapter,
    seeds: Sequence[int] | None = None,
    axes: Mapping[str, Sequence[Any]] | None = None,
    *,
    executor: str = "local",
    workers: int | None = None,
    budget_s: float | None = None,
    folder: Path | None = None,
    slurm: SlurmOptions | None = None,
    job: Callable[..., JobResult] = run_point,
    quiet: bool = False,
) -> pd.DataFrame:
    """Run ``chapter`` at every grid point, then gather and write the summary; return the table.

    Everything is checked before anything runs. ``job`` is ``run_point`` except in tests.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if executor == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise ValueError("the slurm executor needs sbatch and srun on PATH: run on a login node")
    points = plan(chapter, seeds, axes, budget_s)
    timeout_min = default_timeout_min(chapter, points, budget_s)
    folder = Path(folder) if folder is not None else default_folder(chapter)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"sweep folder {folder} already exists and is not empty")
    folder.mkdir(parents=True, exist_ok=True)
    names = [run_name(i, params) for i, params in enumerate(points)]
    (folder / "grid.json").write_text(
        json.dumps(
            {
                "chapter": chapter.id,
                "seeds": list(seeds or []),
                "axes": {k: list(v) for k, v in (axes or {}).items()},
                "executor": executor,
                "budget_s": budget_s,
                "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "runs": [{"run": n, "params": p} for n, p in zip(names, points, strict=True)],
            },
            indent=1,
            default=str,
        )
    )
    tasks = [
        (chapter, params, folder / name, budget_s)
        for name, params in zip(names, points, strict=True)
    ]
    if not quiet:
        print(f"[sweep] {chapter.id}: {len(points)} runs via {executor} -> {folder}", flush=True)
    done = 0

    def progress(i: int, result: JobResult) -> None:
        nonlocal done
        done += 1
        if not quiet:
            state = "ok" if result["ok"] else f"FAILED ({result['reason']})"
            wall = result.get("wall_time_s")
            took = f" in {wall:.1f} s" if wall is not None else ""
            print(f"[sweep] {done}/{len(tasks)} {names[i]}: {state}{took}", flush=True)

    results = run_jobs(
        job, tasks, executor, folder, workers=workers, timeout_min=timeout_min, slurm=slurm,
        on_done=progress,
    )  # fmt: skip
    outcomes = [
        RunOutcome(name, params, folder / name, bool(r.get("ok")), r.get("reason", ""),
                   r.get("wall_time_s"))
        for name, params, r in zip(names, points, results, strict=True)
    ]  # fmt: skip
    table = summary_table(outcomes)
    write_summary(table, folder)
    if not quiet:
        with pd.option_context("display.width", None, "display.max_columns", None):
            print(table.to_string(index=False))
        print(f"[sweep] summary: {folder / 'summary.csv'}, {folder / 'summary.md'}", flush=True)
    return table
