"""Behaviour fingerprints: whether committed full-run artefacts still match the code.

A full run also runs the smoke profile at the same commit and writes
``results/<chapter>/full/fingerprint.json``: the smoke metrics (minus timing and throughput keys,
which vary from run to run), a hash of the notebook's code cells and the pinned versions
(``requirements.txt`` / ``constraints.txt``) of the distributions the smoke run imported (its
provenance's ``distributions``, kept where pinned: unpinned transitive packages are not
recorded, as they were not before). The smoke test that ``make test`` runs recomputes all
three; the artefacts are *current* when they match. A refactor that leaves every smoke metric
unchanged costs no re-run, and a change that moves a metric fails with the list of metrics that
moved and by how much. Pinning a package that a chapter does not import leaves it current;
changing the pin of one it does import does not.

Floating-point results depend on the CPU (the same code and pins give slightly different smoke
metrics on an AMD EPYC than on the machines the book was first run on: MKL and oneDNN take
other kernels per processor), so a fingerprint records the CPU its smoke metrics came from
(``cpu``: vendor and torch's CPU capability) and may
hold the smoke metrics of the same code on other CPUs (``smoke_metrics_other_cpus``, added by
``python -m reprobook fingerprint-add-cpu`` only when code cells and environment still match).
A check compares a smoke run with the record of its own CPU; on a CPU with no record it checks
the code cells and the environment only, and says so. A record without ``cpu`` (made before the
field existed) counts as made on every CPU without a record of its own.

Version 1 fingerprints recorded a hash of ``requirements.txt`` + ``constraints.txt`` instead of
the distributions; they are still checked that way, and ``migrate`` rewrites one as version 2
from a smoke run when its code cells, requirements and smoke metrics all still match.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext

from reprobook.chapters import Chapter, repo_root

FINGERPRINT_VERSION = 2
READABLE_VERSIONS = (1, 2)
FILE_NAME = "fingerprint.json"
RTOL = 1e-6
REQUIREMENT_FILES = ("requirements.txt", "constraints.txt")
# Timing and throughput keys of any chapter (dotted paths, fnmatch patterns); a chapter adds its
# own in its front matter (``reprobook.volatile_metrics``).
VOLATILE_DEFAULT = (
    "*throughput*",
    "*seconds*",
    "*wall_time*",
    "*_s",
    "*_ms",
    "*ms_per_*",
    "*_ms_*",
    "*latency*",
    "*timing*",
)


def cpu_signature() -> str:
    """This machine's CPU as far as floating point goes: vendor and torch's CPU capability."""
    import platform

    import torch

    vendor = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{vendor} {torch.backends.cpu.get_cpu_capability()}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def code_cells_hash(chapter: Chapter) -> str:
    """Hash of the chapter's code cells as the source notebook has them (prose is free to edit)."""
    cells = jupytext.read(chapter.source).cells
    code = [c.source.rstrip() for c in cells if c.cell_type == "code"]
    return _sha256("\n\x1e\n".join(code))


def requirements_hash(root: Path | None = None) -> str:
    """Hash of the pinned environment (``requirements.txt`` and ``constraints.txt``)."""
    root = root or repo_root()
    return _sha256("".join((root / name).read_text() for name in REQUIREMENT_FILES))


def volatile_patterns(chapter: Chapter) -> tuple[str, ...]:
    return VOLATILE_DEFAULT + tuple(chapter.volatile_metrics)


