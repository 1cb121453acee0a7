"""Chapter 4's experiments as functions of a config, returning JSON-ready metrics.

For every seed: the pipeline writes composed questions of three kinds (the paper's sequential
pairs; a control whose two skills read the same number; a control with an extra composition
step) and logs the yield of every stage; solvers of graded competence are trained on
single-skill questions only (budgets of practised numbers, checkpoints along training) and
measured on single-skill and composed questions; a last experiment adds composed or
single-skill questions to one solver's training data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.std import tqdm

from reprobook.mathskills import pipeline as pl
from reprobook.mathskills import skills as sk
from reprobook.mathskills import solvers as sv
from reprobook.profiles import Config, resolve_profile

METRICS_VERSION = 1
KINDS = ("sequential", "parallel", "three_step")
ARMS = ("base", "single", "composed", "single_equal_steps")
SHARED = dict(width=256, n_extras=8, batch=256, lr=1e-3, extra_size=45)
PROFILES = {
    "smoke": dict(  # CI: 3 solvers, one checkpoint each, one seed
        n_seeds=1, sizes=[15, 45, 90], updates=1000, checkpoints=[1000], singles_per_skill=40,
        n_pairs=300, n_extra=400, n_boot=500, **SHARED,
    ),
    "full": dict(  # 6 budgets x 2 checkpoints = 12 solvers per seed, 3 seeds
        n_seeds=3, sizes=[15, 30, 45, 60, 75, 90], updates=3000, checkpoints=[1000, 3000],
        singles_per_skill=200, n_pairs=2000, n_extra=400, n_boot=2000, **SHARED,
    ),
}  # fmt: skip
CONFIG_CHECKS = {
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "sizes": (
        lambda s: len(s) >= 2 and all(2 <= x <= sk.ANSWER_RANGE for x in s),
        f"a list of at least two budgets, each a count of numbers in [2, {sk.ANSWER_RANGE}]",
    ),
    "updates": (lambda n: n >= 1, "a positive number of updates"),
    "checkpoints": (lambda c: len(c) >= 1 and all(c >= 1 for c in c), "a list of update counts"),
    "singles_per_skill": (lambda n: n >= 5, "an integer >= 5"),
    "n_pairs": (lambda n: n >= 50, "an integer >= 50"),
    "n_extra": (lambda n: n >= 2, "an integer >= 2"),
    "n_boot": (lambda n: n >= 50, "an integer >= 50"),
    "width": (lambda n: n >= 1, "a positive integer"),
    "n_extras": (lambda n: n >= 1, "a positive integer"),
    "batch": (lambda n: n >= 1, "a positive integer"),
    "lr": (lambda x: x > 0, "a positive learning rate"),
    "extra_size": (lambda n: 2 <= n <= sk.ANSWER_RANGE, f"a budget in [2, {sk.ANSWER_RANGE}]"),
}


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    late = [c for c in config.checkpoints if c > config.updates]
    if late:
        raise ValueError(f"checkpoints must be <= updates = {config.updates}: {late}")
    return config


def skills_table(seed: int) -> pd.DataFrame:
    """Every skill with its topic and an example question and answer."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in pl.single_questions(1, rng):
        rows.append({"skill": q.first, "topic": sk.skill(q.first).topic, "example": q.text(),
                     "answer": pl.answer(q)})  # fmt: skip
    return pd.DataFrame(rows).set_index("skill")


