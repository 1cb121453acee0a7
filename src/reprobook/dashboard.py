"""The book's results dashboard: every written chapter's committed full run in one table.

Three columns, so that it reads on a book column: the chapter and its verdict; the key number
here above the paper's; the run's time, hardware, date and fingerprint state.

``make book`` (``python -m reprobook book``) writes ``book/dashboard.md`` from the committed
artefacts, so the page can never disagree with them: per chapter, the verdict its report computes
from the headline claims, how many hold, the key number beside the paper's (from
``anchors.yaml``, marked when not verified), the run's time and hardware, the artefacts' date and
whether their behaviour fingerprint still matches the code and environment.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from reprobook import anchors as anchors_mod
from reprobook import report
from reprobook.chapters import Chapter, find_chapters, repo_root
from reprobook.results import load_results

PAGE = Path("book") / "dashboard.md"
HEADER = "\n".join([
    "# Results at a glance",
    "",
    "Every written chapter's committed full run, read from its artefacts when the book was built.",
    "The verdict is computed from the chapter's headline claims: *reproduced* when all hold, "
    "*partly reproduced* when some do, *not reproduced* when none does.",
    "The paper's side comes from the chapter's `anchors.yaml`; an entry that could not be "
    "checked against the paper says so.",
    '"Current" means the run\'s behaviour fingerprint still matches the chapter\'s code cells '
    "and the versions of the packages it imports; a stale run is shown, and marked.",
])  # fmt: skip


@dataclass
class Row:
    """One chapter's line on the dashboard (all text, as shown)."""

    chapter: str
    title: str
    verdict: str
    held: str
    key: str
    paper: str
    run: str
    artefacts: str


def chapter_row(chapter: Chapter) -> Row | None:
    """The chapter's dashboard line from its committed full run; None when it has none."""
    loaded = load_results(chapter.id, "full")
    if not loaded.available:
        return None
    chapter_report = importlib.import_module(f"reprobook.{chapter.package}.report")
    metrics, provenance = loaded.metrics, loaded.provenance
    anchor = anchors_mod.load_anchors(chapter.id)[chapter_report.KEY_ANCHOR]
    paper = anchor.paper if anchor.verified else f"{anchor.paper} (not verified)"
    if not report.can_read(chapter_report, metrics):
        verdict, held, key = "not judged", "—", "the artefacts are an older layout"
    else:
        claims = metrics.get("claims") or chapter_report.check_claims(metrics)
        headline = [c for c in chapter_report.HEADLINE_CLAIMS if c in claims]
        verdict = report.verdict(claims, headline) if headline else "not judged"
        held = f"{sum(bool(claims[c]) for c in headline)} of {len(chapter_report.HEADLINE_CLAIMS)}"
        key = chapter_report.key_number(metrics)
    wall = report.fmt_seconds(float(provenance.get("wall_time_s", 0.0)))
    state = "current" if loaded.status == "ok" else "**stale**"
    return Row(
        chapter=chapter.id, title=chapter.title, verdict=verdict, held=held, key=key, paper=paper,
        run=f"{wall} on {provenance.get('device', '?')}",
        artefacts=f"{str(provenance.get('finished_utc', '?'))[:10]}, {state}",
    )  # fmt: skip


def _cell(text: str) -> str:
    """One line of table text, shown literally (numbers and names, never markup)."""
    from reprobook.pagelinks import plain

    return plain(str(text))


def markdown(chapters: list[Chapter] | None = None) -> str:
    """The dashboard page as MyST Markdown."""
    chapters = find_chapters() if chapters is None else chapters
    rows, without = [], []
    for chapter in chapters:
        row = chapter_row(chapter)
        if row is None:
            without.append(chapter)
        else:
            rows.append(row)
    lines = [HEADER, ""]
    lines += [
        ":::{list-table}",
        ":header-rows: 1",
        ":widths: 30 45 25",
        "",
        "* - chapter and verdict",
        "  - key number: here, and the paper's",
        "  - the run",
    ]
    for r in rows:
        title = " ".join(r.title.split())
        link = f"{{doc}}`{r.chapter[:4]}: {title} <../notebooks/{r.chapter}>`"
        held = f" ({r.held} headline claims hold)" if r.held[:1].isdigit() else ""
        lines += [
            f"* - {link}",
            "",
            f"    **{r.verdict}**{held}",
            f"  - **Here:** {_cell(r.key)}",
            "",
            f"    **Paper:** {_cell(r.paper)}",
            f"  - {_cell(r.run)}",
            "",
            f"    artefacts {r.artefacts}",
        ]
    lines.append(":::")
    if without:
        lines += ["", "Written, without a committed full run yet (the page shows a smoke run):", ""]
        lines += [f"- {{doc}}`../notebooks/{c.id}`" for c in without]
    return "\n".join(lines) + "\n"


def write(path: Path | None = None) -> Path:
    """Write the dashboard page (``book/dashboard.md`` by default)."""
    path = path or repo_root() / PAGE
    path.write_text(markdown())
    return path
