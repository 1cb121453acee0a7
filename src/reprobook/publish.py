"""What the book shows: the full run's executed notebook, or a smoke run under a banner.

A full run keeps its executed notebook as an artefact (``results/<chapter>/full/<chapter>.ipynb``,
with stderr and progress bars stripped and figures compressed). ``prepare_book`` renders each
chapter from it: the prose comes from the MyST source as it is now, the code cells' outputs from
the full run (the fingerprint guarantees the code cells are the ones that ran). A chapter with no
full artefacts yet is executed in ``smoke`` and carries a visible banner.
"""

from __future__ import annotations

import ast
import base64
import copy
import io
import re
from pathlib import Path
from typing import Any

import nbformat
from jupytext.combine import combine_inputs_with_outputs
from PIL import Image

from reprobook.chapters import Chapter

SMOKE_BANNER = (
    ":::{{warning}}\n"
    "**{profile} run: numbers are not the experiment's.**\n"
    "This page was executed in the `{profile}` profile, a quick check that the code runs.\n"
    "Its figures and numbers are too small to test the paper's claim; "
    "the chapter's full run is what the claims are judged on.\n"
    ":::"
)
BANNER_TAG = "reprobook-banner"
DROPPED_MIME = ("application/vnd.jupyter.widget-view+json",)


def artefact_notebook_path(chapter_id: str, root: Path | None = None) -> Path:
    from reprobook.results import committed_results_root

    return (root or committed_results_root()) / chapter_id / "full" / f"{chapter_id}.ipynb"


def _tags(cell: Any) -> list[str]:
    return cell.setdefault("metadata", {}).setdefault("tags", [])


def tagged(nb: nbformat.NotebookNode, tag: str) -> list[Any]:
    """The cells of ``nb`` that carry ``tag``."""
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def _compress_png(data: str) -> str:
    """A PNG re-encoded with a 256-colour palette: a third of the size for line plots."""
    raw = base64.b64decode(data)
    palette = (
        Image.open(io.BytesIO(raw))
        .convert("RGB")
        .quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    )
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    smaller = out.getvalue()
    return base64.b64encode(smaller if len(smaller) < len(raw) else raw).decode("ascii")


def strip_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop stderr (warnings, progress bars), widget views and per-cell timing; shrink figures."""
    for cell in nb.cells:
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                continue
            data = out.get("data")
            if data is not None:
                for mime in DROPPED_MIME:
                    data.pop(mime, None)
                if "image/png" in data:
                    data["image/png"] = _compress_png(data["image/png"])
                if not data:
                    continue
            kept.append(out)
        cell.outputs = kept
    return nb


def show_parameters_as_run(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Write the injected values into the ``parameters`` cell and hide papermill's injected cell,
    so the page shows one parameters cell holding what actually ran."""
    injected = [
        c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])
    ]
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    for cell in injected:
        if "remove-cell" not in _tags(cell):
            _tags(cell).append("remove-cell")
    if not injected or len(params) != 1:
        return nb
    values: dict[str, str] = {}
    for node in ast.parse(injected[0].source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.get_source_segment(injected[0].source, node.value)
    lines = []
    for line in params[0].source.splitlines():
        match = re.match(r"^(\w+)(\s*=\s*)(.*?)(\s*#.*)?$", line)
        if match and match.group(1) in values:
            name, eq, _, comment = match.groups()
            line = f"{name}{eq}{values[name]}{comment or ''}"
        lines.append(line)
    params[0].source = "\n".join(lines)
    return nb


def _under_title(nb: nbformat.NotebookNode, text: str, tag: str) -> nbformat.NotebookNode:
    """Insert a Markdown cell carrying ``tag`` right under the chapter's title, once."""
    if tagged(nb, tag):
        return nb
    banner = nbformat.v4.new_markdown_cell(text)
    banner.metadata["tags"] = [tag]
    first_heading = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "# " in c.source), -1
    )
    nb.cells.insert(first_heading + 1, banner)
    return nb


def add_banner(nb: nbformat.NotebookNode, profile: str) -> nbformat.NotebookNode:
    """Put the smoke-run warning right under the chapter's title (once)."""
    return _under_title(nb, SMOKE_BANNER.format(profile=profile), BANNER_TAG)


STALE_BANNER = (
    ":::{{warning}}\n"
    "**The full run shown here is stale.**\n"
    "Its behaviour fingerprint no longer matches the chapter's code cells or environment, so the "
    "outputs below may come from code that has since changed: {why}\n"
    ":::"
)
STALE_TAG = "reprobook-stale"


