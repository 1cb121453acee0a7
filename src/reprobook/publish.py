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


def add_banner(nb: nbformat.NotebookNode, profile: str) -> nbformat.NotebookNode:
    """Put the smoke-run warning right under the chapter's title (once)."""
    if tagged(nb, BANNER_TAG):
        return nb
    banner = nbformat.v4.new_markdown_cell(SMOKE_BANNER.format(profile=profile))
    banner.metadata["tags"] = [BANNER_TAG]
    first_heading = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "# " in c.source), -1
    )
    nb.cells.insert(first_heading + 1, banner)
    return nb


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


def book_notebook(chapter: Chapter, artefact: Path | None = None) -> nbformat.NotebookNode | None:
    """The page of a chapter with full artefacts: today's prose, the full run's outputs.

    Returns None when the chapter has no full-run notebook yet.
    """
    from reprobook.runner import read_notebook

    artefact = artefact or artefact_notebook_path(chapter.id)
    if not artefact.is_file():
        return None
    outputs = nbformat.read(artefact, as_version=4)
    merged = combine_inputs_with_outputs(read_notebook(chapter), outputs)
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
