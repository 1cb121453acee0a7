"""What every chapter reports, formatted one way: statistics, tables, the verdict, glued numbers.

A topic package keeps its experiments in ``study.py`` (config -> metrics) and its reading of the
metrics in ``report.py``: pure functions of the metrics that the ``ChapterReport`` protocol names.
This module holds what all of them share: mean ± SE and paired tests, the schema check of saved
metrics, the claims table and the verdict, the "paper vs this miniature" table from
``anchors.yaml``, the side-by-side profile table, and ``glue`` for numbers the prose discusses
(so no computed number is ever typed into Markdown).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats

from reprobook import anchors as anchors_mod
from reprobook.chapters import repo_root
from reprobook.profiles import _fmt

VERDICTS = ("reproduced", "partly reproduced", "not reproduced")


# --- the protocol every chapter package follows ---------------------------------------------


@runtime_checkable
class ChapterReport(Protocol):
    """What ``reprobook.<package>.report`` provides: the reading of a chapter's metrics.

    ``PAPER_CLAIM`` is the paper's headline claim in words; ``CLAIMS`` maps each claim id that
    ``check_claims`` returns to what it says; ``HEADLINE_CLAIMS`` are the ids the verdict is
    computed from; ``KEY_ANCHOR`` is the anchor whose paper value stands beside ``key_number``.
    """

    METRICS_VERSION: int
    REQUIRED_KEYS: tuple[str, ...]
    PAPER_CLAIM: str
    CLAIMS: Mapping[str, str]
    HEADLINE_CLAIMS: tuple[str, ...]
    KEY_ANCHOR: str

    def check_claims(self, metrics: dict) -> dict[str, bool]: ...
    def miniature_findings(self, metrics: dict) -> dict[str, str]: ...
    def key_number(self, metrics: dict) -> str: ...
    def prose_numbers(self, metrics: dict) -> dict[str, str]: ...


@runtime_checkable
class ChapterStudy(Protocol):
    """What ``reprobook.<package>.study`` provides: profiles and their resolution."""

    PROFILES: Mapping[str, Mapping[str, Any]]

    def resolve_config(self, profile: str, **overrides: Any) -> Any: ...


def protocol_gaps(module: ModuleType, protocol: type) -> list[str]:
    """Names that ``protocol`` requires and ``module`` lacks (callables must be callable)."""
    gaps = []
    for name in [*protocol.__annotations__, *_protocol_methods(protocol)]:
        value = getattr(module, name, None)
        if value is None:
            gaps.append(name)
        elif name in _protocol_methods(protocol) and not callable(value):
            gaps.append(f"{name} (not callable)")
    return gaps


def _protocol_methods(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]


# --- statistics -----------------------------------------------------------------------------


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (ddof = 1; 0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("mean_se needs at least one value")
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else 0.0
    return float(arr.mean()), se


def fmt_mean_se(values: Sequence[float], digits: int = 3, scale: float = 1.0) -> str:
    """``mean ± SE`` as text (just the value for a single seed)."""
    mean, se = mean_se(np.asarray(values, dtype=float) * scale)
    return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if len(values) > 1 else "")


@dataclass(frozen=True)
class Paired:
    """A paired comparison of ``a`` and ``b`` over seeds: a - b per seed, its t-test."""

    diffs: tuple[float, ...]
    mean: float
    se: float
    p: float | None  # two-sided paired t-test; None below two pairs
    wins: int  # pairs where a > b

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def p_lower(self) -> float | None:
        """p of the one-sided paired t-test that a is lower than b (from the two-sided p)."""
        if self.p is None:
            return None
        return self.p / 2 if self.mean < 0 else 1 - self.p / 2

    @property
    def p_higher(self) -> float | None:
        """p of the one-sided paired t-test that a is higher than b (from the two-sided p)."""
        if self.p is None:
            return None
        return self.p / 2 if self.mean > 0 else 1 - self.p / 2

    def higher_text(self, digits: int = 3, word: str = "higher") -> str:
        """Mean ± s.e. of a - b, the one-sided p that a is higher, and how often it was."""
        out = f"{self.mean:+.{digits}f}"
        if self.n > 1:
            out += f" ± {self.se:.{digits}f}, one-sided paired t-test p = {self.p_higher:.2g}"
        return out + f"; {word} in {self.wins} of {self.n}"

    def lower_text(self, digits: int = 3, word: str = "lower") -> str:
        """Mean ± s.e. of a - b, the one-sided p that a is lower, and how often it was (``word``
        names what a negative difference means, e.g. "better" for a sign-flipped score)."""
        out = f"{self.mean:+.{digits}f}"
        if self.n > 1:
            out += f" ± {self.se:.{digits}f}, one-sided paired t-test p = {self.p_lower:.2g}"
        return out + f"; {word} in {sum(d < 0 for d in self.diffs)} of {self.n}"

    def text(self, digits: int = 3) -> str:
        out = f"{self.mean:+.{digits}f}"
        if self.n > 1:
            out += f" ± {self.se:.{digits}f}, paired t-test p = {self.p:.2g}"
        return out + f"; higher in {self.wins} of {self.n}"


def per_seed(values: Sequence[Any], digits: int | None = None) -> str:
    """Per-seed values joined by "/" (``12/9/14``), each with ``digits`` decimals when given."""
    return "/".join(str(v) if digits is None else f"{v:.{digits}f}" for v in values)


def paired_p(diffs: Sequence[float]) -> float | None:
    """Two-sided p-value of a paired t-test that the mean difference is 0 (None below 2 pairs,
    1.0 when every difference is 0, 0.0 when all are equal and non-zero)."""
    values = np.asarray(diffs, dtype=float)
    if len(values) < 2:
        return None
    if not values.any():
        return 1.0
    if values.std(ddof=1) <= 1e-12 * np.abs(values).max():
        return 0.0
    return float(stats.ttest_1samp(values, 0.0).pvalue)


def paired(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Compare two arms measured on the same seeds (a - b)."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired needs two equal, non-empty lists, got {len(a)} and {len(b)}")
    diffs = tuple(float(x) - float(y) for x, y in zip(a, b, strict=True))
    mean, se = mean_se(diffs)
    return Paired(diffs, mean, se, paired_p(diffs), sum(d > 0 for d in diffs))


# --- saved metrics ----------------------------------------------------------------------------


def readable(metrics: Mapping[str, Any], version: int | None, required: Sequence[str]) -> bool:
    """Whether saved metrics have the layout this code reads: its ``metrics_version`` (when the
    chapter versions its metrics) and every required key."""
    if version is not None and metrics.get("metrics_version") != version:
        return False
    return all(key in metrics for key in required)


def can_read(report: ModuleType, metrics: Mapping[str, Any]) -> bool:
    """``readable`` with a chapter report module's own version and keys."""
    return readable(metrics, report.METRICS_VERSION, report.REQUIRED_KEYS)