def add_stale_banner(nb: nbformat.NotebookNode, why: str) -> nbformat.NotebookNode:
    """Say under the title (once) that the full run rendered is stale, and why."""
    return _under_title(nb, STALE_BANNER.format(why=why), STALE_TAG)


def finish_executed(path: Path, profile: str) -> nbformat.NotebookNode:
    """Post-process an executed notebook in place: parameters as run, a banner unless full."""
    nb = nbformat.read(path, as_version=4)
    show_parameters_as_run(nb)
    if profile != "full":
        add_banner(nb, profile)
    nbformat.write(nb, path)
    return nb


def save_artefact_notebook(executed: Path, destination: Path) -> Path:
    """Keep a full run's executed notebook, stripped and compressed, beside its metrics."""
    nb = strip_notebook(nbformat.read(executed, as_version=4))
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(destination)
    return destination


def _keep_source_display(source: nbformat.NotebookNode, merged: nbformat.NotebookNode) -> None:
    """Give the merged cells the display settings the source has now (tags such as
    ``hide-input``, MyST-NB's figure caption, name and alt text): they change how a page looks,
    never what ran, so they may be edited without a re-run (the fingerprint hashes code only)."""
    code_in = iter([c for c in source.cells if c.cell_type == "code"])
    for cell_out in (c for c in merged.cells if c.cell_type == "code"):
        cell_in = next((c for c in code_in if c.source == cell_out.source), None)
        if cell_in is None:
            return
        tags = list(cell_out.metadata.get("tags", []))
        tags += [t for t in cell_in.metadata.get("tags", []) if t not in tags]
        cell_out.metadata["tags"] = tags
        for key in ("mystnb", "reprobook"):
            if key in cell_in.metadata:
                cell_out.metadata[key] = cell_in.metadata[key]


def book_notebook(chapter: Chapter, artefact: Path | None = None) -> nbformat.NotebookNode | None:
    """The page of a chapter with full artefacts: today's prose, the full run's outputs.

    Returns None when the chapter has no full-run notebook yet.
    """
    from reprobook.runner import read_notebook

    artefact = artefact or artefact_notebook_path(chapter.id)
    if not artefact.is_file():
        return None
    outputs = nbformat.read(artefact, as_version=4)
    source = read_notebook(chapter)
    merged = combine_inputs_with_outputs(source, outputs)
    _keep_source_display(source, merged)
    papermill = outputs.metadata.get("papermill")
    if papermill:
        merged.metadata["papermill"] = papermill
        injected = [c for c in outputs.cells if "injected-parameters" in c.metadata.get("tags", [])]
        if injected:  # put papermill's cell back after the parameters cell, for the rewrite
            index = next(
                i for i, c in enumerate(merged.cells) if "parameters" in c.metadata.get("tags", [])
            )
            merged.cells.insert(index + 1, injected[0])
    return show_parameters_as_run(merged)


# --- numbered, captioned figures ------------------------------------------------------------

FIGURE_FIELDS = ("name", "caption", "alt")


def _is_image(output: Any) -> bool:
    return output.get("output_type") in ("display_data", "execute_result") and (
        "image/png" in output.get("data", {})
    )


def figure_specs(cell: Any) -> list[dict] | None:
    """A code cell's figures as its source declares them, checked, or None when it declares none.

    In the MyST source a cell lists, in drawing order, one entry per image it shows::

        reprobook:
          figures:
          - {name: fig-ch05-maps, caption: "What the figure shows.", alt: "What it looks like."}
          - {drop: true}   # an image drawn again further down the page: shown once, there
    """
    specs = cell.get("metadata", {}).get("reprobook", {}).get("figures")
    if specs is None:
        return None
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"reprobook.figures must be a non-empty list, got {specs!r}")
    for spec in specs:
        if not isinstance(spec, dict):
            raise ValueError(f"each figure entry must be a mapping, got {spec!r}")
        if spec.get("drop") is True and set(spec) == {"drop"}:
            continue
        missing = [f for f in FIGURE_FIELDS if not str(spec.get(f, "")).strip()]
        extra = sorted(set(spec) - set(FIGURE_FIELDS))
        if missing or extra:
            raise ValueError(
                f"figure entry {spec!r}: needs {', '.join(FIGURE_FIELDS)} (or only drop: true); "
                f"missing {missing or 'none'}, unknown {extra or 'none'}"
            )
        if not str(spec["name"]).startswith("fig-"):
            raise ValueError(f"figure names start with 'fig-', got {spec['name']!r}")
    return specs


