"""Chapter 9's experiments as functions of a config, returning JSON-ready metrics.

``benchmark`` simulates a Norman-like CRISPR-activation screen on a random gene-regulatory
network for every seed (one network and design per seed) and epistasis level ε, splits the
doubles in halves ``n_splits`` times (the same splits at every ε), trains every model on all
singles plus a fraction of the training half, and scores it on the test half.
``representation`` encodes scanpy's bundled PBMC cells and decodes their cell types.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.std import tqdm

from reprobook.cells import grn, metrics, perturbation, representation
from reprobook.profiles import Config, resolve_profile

METRICS_VERSION = 1
SHARED = dict(activation=3.0, saturation=0.5, contraction=0.9, in_module=0.8, prior_keep=0.5,
              lr=3e-3, hidden=128, graph_hidden=32, pca_dim=10, ridge=0.1, rep_dim=10,
              gi_quantile=0.75)  # fmt: skip
PROFILES = {
    "smoke": dict(  # CI: a small network, one split, two epistasis levels
        n_genes=200, n_regulators=50, in_degree=4, n_modules=5, n_singles=40, n_doubles=50,
        n_cells=100, epsilons=[0.0, 0.5], train_fractions=[1.0], n_splits=1, n_seeds=1,
        epochs=150, ae_epochs=100, **SHARED,
    ),
    "full": dict(  # Norman-like: 100 singles, 124 doubles; 6 networks x 2 splits
        n_genes=500, n_regulators=100, in_degree=6, n_modules=10, n_singles=100, n_doubles=124,
        n_cells=200, epsilons=[0.0, 0.25, 0.5, 1.0], train_fractions=[0.25, 0.5, 1.0],
        n_splits=2, n_seeds=6, epochs=300, ae_epochs=300, **SHARED,
    ),
}  # fmt: skip

CONFIG_CHECKS = {
    "n_genes": (lambda n: n >= 20, "an integer >= 20"),
    "n_regulators": (lambda n: n >= 4, "an integer >= 4"),
    "in_degree": (lambda n: n >= 1, "a positive integer"),
    "n_modules": (lambda n: n >= 1, "a positive integer (regulatory programmes)"),
    "gi_quantile": (lambda x: 0 < x < 1, "a number in (0, 1)"),
    "n_singles": (lambda n: n >= 4, "an integer >= 4"),
    "n_doubles": (lambda n: n >= 4, "an integer >= 4 (half are tested)"),
    "n_cells": (lambda n: n >= 1, "a positive integer (cells per perturbation)"),
    "epsilons": (
        lambda e: len(e) >= 1 and all(0 <= x <= 1 for x in e) and list(e) == sorted(set(e)),
        "an increasing list of epistasis levels in [0, 1]",
    ),
    "train_fractions": (
        lambda f: (
            len(f) >= 1
            and all(0 < x <= 1 for x in f)
            and list(f) == sorted(set(f))
            and f[-1] == 1.0
        ),
        "an increasing list of fractions in (0, 1] ending at 1",
    ),
    "n_splits": (lambda n: n >= 1, "a positive integer"),
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "epochs": (lambda n: n >= 1, "a positive integer"),
    "ae_epochs": (lambda n: n >= 1, "a positive integer"),
    "prior_keep": (lambda x: 0 <= x <= 1, "a fraction in [0, 1]"),
}


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    if not config.in_degree < config.n_regulators <= config.n_genes:
        raise ValueError(
            f"need in_degree < n_regulators <= n_genes, got {config.in_degree}, "
            f"{config.n_regulators}, {config.n_genes}"
        )
    if not config.n_singles <= config.n_regulators:
        raise ValueError(f"n_singles must be <= n_regulators, got {config.n_singles}")
    if config.n_doubles > config.n_singles * (config.n_singles - 1) // 2:
        raise ValueError(f"n_doubles exceeds the pairs of {config.n_singles} singles")
    return config


def train_settings(config: Config) -> perturbation.TrainSettings:
    keys = perturbation.TrainSettings.__dataclass_fields__
    return perturbation.TrainSettings(**{k: config[k] for k in keys if k in config})


def true_interaction(screen: grn.Screen, double: tuple[int, int]) -> float:
    """A double's noise-free departure from additivity relative to its effect, off its own two
    genes: ‖y_ab - y_a - y_b + y_0‖ / ‖y_ab - y_0‖."""
    idx = screen.index()
    y0 = screen.truth_control
    a, b = double
    dev = screen.truth[idx[double]] - screen.truth[idx[(a,)]] - screen.truth[idx[(b,)]] + y0
    effect = screen.truth[idx[double]] - y0
    return float(np.linalg.norm(np.delete(dev, [a, b])) / np.linalg.norm(np.delete(effect, [a, b])))


def score_models(
    screen: grn.Screen, graph: np.ndarray, train: list, test: list, models: Sequence[str],
    settings: perturbation.TrainSettings, seed: int, replicate: np.ndarray, gi_quantile: float,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Every model's mean L2 and Pearson-Δ on the test doubles (the most expressed genes, less
    each double's own two), and the ROC-AUC with which its departure from the additive
    prediction flags the most interacting doubles (``true_interaction`` at or above its
    ``gi_quantile`` among the test doubles: a ranking, whatever the overall level).
    ``replicate`` is a second, independent pseudobulk of the test doubles: scored as a model, it
    is the noise floor no model can beat on average."""
    idx = screen.index()
    truth = np.stack([screen.profiles[idx[p]] for p in test])
    mask = metrics.scored_genes(test, metrics.top_genes(screen.control), len(screen.control))
    gi = np.array([true_interaction(screen, p) for p in test])
    labels = gi >= np.quantile(gi, gi_quantile)
    predictions = {m: perturbation.predict(m, screen, graph, train, test, settings, seed)
                   for m in dict.fromkeys(("additive", *models))}  # fmt: skip
    additive = predictions["additive"]  # every departure is measured from it
    if "additive" not in models:
        del predictions["additive"]
    predictions["replicate"] = replicate
    out = {}
    for model, pred in predictions.items():
        departure = np.sqrt((((pred - additive) ** 2) * mask).sum(axis=1))
        out[model] = {
            "l2": float(metrics.l2_error(pred, truth, mask).mean()),
            "pearson_delta": float(metrics.pearson_delta(pred, truth, screen.control, mask).mean()),
            "gi_auc": metrics.interaction_auc(departure, labels),
        }
    return out


