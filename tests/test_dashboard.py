"""Tests of reprobook.dashboard: its numbers are the committed artefacts' own."""

import importlib

import pytest

from reprobook import dashboard, report
from reprobook.chapters import find_chapters
from reprobook.results import load_results

WITH_FULL = [c for c in find_chapters() if load_results(c.id, "full").available]


@pytest.mark.parametrize("chapter", WITH_FULL, ids=[c.id for c in WITH_FULL])
def test_row_equals_the_committed_artefacts(chapter):
    loaded = load_results(chapter.id, "full")
    chapter_report = importlib.import_module(f"reprobook.{chapter.package}.report")
    row = dashboard.chapter_row(chapter)
    claims = loaded.metrics["claims"]
    headline = chapter_report.HEADLINE_CLAIMS
    assert row.verdict == report.verdict(claims, headline)
    assert row.held == f"{sum(bool(claims[c]) for c in headline)} of {len(headline)}"
    assert row.key == chapter_report.key_number(loaded.metrics)
    assert row.run.startswith(report.fmt_seconds(loaded.provenance["wall_time_s"]))
    assert row.artefacts.startswith(loaded.provenance["finished_utc"][:10])
    assert ("current" in row.artefacts) == (loaded.status == "ok")


def test_page_lists_every_chapter_once(tmp_path):
    page = dashboard.write(tmp_path / "dashboard.md")
    text = page.read_text()
    for chapter in find_chapters():
        assert (
            text.count(f"<../notebooks/{chapter.id}>") + text.count(f"`../notebooks/{chapter.id}`")
            == 1
        ), chapter.id
    assert text.startswith("# Results at a glance")


def test_a_chapter_without_a_full_run_is_listed_below(fake_root):
    from conftest import _chapter_md

    chapter = _chapter_md(fake_root / "notebooks" / "ch97-none.md", "x = 1")
    assert dashboard.chapter_row(chapter) is None
    text = dashboard.markdown([chapter])
    assert "without a committed full run" in text and "ch97-none" in text


def test_page_text_is_literal_and_an_unjudged_run_reads_plainly(monkeypatch):
    row = dashboard.Row(
        chapter="ch98-x", title="A title", verdict="not judged", held="—",
        key="$a_1$ *bold* `code`", paper="x_1 < 2", run="1 min on cpu: x86_64",
        artefacts="2026-01-01, current",
    )  # fmt: skip
    monkeypatch.setattr(dashboard, "chapter_row", lambda chapter: row)
    text = dashboard.markdown([object()])
    assert r"\$a\_1\$ \*bold\* \`code\`" in text and r"x\_1 \< 2" in text
    assert "**not judged**\n" in text and "— headline" not in text
