"""MATH²'s question pipeline as code, with the paper's stages and the yield of each.

A pair of skills is sampled; a pair of the same topic is rejected as qualitatively similar; a
question is generated in which the first skill's answer is the second's input, with a brief
solution; a "defeatist" attempt looks for a flaw (a composition whose answer does not depend on
the first skill, so that it does not need both); three independent validators vote on the
rubric (well-posed, a single bounded answer, the brief solution right); the final solution is
re-derived from the question's text alone and must match. The paper's LLM stages become
deterministic checks; what each stage rejects is counted.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from reprobook.mathskills import skills as sk

STAGES = ("sampled", "dissimilar", "well_posed", "needs_both", "rubric_vote", "revalidated")
SHORTCUT_SHARE = 0.1  # a shortcut: over 10 % of wrong first steps still reach the answer


@dataclass(frozen=True)
class Question:
    """A single-skill question (``second`` None) or a composed one: ``second`` reads ``first``'s
    answer as its input; ``glue`` (an extra skill between them) makes a three-step question."""

    first: str
    n: int
    extras: tuple[int, ...]
    second: str | None = None
    second_extras: tuple[int, ...] = ()
    glue: str | None = None
    parallel: bool = False  # both skills read n; the answer is their sum mod ANSWER_RANGE

    @property
    def skills(self) -> tuple[str, ...]:
        middle = (self.glue,) if self.glue else ()
        return (self.first, *middle, self.second) if self.second else (self.first,)

    def text(self) -> str:
        first = sk.skill(self.first).question(self.n, self.extras)
        if self.second is None:
            return first
        if self.parallel:
            second = sk.skill(self.second).question(self.n, self.second_extras)
            return f"Let a answer: {first} Let b answer: {second} What is (a + b) mod 100?"
        text = f"Let a answer: {first} "
        name = "a"
        if self.glue:
            text += f"Let b answer, with n = a: {sk.skill(self.glue).question('n', ())} "
            name = "b"
        second = sk.skill(self.second).question(name, self.second_extras)
        return text + second


def answer(q: Question, method: str = "solve") -> int:
    """The answer, by the reference solutions (``solve``) or the sympy verifiers (``verify``)."""
    if method not in ("solve", "verify"):
        raise ValueError(f"method must be 'solve' or 'verify', got {method!r}")

    def run(name: str, n: int, extras: tuple[int, ...]) -> int:
        return getattr(sk.skill(name), method)(n, extras)

    a = run(q.first, q.n, q.extras)
    if q.second is None:
        return a
    if q.parallel:
        return (a + run(q.second, q.n, q.second_extras)) % sk.ANSWER_RANGE
    if q.glue:
        a = run(q.glue, a, ())
    return run(q.second, a, q.second_extras)


def well_posed(q: Question) -> bool:
    """Every step's input lies in its skill's domain."""
    if not sk.skill(q.first).domain(q.n, q.extras):
        return False
    if q.second is None:
        return True
    if q.parallel:
        return sk.skill(q.second).domain(q.n, q.second_extras)
    a = sk.skill(q.first).solve(q.n, q.extras)
    if q.glue:
        if not sk.skill(q.glue).domain(a, ()):
            return False
        a = sk.skill(q.glue).solve(a, ())
    return sk.skill(q.second).domain(a, q.second_extras)


def downstream(q: Question, a: int) -> int | None:
    """The answer the rest of a composed question gives when its first step answers ``a``
    (None when ``a`` leaves a later step's domain)."""
    if q.glue:
        glue = sk.skill(q.glue)
        if not glue.domain(a, ()):
            return None
        a = glue.solve(a, ())
    second = sk.skill(q.second)
    return second.solve(a, q.second_extras) if second.domain(a, q.second_extras) else None


def needs_both(q: Question) -> bool:
    """The defeatist check: the answer must hinge on the first step. The rest of the question is
    run from every other first-step answer; if more than ``SHORTCUT_SHARE`` of them reach the
    question's answer, a solver could reach it without the first skill."""
    if q.second is None or q.parallel:
        return True
    a = sk.skill(q.first).solve(q.n, q.extras)
    target = downstream(q, a)
    others = [downstream(q, m) for m in range(sk.ANSWER_RANGE) if m != a]
    others = [x for x in others if x is not None]
    return bool(others) and sum(x == target for x in others) / len(others) < SHORTCUT_SHARE


def parse_text(text: str) -> list[int]:
    """The integers stated in a question's text, in order."""
    return [int(x) for x in re.findall(r"\d+", text)]


def rubric_vote(q: Question, brief: int) -> bool:
    """Three validators (reference solutions, sympy verifiers, and the reference solutions on the
    numbers read back from the text) vote; the majority answer must exist, be bounded and match
    the brief solution."""
    votes = [answer(q, "solve"), answer(q, "verify"), answer(reparse(q), "solve")]
    top, count = Counter(votes).most_common(1)[0]
    return count >= 2 and 0 <= top < sk.ANSWER_RANGE and top == brief


def _read_step(template: str, numbers: list[int], has_input: bool) -> tuple[dict, list[int]]:
    """Read one step's stated numbers in the order its wording puts them: ``{n}`` (only when
    the step's input is a number, not a name), ``{e0}``, ``{e1}`` and literal constants."""
    values, rest = {}, list(numbers)
    for slot in re.findall(r"\{n\}|\{e\d\}|\d+", template):
        if slot == "{n}" and not has_input:
            continue
        value = rest.pop(0)
        if slot.startswith("{"):
            values[slot[1:-1]] = value
    return values, rest


def _extras(values: dict) -> tuple[int, ...]:
    return tuple(values[f"e{i}"] for i in range(sk.MAX_EXTRAS) if f"e{i}" in values)


def reparse(q: Question) -> Question:
    """The question rebuilt from the numbers its text states, read in order: a check that the
    text says what the question is."""
    numbers = parse_text(q.text())
    first, rest = _read_step(sk.skill(q.first).text, numbers, True)
    n = first["n"]
    if q.second is None:
        return Question(q.first, n, _extras(first))
    if q.glue:
        _, rest = _read_step(sk.skill(q.glue).text, rest, False)
    second, rest = _read_step(sk.skill(q.second).text, rest, q.parallel)
    return Question(q.first, n, _extras(first), q.second, _extras(second), q.glue, q.parallel)


@dataclass
class Yield:
    """How many candidates reached each stage."""

    counts: dict[str, int]

    def rates(self) -> dict[str, float]:
        start = max(self.counts["sampled"], 1)
        return {k: v / start for k, v in self.counts.items()}


def generate_pairs(
    n_wanted: int,
    rng: np.random.Generator,
    names: tuple[str, ...] = sk.NAMES,
    kind: str = "sequential",
    max_tries: int = 100_000,
) -> tuple[list[Question], Yield]:
    """Run the pipeline until ``n_wanted`` questions survive; ``kind`` is ``sequential`` (the
    paper's pairs), ``parallel`` (both skills read the same input) or ``three_step`` (a glue skill
    between the two: an extra composition step)."""
    if kind not in ("sequential", "parallel", "three_step"):
        raise ValueError(f"kind must be sequential, parallel or three_step, got {kind!r}")
    if len(names) < 3:
        raise ValueError("the pipeline needs at least 3 skills")
    counts = dict.fromkeys(STAGES, 0)
    glues = [k for k, name in enumerate(names) if not sk.skill(name).extras(rng)]
    if kind == "three_step" and len(glues) < 1:
        raise ValueError("a three-step question needs a skill without extra parameters as glue")
    kept: list[Question] = []
    for _ in range(max_tries):
        if len(kept) >= n_wanted:
            break
        i, j = rng.choice(len(names), 2, replace=False)
        first, second = sk.skill(names[i]), sk.skill(names[j])
        counts["sampled"] += 1
        if first.topic == second.topic:
            continue
        counts["dissimilar"] += 1
        glue = None
        if kind == "three_step":
            choices = [k for k in glues if k not in (i, j)]
            glue = names[choices[int(rng.integers(len(choices)))]]
        e1, e2 = first.extras(rng), second.extras(rng)
        n = int(rng.integers(0, sk.ANSWER_RANGE))
        q = Question(names[i], n, e1, names[j], e2, glue, kind == "parallel")
        if not well_posed(q):
            continue
        counts["well_posed"] += 1
        if not needs_both(q):
            continue
        counts["needs_both"] += 1
        brief = answer(q, "solve")
        if not rubric_vote(q, brief):
            continue
        counts["rubric_vote"] += 1
        if answer(reparse(q), "verify") != brief:
            continue
        counts["revalidated"] += 1
        kept.append(q)
    if len(kept) < n_wanted:
        raise ValueError(f"only {len(kept)} of {n_wanted} questions survived {max_tries} tries")
    return kept, Yield(counts)


def single_questions(
    n_per_skill: int, rng: np.random.Generator, names: tuple[str, ...] = sk.NAMES
) -> list[Question]:
    """Single-skill questions, ``n_per_skill`` of each, inputs uniform over the domain."""
    out = []
    for name in names:
        s = sk.skill(name)
        for _ in range(n_per_skill):
            extras = s.extras(rng)
            out.append(Question(name, sk.draw_input(s, rng, extras), extras))
    return out
