"""Chapter 8's experiments as functions of a config, returning JSON-ready metrics.

Two tasks, each trained with FM, CGFM and MFM for every seed (the seed draws the data and the
networks' initialisation; all methods of a seed see the same data):

- **letters**: denoise letters drawn as point clouds; train on most letters at random rotations,
  hold out whole letters (``reprobook.flows.letters``);
- **patients**: a synthetic stand-in for a patients × treatments screen, holding out whole
  patients and also scoring fresh replicates of training patients (``reprobook.flows.patients``).

Every method is scored with W1, W2 and MMD per population, then averaged per split; the identity
map (the source population as the prediction) is scored alike as the floor.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from reprobook.flows import letters, matching, patients
from reprobook.flows.distances import METRICS
from reprobook.flows.populations import Population
from reprobook.profiles import Config, resolve_profile

METRICS_VERSION = 1
TASKS = ("letters", "patients")
NETWORK = dict(width=128, n_layers=3, time_dim=128, n_fourier=128, fourier_scale=1.0,
               gnn_width=64, gnn_layers=3, knn=10, ode_steps=20, lr=2e-3, pops_per_step=10,
               points_per_pop=100)  # fmt: skip
PAPER_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWZ"  # the alphabet without X (validation) and Y (test)
PROFILES = {
    "smoke": dict(  # CI: a few letters and patients, short training, one seed
        methods=list(matching.METHODS), n_seeds=1, tasks=list(TASKS),
        train_letters="ABCD", val_letters="X", test_letters="Y", n_rotations=3, n_points=200,
        letters_steps=300, n_patients=8, n_test_patients=3, n_treatments=2, n_cells=200,
        patients_steps=300, n_shown=2, **NETWORK,
    ),
    "full": dict(  # the paper's letter split, 3 seeds, both tasks
        methods=list(matching.METHODS), n_seeds=3, tasks=list(TASKS),
        train_letters=PAPER_LETTERS, val_letters="X", test_letters="Y", n_rotations=10,
        n_points=400, letters_steps=10000, n_patients=24, n_test_patients=8, n_treatments=3,
        n_cells=300, patients_steps=3000, n_shown=2, **NETWORK,
    ),
}  # fmt: skip


def _letters_ok(s) -> bool:
    return isinstance(s, str) and all(c in letters.LETTERS for c in s) and len(set(s)) == len(s)


CONFIG_CHECKS = {
    "methods": (
        lambda m: len(m) > 0 and all(x in matching.METHODS for x in m) and len(set(m)) == len(m),
        f"a non-empty list of distinct methods from {list(matching.METHODS)}",
    ),
    "tasks": (
        lambda t: len(t) > 0 and all(x in TASKS for x in t) and len(set(t)) == len(t),
        f"a non-empty list of distinct tasks from {list(TASKS)}",
    ),
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "train_letters": (lambda s: _letters_ok(s) and len(s) >= 1, "distinct capitals A-Z"),
    "val_letters": (_letters_ok, "distinct capitals A-Z (may be empty)"),
    "test_letters": (lambda s: _letters_ok(s) and len(s) >= 1, "distinct capitals A-Z"),
    "n_rotations": (lambda n: n >= 1, "a positive integer"),
    "n_points": (lambda n: n >= 20, "an integer >= 20 (points per population)"),
    "letters_steps": (lambda n: n >= 50, "an integer >= 50"),
    "n_patients": (lambda n: n >= 2, "an integer >= 2"),
    "n_test_patients": (lambda n: n >= 1, "a positive integer"),
    "n_treatments": (lambda n: 1 <= n <= 8, "an integer in [1, 8]"),
    "n_cells": (lambda n: n >= 20, "an integer >= 20"),
    "patients_steps": (lambda n: n >= 50, "an integer >= 50"),
    "n_shown": (lambda n: n >= 1, "a positive integer (held-out populations drawn)"),
    "knn": (lambda n: n >= 1, "a positive integer"),
    "lr": (lambda x: x > 0, "a number > 0"),
    "points_per_pop": (lambda n: n >= 10, "an integer >= 10"),
}


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked
    (held-out letters must not be trained on; each population must hold ``points_per_pop``)."""
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    overlap = set(config.train_letters) & set(config.val_letters + config.test_letters)
    if overlap:
        raise ValueError(f"held-out letters must not be training letters, got {sorted(overlap)}")
    smallest = min(config.n_points, config.n_cells)
    if config.points_per_pop > smallest or config.knn >= config.points_per_pop:
        raise ValueError(
            f"need knn < points_per_pop <= n_points and n_cells, got knn = {config.knn}, "
            f"points_per_pop = {config.points_per_pop}, n_points = {config.n_points}, "
            f"n_cells = {config.n_cells}"
        )
    return config


