"""Small neural solvers of graded competence, trained on single-skill questions only.

A solver is an MLP that reads one step (which skill, its input number, its extra parameters)
and answers one of ``ANSWER_RANGE`` classes. Its *budget* is a set of numbers it has practised
every skill on: numbers outside the set it meets only at test time, where it must generalise
(from the digits and bits of the number) or fail. A composed question is solved step by step
(a chain of thought): the solver's own answer to the first step becomes the next step's input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprobook.mathskills import pipeline as pl
from reprobook.mathskills import skills as sk

N_SKILLS = len(sk.SKILLS)
FEATURES = N_SKILLS + sk.ANSWER_RANGE + 20 + 7 + sk.MAX_EXTRAS * (20 + 7)


def _number(values: Tensor) -> Tensor:
    """Digits (tens and units, one-hot) and 7 bits of numbers in [0, 100)."""
    tens = F.one_hot(values // 10 % 10, 10)
    units = F.one_hot(values % 10, 10)
    bits = (values.unsqueeze(1) >> torch.arange(7)) & 1
    return torch.cat([tens, units, bits], 1).float()


def encode(skill_ids: Tensor, n: Tensor, extras: Tensor) -> Tensor:
    """Features of steps: the skill (one-hot), the input (one-hot, digits, bits), the extras
    (digits, bits; 0 where a skill has fewer)."""
    parts = [
        F.one_hot(skill_ids, N_SKILLS).float(),
        F.one_hot(n, sk.ANSWER_RANGE).float(),
        _number(n),
    ]
    parts += [_number(extras[:, k]) for k in range(sk.MAX_EXTRAS)]
    return torch.cat(parts, 1)


def steps_tensor(
    steps: Sequence[tuple[str, int, tuple[int, ...]]],
) -> tuple[Tensor, Tensor, Tensor]:
    ids = torch.tensor([sk.NAMES.index(s) for s, _, _ in steps])
    n = torch.tensor([v for _, v, _ in steps])
    extras = torch.zeros(len(steps), sk.MAX_EXTRAS, dtype=torch.long)
    for row, (_, _, e) in enumerate(steps):
        extras[row, : len(e)] = torch.tensor(e, dtype=torch.long)
    return ids, n, extras


class Solver(nn.Module):
    """An MLP over a step's features; ``forward`` returns logits over the answers."""

    def __init__(self, width: int, depth: int = 2):
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be positive, got {width} and {depth}")
        layers, d = [], FEATURES
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self.net = nn.Sequential(*layers, nn.Linear(d, sk.ANSWER_RANGE))

    def forward(self, ids: Tensor, n: Tensor, extras: Tensor) -> Tensor:
        return self.net(encode(ids, n, extras))

    @torch.no_grad()
    def answer(self, ids: Tensor, n: Tensor, extras: Tensor) -> Tensor:
        return self(ids, n, extras).argmax(1)


def practice_steps(
    numbers: Sequence[int], n_extras: int, rng: np.random.Generator
) -> list[tuple[str, int, tuple[int, ...]]]:
    """The training steps of a budget: every skill on every practised number in its domain,
    with ``n_extras`` draws of the extra parameters (one for skills without extras)."""
    steps = []
    for s in sk.SKILLS:
        draws = n_extras if s.extras(rng) else 1
        for n in numbers:
            for _ in range(draws):
                e = s.extras(rng)
                if s.domain(n, e):
                    steps.append((s.name, int(n), e))
    return steps


def targets(steps: Sequence[tuple[str, int, tuple[int, ...]]]) -> Tensor:
    return torch.tensor([sk.skill(s).solve(n, e) for s, n, e in steps])


