"""Unit tests of reprobook.pagelinks: the "Run it yourself" box and the library-code section."""

import inspect

import nbformat
import pytest

from reprobook import pagelinks, report
from reprobook.chapters import Chapter, find_chapters, repo_root

URL = "https://github.com/owner/book"


def _root(tmp_path, url=URL):
    (tmp_path / "_config.yml").write_text(f"repository:\n  url: {url}\n  branch: trunk\n")
    return tmp_path


def test_repository_reads_the_config_and_falls_back_to_the_branch(tmp_path):
    assert pagelinks.repository(_root(tmp_path)) == (URL, "trunk")  # not a git checkout


def test_repository_outside_github_says_what_is_expected(tmp_path):
    with pytest.raises(ValueError, match="https://github.com/"):
        pagelinks.repository(_root(tmp_path, "ftp://example.org/book"))


def test_repository_ref_is_the_commit_of_a_clean_checkout_else_the_branch(tmp_path):
    import subprocess

    (tmp_path / "repo").mkdir()
    root = _root(tmp_path / "repo")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert pagelinks.repository(root) == (URL, sha.strip())
    (root / "sub").mkdir()
    _root(root / "sub")  # a book unpacked inside another checkout
    assert pagelinks.repository(root / "sub") == (URL, "trunk")
    (root / "edit.txt").write_text("uncommitted")
    assert pagelinks.repository(root) == (URL, "trunk")


def test_run_yourself_links_binder_colab_source_and_artefacts():
    chapter = Chapter(id="ch99-test", source=repo_root() / "notebooks" / "x.md", title="T")
    box = pagelinks.run_yourself(chapter, URL, "abc")
    assert "mybinder.org/v2/gh/owner/book/abc?labpath=notebooks%2Fch99-test.md" in box
    assert "colab.research.google.com/github/owner/book/blob/abc/results/ch99-test/full/" in box
    assert f"({URL}/blob/abc/notebooks/ch99-test.md)" in box
    assert f"({URL}/tree/abc/results/ch99-test/full)" in box
    assert 'make run CH=ch99-test PARAMS="-p profile full"' in box
    assert f"!git clone -q {URL} && git -C book checkout -q abc && pip install" in box
    assert "restart the runtime" in box and '`profile` to `"smoke"`' in box
    assert box.startswith(":::{admonition}") and box.endswith(":::")
    assert sum(line.startswith("- ") for line in box.splitlines()) == 4  # a list, not one line


def test_library_calls_finds_called_functions_and_classes_only():
    cells = [
        "%matplotlib inline",
        "from reprobook import report\nfrom reprobook import profiles as p\nimport numpy as np",
        "x = report.fmt_seconds(3)\ny = report.VERDICTS\nc = p.Config({})\nnp.zeros(2)\n"
        "report.fmt_seconds(4)",
    ]
    calls = pagelinks.library_calls(cells)
    assert [name for name, _ in calls] == ["p.Config", "report.fmt_seconds"]
    assert calls[1][1] is report.fmt_seconds


def test_source_link_points_at_the_definitions_lines():
    link = pagelinks.source_link(report.fmt_seconds, URL, "abc")
    lines, start = inspect.getsourcelines(report.fmt_seconds)
    assert link == f"{URL}/blob/abc/src/reprobook/report.py#L{start}-L{start + len(lines) - 1}"
    with pytest.raises(ValueError, match="repository.s src"):
        pagelinks.source_link(pytest.raises, URL, "abc")


def test_add_links_puts_the_box_under_the_title_and_the_code_before_the_references():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("from reprobook import report\nreport.fmt_seconds(1)"),
        nbformat.v4.new_markdown_cell("## Takeaways\n\n- one\n\n## References\n\nbib"),
    ]
    chapter = Chapter(id="ch99-test", source=repo_root() / "notebooks" / "x.md", title="T")
    pagelinks.add_links(nb, chapter)
    pagelinks.add_links(nb, chapter)  # once only
    sources = [c.source for c in nb.cells]
    assert len(sources) == 6
    assert sources[1].startswith(":::{admonition} Run it yourself")
    assert sources[3] == "## Takeaways\n\n- one\n"
    assert sources[4].startswith("## Library code") and "report.fmt_seconds" in sources[4]
    assert sources[5] == "## References\n\nbib"


@pytest.mark.parametrize("chapter", find_chapters(), ids=lambda c: c.id)
def test_library_code_comes_before_the_references_of_every_chapter(chapter):
    from reprobook.runner import read_notebook

    nb = read_notebook(chapter)
    pagelinks.add_links(nb, chapter)
    headings = [
        line
        for c in nb.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    ]
    assert headings[-2:] == ["## Library code", "## References"]


@pytest.mark.parametrize("chapter", find_chapters(), ids=lambda c: c.id)
def test_every_chapter_links_its_library_calls_to_lines_that_exist(chapter):
    from reprobook.runner import read_notebook

    cells = [c.source for c in read_notebook(chapter).cells if c.cell_type == "code"]
    calls = pagelinks.library_calls(cells)
    assert calls, f"{chapter.id} calls no reprobook code"
    for _, obj in calls:
        link = pagelinks.source_link(obj, URL, "abc")
        path, lines = link.removeprefix(f"{URL}/blob/abc/").split("#L")
        first, last = (int(n.removeprefix("L")) for n in lines.split("-"))
        assert 1 <= first <= last <= len((repo_root() / path).read_text().splitlines())


def test_plain_escapes_markup_of_a_docstring():
    text = pagelinks.plain("Glue values (``{glue:md}`name```),\n  $x_1$ *and* [a].")
    assert text == r"Glue values (\{glue:md\}\`name\`), \$x\_1\$ \*and\* \[a\]."
