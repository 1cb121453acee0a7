"""Unit tests of reprobook.publish: stripping, parameters as run, the banner, the merge, figures
and layout for reading."""

import base64
import io

import matplotlib
import nbformat
import pytest
from PIL import Image

from conftest import _chapter_md
from reprobook import publish

matplotlib.use("Agg")


def _png() -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 0, 2])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _executed(source_cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = source_cells
    return nb


def test_strip_notebook_drops_stderr_widgets_and_timing_and_shrinks_figures():
    png = _png()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["papermill"] = {"duration": 1.0}
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="100%|####| progress"),
        nbformat.v4.new_output("stream", name="stdout", text="kept"),
        nbformat.v4.new_output(
            "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"}}
        ),
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
    ]
    stripped = publish.strip_notebook(_executed([cell]))
    outputs = stripped.cells[0].outputs
    assert [o.get("name") for o in outputs if o.output_type == "stream"] == ["stdout"]
    assert len(outputs) == 2 and "papermill" not in stripped.cells[0].metadata
    shrunk = outputs[1]["data"]["image/png"]
    assert len(shrunk) <= len(png)
    image = Image.open(io.BytesIO(base64.b64decode(shrunk)))
    assert image.size == Image.open(io.BytesIO(base64.b64decode(png))).size


def test_show_parameters_as_run_rewrites_values_and_hides_the_injected_cell():
    params = nbformat.v4.new_code_cell('profile = "smoke"  # smoke or full\nseed = 0\nn = None')
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell('# Parameters\nprofile = "full"\nseed = 2\n')
    injected.metadata["tags"] = ["injected-parameters"]
    nb = publish.show_parameters_as_run(_executed([params, injected]))
    assert nb.cells[0].source == 'profile = "full"  # smoke or full\nseed = 2\nn = None'
    assert "remove-cell" in nb.cells[1].metadata["tags"]


def test_banner_goes_under_the_title_once():
    nb = _executed([nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("1")])
    publish.add_banner(nb, "smoke")
    publish.add_banner(nb, "smoke")
    assert [c.cell_type for c in nb.cells] == ["markdown", "markdown", "code"]
    assert "numbers are not the experiment's" in nb.cells[1].source


