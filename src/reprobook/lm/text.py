"""Plain English text that ships with the pinned packages, and a word-level vocabulary.

A chapter that trains a language model offline needs a second source of text besides its own
synthetic language, so that its grammar is not the model's whole world. The prose paragraphs
of numpy's and scipy's docstrings (summaries and notes; parameters, examples and anything that
looks like code are dropped) are such a source: real English, fixed by the pinned versions.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections import Counter
from collections.abc import Iterable, Sequence

PROSE_MODULES = (
    "numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.ma", "numpy.polynomial",
    "scipy.stats", "scipy.special", "scipy.optimize", "scipy.signal", "scipy.linalg",
    "scipy.sparse", "scipy.interpolate", "scipy.integrate", "scipy.spatial", "scipy.ndimage",
    "scipy.cluster.hierarchy",
)  # fmt: skip
_SECTION = re.compile(
    r"^\s*(Parameters|Returns|See Also|Examples|Raises|Attributes|Yields|References|"
    r"Other Parameters|Methods|Warns|Notes)\s*$"
)
_CODE_LIKE = re.compile(r">>>|[=`\\_{}\[\]<>|]|\w\(|\.\. ")
_WORD = re.compile(r"[A-Za-z]+|[.,;:]")
UNKNOWN = "<unk>"
END = "<eos>"


def docstring_prose(modules: Sequence[str] = PROSE_MODULES, min_words: int = 8) -> list[str]:
    """Prose paragraphs (at least ``min_words`` words, no code) of the public docstrings of
    ``modules``: summaries and Notes sections, in a fixed order, each docstring once."""
    seen: set[str] = set()
    paragraphs: list[str] = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in sorted(dir(module)):
            if name.startswith("_"):
                continue
            doc = inspect.getdoc(getattr(module, name, None))
            if not doc or doc in seen:
                continue
            seen.add(doc)
            paragraphs += [p for p in _prose_of(doc) if len(p.split()) >= min_words]
    return paragraphs


def _prose_of(doc: str) -> list[str]:
    kept, keep = [], True
    lines = doc.split("\n")
    for i, line in enumerate(lines):
        underlined = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if _SECTION.match(line) and underlined:
            keep = line.strip() == "Notes"
            continue
        if set(line.strip()) == {"-"}:
            continue
        if keep:
            kept.append(line)
    paragraphs = (" ".join(p.split()) for p in "\n".join(kept).split("\n\n"))
    return [p for p in paragraphs if p and not _CODE_LIKE.search(p)]


def words_of(text: str) -> list[str]:
    """Words and the punctuation marks . , ; : of ``text``, case kept."""
    return _WORD.findall(text)


class Vocabulary:
    """A word-level vocabulary: ``<eos>`` is id 0, ``<unk>`` id 1, then the given words."""

    def __init__(self, words: Iterable[str]):
        self.words = list(dict.fromkeys([END, UNKNOWN, *words]))
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def from_corpus(cls, required: Sequence[str], texts: Iterable[str], top: int) -> Vocabulary:
        """``required`` words first, then the ``top`` most frequent words of ``texts``."""
        if top < 0:
            raise ValueError(f"top must be a non-negative number of words, got {top}")
        counts = Counter(w for text in texts for w in words_of(text))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))[:top]
        return cls([*required, *ranked])

    def encode(self, words: Sequence[str]) -> list[int]:
        """Ids of ``words``; a word outside the vocabulary becomes ``<unk>``."""
        unknown = self.index[UNKNOWN]
        return [self.index.get(w, unknown) for w in words]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids]