def examples_table(seed: int) -> pd.DataFrame:
    """One composed question of each kind, with its answer."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in KINDS:
        q = pl.generate_pairs(1, rng, kind=kind)[0][0]
        rows.append({"kind": kind.replace("_", " "), "question": q.text(), "answer": pl.answer(q)})
    return pd.DataFrame(rows).set_index("kind")


def composed_steps(questions: Sequence[pl.Question]) -> list[tuple[str, int, tuple[int, ...]]]:
    """The worked steps of sequential questions: the first skill at n, the second at its answer."""
    steps = []
    for q in questions:
        a = sk.skill(q.first).solve(q.n, q.extras)
        steps += [(q.first, q.n, q.extras), (q.second, a, q.second_extras)]
    return steps


def uniform_steps(n: int, rng: np.random.Generator) -> list[tuple[str, int, tuple[int, ...]]]:
    """``n`` single-skill steps, the skill and the number uniform."""
    out = []
    for _ in range(n):
        s = sk.SKILLS[int(rng.integers(len(sk.SKILLS)))]
        extras = s.extras(rng)
        out.append((s.name, sk.draw_input(s, rng, extras), extras))
    return out


def _train(config: Config, steps, seed: int, checkpoints: Sequence[int]) -> tuple[sv.Solver, dict]:
    torch.manual_seed(seed)
    solver = sv.Solver(config.width)
    generator = torch.Generator().manual_seed(seed)
    saved = sv.train_solver(solver, steps, config.updates, config.batch, config.lr, generator,
                            checkpoints)  # fmt: skip
    return solver, saved


def run_seed(config: Config, seed: int, progress: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    tests, yields = {}, {}
    for kind in KINDS:
        tests[kind], found = pl.generate_pairs(config.n_pairs, rng, kind=kind)
        yields[kind] = found.counts
    singles = pl.single_questions(config.singles_per_skill, rng)
    solvers = []
    for i, size in enumerate(tqdm(config.sizes, desc="solvers", disable=not progress, leave=False)):
        numbers = rng.choice(sk.ANSWER_RANGE, size, replace=False)
        steps = sv.practice_steps(numbers, config.n_extras, rng)
        solver, saved = _train(config, steps, 1000 * seed + i, config.checkpoints)
        for updates, weights in saved.items():
            solver.load_state_dict(weights)
            per_skill = sv.per_skill_accuracy(solver, singles)
            solvers.append({
                "size": int(size), "updates": int(updates), "n_steps": len(steps),
                "x": float(sv.accuracy(solver, singles).mean()), "per_skill": per_skill,
                "y": {kind: float(sv.accuracy(solver, tests[kind]).mean()) for kind in KINDS},
                "chain": sv.chain_diagnostics(solver, tests["sequential"], per_skill),
            })  # fmt: skip
    # Training on composed questions: one budget, four arms, the same initial weights.
    numbers = rng.choice(sk.ANSWER_RANGE, config.extra_size, replace=False)
    base = sv.practice_steps(numbers, config.n_extras, rng)
    extra_questions, _ = pl.generate_pairs(config.n_extra, rng, kind="sequential")
    arms = {
        "base": base,
        "single": base + uniform_steps(config.n_extra, rng),
        "composed": base + composed_steps(extra_questions),
        "single_equal_steps": base + uniform_steps(2 * config.n_extra, rng),
    }
    extra = {}
    for arm, steps in arms.items():
        solver, _ = _train(config, steps, 1000 * seed + 999, ())
        extra[arm] = {
            "n_steps": len(steps),
            "x": float(sv.accuracy(solver, singles).mean()),
            "y": float(sv.accuracy(solver, tests["sequential"]).mean()),
        }
    return {
        "seed": seed,
        "yields": yields,
        "n_singles": len(singles),
        "n_pairs": {kind: len(q) for kind, q in tests.items()},
        "solvers": solvers,
        "extra": extra,
        "examples": {kind: [q.text() for q in tests[kind][:2]] for kind in KINDS},
    }


def measure_llm(model_name: str, seed: int, per_skill: int = 3, n_pairs: int = 48) -> dict:
    """A reader's language model, measured on a few single-skill and sequential questions with
    three solved single-skill questions as examples."""
    from reprobook.mathskills.llm import LLMSolver

    rng = np.random.default_rng(seed)
    shots = pl.single_questions(1, rng)[:3]
    singles = pl.single_questions(per_skill, rng)
    pairs, _ = pl.generate_pairs(n_pairs, rng)
    model = LLMSolver(model_name)
    return {"model_name": model_name, "x": model.accuracy(singles, shots),
            "y": model.accuracy(pairs, shots), "n_singles": len(singles),
            "n_pairs": len(pairs)}  # fmt: skip


def run_all(config: Config, seeds: Sequence[int], progress: bool = True) -> dict:
    """Every seed; the metrics the chapter saves."""
    runs = [run_seed(config, s, progress) for s in tqdm(seeds, desc="seeds", disable=not progress)]
    return {"metrics_version": METRICS_VERSION, "settings": dict(config), "skills": list(sk.NAMES),
            "topics": {s.name: s.topic for s in sk.SKILLS}, "runs": runs}  # fmt: skip
