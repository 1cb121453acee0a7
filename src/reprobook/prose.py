"""Numbers typed into a chapter's prose: the book glues computed numbers, it never types them.

``typed_numbers`` finds decimals and percentages in Markdown outside math, code, links, roles
and directive options; years and other integers, arXiv ids and version numbers are allowed, and a
chapter lists any other literal it means (a setting written in words) in its front matter as
``reprobook.typed_numbers``. ``rewrap`` puts Markdown prose one sentence per line, so that diffs of
the book's text stay readable (``python -m reprobook.prose FILE...`` rewrites files in place).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

_STRIP = [
    re.compile(r"^(`{3,}|~{3,}).*?^\1", re.S | re.M),  # fenced code and directives
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$"),  # inline math
    re.compile(r"\{[\w:-]+\}`[^`]*`"),  # roles: {glue:md}`x`, {cite}`key`
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\]\([^)\s]*\)"),  # link targets
    re.compile(r"https?://\S+"),  # bare URLs
    re.compile(r"^:[\w-]+:.*$", re.M),  # directive options
]
_ALLOWED = re.compile(r"\b\d{4}\.\d{4,5}\b|\b\d+\.\d+\.\d+\w*\b")  # arXiv ids, versions
_NUMBER = re.compile(r"(?<![\w.-])\d+\.\d+(?:\s*%)?|(?<![\w.-])\d+\s*%")


def strip_non_prose(markdown: str) -> str:
    """Markdown with math, code, roles, link targets and directive options removed."""
    for pattern in _STRIP:
        markdown = pattern.sub(" ", markdown)
    return _ALLOWED.sub(" ", markdown)


GLANCE_NAMES = ("glance_claim", "glance_verdict", "glance_key", "glance_run")


def glued_names(markdown: str) -> set[str]:
    """The names a chapter's prose glues (``{glue:md}`name```), without the "At a glance" box's,
    which ``report.at_a_glance`` provides for every chapter."""
    return set(re.findall(r"\{glue:md\}`([A-Za-z0-9_]+)`", markdown)) - set(GLANCE_NAMES)


def typed_numbers(markdown: str, allowed: Iterable[str] = ()) -> list[str]:
    """Decimals and percentages typed into ``markdown``'s prose, minus the ``allowed`` literals."""
    allowed = {a.replace(" ", "") for a in allowed}
    found = [m.group(0) for m in _NUMBER.finditer(strip_non_prose(markdown))]
    return [n for n in found if n.replace(" ", "") not in allowed]


# --- one sentence per line ------------------------------------------------------------------

_ABBREVIATIONS = (
    "e.g.",
    "i.e.",
    "et al.",
    "vs.",
    "Fig.",
    "Eq.",
    "Sec.",
    "No.",
    "cf.",
    "Tab.",
    "Mach.",
    "Sci.",
)
_SENTENCE_END = re.compile(r'(?<=[.!?])(\*\*|\*|\))?\s+(?=[A-Z*(\[$`"“_])')
_ITEM = re.compile(r"^(\s*)([-*]|\d+\.)\s+")
_FENCE = re.compile(r"^\s*(`{3,}|:{3,}|~{3,})")
_KEEP = ("|", "#", "$$", "<", ":", "+++")


def _sentences(text: str) -> list[str]:
    """Split at sentence ends that are not abbreviations and not inside math or code."""
    out, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group(1) or "")
        chunk = text[start:end]
        if chunk.endswith(_ABBREVIATIONS) or chunk.count("$") % 2 or chunk.count("`") % 2:
            continue
        out.append(chunk.strip())
        start = match.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def rewrap(md: str) -> str:
    """``md`` with each prose paragraph and list item one sentence per line (code fences, math
    blocks, tables, headings and directive lines as they are; front matter untouched)."""
    lines = md.split("\n")
    out: list[str] = []
    para: list[str] = []
    prefix = indent = ""
    fence = None

    def flush() -> None:
        if para:
            sentences = _sentences(" ".join(line.strip() for line in para))
            out.append(prefix + sentences[0])
            out.extend(indent + s for s in sentences[1:])
            para.clear()

    i = 0
    if lines and lines[0] == "---" and "---" in lines[1:]:
        i = lines.index("---", 1) + 1
        out.extend(lines[:i])
    for line in lines[i:]:
        stripped = line.strip()
        if fence:
            out.append(line)
            if stripped.startswith(fence) and not stripped.rstrip("`:~"):
                fence = None
            continue
        opening = _FENCE.match(line)
        if opening or not stripped or stripped.startswith(_KEEP):
            flush()
            out.append(line)
            if opening and not opening.group(1).startswith(":"):
                fence = opening.group(1)  # code and directives; colon fences hold Markdown
            continue
        item = _ITEM.match(line)
        if item:
            flush()
            prefix, indent = item.group(0), " " * len(item.group(0))
            para.append(line[len(prefix) :])
            continue
        if para:
            depth = len(line) - len(line.lstrip())
            outdented = prefix.strip() and depth < len(indent)
            if not (outdented and depth <= len(prefix) - len(prefix.lstrip())):
                para.append(line)
                continue
            flush()
        prefix = indent = line[: len(line) - len(line.lstrip())]
        para.append(line.lstrip())
    flush()
    return "\n".join(out)


def main(paths: list[str]) -> int:
    """Rewrite Markdown files in place, one sentence per line."""
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(rewrap(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
