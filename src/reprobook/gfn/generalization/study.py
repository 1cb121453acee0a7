"""Chapter 5's studies as functions of a config, returning JSON-ready metrics.

``length_study`` trains every objective on every length split for each seed (all objectives of
a seed start from the same torch seed) and measures each exactly on the full grid;
``stability_study`` computes the exact stability curves on a small grid. ``build_metrics`` joins
them; ``reprobook.gfn.generalization.report`` reads the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reprobook.gfn import stability
from reprobook.gfn.length import (
    OfflineSettings,
    grid_log_reward,
    make_grid,
    run_split,
    seen_mask,
)
from reprobook.gfn.objectives import LOSS_LABELS, LOSSES
from reprobook.profiles import Config, resolve_profile
from reprobook.report import mean_se

METRICS_VERSION = 1
SHARED = dict(
    batch_size=16, lr=1e-3, lr_logz=1e-1, hidden_dim=256, n_layers=2, R0=0.1,
    stability_grid=[2, 6, 5], stability_eps=[0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0,
                                             3.0, 4.0],
)  # fmt: skip
PROFILES = {
    "smoke": dict(  # CI: one small split, TB against DB, one seed
        splits=[[2, 8, 7]], losses=["tb", "db"], n_seeds=1, n_iterations=300, **SHARED,
    ),
    "full": dict(  # two grids split at half the longest trajectory, the 2-D one also at 3/4
        splits=[[2, 16, 15], [2, 16, 22], [4, 16, 30]], losses=list(LOSSES), n_seeds=3,
        n_iterations=3000, **SHARED,
    ),
}  # fmt: skip


def _splits_ok(splits) -> bool:
    return (
        isinstance(splits, list | tuple)
        and len(splits) > 0
        and all(
            isinstance(s, list | tuple)
            and len(s) == 3
            and all(isinstance(v, int) for v in s)
            and 1 <= s[0] <= 4
            and 5 <= s[1] <= 32
            and s[1] ** s[0] <= 70_000
            and 1 <= s[2] < (s[1] - 1) * s[0]
            for s in splits
        )
    )


def _stability_grid_ok(g) -> bool:
    return (
        isinstance(g, list | tuple)
        and len(g) == 3
        and all(isinstance(v, int) for v in g)
        and g[0] >= 1
        and g[1] >= 5
        and g[1] ** g[0] <= 64
        and 1 <= g[2] < (g[1] - 1) * g[0]
    )


CONFIG_CHECKS = {
    "splits": (
        _splits_ok,
        "a non-empty list of [d, H, L] with d in [1, 4], H in [5, 32], H^d <= 70,000 and "
        "1 <= L < d (H - 1)",
    ),
    "losses": (
        lambda a: len(a) > 0 and all(x in LOSSES for x in a) and len(set(a)) == len(a),
        f"a non-empty list of distinct objectives from {list(LOSSES)}",
    ),
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "n_iterations": (lambda n: n >= 50, "an integer >= 50 (the loss is recorded every 50)"),
    "batch_size": (lambda b: b >= 1, "a positive integer"),
    "lr": (lambda x: x > 0, "a number > 0"),
    "lr_logz": (lambda x: x > 0, "a number > 0"),
    "hidden_dim": (lambda n: n >= 1, "a positive integer"),
    "n_layers": (lambda n: n >= 1, "a positive integer"),
    "R0": (lambda x: x > 0, "a number > 0"),
    "stability_grid": (
        _stability_grid_ok,
        "[d, H, L] with H >= 5, H^d <= 64 (trajectories are enumerated) and 1 <= L < d (H - 1)",
    ),
    "stability_eps": (
        lambda e: len(e) >= 2 and all(x >= 0 for x in e) and list(e) == sorted(e),
        "an increasing list of at least two numbers >= 0",
    ),
}


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    return resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)


def settings(config: Config) -> OfflineSettings:
    return OfflineSettings(
        n_iterations=config.n_iterations, batch_size=config.batch_size, lr=config.lr,
        lr_logz=config.lr_logz, hidden_dim=config.hidden_dim, n_layers=config.n_layers,
    )  # fmt: skip


def split_facts(ndim: int, height: int, max_length: int, R0: float = 0.1) -> dict:
    """Sizes of both sides of a split and the target's mass beyond it."""
    seen = seen_mask(ndim, height, max_length)
    log_reward = grid_log_reward(make_grid(ndim, height, R0))
    p = np.exp(log_reward - log_reward.max())
    p /= p.sum()
    return {
        "ndim": ndim, "height": height, "max_length": max_length,
        "longest": (height - 1) * ndim, "n_states": int(seen.size), "n_seen": int(seen.sum()),
        "n_unseen": int((~seen).sum()), "mass_unseen_target": float(p[~seen].sum()),
        "log_z_target": float(np.log(np.exp(log_reward).sum())),
    }  # fmt: skip


def length_study(config: Config, seeds: Sequence[int], progress: bool = True) -> list[dict]:
    """Every objective on every split for each seed; per split, per objective, one row per seed.

    The first seed's exact terminal distributions are kept for 2-D splits (the maps).
    """
    if not seeds:
        raise ValueError("seeds must not be empty")
    out = []
    for ndim, height, max_length in config.splits:
        row = split_facts(ndim, height, max_length, config.R0)
        row["runs"] = {loss: [] for loss in config.losses}
        for seed in seeds:
            for loss in config.losses:
                run = run_split(
                    loss, ndim, height, max_length, settings(config), seed, config.R0,
                    keep_terminal=ndim == 2 and seed == seeds[0], progress=progress,
                )  # fmt: skip
                row["runs"][loss].append(run.summary())
        out.append(row)
    return out


def stability_study(config: Config, seed: int) -> dict:
    """The exact stability curves on the small grid ``stability_grid`` = [d, H, L]."""
    ndim, height, max_length = config.stability_grid
    log_reward = grid_log_reward(make_grid(ndim, height, config.R0))
    out = stability.curve(ndim, height, log_reward, max_length, config.stability_eps, seed)
    out.update(ndim=ndim, height=height, max_length=max_length)
    return out


def by_length(runs: list[dict], key: str = "calibrated_rmse_by_length") -> dict[str, list]:
    """Mean and standard error over seeds of a per-length error (default: the log-reward RMSE
    with the seen-calibrated Z) at each ‖x‖₁."""
    per_seed = [r["metrics"][key] for r in runs]
    stats = [mean_se(col) for col in zip(*per_seed, strict=True)]
    return {
        "length": runs[0]["metrics"]["lengths"],
        "mean": [m for m, _ in stats],
        "se": [s for _, s in stats],
    }


def build_metrics(config: Config, seeds: Sequence[int], splits: list[dict], curve: dict) -> dict:
    """The chapter's metrics from both studies (claims are added by the caller)."""
    for row in splits:
        row["by_length"] = {loss: by_length(runs) for loss, runs in row["runs"].items()}
    return {
        "metrics_version": METRICS_VERSION,
        "losses": list(config.losses),
        "labels": {loss: LOSS_LABELS[loss] for loss in config.losses},
        "n_seeds": len(seeds),
        "seeds": list(seeds),
        "n_iterations": config.n_iterations,
        "batch_size": config.batch_size,
        "R0": config.R0,
        "splits": splits,
        "stability": curve,
    }


def run_all(config: Config, seeds: Sequence[int], progress: bool = True) -> dict:
    """Both studies as one metrics dict: the chapter's experiments in one call."""
    splits = length_study(config, seeds, progress)
    return build_metrics(config, seeds, splits, stability_study(config, seeds[0]))
