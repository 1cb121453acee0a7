"""Unit tests of the book's author-year bibliography labels (book/_ext/bibstyle.py)."""

import importlib.util

from pybtex.database import parse_string

from reprobook.chapters import repo_root

spec = importlib.util.spec_from_file_location("bibstyle", repo_root() / "book/_ext/bibstyle.py")
bibstyle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bibstyle)

BIB = """
@misc{a, author = {Feng, Leo and Tung, Frederick}, year = {2024}, title = {A}}
@misc{b, author = {Lee, Jin Hwa and Yu, Lei and Cheng, Emily}, year = {2024}, title = {B}}
@misc{c, author = {Lee, Seanie and Seong, Haebin and Bengio, Yoshua}, year = {2024}, title = {C}}
@misc{d, author = {Csendes, Gerold and others}, year = {2025}, title = {D}}
@misc{e, author = {{nteract team}}, title = {E}}
@misc{f, author = {Wei, Jason}, year = {2019}, title = {F}}
"""


def test_labels_are_author_year_and_unique():
    entries = parse_string(BIB, "bibtex").entries.values()
    labels = list(bibstyle.AuthorYearLabels().format_labels(entries))
    assert labels == ["Feng and Tung 2024", "Lee et al. 2024a", "Lee et al. 2024b",
                      "Csendes et al. 2025", "nteract team", "Wei 2019"]  # fmt: skip


def test_style_formats_a_bibliography():
    data = parse_string(BIB, "bibtex")
    formatted = bibstyle.AuthorYearStyle().format_bibliography(data)
    assert [e.label for e in formatted][0].startswith("Csendes")  # sorted by author


def test_book_wide_labels_win_over_a_chapter_subset():
    entries = list(parse_string(BIB, "bibtex").entries.values())
    bibstyle.GLOBAL.update(bibstyle.unique_labels(entries))
    try:  # a chapter citing only the second Lee still gets its book-wide label
        assert list(bibstyle.AuthorYearLabels().format_labels(entries[2:3])) == ["Lee et al. 2024b"]
    finally:
        bibstyle.GLOBAL.clear()
