"""Paper numbers ("anchors") with their sources, and the "paper vs this miniature" table.

Each chapter keeps ``results/<chapter>/anchors.yaml``: a list of anchors, each with ``id``,
``quantity``, ``paper`` (the paper's value or claim, as text), ``source`` (where it was read),
``figure`` (which figure or table of the paper), ``tag`` ([P] primary or [S] secondary) and
``verified`` (whether we checked it against the paper or its official code). The chapter never
types a paper number itself: it fills only the miniature's column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from reprobook.results import committed_results_root

REQUIRED = ("id", "quantity", "paper", "source", "figure", "tag", "verified")


@dataclass(frozen=True)
class Anchor:
    id: str
    quantity: str
    paper: str
    source: str
    figure: str
    tag: str
    verified: bool
    value: object = None  # optional number(s) for plots, e.g. a speedup; the text stays in paper


def anchors_path(chapter: str) -> Path:
    return committed_results_root() / chapter / "anchors.yaml"


def load_anchors(chapter: str, path: Path | None = None) -> dict[str, Anchor]:
    """Read a chapter's anchors, checking every field is present and ids are unique."""
    path = path or anchors_path(chapter)
    if not path.is_file():
        raise ValueError(f"chapter {chapter} has no anchors file at {path}")
    entries = (yaml.safe_load(path.read_text()) or {}).get("anchors") or []
    anchors: dict[str, Anchor] = {}
    for i, entry in enumerate(entries):
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise ValueError(f"{path}: anchor #{i} lacks {', '.join(missing)}")
        if entry["tag"] not in ("P", "S"):
            raise ValueError(f"{path}: anchor {entry['id']!r} has tag {entry['tag']!r}; use P or S")
        if not isinstance(entry["verified"], bool):
            raise ValueError(f"{path}: anchor {entry['id']!r}: verified must be true or false")
        if entry["id"] in anchors:
            raise ValueError(f"{path}: anchor id {entry['id']!r} appears twice")
        anchors[entry["id"]] = Anchor(**{k: entry[k] for k in REQUIRED}, value=entry.get("value"))
    return anchors


def comparison_table(anchors: dict[str, Anchor], miniature: dict[str, str]) -> pd.DataFrame:
    """The "paper vs this miniature" table: one row per anchor, in the anchors file's order.

    ``miniature`` maps anchor ids to what this book's run found (text). Every anchor needs a
    row, and ids the anchors file does not know are refused, so neither side can drift.
    """
    unknown = sorted(set(miniature) - set(anchors))
    if unknown:
        raise ValueError(f"miniature values for unknown anchors: {', '.join(unknown)}")
    rows = []
    for anchor in anchors.values():
        paper = anchor.paper if anchor.verified else f"{anchor.paper} (not verified)"
        rows.append(
            {
                "quantity": anchor.quantity,
                "paper": paper,
                "read from": f"{anchor.figure}; {anchor.source} [{anchor.tag}]",
                "this miniature": miniature.get(anchor.id, "not measured here"),
            }
        )
    return pd.DataFrame(rows)