def number_figures(nb: nbformat.NotebookNode, strict: bool = True) -> nbformat.NotebookNode:
    """Give every image a cell declares a number, a caption and alt text (MyST-NB figures).

    MyST-NB wraps every rich output of a cell in the cell's figure, so a cell is split into
    rendered cells that hold either one image (the figure) or a run of other outputs, its code
    shown once, above the first; images marked ``drop`` are not rendered. The outputs keep their
    order and are otherwise untouched. A cell whose images do not match its entries raises with
    ``strict``; otherwise (a smoke run that draws fewer figures) it is rendered uncaptioned
    rather than mislabelled.
    """
    cells = []
    for cell in nb.cells:
        specs = figure_specs(cell) if cell.cell_type == "code" else None
        if specs is None:
            cells.append(cell)
            continue
        n_images = sum(_is_image(o) for o in cell.outputs)
        if n_images == 0 and all(spec.get("drop") for spec in specs):
            cell.metadata.pop("reprobook", None)  # repeats a run no longer shows: nothing to drop
            cells.append(cell)
            continue
        if n_images != len(specs):
            if strict:
                names = [s.get("name", "drop") for s in specs]
                raise ValueError(
                    f"a cell declares {len(specs)} figures ({', '.join(names)}) but shows "
                    f"{n_images} images; source begins {cell.source[:60]!r}"
                )
            cells.append(cell)
            continue
        pieces: list[tuple[list, dict | None]] = []  # non-image runs, and each image alone
        images = iter(specs)
        for output in cell.outputs:
            if _is_image(output):
                spec = next(images)
                if not spec.get("drop"):
                    pieces.append(([output], spec))
            elif pieces and pieces[-1][1] is None:
                pieces[-1][0].append(output)
            else:
                pieces.append(([output], None))
        if not pieces:
            pieces.append(([], None))
        for i, (outputs, spec) in enumerate(pieces):
            piece = copy.deepcopy(cell)
            piece.outputs = outputs
            if i > 0 and "id" in piece:
                piece["id"] = f"{cell['id']}-{i}"  # unique, and the same on every build
            piece.metadata.pop("reprobook", None)
            if i > 0:
                tags = [t for t in _tags(piece) if t != "hide-input"]
                piece.metadata["tags"] = [*tags, "remove-input"]
            if spec is not None:
                shown = piece.metadata.setdefault("mystnb", {})
                shown["figure"] = {"name": spec["name"], "caption": spec["caption"]}
                shown["image"] = {**shown.get("image", {}), "alt": spec["alt"]}
            cells.append(piece)
    nb.cells = cells
    return nb


# --- layout for reading -------------------------------------------------------------------------

COLUMN_PX = 820  # the book's text column: a wider image is shown at the page's full width
LONG_TABLE_ROWS = 20  # a longer table is folded behind a toggle


def png_width(data: str) -> int:
    """The pixel width of a base64 PNG, read from its header."""
    raw = base64.b64decode(data[:64])
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG image")
    return int.from_bytes(raw[16:20], "big")


def _add_tag(cell: Any, tag: str) -> None:
    if tag not in _tags(cell):
        _tags(cell).append(tag)


def _body_rows(html: str) -> int:
    """Rows of the tables' bodies in an HTML output (header rows, however many, not counted)."""
    bodies = re.findall(r"<tbody.*?</tbody>", html, flags=re.DOTALL)
    return sum(body.count("<tr") for body in bodies) if bodies else html.count("<tr")


def lay_out(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Figures wider than the text column take the page's full width (``full-width``), so their
    text is not shrunk; a table of more than ``LONG_TABLE_ROWS`` rows in a cell without figures is
    folded behind a toggle (``hide-output``). Only how outputs are shown changes."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        images = [o["data"]["image/png"] for o in cell.get("outputs", []) if _is_image(o)]
        if any(png_width(image) > COLUMN_PX for image in images):
            _add_tag(cell, "full-width")
        if images:
            continue
        rows = max(
            (_body_rows(o.get("data", {}).get("text/html", "")) for o in cell.outputs), default=0
        )
        if rows > LONG_TABLE_ROWS:
            _add_tag(cell, "hide-output")
    return nb


def for_reading(nb: nbformat.NotebookNode, strict: bool = True) -> nbformat.NotebookNode:
    """A rendered chapter's last step: numbered figures, then the layout."""
    return lay_out(number_figures(nb, strict=strict))