def train_solver(
    solver: Solver,
    steps: Sequence[tuple[str, int, tuple[int, ...]]],
    n_updates: int,
    batch: int,
    lr: float,
    generator: torch.Generator,
    checkpoints: Sequence[int] = (),
) -> dict[int, dict[str, Tensor]]:
    """Adam on cross-entropy over the steps; returns the weights at the ``checkpoints``."""
    if not steps:
        raise ValueError("a solver needs at least one training step")
    if n_updates < 1 or batch < 1 or not lr > 0:
        raise ValueError(f"need n_updates >= 1, batch >= 1, lr > 0; got {n_updates}, {batch}, {lr}")
    ids, n, extras = steps_tensor(steps)
    y = targets(steps)
    optimizer = torch.optim.Adam(solver.parameters(), lr=lr)
    saved = {}
    for update in range(1, n_updates + 1):
        rows = torch.randint(len(y), (batch,), generator=generator)
        loss = F.cross_entropy(solver(ids[rows], n[rows], extras[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if update in checkpoints:
            saved[update] = {k: v.detach().clone() for k, v in solver.state_dict().items()}
    return saved


def solve(solver: Solver, questions: Sequence[pl.Question]) -> np.ndarray:
    """The solver's answers, step by step: each step reads the previous step's answer."""
    first = steps_tensor([(q.first, q.n, q.extras) for q in questions])
    a = solver.answer(*first)
    if all(q.second is None for q in questions):
        return a.numpy()
    if any(q.second is None for q in questions):
        raise ValueError("solve single and composed questions in separate calls")
    if questions[0].parallel:
        second = steps_tensor([(q.second, q.n, q.second_extras) for q in questions])
        return ((a + solver.answer(*second)) % sk.ANSWER_RANGE).numpy()
    if questions[0].glue is not None:
        glue_ids = torch.tensor([sk.NAMES.index(q.glue) for q in questions])
        a = solver.answer(glue_ids, a, torch.zeros(len(questions), sk.MAX_EXTRAS, dtype=torch.long))
    ids, _, extras = steps_tensor([(q.second, 0, q.second_extras) for q in questions])
    return solver.answer(ids, a, extras).numpy()


def accuracy(solver: Solver, questions: Sequence[pl.Question]) -> np.ndarray:
    """Per-question correctness (1 or 0)."""
    truth = np.array([pl.answer(q) for q in questions])
    return (solve(solver, questions) == truth).astype(float)


def per_skill_accuracy(solver: Solver, questions: Sequence[pl.Question]) -> dict[str, float]:
    correct = accuracy(solver, questions)
    names = np.array([q.first for q in questions])
    return {
        name: float(correct[names == name].mean()) for name in sk.NAMES if (names == name).any()
    }


def chain_diagnostics(
    solver: Solver, questions: Sequence[pl.Question], per_skill: dict[str, float]
) -> dict[str, float]:
    """Where the independence behind Y = X² breaks, for sequential questions: the first step's
    accuracy; the second step's accuracy on the true intermediate answer, against the same
    skills' accuracy on uniform inputs (``per_skill``); and how often a wrong first step still
    ends right (luck)."""
    if any(q.second is None or q.parallel or q.glue for q in questions):
        raise ValueError("chain diagnostics need sequential two-step questions")
    first = steps_tensor([(q.first, q.n, q.extras) for q in questions])
    a_true = torch.tensor([sk.skill(q.first).solve(q.n, q.extras) for q in questions])
    a_pred = solver.answer(*first)
    ids, _, extras = steps_tensor([(q.second, 0, q.second_extras) for q in questions])
    truth = torch.tensor([pl.answer(q) for q in questions])
    on_true = solver.answer(ids, a_true, extras) == truth
    final = solver.answer(ids, a_pred, extras) == truth
    wrong = a_pred != a_true
    return {
        "first_step": float((~wrong).double().mean()),
        "second_step_on_answers": float(on_true.double().mean()),
        "second_skill_uniform": float(np.mean([per_skill[q.second] for q in questions])),
        "luck": float(final[wrong].double().mean()) if wrong.any() else 0.0,
    }