@dataclass
class Shown:
    """The metrics a chapter's results section shows, where they come from, and how they ran."""

    metrics: dict
    source: str
    profile: str
    wall_s: float
    device: str


def results_to_show(
    chapter: str, report: ModuleType, metrics: dict, profile: str, run: Any
) -> Shown:
    """A full run shows itself; any other run shows the committed full artefacts when they exist
    and this code can read them, else itself (and says so). ``run`` is the chapter's ``Run``."""
    from reprobook.results import load_results
    from reprobook.runtime import describe_device

    here = Shown(
        metrics, f"this {profile} run", profile, run.elapsed(), describe_device(run.device)
    )
    if profile == "full":
        return here
    full = load_results(chapter, "full")
    if full.available and can_read(report, full.metrics):
        prov = full.provenance
        return Shown(
            full.metrics, f"the committed full run: {full.message.rstrip('.')}", "full",
            float(prov.get("wall_time_s", 0.0)), str(prov.get("device", "?")),
        )  # fmt: skip
    why = "no full run found" if not full.available else "the full artefacts are an older layout"
    here.source += f" ({why})"
    return here


def shown_path(path: Path) -> str:
    """A results folder as the reader should see it: relative to the repository when inside."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(repo_root()))
    except ValueError:
        return f"<results dir>/{path.parent.name}/{path.name}"


# --- claims and the verdict -------------------------------------------------------------------


def verdict(claims: Mapping[str, bool], headline: Sequence[str]) -> str:
    """'reproduced' when every headline claim holds, 'not reproduced' when none does, else
    'partly reproduced'. Headline claims the run did not check are an error."""
    missing = [c for c in headline if c not in claims]
    if missing:
        raise ValueError(f"headline claims not checked by this run: {', '.join(missing)}")
    held = sum(bool(claims[c]) for c in headline)
    if held == len(headline):
        return VERDICTS[0]
    return VERDICTS[2] if held == 0 else VERDICTS[1]


def claims_table(
    claims: Mapping[str, bool], described: Mapping[str, str], headline: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per claim: what it says, whether it decides the verdict, whether it holds."""
    rows = [
        {
            "claim": described.get(name, name.replace("_", " ")),
            "headline": "yes" if name in headline else "",
            "holds in this run": "yes" if held else "no",
        }
        for name, held in claims.items()
    ]
    return pd.DataFrame(rows).set_index("claim")