def test_book_notebook_takes_todays_prose_and_the_full_runs_outputs(fake_root, tmp_path):
    chapter = _chapter_md(fake_root / "notebooks" / "ch99-test-chapter.md", "print(1)")
    assert publish.book_notebook(chapter, tmp_path / "none.ipynb") is None
    from reprobook.runner import read_notebook

    executed = read_notebook(chapter)
    code = [c for c in executed.cells if c.cell_type == "code" and c.source == "print(1)"][0]
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    injected = nbformat.v4.new_code_cell('profile = "full"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    executed.cells.insert(2, injected)
    executed.metadata["papermill"] = {"parameters": {"profile": "full"}}
    artefact = tmp_path / "ch99-test-chapter.ipynb"
    nbformat.write(executed, artefact)
    chapter.source.write_text(chapter.source.read_text().replace("# Runner test", "# New prose"))

    page = publish.book_notebook(chapter, artefact)
    text = "\n".join(c.source for c in page.cells if c.cell_type == "markdown")
    assert "# New prose" in text
    params = publish.tagged(page, "parameters")[0]
    assert 'profile = "full"' in params.source
    printed = [c for c in page.cells if c.cell_type == "code" and c.source == "print(1)"][0]
    assert printed.outputs[0]["text"] == "1\n"
    assert page.metadata["papermill"]["parameters"] == {"profile": "full"}


def _image_output(png: str, kind: str = "display_data"):
    if kind == "execute_result":
        return nbformat.v4.new_output(kind, data={"image/png": png}, execution_count=1)
    return nbformat.v4.new_output(kind, data={"image/png": png})


def _is_png(output):
    return "image/png" in output.get("data", {})


def _figure_cell(outputs, figures, tags=("hide-input",)):
    cell = nbformat.v4.new_code_cell("draw()")
    cell.outputs = outputs
    cell.metadata = {"tags": list(tags), "reprobook": {"figures": figures}}
    return cell


def _fig(name):
    return {"name": f"fig-{name}", "caption": f"The {name}.", "alt": f"A plot of {name}."}


def test_number_figures_captions_a_single_figure():
    png = _png()
    nb = _executed([_figure_cell([_image_output(png)], [_fig("a")])])
    cells = publish.number_figures(nb).cells
    assert len(cells) == 1
    meta = cells[0].metadata
    assert meta["mystnb"]["figure"] == {"name": "fig-a", "caption": "The a."}
    assert meta["mystnb"]["image"] == {"alt": "A plot of a."}
    assert meta["tags"] == ["hide-input"] and "reprobook" not in meta


def test_number_figures_splits_a_cell_drawing_several_and_drops_repeats():
    png = _png()
    text = nbformat.v4.new_output("display_data", data={"text/markdown": "shown"})
    table = nbformat.v4.new_output("execute_result", data={"text/html": "<table/>"})
    outputs = [text, _image_output(png), _image_output(png), _image_output(png), table]
    nb = _executed([_figure_cell(outputs, [_fig("a"), {"drop": True}, _fig("c")])])
    cells = publish.number_figures(nb).cells
    assert [len(c.outputs) for c in cells] == [1, 1, 1, 1]  # text | a | c | the table
    assert cells[0].outputs[0]["data"] == text["data"]
    assert [c.metadata.get("mystnb", {}).get("figure", {}).get("name") for c in cells] == [
        None,
        "fig-a",
        "fig-c",
        None,
    ]
    assert all(_is_png(c.outputs[0]) for c in cells[1:3])
    assert cells[0].metadata["tags"] == ["hide-input"]  # the code, folded, once
    assert all(c.metadata["tags"] == ["remove-input"] for c in cells[1:])
    ids = [c["id"] for c in cells]
    assert len(set(ids)) == len(ids) and ids[0] == nb.cells[0]["id"]


def test_number_figures_mismatch_raises_when_strict_and_leaves_the_cell_otherwise():
    png = _png()
    nb = _executed([_figure_cell([_image_output(png)], [_fig("a"), _fig("b")])])
    with pytest.raises(ValueError, match="declares 2 figures .* shows 1 images"):
        publish.number_figures(nb)
    cells = publish.number_figures(nb, strict=False).cells
    assert len(cells) == 1 and "mystnb" not in cells[0].metadata


@pytest.mark.parametrize(
    "figures",
    [
        [],
        "fig-a",
        [{"name": "fig-a", "caption": "c"}],
        [{**_fig("a"), "width": 3}],
        [{**_fig("a"), "name": "a"}],
        [{"drop": True, "name": "fig-a"}],
    ],
)
def test_bad_figure_entries_say_what_is_allowed(figures):
    nb = _executed([_figure_cell([_image_output(_png())], figures)])
    with pytest.raises(ValueError, match="figure"):
        publish.number_figures(nb)


def test_book_notebook_keeps_todays_display_settings(fake_root, tmp_path):
    chapter = _chapter_md(fake_root / "notebooks" / "ch99-test-chapter.md", "print(1)")
    from reprobook.runner import read_notebook

    executed = read_notebook(chapter)
    artefact = tmp_path / "ch99-test-chapter.ipynb"
    nbformat.write(executed, artefact)
    text = chapter.source.read_text()
    source = text.replace(
        "```{code-cell} ipython3\nprint(1)",
        "```{code-cell} ipython3\n---\nreprobook:\n  figures:\n  - {drop: true}\n"
        "tags: [hide-input]\n---\nprint(1)",
    )
    assert source != text
    chapter.source.write_text(source)
    page = publish.book_notebook(chapter, artefact)
    printed = [c for c in page.cells if c.cell_type == "code" and c.source == "print(1)"][0]
    assert "hide-input" in printed.metadata["tags"]
    assert printed.metadata["reprobook"] == {"figures": [{"drop": True}]}


def _wide_png(width_in: float) -> str:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width_in, 1.0), dpi=100)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_png_width_reads_the_header():
    assert publish.png_width(_wide_png(3.0)) == 300
    with pytest.raises(ValueError, match="PNG"):
        publish.png_width(base64.b64encode(b"GIF89a" + bytes(40)).decode())


def test_lay_out_widens_wide_figures_and_folds_long_tables():
    def table(rows):
        body = "".join("<tr><td>x</td></tr>" for _ in range(rows))
        head = "<thead><tr><th>h</th></tr><tr><th>index name</th></tr></thead>"
        return nbformat.v4.new_output(
            "execute_result", data={"text/html": f"<table>{head}<tbody>{body}</tbody></table>"}
        )

    cells = [nbformat.v4.new_code_cell(f"c{i}") for i in range(4)]
    cells[0].outputs = [_image_output(_wide_png(12.0))]
    cells[1].outputs = [_image_output(_wide_png(6.0))]
    cells[2].outputs = [table(publish.LONG_TABLE_ROWS + 1)]
    cells[3].outputs = [table(publish.LONG_TABLE_ROWS)]
    out = publish.lay_out(_executed(cells)).cells
    assert [c.metadata.get("tags", []) for c in out] == [
        ["full-width"],
        [],
        ["hide-output"],
        [],
    ]


def test_number_figures_accepts_drops_of_repeats_a_newer_run_no_longer_shows():
    nb = _executed([_figure_cell([], [{"drop": True}, {"drop": True}])])
    cells = publish.number_figures(nb).cells
    assert len(cells) == 1 and "reprobook" not in cells[0].metadata


def test_stale_banner_goes_under_the_title_once_and_says_why():
    nb = _executed([nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x")])
    publish.add_stale_banner(nb, "code cells changed.")
    publish.add_stale_banner(nb, "code cells changed.")
    assert [c.cell_type for c in nb.cells] == ["markdown", "markdown", "code"]
    assert "stale" in nb.cells[1].source and "code cells changed." in nb.cells[1].source