def flatten(obj: Any, prefix: str = "", into_lists: bool = True) -> Iterator[tuple[str, Any]]:
    """Leaves of nested dicts (and lists, items by index, unless ``into_lists`` is False, when a
    list is one leaf) as ``(dotted.path, value)``."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key), into_lists)
    elif isinstance(obj, list) and into_lists:
        for i, value in enumerate(obj):
            yield from flatten(value, f"{prefix}.{i}" if prefix else str(i), into_lists)
    else:
        yield prefix, obj


def is_volatile(path: str, patterns: Sequence[str]) -> bool:
    """Whether a dotted metric path names a timing or throughput value (any of its segments)."""
    parts = path.split(".")
    prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(p, pat) for pat in patterns for p in (*prefixes, *parts))


def stable_metrics(metrics: dict, patterns: Sequence[str]) -> dict[str, Any]:
    """The metrics that a fingerprint compares: every leaf that is not volatile, flattened."""
    return {k: v for k, v in flatten(metrics) if not is_volatile(k, patterns)}


@dataclass(frozen=True)
class Moved:
    """One metric that differs between the fingerprint and a new smoke run."""

    path: str
    before: Any
    after: Any

    def describe(self) -> str:
        if self.before is _MISSING:
            return f"{self.path}: new metric ({self.after!r})"
        if self.after is _MISSING:
            return f"{self.path}: gone (was {self.before!r})"
        numbers = all(
            isinstance(v, int | float) and not isinstance(v, bool)
            for v in (self.before, self.after)
        )
        if numbers:
            delta = self.after - self.before
            change = f"by {delta:+.3g}"
            if self.before:
                change += f", rel {abs(delta) / abs(self.before):.2g}"
            return f"{self.path}: {self.before!r} -> {self.after!r} ({change})"
        return f"{self.path}: {self.before!r} -> {self.after!r}"


_MISSING = object()


def _close(a: Any, b: Any, rtol: float) -> bool:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if numbers:
        return math.isclose(a, b, rel_tol=rtol, abs_tol=0.0) or a == b
    return a == b and type(a) is type(b)


def moved_metrics(before: dict, after: dict, rtol: float = RTOL) -> list[Moved]:
    """Metrics (flattened, as ``stable_metrics`` gives them) that differ beyond ``rtol``."""
    moved = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path, _MISSING), after.get(path, _MISSING)
        if a is _MISSING or b is _MISSING or not _close(a, b, rtol):
            moved.append(Moved(path, a, b))
    return moved


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(root: Path | None = None) -> dict[str, str]:
    """``name==version`` pins of ``requirements.txt`` and ``constraints.txt`` (names
    normalised as PEP 503 does; a constraint overrides nothing, both agree by design)."""
    root = root or repo_root()
    pins = {}
    for file in REQUIREMENT_FILES:
        for line in (root / file).read_text().splitlines():
            line = line.split("#")[0].split(";")[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[_normalise(name.split("[")[0].strip())] = version.strip()
    return pins


def pinned_subset(distributions: dict[str, str], root: Path | None = None) -> dict[str, str]:
    """The imported distributions that the requirement files pin, with their pinned versions."""
    pins = pinned_versions(root)
    kept = {_normalise(name) for name in distributions} & set(pins)
    return {name: pins[name] for name in sorted(kept)}


def environment_changes(distributions: dict[str, str], root: Path | None = None) -> list[str]:
    """The recorded distributions whose pin differs now, as 'name a -> b'."""
    pins = pinned_versions(root)
    out = []
    for name, version in sorted(distributions.items()):
        now = pins.get(_normalise(name), "no longer pinned")
        if now != version:
            out.append(f"{name} {version} -> {now}")
    return out


def make(
    chapter: Chapter, smoke_metrics: dict, git_sha: str | None, note: str = "",
    distributions: dict[str, str] | None = None,
) -> dict:  # fmt: skip
    """The fingerprint of a full run whose smoke run at the same commit gave ``smoke_metrics``
    having imported ``distributions`` (name -> version; its provenance records them), of which
    the pinned ones are kept, with their pins."""
    if distributions is None:
        from reprobook.results import imported_distributions

        distributions = imported_distributions()
    patterns = volatile_patterns(chapter)
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        "chapter": chapter.id,
        "git_sha": git_sha,
        "rtol": RTOL,
        "volatile": list(patterns),
        "code_cells_sha256": code_cells_hash(chapter),
        "distributions": pinned_subset(distributions),
        "note": note,
        "cpu": cpu_signature(),
        "smoke_metrics": stable_metrics(smoke_metrics, patterns),
    }


def path_for(chapter_id: str, root: Path | None = None) -> Path:
    from reprobook.results import committed_results_root

    return (root or committed_results_root()) / chapter_id / "full" / FILE_NAME


def write(fingerprint: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(fingerprint, indent=1) + "\n")
    tmp.replace(path)
    return path


def load(chapter_id: str, root: Path | None = None) -> dict | None:
    """The committed fingerprint of a chapter's full run, or None if there is none."""
    path = path_for(chapter_id, root)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("fingerprint_version") not in READABLE_VERSIONS:
        raise ValueError(
            f"{path}: fingerprint_version {data.get('fingerprint_version')!r} is not one of "
            f"{READABLE_VERSIONS}; re-make the full run"
        )
    return data


@dataclass
class Check:
    """The outcome of comparing a fingerprint with the code and, optionally, a new smoke run."""

    chapter: str
    code_changed: bool
    environment_changed: list[str]  # 'name a -> b' per changed distribution (v1: the files)
    moved: list[Moved]
    compared_metrics: bool
    cpu_note: str = ""  # why smoke metrics were not compared on this CPU, when they were not

    @property
    def requirements_changed(self) -> bool:
        return bool(self.environment_changed)

    @property
    def current(self) -> bool:
        return not (self.code_changed or self.environment_changed or self.moved)

    def problems(self, limit: int = 25) -> list[str]:
        out = []
        if self.code_changed:
            out.append("the notebook's code cells changed since the full run")
        if self.environment_changed:
            out.append("the environment it ran in changed: " + "; ".join(self.environment_changed))
        if self.moved:
            shown = [m.describe() for m in self.moved[:limit]]
            more = len(self.moved) - limit
            out.append(
                f"{len(self.moved)} smoke metric(s) moved: " + "; ".join(shown)
                + (f"; ... and {more} more" if more > 0 else "")
            )  # fmt: skip
        return out

    def message(self) -> str:
        if self.current:
            what = (
                "smoke metrics, code cells and environment"
                if self.compared_metrics
                else ("code cells and environment (smoke metrics not re-run here)")
            )
            note = f" {self.cpu_note}" if self.cpu_note else ""
            return f"{self.chapter}: full-run artefacts are current ({what} match).{note}"
        return (
            f"{self.chapter}: full-run artefacts are stale: " + "; ".join(self.problems())
            + f". Re-make them: make run CH={self.chapter} PARAMS='-p profile full'"
        )  # fmt: skip


