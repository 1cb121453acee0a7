"""Links a chapter page gives its reader: where to run it, and the library code it calls.

Written into each rendered chapter by ``reprobook book`` (never into the MyST source):

- a "Run it yourself" box after the page's opening cell (title, citation, At a glance):
  Binder (the MyST source opened as a notebook through jupytext; ``postBuild`` makes that the
  default viewer), Colab (the committed executed notebook), the source, the executed notebook,
  the artefacts, and the exact command;
- a folded "Library code" section before the references: every ``reprobook`` function or class
  the chapter's code cells call, with its docstring's first paragraph and a link to its lines in
  the repository (the role ``sphinx.ext.linkcode`` plays for API pages).

Jupyter Book's own launch buttons are off: they link the rendered ``notebooks/<chapter>.ipynb``,
which is generated and not in the repository.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat
import yaml

from reprobook.chapters import Chapter, repo_root

LINKS_TAG = "reprobook-links"
REFERENCES = re.compile(r"^## References", re.MULTILINE)
BINDER = "https://mybinder.org/v2/gh"
COLAB = "https://colab.research.google.com/github"


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def repository(root: Path | None = None) -> tuple[str, str]:
    """``(url, ref)`` of the book's repository: ``_config.yml``'s ``repository.url``, and the
    commit being built when the book is its own clean git checkout (links then stay right as
    main moves on); otherwise (a tarball, uncommitted edits, a commit not yet pushed is not
    detectable) the configured branch."""
    root = (root or repo_root()).resolve()
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    repo = config.get("repository") or {}
    url = str(repo.get("url", "")).rstrip("/")
    if not url.startswith("https://github.com/"):
        raise ValueError(
            f"_config.yml repository.url must be a https://github.com/ URL, got {url!r}"
        )
    branch = str(repo.get("branch", "main"))
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root or _git(root, "status", "--porcelain") != "":
        return url, branch
    return url, _git(root, "rev-parse", "HEAD") or branch


def run_yourself(chapter: Chapter, url: str, ref: str) -> str:
    """The "Run it yourself" box of a chapter (MyST)."""
    slug = url.removeprefix("https://github.com/")
    name = slug.split("/")[-1]
    source = f"notebooks/{chapter.id}.md"
    executed = f"results/{chapter.id}/full/{chapter.id}.ipynb"
    binder = f"{BINDER}/{slug}/{ref}?labpath={quote(source, safe='')}"
    install = (
        f"!git clone -q {url} && git -C {name} checkout -q {ref} && pip install -q "
        f"-c {name}/constraints.txt -r {name}/requirements.txt -e {name}"
    )
    return "\n".join(
        [
            ":::{admonition} Run it yourself",
            ":class: tip",
            f"- [Binder]({binder}): this chapter's source opened as a notebook, in the `smoke` "
            "profile (minutes).",
            f"- [Colab]({COLAB}/{slug}/blob/{ref}/{executed}): the executed full run. "
            f"To re-run it there, run `{install}` in a new first cell, restart the runtime, and "
            'set the parameters cell\'s `profile` to `"smoke"` unless you have half an hour.',
            f"- Files: [source (MyST)]({url}/blob/{ref}/{source}), "
            f"[executed notebook]({url}/blob/{ref}/{executed}), "
            f"[artefacts]({url}/tree/{ref}/results/{chapter.id}/full).",
            f'- Locally: `make run CH={chapter.id} PARAMS="-p profile full"`.',
            ":::",
        ]
    )


def _reprobook_imports(tree: ast.AST) -> dict[str, str]:
    """Local name -> module path, for ``from reprobook... import x [as y]`` and ``import``."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reprobook"):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("reprobook"):  # import a.b binds a; import a.b as c, c
                    names[alias.asname or "reprobook"] = alias.name if alias.asname else "reprobook"
    return names


