"""Unit tests of reprobook.sitecheck's helpers; the browser check of the whole built book is
``make check-site`` (run by ``make test`` after the book build)."""

import pytest

from reprobook import sitecheck


def _site(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "index.html").write_text(
        '<meta http-equiv="Refresh" content="0; url=book/a.html" />'
    )
    (tmp_path / "book" / "a.html").write_text("<p>a</p>")
    (tmp_path / "genindex.html").write_text("")
    (tmp_path / "_static" / "x.html").write_text("")
    return tmp_path


def test_site_pages_skip_indexes_and_static(tmp_path):
    site = _site(tmp_path)
    assert sitecheck.site_pages(site) == ["book/a.html", "index.html"]
    with pytest.raises(ValueError, match="no built book"):
        sitecheck.site_pages(tmp_path / "book")


def test_link_targets(tmp_path):
    site = _site(tmp_path).resolve()
    assert sitecheck.link_target(site, "book/a.html", "a.html#x") == site / "book" / "a.html"
    assert sitecheck.link_target(site, "book/a.html", "../index.html") == site / "index.html"
    assert sitecheck.link_target(site, "book/a.html", "../book/") == site / "book" / "index.html"
    for external in ("https://arxiv.org/abs/1", "mailto:a@b.c", "#section"):
        assert sitecheck.link_target(site, "book/a.html", external) is None
    assert sitecheck.REFRESH.search((site / "index.html").read_text()).group(1) == "book/a.html"


def test_missing_chromium_says_how_to_install(monkeypatch):
    monkeypatch.setattr(sitecheck.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="apt-get install chromium"):
        sitecheck.find_chromium()
