"""Run artefacts: ``metrics.json``, figures and ``provenance.json``, written atomically.

A run writes everything into a temporary folder beside its destination and renames it into
place only when complete, so a crashed or interrupted run never leaves half an artefact and
never replaces the last good one. ``load_results`` reads committed artefacts back and says
when they are missing or older than the library code in ``src/`` that the chapter uses.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from reprobook.chapters import CHAPTER_PATTERN, repo_root
from reprobook.runtime import describe_device

TRACKED_PACKAGES = ("torch", "numpy", "scipy", "pandas", "matplotlib", "papermill", "jupytext")


def results_root() -> Path:
    """Where runs write: ``REPROBOOK_RESULTS_DIR`` if set (tests use a temp dir), else results/."""
    env = os.environ.get("REPROBOOK_RESULTS_DIR")
    return Path(env).resolve() if env else repo_root() / "results"


def committed_results_root() -> Path:
    """Where the committed full-run artefacts live, whatever a run writes to."""
    return repo_root() / "results"


OFFICIAL_FILE = "official_code.json"


def load_official_code(chapter: str) -> dict:
    """A chapter's measurements of the paper's official code, committed beside its anchors
    (``results/<chapter>/official_code.json``: the repository, the commit, the settings and one
    row per run), run by the project outside this repository."""
    path = committed_results_root() / chapter / OFFICIAL_FILE
    if not path.exists():
        raise ValueError(f"{path} is missing: the comparison with the official code needs it")
    return json.loads(path.read_text())


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The commit the code ran at, and whether ``src/`` or ``notebooks/`` had uncommitted edits."""
    sha = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--", "src", "notebooks")
    return {
        "git_sha": sha.strip() if sha else None,
        "git_dirty": bool(dirty.strip()) if dirty is not None else None,
    }


def imported_modules() -> list[str]:
    """The ``reprobook`` modules this process has imported: what the run's results depend on."""
    return sorted(m for m in sys.modules if m == "reprobook" or m.startswith("reprobook."))


def imported_distributions() -> dict[str, str]:
    """Installed versions of the third-party distributions this process has imported from
    (``reprobook`` itself excluded): the environment a run's numbers depend on."""
    provided = metadata.packages_distributions()
    top = {name.split(".")[0] for name in list(sys.modules)}
    names = sorted({d for m in top for d in provided.get(m, ())} - {"reprobook"}, key=str.lower)
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    from reprobook import __version__

    versions["reprobook"] = __version__
    return versions


