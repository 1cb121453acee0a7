"""Find chapter notebooks and read what each declares about itself.

A chapter is ``notebooks/chNN-<slug>.md`` (MyST Markdown, Jupytext). Its front matter carries a
``reprobook`` block: ``title``, ``profiles`` (name -> time budget in seconds), ``metrics_keys``
(the keys its ``metrics.json`` must hold), ``package`` (the topic package whose ``study`` and
``report`` modules it calls, e.g. ``safety``) and ``volatile_metrics`` (patterns of its timing
metrics, which the behaviour fingerprint leaves out) and ``typed_numbers`` (literals its prose
may type, such as a setting in words). The runner and the tests read this block.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

CHAPTER_PATTERN = re.compile(r"^ch\d{2}-[a-z0-9-]+$")


def repo_root() -> Path:
    """The checkout's top folder (``REPROBOOK_ROOT`` overrides), where ``_toc.yml`` lives."""
    env = os.environ.get("REPROBOOK_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "_toc.yml").is_file() and (parent / "notebooks").is_dir():
            return parent
    return Path.cwd().resolve()


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


@dataclass(frozen=True)
class Chapter:
    """One chapter: its id (file stem), source path and declared metadata."""

    id: str
    source: Path
    title: str
    profiles: dict[str, float] = field(default_factory=dict)
    metrics_keys: tuple[str, ...] = ()
    package: str | None = None  # reprobook.<package>.study / .report
    volatile_metrics: tuple[str, ...] = ()  # fnmatch patterns of dotted metric paths
    typed_numbers: tuple[str, ...] = ()  # literals the prose may type (settings in words)

    @property
    def executed_path(self) -> Path:
        """Where the executed notebook goes: beside the source, where the book renders it."""
        return self.source.with_suffix(".ipynb")

    def budget(self, profile: str) -> float:
        """Time budget of one run in ``profile``, in seconds."""
        if profile not in self.profiles:
            raise ValueError(
                f"unknown profile {profile!r} for chapter {self.id}; "
                f"choose one of: {', '.join(self.profiles)}"
            )
        return self.profiles[profile]


def read_front_matter(path: Path) -> dict:
    """The YAML front matter of a MyST Markdown notebook (empty dict if there is none)."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        raise ValueError(f"{path}: front matter opened with '---' but never closed")
    return yaml.safe_load(text[3:end]) or {}


def is_package_name(name: object) -> bool:
    """A lower-case package path under ``reprobook``, maybe dotted: ``gfn.generalization``."""
    return (
        isinstance(name, str)
        and name == name.lower()
        and all(part.isidentifier() for part in name.split("."))
    )


def load_chapter(path: Path) -> Chapter:
    """Read one chapter's declared metadata, checking it is complete."""
    meta = read_front_matter(path).get("reprobook")
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: front matter has no 'reprobook:' block")
    profiles = meta.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ValueError(f"{path}: 'reprobook.profiles' must map profile names to budgets (s)")
    if "smoke" not in profiles:
        raise ValueError(f"{path}: 'reprobook.profiles' must declare at least 'smoke'")
    for name, budget in profiles.items():
        if isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0:
            raise ValueError(f"{path}: budget of profile {name!r} must be a positive number")
    if "src_packages" in meta:
        raise ValueError(
            f"{path}: 'reprobook.src_packages' is no longer read (behaviour fingerprints decide "
            "staleness); remove it"
        )
    package = meta.get("package")
    if package is not None and not is_package_name(package):
        raise ValueError(
            f"{path}: 'reprobook.package' must be a package name under reprobook, e.g. safety or "
            "gfn.generalization"
        )
    volatile = meta.get("volatile_metrics") or []
    if not isinstance(volatile, list) or not all(isinstance(p, str) and p for p in volatile):
        raise ValueError(f"{path}: 'reprobook.volatile_metrics' must be a list of patterns")
    typed = meta.get("typed_numbers") or []
    if not isinstance(typed, list) or not all(isinstance(t, str | int | float) for t in typed):
        raise ValueError(f"{path}: 'reprobook.typed_numbers' must be a list of literals")
    return Chapter(
        id=path.stem,
        source=path,
        title=str(meta.get("title", path.stem)),
        profiles={str(k): float(v) for k, v in profiles.items()},
        metrics_keys=tuple(meta.get("metrics_keys", ())),
        package=package,
        volatile_metrics=tuple(volatile),
        typed_numbers=tuple(str(t) for t in typed),
    )


@cache
def _chapters_in(folder: Path) -> tuple[Chapter, ...]:
    paths = sorted(p for p in folder.glob("ch*.md") if CHAPTER_PATTERN.match(p.stem))
    return tuple(load_chapter(p) for p in paths)


def find_chapters() -> list[Chapter]:
    """All chapters in ``notebooks/``, in order."""
    return list(_chapters_in(notebooks_dir()))


def get_chapter(name: str) -> Chapter:
    """A chapter by full id (``ch10-bayesian-oracle``) or by its number prefix (``ch10``)."""
    chapters = find_chapters()
    matches = [c for c in chapters if c.id == name or c.id.split("-")[0] == name]
    if len(matches) != 1:
        known = ", ".join(c.id for c in chapters) or "(none found)"
        raise ValueError(f"unknown chapter {name!r}; known chapters: {known}")
    return matches[0]
