"""An author-year bibliography for the book: entries labelled and sorted as the text cites
them ("Feng et al. 2024"), instead of pybtex's default alpha labels ("[FTA+24]")."""

from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def author_year(entry) -> str:
    """'Surname YEAR', 'Surname and Surname YEAR' or 'Surname et al. YEAR'."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(p.last_names) or " ".join(p.first_names) for p in persons]
    names = [n.replace("{", "").replace("}", "") for n in names]
    if len(names) > 1 and names[-1] == "others":  # "and others" in the .bib
        names = names[:1] + ["", ""]
    if not names:
        who = entry.fields.get("title", "Anonymous").replace("{", "").replace("}", "")
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    year = entry.fields.get("year")
    return f"{who} {year}" if year else who


def unique_labels(entries) -> dict[str, str]:
    """Author-year labels by key; equal ones get a, b, ... in the order of the entries."""
    entries = list(entries)
    labels = [author_year(e) for e in entries]
    for label in set(labels):
        same = [i for i, x in enumerate(labels) if x == label]
        if len(same) > 1:
            for k, i in enumerate(same):
                labels[i] = f"{label}{chr(ord('a') + k)}"
    return {e.key: label for e, label in zip(entries, labels, strict=True)}


GLOBAL: dict[str, str] = {}  # every entry of the book's .bib files: one label per key, book-wide


class AuthorYearLabels(BaseLabelStyle):
    """Author-year labels, unique across the whole book (each chapter formats its own
    bibliography, but the labels of all of them must differ)."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        local = unique_labels(entries)
        for entry in entries:
            yield GLOBAL.get(entry.key, local[entry.key])


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


def _load_bibfiles(app, config) -> None:
    from pathlib import Path

    from pybtex.database import parse_file

    entries = []
    for name in config.bibtex_bibfiles:
        entries += parse_file(Path(app.srcdir) / name).entries.values()
    GLOBAL.clear()
    GLOBAL.update(unique_labels(entries))


def setup(app):
    app.connect("config-inited", _load_bibfiles)
    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
