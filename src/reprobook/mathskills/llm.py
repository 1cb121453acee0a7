"""A language model as a MATH² solver, for readers with a network: ``model_name`` (a hub id or a
local folder) is loaded with ``transformers``, prompted with a few solved single-skill questions
and asked for the answer, which is read as the first integer it writes. The book's own runs
use the trained solvers of ``reprobook.mathskills.solvers`` and download nothing."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from reprobook.mathskills import pipeline as pl


def prompt(question: pl.Question, shots: Sequence[pl.Question]) -> str:
    """A few-shot prompt: solved examples, then the question."""
    parts = [f"Question: {q.text()}\nAnswer: {pl.answer(q)}\n" for q in shots]
    return "\n".join([*parts, f"Question: {question.text()}\nAnswer:"])


def read_answer(text: str) -> int | None:
    """The first integer in a completion, or None."""
    found = re.search(r"-?\d+", text)
    return int(found.group()) if found else None


class LLMSolver:
    """Greedy completions of a causal LM from ``transformers``."""

    def __init__(self, model_name: str, max_new_tokens: int = 8):
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_name)
        self.model = AutoModelForCausalLM.from_pretrained(model_name).eval()
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def complete(self, text: str) -> str:
        ids = self.tokenizer(text, return_tensors="pt")
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        out = self.model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                  pad_token_id=pad)  # fmt: skip
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    def accuracy(self, questions: Sequence[pl.Question], shots: Sequence[pl.Question]) -> float:
        """The share of questions whose completion starts with the right integer."""
        if not questions:
            raise ValueError("no questions to answer")
        right = [read_answer(self.complete(prompt(q, shots))) == pl.answer(q) for q in questions]
        return float(np.mean(right))