def flow_settings(config: Config, n_steps: int) -> matching.FlowSettings:
    """The shared network and training settings, with a task's number of steps."""
    keys = matching.FlowSettings.__dataclass_fields__
    return matching.FlowSettings(n_steps=n_steps, **{k: config[k] for k in keys if k in config})


def task_data(task: str, config: Config, seed: int) -> dict[str, list[Population]]:
    """The populations of ``task`` for ``seed``: its training split and its evaluation splits."""
    if task == "letters":
        return letters.letters_split(
            config.train_letters, config.val_letters, config.test_letters, config.n_rotations,
            config.n_points, seed,
        )  # fmt: skip
    if task == "patients":
        return patients.patients_split(
            config.n_patients, config.n_test_patients, config.n_treatments, config.n_cells, seed
        )
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def _mean_distances(rows: list[dict[str, float]]) -> dict[str, float]:
    return {m: float(np.mean([r[m] for r in rows])) for m in METRICS}


def train_eval_subset(pops: list[Population], n: int = 10) -> list[Population]:
    """At most ``n`` training populations spread evenly over the list, scored as "train" (the
    paper's code scores 10 fixed training populations too)."""
    idx = np.linspace(0, len(pops) - 1, min(n, len(pops))).round().astype(int)
    return [pops[i] for i in dict.fromkeys(idx.tolist())]


def run_task(task: str, config: Config, seeds: Sequence[int], progress: bool = True) -> dict:
    """Every method of ``config`` on ``task`` for each seed, plus the identity floor.

    Per seed and method: the training loss curve, the seconds it took, and W1/W2/MMD per
    evaluation split (mean over populations, and W2 per population). The first seed also keeps
    ``n_shown`` held-out populations with each method's prediction, for the figures, and the
    largest gap between fixed-step RK4 and adaptive dopri5 on them.
    """
    if not seeds:
        raise ValueError("seeds must not be empty")
    n_steps = config.letters_steps if task == "letters" else config.patients_steps
    n_treatments = config.n_treatments if task == "patients" else 1
    settings = flow_settings(config, n_steps)
    out: dict = {"runs": {m: [] for m in config.methods}, "identity": [], "shown": {}}
    for seed in seeds:
        data = task_data(task, config, seed)
        splits = {"train": train_eval_subset(data["train"])}
        splits.update({k: v for k, v in data.items() if k != "train" and v})
        out["splits"] = list(splits)
        out["n_train_populations"] = len(data["train"])
        out["identity"].append(
            {s: _mean_distances(matching.evaluate(None, pops)) for s, pops in splits.items()}
        )
        held_out = splits["test"][: config.n_shown]
        if seed == seeds[0]:
            out["shown"] = {  # figure data, 3 decimals
                "names": [p.name for p in held_out],
                "x0": [p.x0.round(3).tolist() for p in held_out],
                "x1": [p.x1.round(3).tolist() for p in held_out],
                "predicted": {},
            }
        for method in config.methods:
            start = time.perf_counter()
            model, losses = matching.train(method, data["train"], settings, seed, n_treatments,
                                           progress)  # fmt: skip
            seconds = time.perf_counter() - start
            scored = {s: matching.evaluate(model, pops, config.ode_steps)
                      for s, pops in splits.items()}  # fmt: skip
            row = {
                "seed": seed, "seconds": seconds, "losses": [round(x, 5) for x in losses],
                "distances": {s: _mean_distances(rows) for s, rows in scored.items()},
                "w2_per_population": {s: [r["w2"] for r in rows] for s, rows in scored.items()},
            }  # fmt: skip
            if seed == seeds[0]:
                predicted = matching.transport(model, held_out, config.ode_steps)
                out["shown"]["predicted"][method] = [p.round(3).tolist() for p in predicted]
                row["solver_gap"] = matching.solver_gap(model, held_out, config.ode_steps)
            out["runs"][method].append(row)
    return out


def run_all(config: Config, seeds: Sequence[int], progress: bool = True) -> dict:
    """Every task of ``config`` as one metrics dict (claims are added by the caller)."""
    return {
        "metrics_version": METRICS_VERSION,
        "methods": list(config.methods),
        "labels": {m: matching.LABELS[m] for m in ("identity", *config.methods)},
        "n_seeds": len(seeds),
        "seeds": list(seeds),
        "steps": {"letters": config.letters_steps, "patients": config.patients_steps},
        "settings": {k: config[k] for k in ("n_points", "n_cells", *NETWORK)},
        "tasks": {task: run_task(task, config, seeds, progress) for task in config.tasks},
    }