def _to_json(obj: Any) -> Any:
    """numpy scalars and arrays as plain Python values, so chapters need not cast them."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_json(v) for v in obj]
    return obj


def _check_finite(obj: Any, where: str = "metrics") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"{where} is not finite ({obj}); refusing to save it")
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} has a non-string key {k!r}")
            _check_finite(v, f"{where}[{k!r}]")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_finite(v, f"{where}[{i}]")
    elif not isinstance(obj, str | int | float | bool | type(None)):
        raise ValueError(f"{where} holds a {type(obj).__name__}, which JSON cannot store")


_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUMBER_LIST = re.compile(rf"\[\s*({_NUMBER}(?:,\s*{_NUMBER})*)\s*\]")


def dumps(obj: Any) -> str:
    """JSON indented for reading, with every list of plain numbers on one line (a long curve or a
    point cloud would otherwise take one line per number)."""
    text = json.dumps(obj, indent=2)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text)


@dataclass
class Run:
    """One execution of a chapter in one profile; ``save`` writes its artefacts atomically."""

    chapter: str
    profile: str
    parameters: dict[str, Any]
    root: Path
    device: str = "cpu"
    started: float = field(default_factory=time.time)
    git: dict[str, Any] = field(default_factory=git_state)  # the code as it was when the run began

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.time() - self.started

    @property
    def out_dir(self) -> Path:
        return self.root / self.chapter / self.profile

    def save(
        self,
        metrics: dict[str, Any],
        figures: dict[str, Any] | None = None,
        files: dict[str, str | bytes] | None = None,
    ) -> Path:
        """Write metrics, figures (matplotlib, saved as PNG) and extra files; return the folder."""
        metrics = _to_json(metrics)
        _check_finite(metrics)
        for name in [*(figures or {}), *(files or {})]:
            if "/" in name or name.startswith(".") or name in ("metrics.json", "provenance.json"):
                raise ValueError(f"artefact name {name!r} must be a plain file name")
        finished = time.time()
        now = git_state()
        provenance = {
            "chapter": self.chapter,
            "profile": self.profile,
            "parameters": self.parameters,
            "command": os.environ.get("REPROBOOK_COMMAND", f"interactive ({sys.argv[0]})"),
            **self.git,
            "versions": package_versions(),
            "reprobook_modules": imported_modules(),
            "distributions": imported_distributions(),
            "device": describe_device(self.device),
            "started_utc": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            "finished_utc": datetime.fromtimestamp(finished, UTC).isoformat(timespec="seconds"),
            "wall_time_s": round(finished - self.started, 2),
        }
        if now != self.git:  # src/ or notebooks/ were edited or committed while the run was going
            provenance["git_at_save"] = now
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out_dir.parent / f".tmp-{self.profile}-{os.getpid()}"
        old = self.out_dir.parent / f".old-{self.profile}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            (tmp / "metrics.json").write_text(dumps(metrics) + "\n")
            (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
            for name, fig in (figures or {}).items():
                fig.savefig(tmp / f"{name}.png", dpi=110, bbox_inches="tight")
                plt.close(fig)  # saved, not shown again at the end of the saving cell
            for name, content in (files or {}).items():
                mode = "wb" if isinstance(content, bytes) else "w"
                with open(tmp / name, mode) as fh:
                    fh.write(content)
            if self.out_dir.exists():
                self.out_dir.rename(old)
            tmp.rename(self.out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if old.exists() and not self.out_dir.exists():
                old.rename(self.out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return self.out_dir


def start_run(chapter: str, profile: str, parameters: dict[str, Any], device: str = "cpu") -> Run:
    """Begin timing a run; checks up front that its results folder can be written."""
    if not CHAPTER_PATTERN.match(chapter):
        raise ValueError(f"chapter id {chapter!r} is not of the form chNN-<slug>")
    root = results_root()
    if root.exists() and not root.is_dir():
        raise ValueError(f"results directory {root} exists and is not a directory")
    try:
        (root / chapter).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"results directory {root} is not writable: {err}") from err
    if not os.access(root / chapter, os.W_OK):
        raise ValueError(f"results directory {root / chapter} is not writable")
    return Run(chapter, profile, dict(parameters), root, device)


@dataclass
class LoadedResults:
    """Artefacts read back: ``status`` is 'ok', 'stale' or 'missing'; ``message`` says why."""

    path: Path
    status: str
    message: str
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.status != "missing"


def load_results(chapter: str, profile: str = "full", root: Path | None = None) -> LoadedResults:
    """Read ``results/<chapter>/<profile>/`` and say whether it is current.

    Current means the behaviour fingerprint written by the full run still matches the notebook's
    code cells and the pinned requirements; the smoke test also compares the smoke metrics (see
    ``reprobook.fingerprint``). Artefacts without a fingerprint are 'stale'.
    """
    from reprobook import fingerprint
    from reprobook.chapters import get_chapter

    path = (root or committed_results_root()) / chapter / profile
    metrics_file, prov_file = path / "metrics.json", path / "provenance.json"
    if not metrics_file.is_file() or not prov_file.is_file():
        return LoadedResults(
            path,
            "missing",
            f"No {profile} artefacts at {path}: run `make run CH={chapter} "
            f"PARAMS='-p profile {profile}'` to make them.",
        )
    metrics = json.loads(metrics_file.read_text())
    provenance = json.loads(prov_file.read_text())
    sha = provenance.get("git_sha")
    made = f"made {provenance.get('finished_utc', '?')} at commit {str(sha)[:10]}"
    if provenance.get("git_dirty"):
        made += " (with uncommitted edits)"
    print_ = fingerprint.load(chapter, root) if profile == "full" else None
    if print_ is None:
        return LoadedResults(
            path, "stale", f"Artefacts {made}; no behaviour fingerprint beside them, so nothing "
            "shows that they match the code.", metrics, provenance,
        )  # fmt: skip
    verdict = fingerprint.check(get_chapter(chapter), print_)
    status = "ok" if verdict.current else "stale"
    detail = "; ".join(verdict.problems()) or "code cells and requirements unchanged since"
    return LoadedResults(path, status, f"Artefacts {made}; {detail}.", metrics, provenance)
