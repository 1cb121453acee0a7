"""Unit tests of reprobook.publish: stripping, parameters as run, the banner, the merge."""

import base64
import io

import matplotlib
import nbformat
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