def paper_vs_miniature(chapter: str, findings: Mapping[str, str]) -> Any:
    """The "paper vs this miniature" table (paper side from ``anchors.yaml``), styled."""
    table = anchors_mod.comparison_table(anchors_mod.load_anchors(chapter), dict(findings))
    return table.style.hide(axis="index").set_properties(
        **{"text-align": "left", "white-space": "normal"}
    )


# --- configuration ----------------------------------------------------------------------------


def profiles_table(
    table: Mapping[str, Mapping[str, Any]], active: str, config: Mapping[str, Any]
) -> pd.DataFrame:
    """The profiles side by side, settings as rows; the column of the profile that produced the
    page is marked and shows the resolved configuration (overrides included)."""
    if active not in table:
        raise ValueError(f"unknown profile {active!r}; valid profiles: {', '.join(table)}")
    columns = {}
    for name, row in table.items():
        values = config if name == active else row
        columns[f"{name} (this page)" if name == active else name] = {
            k: _fmt(v) for k, v in values.items()
        }
    frame = pd.DataFrame(columns)
    frame.index.name = "setting"
    return frame


# --- numbers in the prose -------------------------------------------------------------------


def glue(values: Mapping[str, Any]) -> None:
    """Glue named values for the prose (``{glue:md}`name```); text is glued as Markdown."""
    from IPython.display import Markdown
    from myst_nb import glue as nb_glue

    for name, value in values.items():
        shown = Markdown(value) if isinstance(value, str) else value
        nb_glue(name, shown, display=False)


def fmt_seconds(seconds: float) -> str:
    """A run time in words: '45 s', '7.3 min'."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def reproduce_commands(chapter: str) -> str:
    """The commands that re-run a chapter, as a Markdown code block."""
    return (
        "```bash\n"
        f"make run CH={chapter}                          # smoke: minutes\n"
        f'make run CH={chapter} PARAMS="-p profile full"  # the experiment on this page\n'
        f"python -m reprobook sweep {chapter} --seeds 0 1 2   # more seeds, one table\n"
        "```"
    )


def at_a_glance(chapter: str, report: ModuleType, shown: Shown) -> dict[str, str]:
    """The "At a glance" box of the results shown, glued as ``glance_*`` and returned.

    ``glance_claim`` (the paper's), ``glance_verdict`` (computed from the headline claims),
    ``glance_key`` (the miniature's key number beside the paper's, read from ``anchors.yaml``),
    ``glance_run`` (profile, run time, hardware); also ``reproduce_commands``.
    """
    metrics = shown.metrics
    claims = metrics.get("claims") or report.check_claims(metrics)
    checked = [c for c in report.HEADLINE_CLAIMS if c in claims]
    held = sum(bool(claims[c]) for c in checked)
    note = f"{held} of {len(checked)} headline claims hold"
    if len(checked) < len(report.HEADLINE_CLAIMS):
        note += f"; {len(report.HEADLINE_CLAIMS) - len(checked)} need the full profile"
    result = verdict(claims, checked) if checked else "not judged"
    if shown.profile != "full":
        result = f"not judged: a `{shown.profile}` run is too small"
        note = f"{held} of the {len(checked)} headline claims it checks hold"
    anchor = anchors_mod.load_anchors(chapter)[report.KEY_ANCHOR]
    paper = anchor.paper if anchor.verified else f"{anchor.paper} (not verified)"
    values = {
        "glance_claim": report.PAPER_CLAIM,
        "glance_verdict": f"**{result}** ({note})",
        "glance_key": f"{report.key_number(metrics)}; paper: {paper} ({anchor.figure})",
        "glance_run": f"`{shown.profile}` profile, {fmt_seconds(shown.wall_s)} on {shown.device}",
        "reproduce_commands": reproduce_commands(chapter),
    }
    glue(values)
    return values


def glue_prose(report: ModuleType, metrics: dict) -> dict[str, str]:
    """Glue every number that a chapter's prose discusses (``report.prose_numbers``)."""
    values = report.prose_numbers(metrics)
    glue(values)
    return values


def held_text(claims: Mapping[str, bool], name: str, missing: str = "not tested") -> str:
    """A claim's outcome in words for the prose: "holds", "does not hold", or ``missing`` when
    the run did not check it."""
    if name not in claims:
        return missing
    return "holds" if claims[name] else "does not hold"


def pct(x: float, digits: int = 1) -> str:
    """A fraction as a percentage string: 0.0075 -> '0.8 %'."""
    return f"{100 * x:.{digits}f} %"


def plural(n: int, noun: str, many: str | None = None) -> str:
    """A count and its noun, in the plural unless the count is 1: ``plural(1, "seed")`` is
    '1 seed', ``plural(3, "seed")`` '3 seeds' (``many`` for an irregular plural)."""
    return f"{n:,} {noun if n == 1 else (many or noun + 's')}"