def benchmark(config: Config, seeds: Sequence[int], progress: bool = True) -> dict:
    """The perturbation benchmark: rows of (seed, split, ε, fraction) with every model's scores.
    The data-size sweep (fractions below 1) runs at the lowest ε only."""
    if not seeds:
        raise ValueError("seeds must not be empty")
    settings = train_settings(config)
    rows, shares = [], {str(e): [] for e in config.epsilons}
    jobs = [(s, e) for s in seeds for e in config.epsilons]
    for seed, eps in tqdm(jobs, disable=not progress, desc="screens", mininterval=10):
        rng = np.random.default_rng(seed)
        net = grn.random_network(config.n_genes, config.n_regulators, config.in_degree, rng,
                                 config.contraction, n_modules=config.n_modules,
                                 in_module=config.in_module)  # fmt: skip
        design = grn.design(net, config.n_singles, config.n_doubles, rng)
        graph = perturbation.prior_graph(net, rng, config.prior_keep)
        screen = grn.simulate_screen(
            net, design, eps, config.n_cells, np.random.default_rng([seed, int(1000 * eps)]),
            config.activation, config.saturation,
        )  # fmt: skip
        shares[str(eps)].append(grn.interaction_share(screen))
        doubles = screen.doubles
        idx = screen.index()
        rep_rng = np.random.default_rng([seed, int(1000 * eps), 1])
        replicate = {p: grn.sample_cells(screen.truth[idx[p]], config.n_cells, rep_rng).mean(0)
                     for p in doubles}  # fmt: skip
        fractions = config.train_fractions if eps == config.epsilons[0] else [1.0]
        for split in range(config.n_splits):
            order = np.random.default_rng([seed, split, 7]).permutation(len(doubles))
            half = len(doubles) // 2
            test = [doubles[i] for i in order[:half]]
            pool = [doubles[i] for i in order[half:]]
            for fraction in fractions:
                train = screen.singles + pool[: int(round(fraction * len(pool)))]
                rows.append({
                    "seed": seed, "split": split, "epsilon": eps, "fraction": fraction,
                    "n_train_doubles": len(train) - len(screen.singles), "n_test": len(test),
                    "models": score_models(
                        screen, graph, train, test, perturbation.MODELS, settings, seed,
                        np.stack([replicate[p] for p in test]), config.gi_quantile,
                    ),
                })  # fmt: skip
    return {"rows": rows, "interaction_share": shares}


def run_all(config: Config, seeds: Sequence[int], progress: bool = True) -> dict:
    """Both studies as one metrics dict (claims are added by the caller)."""
    out = {
        "metrics_version": METRICS_VERSION,
        "models": list(perturbation.MODELS),
        "labels": dict(perturbation.LABELS),
        "n_seeds": len(seeds),
        "seeds": list(seeds),
        "epsilons": list(config.epsilons),
        "train_fractions": list(config.train_fractions),
        "settings": {k: config[k] for k in ("n_genes", "n_regulators", "in_degree", "n_modules",
                                            "n_singles", "n_doubles", "n_cells", "n_splits",
                                            "epochs", "pca_dim", "ridge", "prior_keep", "rep_dim",
                                            "gi_quantile")},
    }  # fmt: skip
    out.update(benchmark(config, seeds, progress))
    out["representation"] = representation.representation_study(
        config.rep_dim, config.ae_epochs, seeds[0]
    )
    return out
