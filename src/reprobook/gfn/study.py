"""Chapter 6's studies as functions of a config, returning JSON-ready metrics.

``mode_discovery`` trains every arm on the main grid for each seed (all arms of a seed start
from the same student initialisation); ``sample_map`` trains every arm once on a 2-D grid and
keeps where each sampled, for the picture. ``build_metrics`` turns their outputs into the
chapter's metrics; ``reprobook.gfn.report`` reads them (claims, findings, notes, tables), so the
chapter's text can be recomputed from a saved run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reprobook.gfn.grid import (
    all_states,
    deceptive_reward,
    make_deceptive_grid,
    mode_coordinates,
    n_mode_states,
    target_distribution,
    terminal_mask,
)
from reprobook.gfn.training import (
    ARM_LABELS,
    ARMS,
    BACKWARD_POLICIES,
    TrainSettings,
    buffer_capacity,
    train_arm,
)
from reprobook.profiles import Config, resolve_profile
from reprobook.report import mean_se
from reprobook.runtime import map_processes

# Fixed settings of the official grid code (grid/trainer.py, grid/run.sh), shared by all profiles.
PAPER_SETTINGS = dict(
    batch_size=16, lr=1e-3, lr_logz=1e-1, clip_grad_norm=1.0, hidden_dim=256, n_layers=2,
    rank_weight=1e-2, backward="official",
)  # fmt: skip
PROFILES = {
    "smoke": dict(  # CI: the 3-D grid (27 mode states), TB against the teacher, two seeds
        ndim=3, height=16, n_iterations=500, arms=["tb", "teacher"], n_seeds=2,
        eval_samples=10_000, map_height=16, map_iterations=300, map_arms=["tb", "teacher"],
        C=19.0, alpha=0.0, epsilon=0.01, workers=2, **PAPER_SETTINGS,
    ),
    "short": dict(  # d = 4, H = 16 at a quarter of the official budget: 1,500 iterations
        ndim=4, height=16, n_iterations=1500, arms=list(ARMS), n_seeds=3,
        eval_samples=100_000, map_height=32, map_iterations=600, map_arms=list(ARMS),
        C=19.0, alpha=0.0, epsilon=0.01, workers=2, **PAPER_SETTINGS,
    ),
    "full": dict(  # d = 4, H = 16 (81 mode states) at the official 6,000 iterations, 3 seeds
        ndim=4, height=16, n_iterations=6000, arms=list(ARMS), n_seeds=3,
        eval_samples=100_000, map_height=32, map_iterations=600, map_arms=list(ARMS),
        C=19.0, alpha=0.0, epsilon=0.01, workers=2, **PAPER_SETTINGS,
    ),
}  # fmt: skip
BAND_RULE = "an integer in [6, 64] with a coordinate in the mode band 0.6 < |2x/(H-1) - 1| < 0.8"


def _has_band(height: int) -> bool:
    return 6 <= height <= 64 and bool(mode_coordinates(height))


ARMS_CHECK = (
    lambda a: len(a) > 0 and all(x in ARMS for x in a) and len(set(a)) == len(a),
    f"a non-empty list of distinct arms from {list(ARMS)}",
)
CONFIG_CHECKS = {
    "ndim": (lambda n: 1 <= n <= 6, "an integer in [1, 6] (the state space is H^d)"),
    "height": (_has_band, BAND_RULE),
    "n_iterations": (lambda n: n >= 10, "an integer >= 10"),
    "arms": ARMS_CHECK,
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "eval_samples": (lambda n: n >= 100, "an integer >= 100"),
    "map_height": (_has_band, BAND_RULE),
    "map_iterations": (lambda n: n >= 10, "an integer >= 10"),
    "map_arms": ARMS_CHECK,
    "C": (lambda c: c >= 0, "a number >= 0"),
    "alpha": (lambda a: a >= 0, "a number >= 0"),
    "epsilon": (lambda e: 0 <= e <= 1, "a number in [0, 1]"),
    "batch_size": (lambda b: b >= 1, "a positive integer"),
    "workers": (lambda w: 1 <= w <= 64, "an integer in [1, 64] (processes, one thread each)"),
    "backward": (lambda b: b in BACKWARD_POLICIES, f"one of {list(BACKWARD_POLICIES)}"),
}
METRICS_VERSION = (
    3  # 2: modes at equal student gradient steps; 3: paired claims, eval modes per seed
)


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    return resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)


def train_settings(config: Config, n_iterations: int, eval_samples: int) -> TrainSettings:
    return TrainSettings(
        n_iterations=n_iterations, batch_size=config.batch_size, lr=config.lr,
        lr_logz=config.lr_logz, clip_grad_norm=config.clip_grad_norm, epsilon=config.epsilon,
        C=config.C, alpha=config.alpha, rank_weight=config.rank_weight,
        hidden_dim=config.hidden_dim, n_layers=config.n_layers, eval_samples=eval_samples,
        backward=config.backward,
    )  # fmt: skip


def grid_facts(ndim: int, height: int) -> dict:
    """The grid's mode convention and terminal sets, for the chapter's text and checks."""
    coords = mode_coordinates(height)
    states = all_states(ndim, height)
    reward, terminal = deceptive_reward(states, height).numpy(), terminal_mask(ndim, height)
    in_band_eps = [
        x for x in range(height) if 0.3 + 1e-12 < abs(x / (height - 1) - 0.5) < 0.4 - 1e-12
    ]
    return {
        "ndim": ndim,
        "height": height,
        "mode_coordinates": coords,
        "n_mode_states": n_mode_states(ndim, height),
        "torchgfn_mode_coordinates": in_band_eps,
        "torchgfn_n_mode_states": len(in_band_eps) ** ndim,
        "n_states": int(states.shape[0]),
        "n_terminal_states": int(terminal.sum()),
        "buffer_capacity": buffer_capacity(ndim, height),
        "target_mass_on_modes": float(
            target_distribution(ndim, height)[np.isin(states.numpy(), coords).all(-1)].sum()
        ),
        # Mass that torchgfn's own stopping rule (every state terminal) would give to states
        # the official environment never reaches: what the official rule changes.
        "torchgfn_extra_terminal_mass": float(1 - reward[terminal].sum() / reward.sum()),
    }


def _arm_summary(arm: str, ndim: int, height: int, settings: TrainSettings, seed: int) -> dict:
    return train_arm(arm, make_deceptive_grid(ndim, height), settings, seed, False).summary()


def _map_entry(arm: str, height: int, settings: TrainSettings, seed: int) -> dict:
    run = train_arm(arm, make_deceptive_grid(2, height), settings, seed, False)
    return {
        "counts": run.visit_counts.reshape(2 * (height,)).tolist(),
        "final_modes": run.modes_found[-1],
        "n_mode_states": run.n_mode_states,
    }


def mode_discovery(config: Config, seeds: Sequence[int], progress: bool = True) -> dict:
    """Train every arm for each seed on the main grid; per arm, one summary per seed.

    With ``config.workers`` > 1 the (seed, arm) runs go to that many single-threaded processes;
    each run seeds itself, so the numbers are those of a run in this process.
    """
    if not seeds:
        raise ValueError("seeds must not be empty")
    settings = train_settings(config, config.n_iterations, config.eval_samples)
    # Longest runs first, so that the last ones to finish are short: PRT (twice the iterations),
    # then the teacher (two networks), then the rest.
    first = ("tb_prt", "teacher")
    order = sorted(config.arms, key=lambda arm: first.index(arm) if arm in first else len(first))
    jobs = [(arm, config.ndim, config.height, settings, s) for arm in order for s in seeds]
    jobs_done = map_processes(_arm_summary, jobs, config.workers, "runs" if progress else None)
    runs: dict[str, list[dict]] = {arm: [] for arm in config.arms}
    for summary in jobs_done:
        runs[summary["arm"]].append(summary)
    return {arm: sorted(per_seed, key=lambda r: r["seed"]) for arm, per_seed in runs.items()}


def sample_map(config: Config, seed: int, progress: bool = True) -> dict:
    """Every map arm trained once on the 2-D grid; visit counts of its training samples."""
    settings = train_settings(config, config.map_iterations, eval_samples=10_000)
    out = {"height": config.map_height, "iterations": config.map_iterations, "seed": seed}
    out["target"] = target_distribution(2, config.map_height).reshape(2 * (config.map_height,))
    out["target"] = out["target"].tolist()
    jobs = [(arm, config.map_height, settings, seed) for arm in config.map_arms]
    entries = map_processes(_map_entry, jobs, config.workers, "map" if progress else None)
    out["arms"] = dict(zip(config.map_arms, entries, strict=True))
    return out


def aggregate(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per arm: mean and standard error over seeds of final modes and of both L1 conventions."""
    out = {}
    for arm, per_seed in runs.items():
        row: dict = {"label": ARM_LABELS[arm], "n_seeds": len(per_seed)}
        row["final_modes"], row["final_modes_se"] = mean_se([r["final_modes"] for r in per_seed])
        row["final_modes_per_seed"] = [r["final_modes"] for r in per_seed]
        row["samples_to_all_modes_per_seed"] = [r["samples_to_all_modes"] for r in per_seed]
        for which in ("eval_l1", "train_l1"):
            for conv in ("mean", "sum"):
                row[f"{which}_{conv}"], row[f"{which}_{conv}_se"] = mean_se(
                    [r[which][conv] for r in per_seed]
                )
        row["eval_modes"] = float(np.mean([r["eval_modes"] for r in per_seed]))
        row["eval_modes_per_seed"] = [r["eval_modes"] for r in per_seed]
        row["student_modes"] = float(np.mean([r["student_modes"] for r in per_seed]))
        row["student_modes_per_seed"] = [r["student_modes"] for r in per_seed]
        row["modes_at_equal_steps"], row["modes_at_equal_steps_se"] = mean_se(
            [r["modes_at_equal_steps"] for r in per_seed]
        )
        row["ms_per_iteration"] = float(np.mean([r["ms_per_iteration"] for r in per_seed]))
        row["samples"] = per_seed[0]["samples"][-1]
        out[arm] = row
    return out


def build_metrics(
    config: Config, seeds: Sequence[int], runs: dict[str, list[dict]], sample_map: dict
) -> dict:
    """The chapter's metrics from both studies' outputs (claims are added by the caller)."""
    return {
        "metrics_version": METRICS_VERSION,
        "grid": grid_facts(config.ndim, config.height),
        "n_iterations": config.n_iterations,
        "batch_size": config.batch_size,
        "workers": config.workers,
        "backward": config.backward,
        "eval_samples": config.eval_samples,
        "n_seeds": len(seeds),
        "seeds": list(seeds),
        "C": config.C,
        "alpha": config.alpha,
        "epsilon": config.epsilon,
        "runs": runs,
        "aggregate": aggregate(runs),
        "map": sample_map,
    }


def run_all(config: Config, seeds: Sequence[int], progress: bool = True) -> dict:
    """Both studies as one metrics dict (claims added by the caller): the chapter, in one call."""
    runs = mode_discovery(config, seeds, progress)
    return build_metrics(config, seeds, runs, sample_map(config, seeds[0], progress))
