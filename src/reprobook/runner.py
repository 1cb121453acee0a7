"""Execute a chapter: MyST notebook -> jupytext -> papermill, under a time budget for the whole run.

Papermill's own timeout applies per cell; here the whole run (papermill and its kernel) is killed
once it exceeds the chapter's budget. The executed notebook is written where the book renders it
(``notebooks/<chapter>.ipynb``); a failing run leaves it there with the traceback. A full run also
keeps its executed notebook beside its artefacts and writes the behaviour fingerprint
(``reprobook.fingerprint``) from a smoke run at the same commit.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import psutil
import yaml

from reprobook import fingerprint, publish
from reprobook.chapters import Chapter, repo_root

KERNEL = "python3"


class ChapterRunError(RuntimeError):
    """A chapter's notebook raised, or ran past its time budget."""


@dataclass
class RunRecord:
    chapter: str
    profile: str
    parameters: dict[str, Any]
    ok: bool
    wall_time_s: float
    budget_s: float
    executed_notebook: str
    finished_utc: str
    reason: str = ""


def runs_log_path() -> Path:
    return repo_root() / "_build" / "reprobook-runs.json"


def parse_value(text: str) -> Any:
    """A command-line value: int, float, True/False/None, [list] or {map} (YAML), else text."""
    words = {"True": True, "true": True, "False": False, "false": False, "None": None}
    if text in words:
        return words[text]
    if text and text[0] in "[{":
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"cannot read {text!r} as a list or mapping: {err}") from err
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_notebook(chapter: Chapter) -> nbformat.NotebookNode:
    nb = jupytext.read(chapter.source)
    nb.metadata.setdefault(
        "kernelspec", {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    )
    return nb


def parameter_defaults(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The names and literal values of the cell tagged ``parameters`` (literals only)."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(
            f"a chapter needs exactly one cell tagged 'parameters', found {len(cells)}"
        )
    defaults = {}
    for node in ast.parse(cells[0].source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            raise ValueError("the parameters cell may hold only simple assignments of literals")
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            raise ValueError("the parameters cell may assign only plain names")
        try:
            defaults[target.id] = ast.literal_eval(node.value)
        except ValueError as err:
            raise ValueError(f"parameter {target.id!r} is not a literal") from err
    return defaults


def validate_parameters(chapter: Chapter, defaults: dict[str, Any], params: dict[str, Any]) -> None:
    """Refuse unknown names, unknown profiles and values of the wrong type before anything runs."""
    for name, value in params.items():
        if name not in defaults:
            raise ValueError(
                f"unknown parameter {name!r} for {chapter.id}; parameters: {', '.join(defaults)}"
            )
        default = defaults[name]
        if default is None or value is None:
            continue
        numeric = (
            isinstance(default, float)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        )
        if not numeric and type(value) is not type(default):
            raise ValueError(
                f"parameter {name} must be {type(default).__name__} like its default "
                f"{default!r}, got {value!r}"
            )
    chapter.budget(params.get("profile", defaults.get("profile", "smoke")))


def _kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [*parent.children(recursive=True), parent]
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=5)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def _note_stop(path: Path, fallback: nbformat.NotebookNode, why: str) -> None:
    """Append to a stopped run's notebook why it stopped (the reader sees it in the book)."""
    try:
        nb = nbformat.read(path, as_version=4) if path.is_file() else fallback
    except Exception:  # a notebook cut off mid-write: start again from the source
        nb = fallback
    nb.cells.append(
        nbformat.v4.new_markdown_cell(
            f"**This run was stopped: {why}.** Outputs above are from the cells that finished; "
            "results are saved only by a run that completes, so earlier artefacts are intact."
        )
    )
    nbformat.write(nb, path)


def _raise_on_sigterm():
    """Turn SIGTERM into an exception while a run is in flight, so its subprocesses get killed."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, handler)


def _record(record: RunRecord) -> None:
    path = runs_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(path.read_text()) if path.is_file() else []
    runs.append(asdict(record))
    path.write_text(json.dumps(runs[-500:], indent=1))


def last_runs() -> dict[tuple[str, str], dict[str, Any]]:
    """The latest recorded run of each (chapter, profile)."""
    path = runs_log_path()
    runs = json.loads(path.read_text()) if path.is_file() else []
    return {(r["chapter"], r["profile"]): r for r in runs}


def run_chapter(
    chapter: Chapter,
    params: dict[str, Any] | None = None,
    budget_s: float | None = None,
    results_dir: Path | None = None,
    output: Path | None = None,
    quiet: bool = False,
    work_dir: Path | None = None,
) -> RunRecord:
    """Execute ``chapter`` with ``params``; raise ``ChapterRunError`` if it fails or overruns.

    ``work_dir`` holds the notebook and parameters file handed to papermill (default
    ``_build/.run``); runs of one chapter that start together each need their own.
    """
    params = dict(params or {})
    nb = read_notebook(chapter)
    defaults = parameter_defaults(nb)
    validate_parameters(chapter, defaults, params)
    profile = params.get("profile", defaults.get("profile", "smoke"))
    budget = chapter.budget(profile) if budget_s is None else float(budget_s)
    if budget <= 0:
        raise ValueError(f"time budget must be positive, got {budget} s")
    output = Path(output) if output else chapter.executed_path
    work = Path(work_dir) if work_dir is not None else repo_root() / "_build" / ".run"
    work.mkdir(parents=True, exist_ok=True)
    source_nb = work / f"{chapter.id}.source.ipynb"
    params_file = work / f"{chapter.id}.params.yaml"
    nbformat.write(nb, source_nb)
    params_file.write_text(yaml.safe_dump(params))
    output.parent.mkdir(parents=True, exist_ok=True)

    env = dict(os.environ)
    cli_params = [a for k, v in params.items() for a in ("-p", k, str(v))]
    env["REPROBOOK_COMMAND"] = shlex.join(
        ["python", "-m", "reprobook", "run", chapter.id, *cli_params]
    )
    env.setdefault("PYTHONHASHSEED", "0")
    if results_dir is not None:
        env["REPROBOOK_RESULTS_DIR"] = str(Path(results_dir).resolve())
    cmd = [
        sys.executable, "-m", "papermill", str(source_nb), str(output),
        "-f", str(params_file), "-k", KERNEL, "--cwd", str(chapter.source.parent),
        "--progress-bar" if (sys.stderr.isatty() and not quiet) else "--no-progress-bar",
    ]  # fmt: skip
    if not quiet:
        shown = " ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
        print(f"[reprobook] {chapter.id} ({profile}, {shown}), budget {budget:.0f} s", flush=True)
    folder = results_folder(chapter, profile, results_dir)
    if "REPROBOOK_RESULTS_DIR" in env:  # resolved here: the kernel runs in notebooks/
        env["REPROBOOK_RESULTS_DIR"] = str(folder.parent.parent)
    kept = _keep_results(folder, work)
    succeeded = False
    try:
        reason, log, wall = _execute(cmd, env, budget, output, nb)
        record = RunRecord(
            chapter=chapter.id,
            profile=profile,
            parameters=params,
            ok=not reason,
            wall_time_s=round(wall, 2),
            budget_s=budget,
            executed_notebook=str(output),
            finished_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            reason=reason,
        )
        _record(record)
        if reason:
            tail = "\n".join((log or "").strip().splitlines()[-25:])
            raise ChapterRunError(
                f"{chapter.id} failed: {reason} after {wall:.1f} s. "
                f"Executed notebook with the traceback: {output}\n{tail}"
            )
        publish.finish_executed(output, profile)
        if profile == "full":
            _keep_full_run(chapter, output, results_dir, quiet, work)
        succeeded = True
    finally:  # a run that saved and then failed (an assertion, the budget, an interrupt, the
        # fingerprint's smoke run) leaves the folder as it was
        if succeeded:
            kept.discard()
        else:
            kept.restore()
    if not quiet:
        print(f"[reprobook] {chapter.id} done in {wall:.1f} s -> {output}", flush=True)
    return record


def _execute(
    cmd: list[str], env: dict[str, str], budget: float, output: Path, nb: nbformat.NotebookNode
) -> tuple[str, str, float]:
    """Run papermill within ``budget`` seconds; return (why it failed or "", its log, seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    previous_handler = _raise_on_sigterm()
    try:
        log, _ = proc.communicate(timeout=budget)
        reason = "" if proc.returncode == 0 else f"papermill exited {proc.returncode}"
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        log, _ = proc.communicate()
        _note_stop(output, nb, f"it exceeded its time budget of {budget:.0f} s")
        reason = f"exceeded its time budget of {budget:.0f} s and was killed"
    except BaseException:  # Ctrl-C or SIGTERM: take papermill and its kernel down too
        _kill_tree(proc.pid)
        _note_stop(output, nb, "it was interrupted")
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    return reason, log, time.monotonic() - start


def results_folder(chapter: Chapter, profile: str, results_dir: Path | None = None) -> Path:
    """Where a run of ``chapter`` in ``profile`` saves its artefacts (as ``results.start_run``)."""
    from reprobook import results

    root = Path(results_dir).resolve() if results_dir is not None else results.results_root()
    return root / chapter.id / profile


@dataclass
class _KeptResults:
    """A copy of a results folder taken before a run, put back if the run fails."""

    folder: Path
    copy: Path | None  # None: there was no folder before the run

    def restore(self) -> None:
        """Put the folder back as it was (remove one that a failed run created, and what an
        interrupted ``Run.save`` left beside it)."""
        if self.folder.exists():
            shutil.rmtree(self.folder)
        for left in self.folder.parent.glob(f".*-{self.folder.name}-*"):
            if left.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(left, ignore_errors=True)
        if self.copy is not None:
            shutil.move(str(self.copy), str(self.folder))

    def discard(self) -> None:
        if self.copy is not None:
            shutil.rmtree(self.copy, ignore_errors=True)


def _keep_results(folder: Path, work: Path) -> _KeptResults:
    """Copy ``folder`` aside (into ``work``) so that a failed run can leave it untouched."""
    if not folder.exists():
        return _KeptResults(folder, None)
    copy_dir = work / f"kept-{folder.parent.name}-{folder.name}"
    shutil.rmtree(copy_dir, ignore_errors=True)
    shutil.copytree(folder, copy_dir)
    return _KeptResults(folder, copy_dir)


def _keep_full_run(
    chapter: Chapter, executed: Path, results_dir: Path | None, quiet: bool, work_dir: Path
) -> None:
    """After a full run: keep its executed notebook, then run smoke at the same commit and write
    the behaviour fingerprint beside the artefacts."""
    from reprobook.results import committed_results_root, git_state

    root = Path(results_dir).resolve() if results_dir is not None else committed_results_root()
    publish.save_artefact_notebook(executed, publish.artefact_notebook_path(chapter.id, root))
    smoke, distributions = _fingerprint_smoke(chapter, quiet, work_dir)
    sha = git_state()["git_sha"]
    made = fingerprint.make(chapter, smoke, sha, distributions=distributions)
    fingerprint.write(made, fingerprint.path_for(chapter.id, root))


def _fingerprint_smoke(chapter: Chapter, quiet: bool, work_dir: Path) -> tuple[dict, dict]:
    """Run smoke in a scratch folder; its metrics and the distributions it imported."""
    work = work_dir / f"{chapter.id}.fingerprint"
    shutil.rmtree(work, ignore_errors=True)
    if not quiet:
        print(f"[reprobook] {chapter.id}: smoke run for the behaviour fingerprint", flush=True)
    run_chapter(
        chapter, {"profile": "smoke"}, results_dir=work, output=work / "smoke.ipynb", quiet=True,
        work_dir=work,
    )  # fmt: skip
    out = work / chapter.id / "smoke"
    provenance = json.loads((out / "provenance.json").read_text())
    return json.loads((out / "metrics.json").read_text()), provenance["distributions"]


def migrate_fingerprint(chapter: Chapter, quiet: bool = False, work_dir: Path | None = None):
    """Rewrite a chapter's version 1 fingerprint as version 2 (see ``fingerprint.migrate``)
    from a smoke run now; refused, with the reason, when the record is stale."""
    committed = fingerprint.load(chapter.id)
    if committed is None:
        raise ValueError(f"{chapter.id} has no fingerprint to migrate")
    if committed["fingerprint_version"] == fingerprint.FINGERPRINT_VERSION:
        return fingerprint.path_for(chapter.id)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        smoke, distributions = _fingerprint_smoke(chapter, quiet, Path(tmp))
    migrated = fingerprint.migrate(chapter, committed, smoke, distributions)
    return fingerprint.write(migrated, fingerprint.path_for(chapter.id))


def add_cpu_to_fingerprint(chapter: Chapter, quiet: bool = False, work_dir: Path | None = None):
    """Add this CPU's smoke metrics to a chapter's fingerprint (see ``fingerprint.add_cpu``)
    from a smoke run now; refused, with the reason, when code cells or environment changed."""
    committed = fingerprint.load(chapter.id)
    if committed is None:
        raise ValueError(f"{chapter.id} has no fingerprint to add a CPU to")
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        smoke, _ = _fingerprint_smoke(chapter, quiet, Path(tmp))
    added = fingerprint.add_cpu(chapter, committed, smoke, fingerprint.cpu_signature())
    return fingerprint.write(added, fingerprint.path_for(chapter.id))


def _write_page(chapter: Chapter, nb: nbformat.NotebookNode, strict: bool) -> None:
    """The page the book renders: numbered figures, the layout, and the page's links."""
    from reprobook import pagelinks

    try:
        page = publish.for_reading(copy.deepcopy(nb), strict=strict)
    except ValueError as err:  # the source's figures no longer match the run: render, and say so
        print(f"[reprobook] {chapter.id}: figures left unnumbered: {err}", file=sys.stderr)
        page = publish.for_reading(nb, strict=False)
    pagelinks.add_links(page, chapter)
    nbformat.write(page, chapter.executed_path)


def prepare_book(
    profile: str | None = None, quiet: bool = False, smoke_notebooks: dict[str, Path] | None = None
) -> list[str]:
    """Write ``notebooks/<chapter>.ipynb`` for every chapter, for the book to render.

    With no ``profile``, a chapter with a full-run notebook is rendered from it (today's prose,
    the full run's outputs) and any other chapter is executed in ``smoke`` under a banner (or
    taken from ``smoke_notebooks``, executed smoke notebooks by chapter id, as the tests do).
    With a ``profile``, every chapter is executed afresh in it. Either way it then writes the
    results dashboard (``reprobook.dashboard``) from the committed artefacts. Returns the
    chapters that failed.
    """
    from reprobook import results as results_mod
    from reprobook.chapters import find_chapters

    failed = []
    for chapter in find_chapters():
        merged = None if profile else publish.book_notebook(chapter)
        if merged is not None:
            loaded = results_mod.load_results(chapter.id, "full")
            if loaded.status == "stale":
                publish.add_stale_banner(merged, loaded.message)
                print(f"[reprobook] {chapter.id}: the full run is stale", file=sys.stderr)
            _write_page(chapter, merged, strict=True)
            if not quiet:
                print(f"[reprobook] {chapter.id}: the committed full run", flush=True)
            continue
        if not profile and smoke_notebooks and chapter.id in smoke_notebooks:
            shutil.copyfile(smoke_notebooks[chapter.id], chapter.executed_path)
        else:
            try:
                run_chapter(chapter, {"profile": profile or "smoke"}, quiet=quiet)
            except ChapterRunError as err:
                print(err, file=sys.stderr)
                failed.append(chapter.id)
                continue
        _write_page(chapter, nbformat.read(chapter.executed_path, as_version=4), strict=False)
    from reprobook import dashboard

    path = dashboard.write()
    if not quiet:
        print(f"[reprobook] results dashboard -> {path}", flush=True)
    return failed
