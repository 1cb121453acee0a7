"""Numbers typed into a chapter's prose: the book glues computed numbers, it never types them.

``typed_numbers`` finds decimals and percentages in Markdown outside math, code, links, roles
and directive options; years and other integers, arXiv ids and version numbers are allowed, and a
chapter lists any other literal it means (a setting written in words) in its front matter as
``reprobook.typed_numbers``.
"""

from __future__ import annotations

import re
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


def typed_numbers(markdown: str, allowed: Iterable[str] = ()) -> list[str]:
    """Decimals and percentages typed into ``markdown``'s prose, minus the ``allowed`` literals."""
    allowed = {a.replace(" ", "") for a in allowed}
    found = [m.group(0) for m in _NUMBER.finditer(strip_non_prose(markdown))]
    return [n for n in found if n.replace(" ", "") not in allowed]