def _resolve(dotted: str) -> Any | None:
    """The object at ``dotted`` (a module attribute path), or None."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute, None)
            if obj is None:
                return None
        return obj
    return None


def library_calls(cells: list[str]) -> list[tuple[str, Any]]:
    """``(name as written, object)`` for every ``reprobook`` function or class the code cells
    call, sorted by name; modules and attributes that are not called are left out, and so are
    cells that are not plain Python (magics)."""
    trees = []
    for code in cells:
        try:
            trees.append(ast.parse(code))
        except SyntaxError:
            continue
    imports: dict[str, str] = {}
    for tree in trees:
        imports.update(_reprobook_imports(tree))
    seen: dict[str, Any] = {}
    for node in (n for tree in trees for n in ast.walk(tree)):
        if not isinstance(node, ast.Call):
            continue
        written = ast.unparse(node.func)
        head = written.split(".")[0]
        if head not in imports or written in seen:
            continue
        obj = _resolve(imports[head] + written[len(head) :])
        own = (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(
            obj, "__module__", ""
        ).startswith("reprobook")
        if own:
            seen[written] = obj
    return sorted(seen.items(), key=lambda item: item[0])


def source_link(obj: Any, url: str, ref: str, root: Path | None = None) -> str:
    """The repository URL of ``obj``'s lines (``#Lstart-Lend``)."""
    root = (root or repo_root()).resolve()
    obj = inspect.unwrap(obj)  # a decorated function's own lines (torch.no_grad and the like)
    path = Path(inspect.getsourcefile(obj) or "").resolve()
    if not path.is_relative_to(root / "src"):
        raise ValueError(f"{obj!r} is not defined in the repository's src/ ({path})")
    lines, start = inspect.getsourcelines(obj)
    return (
        f"{url}/blob/{ref}/{path.relative_to(root).as_posix()}#L{start}-L{start + len(lines) - 1}"
    )


def plain(docstring: str) -> str:
    """A docstring's text as literal Markdown: one line, reST's double backticks dropped, and
    every character MyST would read as markup (roles, math, emphasis, links) escaped."""
    text = " ".join(docstring.replace("``", "").split())
    return re.sub(r"([\\`*_{}\[\]<>$|#~])", r"\\\1", text)


def library_section(cells: list[str], url: str, ref: str) -> str | None:
    """The folded "Library code" section (MyST), or None when the cells call no library code."""
    calls = library_calls(cells)
    if not calls:
        return None
    items = []
    for written, obj in calls:
        summary = plain((inspect.getdoc(obj) or "").strip().split("\n\n")[0])
        module = obj.__module__
        items.append(
            f"- [`{written}`]({source_link(obj, url, ref)}) (`{module}`)"
            + (f": {summary}" if summary else "")
        )
    return "\n".join(
        [
            "## Library code",
            "",
            "::::{dropdown} The `reprobook` functions and classes this chapter calls, "
            "with their source",
            *items,
            "::::",
        ]
    )


def add_links(nb: nbformat.NotebookNode, chapter: Chapter, root: Path | None = None) -> None:
    """Put the "Run it yourself" box after the cell holding the title (with the citation and At a
    glance) and the library section before the references (once; the cells carry ``LINKS_TAG``)."""
    if any(LINKS_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        return
    url, ref = repository(root)
    box = nbformat.v4.new_markdown_cell(run_yourself(chapter, url, ref))
    box.metadata["tags"] = [LINKS_TAG]
    title = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "# " in c.source), -1
    )
    nb.cells.insert(title + 1, box)
    section = library_section([c.source for c in nb.cells if c.cell_type == "code"], url, ref)
    if section is None:
        return
    cell = nbformat.v4.new_markdown_cell(section)
    cell.metadata["tags"] = [LINKS_TAG]
    for i, existing in enumerate(nb.cells):
        found = REFERENCES.search(existing.source) if existing.cell_type == "markdown" else None
        if found is None:
            continue
        before, after = existing.source[: found.start()], existing.source[found.start() :]
        existing.source = after
        nb.cells.insert(i, cell)
        if before.strip():
            nb.cells.insert(i, nbformat.v4.new_markdown_cell(before.rstrip() + "\n"))
        return
    nb.cells.append(cell)