def recorded_metrics(fingerprint: dict, cpu: str) -> dict | None:
    """The smoke metrics a fingerprint holds for ``cpu``: its own record, the main record when
    it was made there (or before CPUs were recorded), else None."""
    others = fingerprint.get("smoke_metrics_other_cpus", {})
    if cpu in others:
        return others[cpu]
    if fingerprint.get("cpu", cpu) == cpu:
        return fingerprint["smoke_metrics"]
    return None


def check(
    chapter: Chapter, fingerprint: dict, smoke_metrics: dict | None = None, cpu: str | None = None
) -> Check:
    """Compare a committed fingerprint with the code now (and a fresh smoke run on ``cpu``,
    this machine's by default, if given)."""
    moved: list[Moved] = []
    compared, cpu_note = smoke_metrics is not None, ""
    if smoke_metrics is not None:
        cpu = cpu or cpu_signature()
        before = recorded_metrics(fingerprint, cpu)
        if before is None:
            compared = False
            recorded = [fingerprint["cpu"], *fingerprint.get("smoke_metrics_other_cpus", {})]
            cpu_note = (
                f"Smoke metrics were recorded on {', '.join(recorded)}, not on this CPU ({cpu}), "
                "whose floating-point results differ: only code cells and environment compared."
            )
        else:
            patterns = (*volatile_patterns(chapter), *fingerprint.get("volatile", ()))
            moved = moved_metrics(
                {k: v for k, v in before.items() if not is_volatile(k, patterns)},
                stable_metrics(smoke_metrics, patterns),
                float(fingerprint.get("rtol", RTOL)),
            )
    if "distributions" in fingerprint:
        environment = environment_changes(fingerprint["distributions"])
    else:  # version 1: the pinned files as a whole
        same = fingerprint["requirements_sha256"] == requirements_hash()
        environment = [] if same else ["requirements.txt or constraints.txt (version 1 record)"]
    return Check(
        chapter=chapter.id,
        code_changed=fingerprint["code_cells_sha256"] != code_cells_hash(chapter),
        environment_changed=environment,
        moved=moved,
        compared_metrics=compared,
        cpu_note=cpu_note,
    )


def add_cpu(chapter: Chapter, fingerprint: dict, smoke_metrics: dict, cpu: str) -> dict:
    """The fingerprint with the smoke metrics of the same code on another ``cpu`` added; refused
    unless the code cells and the environment still match the record, and pointless (returned
    unchanged) when ``cpu`` has a record already."""
    if fingerprint.get("cpu") == cpu or cpu in fingerprint.get("smoke_metrics_other_cpus", {}):
        return fingerprint
    verdict = check(chapter, fingerprint)
    if not verdict.current:
        raise ValueError(f"{chapter.id}: cannot add a CPU to a stale record: {verdict.message()}")
    patterns = (*volatile_patterns(chapter), *fingerprint.get("volatile", ()))
    out = dict(fingerprint)
    out["smoke_metrics_other_cpus"] = {
        **fingerprint.get("smoke_metrics_other_cpus", {}),
        cpu: stable_metrics(smoke_metrics, patterns),
    }
    return out


def migrate(
    chapter: Chapter, fingerprint: dict, smoke_metrics: dict, distributions: dict[str, str]
) -> dict:
    """A version 1 fingerprint rewritten as version 2 with the ``distributions`` a smoke run at
    this commit imported; refused unless that run shows the record is current (code cells,
    requirements and every smoke metric match), so nothing but the format changes."""
    if fingerprint.get("fingerprint_version") != 1:
        raise ValueError(f"{chapter.id}: only version 1 fingerprints are migrated")
    verdict = check(chapter, fingerprint, smoke_metrics)
    if not verdict.current:
        raise ValueError(f"{chapter.id}: cannot migrate a stale record: {verdict.message()}")
    out = {k: v for k, v in fingerprint.items() if k != "requirements_sha256"}
    out["fingerprint_version"] = FINGERPRINT_VERSION
    out["distributions"] = pinned_subset(distributions)
    out["note"] = (out.get("note", "") + " (environment record migrated to version 2)").strip()
    return out
