"""Chapter 7's study as a function of a config, returning JSON-ready metrics.

One synthetic world per run: the fragment space (molecules built when first drawn) and its hidden
biology, fitted on a reference sample. Per seed, a "library" of measured compounds (a random
sample of the space, as a Cell Painting screen measures a tiny share of chemical space) is split
into the contrastive model's half, the oracle's molecules and held-out molecules; targets are
held-out molecules, one per distinct cluster, that the oracle itself places in their cluster
(the paper's oracle evaluation skips targets the oracle doubts). Per target, every method draws
the same number of molecules from the whole space:

- ``gfn``: TB GFlowNet on R^beta; ``sql``: soft Q-learning on R^beta; ``random``: uniform;
- ``similarity``: a similarity search from the target's own molecule: its analogues with one
  changed position, then two, ..., each shell in decreasing Tanimoto similarity to the target,
  what a chemist would try first; it never sees the morphology.

Metrics per (seed, target, method): modes found against draws (the paper's rule and per-target
threshold), distinct molecules at or above the threshold, the top-k (by reward for the samplers,
the first k analogues for the search) with its oracle hit rate, its true-cluster rate and the
rate of same-cluster molecules dissimilar to the target (Tanimoto < 0.3), the last two known
only in a synthetic world, and the similarity to the target.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from reprobook.chem import contrastive, metrics, oracle
from reprobook.chem.biology import Biology, make_biology
from reprobook.chem.space import FragmentSpace, MoleculeCache
from reprobook.gfn.fragments import (
    FragmentEnv,
    SamplerSettings,
    train_sql,
    train_tb,
    uniform_sample,
)
from reprobook.profiles import Config, resolve_profile

METHODS = ("gfn", "sql", "random", "similarity")
METHOD_LABELS = {
    "gfn": "GFlowNet (TB)",
    "sql": "Soft Q-learning",
    "random": "Random",
    "similarity": "Similarity search",
}
SAMPLERS = ("gfn", "sql", "random")
# The official code's settings: beta of the example config (morph_frag.py), the GMC config's
# temperature (puma_sm_gmc.yaml), the plots' mode rule (vis/), SQL's alpha (soft_q_learning.py),
# the sweep's sampling_tau, random-action probability and trajectories per step
# (scripts/init_wandb_sweep.py).
OFFICIAL_SETTINGS = dict(
    beta=64.0, temperature=0.4, sim=0.3, quantile=0.9, sql_alpha=0.01, random_action_prob=0.01,
    sampling_tau=0.95, batch_size=64,
)  # fmt: skip
# Ours: learning rates for runs 25 times shorter than the official 10,000 steps (official: lr 1e-4,
# log Z lr 1e-4 in the sweep).
SHORT_RUN_SETTINGS = dict(lr=1e-3, lr_logz=0.1)
PROFILES = {
    "smoke": dict(  # CI: a 16,384-molecule space, three targets, one seed
        n_scaffolds=4, n_substituents=8, n_clusters=6, reference_size=2000, library_size=2000,
        oracle_size=400, gmc_steps=300, n_iterations=100, n_targets=3, n_seeds=1, top_k=50,
        window=1000, **OFFICIAL_SETTINGS, **SHORT_RUN_SETTINGS,
    ),
    "full": dict(  # the 1,280,000-molecule space, four targets, three seeds
        n_scaffolds=8, n_substituents=20, n_clusters=8, reference_size=20000,
        library_size=20000, oracle_size=4000, gmc_steps=1500, n_iterations=400, n_targets=4,
        n_seeds=3, top_k=100, window=5000, **OFFICIAL_SETTINGS, **SHORT_RUN_SETTINGS,
    ),
}  # fmt: skip
CONFIG_CHECKS = {
    "n_scaffolds": (lambda n: 1 <= n <= 8, "an integer in [1, 8]"),
    "n_substituents": (lambda n: 2 <= n <= 20, "an integer in [2, 20]"),
    "n_clusters": (lambda n: 2 <= n <= 20, "an integer in [2, 20]"),
    "reference_size": (lambda n: n >= 200, "an integer >= 200"),
    "library_size": (lambda n: n >= 500, "an integer >= 500"),
    "oracle_size": (lambda n: n >= 100, "an integer >= 100 (below half the library)"),
    "gmc_steps": (lambda n: n >= 1, "a positive integer"),
    "n_iterations": (lambda n: n >= 10, "an integer >= 10"),
    "n_targets": (lambda n: n >= 1, "a positive integer (at most the number of clusters)"),
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "top_k": (lambda n: n >= 2, "an integer >= 2"),
    "window": (lambda n: n >= 1, "a positive integer"),
    "beta": (lambda b: b > 0, "a number > 0"),
    "temperature": (lambda t: t > 0, "a number > 0"),
    "sim": (lambda s: 0 < s <= 1, "a number in (0, 1]"),
    "quantile": (lambda q: 0 < q < 1, "a number in (0, 1)"),
    "sql_alpha": (lambda a: a > 0, "a number > 0"),
    "random_action_prob": (lambda e: 0 <= e <= 1, "a number in [0, 1]"),
    "sampling_tau": (lambda t: 0 <= t < 1, "a number in [0, 1)"),
    "batch_size": (lambda b: b >= 1, "a positive integer"),
    "lr": (lambda x: x > 0, "a number > 0"),
    "lr_logz": (lambda x: x > 0, "a number > 0"),
}
METRICS_VERSION = 1
FIXED_THRESHOLDS = (0.8, 0.9, 0.95)  # within the official training hooks' 0.7 ... 0.975
CURVE_POINTS = 60
N_SHOWN = 8  # molecules kept per method for the figures


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    if config.n_targets > config.n_clusters:
        raise ValueError(
            f"n_targets ({config.n_targets}) must be at most n_clusters ({config.n_clusters}): "
            "targets come from distinct clusters"
        )
    size = config.n_scaffolds * config.n_substituents**4
    if max(config.library_size, config.reference_size) > size // 2:
        raise ValueError(
            f"library_size and reference_size must be at most half the space ({size // 2})"
        )
    return config


def build_world(config: Config, seed: int) -> tuple[MoleculeCache, Biology]:
    """The fragment space and its hidden biology, fitted on a reference sample (one per run)."""
    space = FragmentSpace(config.n_scaffolds, config.n_substituents)
    cache = MoleculeCache(space)
    reference = np.random.default_rng(seed).choice(space.size, config.reference_size, False)
    return cache, make_biology(cache, reference, n_clusters=config.n_clusters, seed=seed)


def split(library: np.ndarray, oracle_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Half of the library for the contrastive model, ``oracle_size`` others for the oracle, the
    rest held out (targets and retrieval are drawn from it)."""
    n = len(library)
    if oracle_size >= n // 2:
        raise ValueError(
            f"oracle_size must be below half the library ({n // 2}), got {oracle_size}"
        )
    perm = rng.permutation(library)
    half = n // 2
    return {
        "contrastive": perm[:half],
        "oracle": perm[half : half + oracle_size],
        "held_out": perm[half + oracle_size :],
    }


def choose_targets(
    clusters: np.ndarray, candidates: np.ndarray, oracle_p_own: np.ndarray, n: int,
    rng: np.random.Generator,
) -> list[int]:  # fmt: skip
    """``n`` candidates from distinct clusters, each one the oracle places in its own cluster
    with probability >= 0.3 (``clusters`` and ``oracle_p_own`` align with ``candidates``)."""
    ok = oracle_p_own >= oracle.HIT_PROBABILITY
    eligible, eligible_clusters = candidates[ok], clusters[ok]
    chosen = rng.permutation(np.unique(eligible_clusters))
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} clusters have an eligible target; asked for {n}")
    return [int(rng.choice(eligible[eligible_clusters == c])) for c in chosen[:n]]


def _curve(curve: np.ndarray) -> dict[str, list[int]]:
    steps = np.unique(np.linspace(0, len(curve) - 1, CURVE_POINTS).astype(int))
    return {"draws": (steps + 1).tolist(), "modes": curve[steps].tolist()}


def _reward_by_hand(z_target: np.ndarray, z: np.ndarray) -> float:
    """(cos + 1) / 2 written out element by element, clipped: the check of ``flat_reward``."""
    dot = sum(float(a) * float(b) for a, b in zip(z_target, z, strict=True))
    norms = sum(float(a) ** 2 for a in z_target) ** 0.5 * sum(float(b) ** 2 for b in z) ** 0.5
    return min(max((dot / norms + 1) / 2, contrastive.REWARD_MIN), 1.0)


class TargetReward:
    """R(x) for one target: the paper's formula on f_struct, memoised per molecule."""

    def __init__(self, model, cache: MoleculeCache, z_target: np.ndarray) -> None:
        self.model, self.cache, self.z_target = model, cache, z_target
        self._memo: dict[int, float] = {}

    def __call__(self, index) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        new = [k for k in dict.fromkeys(index.tolist()) if k not in self._memo]
        if new:
            z = contrastive.struct_latents(self.model, self.cache, new)
            rewards = contrastive.flat_reward(self.z_target, z).tolist()
            self._memo.update(zip(new, rewards, strict=True))
        return np.array([self._memo[k] for k in index.tolist()])


def evaluate(
    drawn: np.ndarray, top: np.ndarray, reward: TargetReward, cache: MoleculeCache,
    biology: Biology, target: int, oracle_model, threshold: float, config: Config,
) -> dict:  # fmt: skip
    """One method's metrics for one target (see the module doc)."""
    r_drawn = reward(drawn)
    distinct = np.unique(drawn)
    r_distinct = reward(distinct)
    cluster = int(biology.cluster([target])[0])
    above = distinct[r_distinct >= min(threshold, *FIXED_THRESHOLDS)]
    fps = dict(zip(above.tolist(), cache.fingerprints(above), strict=True))
    curve, modes = metrics.mode_curve(drawn, r_drawn, fps, threshold, config.sim)
    sim_top = cache.tanimoto(target, top)
    sim_all = cache.tanimoto(target, distinct)
    same = biology.cluster(top) == cluster
    p_hit = oracle.hit_probability(oracle_model, cache.space, top, cluster)
    far = distinct[sim_all < config.sim]
    far_top = far[np.argsort(-reward(far), kind="stable")[:N_SHOWN]] if len(far) else far
    window = r_drawn[-config.window :]
    return {
        "modes": int(curve[-1]),
        "modes_at": {
            str(t): len(metrics.mode_curve(drawn, r_drawn, fps, t, config.sim)[1])
            for t in FIXED_THRESHOLDS
        },
        "curve": _curve(curve),
        "hits": int((r_distinct >= threshold).sum()),
        "distinct": int(len(distinct)),
        "top_reward": float(reward(top).mean()),
        "max_reward": float(r_drawn.max()),
        "oracle_hit_rate": float((p_hit >= oracle.HIT_PROBABILITY).mean()),
        "cluster_rate": float(same.mean()),
        "dissimilar_same_cluster_rate": float((same & (sim_top < config.sim)).mean()),
        "top_similarity": float(sim_top.mean()),
        "max_similarity": float(sim_all.max()),
        "top_pairwise_similarity": metrics.mean_pairwise_similarity(cache.fingerprints(top)),
        "last_window_reward": float(window.mean()),
        "last_window_above": float((window >= threshold).mean()),
        "shown": {
            "top": _shown(top[:N_SHOWN], reward, cache, biology, target),
            "dissimilar": _shown(far_top, reward, cache, biology, target),
        },
    }


def _shown(index: np.ndarray, reward: TargetReward, cache, biology, target: int) -> list[dict]:
    if not len(index):
        return []
    sim, same = (
        cache.tanimoto(target, index),
        biology.cluster(index) == biology.cluster([target])[0],
    )
    return [
        {"smiles": cache.smiles(int(i)), "reward": float(r), "similarity": float(s),
         "same_cluster": bool(c)}
        for i, r, s, c in zip(index, reward(index), sim, same, strict=True)
    ]  # fmt: skip


def similarity_search(cache: MoleculeCache, target: int, n: int) -> np.ndarray:
    """``n`` analogues of ``target``: shells of one changed position, then two, ..., each in
    decreasing Tanimoto similarity to the target (ties in index order)."""
    order = []
    for shell in cache.space.analogue_shells(target, n):
        order.append(shell[np.argsort(-cache.tanimoto(target, shell), kind="stable")])
    return np.concatenate(order)[:n]


def run_target(
    cache: MoleculeCache, biology: Biology, model, oracle_model, target: int,
    z_target: np.ndarray, config: Config, seed: int, progress: bool,
) -> dict:  # fmt: skip
    """Every method on one target; threshold from the samplers' pooled last draws."""
    reward = TargetReward(model, cache, z_target)
    env = FragmentEnv(cache.space, lambda index: np.log(reward(index)))
    settings = SamplerSettings(
        n_iterations=config.n_iterations, batch_size=config.batch_size, beta=config.beta,
        sampling_tau=config.sampling_tau, random_action_prob=config.random_action_prob,
        sql_alpha=config.sql_alpha, lr=config.lr, lr_logz=config.lr_logz,
    )  # fmt: skip
    budget = config.n_iterations * config.batch_size
    rng = np.random.default_rng([seed, target])  # each target its own random draws
    runs = {
        "gfn": train_tb(env, settings, seed, progress),
        "sql": train_sql(env, settings, seed, progress),
        "random": uniform_sample(cache.space, budget, rng),
    }
    threshold = metrics.reward_threshold(
        [reward(runs[m].drawn) for m in SAMPLERS], config.window, config.quantile
    )
    analogues = similarity_search(cache, target, budget)
    drawn = {m: runs[m].drawn for m in SAMPLERS} | {"similarity": analogues}
    tops = {m: metrics.top_k(drawn[m], reward(drawn[m]), config.top_k) for m in SAMPLERS}
    tops["similarity"] = analogues[: config.top_k]
    z_own = contrastive.struct_latents(model, cache, [target])[0]
    return {
        "target": target,
        "cluster": int(biology.cluster([target])[0]),
        "smiles": cache.smiles(target),
        "label": cache.space.label(cache.space.combos(target)),
        "threshold": threshold,
        "target_reward": float(reward([target])[0]),
        "target_reward_by_hand": _reward_by_hand(z_target, z_own),
        # the random draws are a uniform sample: their share at or above the threshold
        # estimates the space's
        "space_above": float((reward(runs["random"].drawn) >= threshold).mean()),
        "budget": budget,
        "methods": {
            m: evaluate(
                drawn[m], tops[m], reward, cache, biology, target, oracle_model, threshold, config
            )
            for m in METHODS
        },  # fmt: skip
        "seconds": {m: runs[m].seconds for m in SAMPLERS},
        "gfn_log_z": runs["gfn"].log_z[-1],
    }


def run_seed(
    cache: MoleculeCache, biology: Biology, config: Config, seed: int, progress: bool = False
) -> dict:
    """Library, split, contrastive model, oracle and targets of one seed, then every target."""
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    library = rng.choice(cache.space.size, config.library_size, replace=False)
    cache.rows(library, progress)
    parts = split(library, config.oracle_size, rng)
    settings = contrastive.ContrastiveSettings(
        steps=config.gmc_steps, temperature=config.temperature
    )
    model, losses = contrastive.train_gmc(
        cache, biology, parts["contrastive"], settings, seed, progress
    )
    held_out = parts["held_out"]
    retrieval = contrastive.retrieval_accuracy(
        model, cache, biology, rng.choice(held_out, 100, replace=False), rng
    )
    oracle_model = oracle.train_oracle(
        cache.space, parts["oracle"], biology.cluster(parts["oracle"]), seed
    )
    probe = rng.choice(held_out, min(1000, len(held_out)), replace=False)
    predicted = oracle_model.predict(oracle.count_fingerprints(cache.space, probe))
    oracle_accuracy = float((predicted == biology.cluster(probe)).mean())
    candidates = rng.choice(held_out, min(2000, len(held_out)), replace=False)
    proba = oracle_model.predict_proba(oracle.count_fingerprints(cache.space, candidates))
    column = {c: j for j, c in enumerate(oracle_model.classes_)}
    clusters = biology.cluster(candidates)
    own = np.array([column.get(int(c), -1) for c in clusters])
    p_own = np.where(own >= 0, proba[np.arange(len(candidates)), np.maximum(own, 0)], 0.0)
    targets = choose_targets(clusters, candidates, p_own, config.n_targets, rng)
    setup_seconds = time.perf_counter() - started
    keep = len(cache)  # molecules drawn for one target are dropped before the next
    results = []
    for target in targets:
        z_target = contrastive.morph_latents(model, biology.profiles([target], rng))[0]
        results.append(
            run_target(
                cache, biology, model, oracle_model, target, z_target, config, seed, progress
            )
        )
        cache.forget_after(keep)
    library_clusters = biology.cluster(library)
    return {
        "seed": seed,
        "gmc_loss_first": float(np.mean(losses[:20])),
        "gmc_loss_last": float(np.mean(losses[-20:])),
        "retrieval": retrieval,
        "oracle_accuracy": oracle_accuracy,
        "oracle_chance": float(np.bincount(library_clusters).max() / len(library)),
        "setup_seconds": setup_seconds,
        "targets": results,
    }


def world_facts(cache: MoleculeCache, biology: Biology, reference_size: int, seed: int) -> dict:
    """The synthetic world's size and how its clusters spread over scaffolds (on the reference
    sample)."""
    reference = np.random.default_rng(seed).choice(cache.space.size, reference_size, False)
    scaffold = cache.space.combos(reference)[:, 0]
    clusters = biology.cluster(reference)
    return {
        "n_molecules": cache.space.size,
        "n_scaffolds": cache.space.n_scaffolds,
        "n_substituents": cache.space.n_substituents,
        "n_clusters": biology.n_clusters,
        "reference_cluster_sizes": np.bincount(clusters, minlength=biology.n_clusters).tolist(),
        "scaffolds_per_cluster": [
            int(len(np.unique(scaffold[clusters == c]))) for c in range(biology.n_clusters)
        ],
        "profile_dim": biology.profile_dim,
        "noise": biology.noise,
    }


def run_all(config: Config, seeds: list[int], progress: bool = False) -> dict:
    """The chapter's study: one world, then every seed (claims added by the caller)."""
    if not seeds:
        raise ValueError("seeds must not be empty")
    torch.manual_seed(seeds[0])
    started = time.perf_counter()
    cache, biology = build_world(config, seeds[0])
    world_seconds = time.perf_counter() - started
    facts = world_facts(cache, biology, config.reference_size, seeds[0])
    cache.forget_after(0)
    runs = [run_seed(cache, biology, config, s, progress) for s in seeds]
    cache.check_distinct()
    return {
        "metrics_version": METRICS_VERSION,
        "settings": dict(config),
        "seeds": list(seeds),
        "world": facts | {"seconds": world_seconds},
        "fixed_thresholds": list(FIXED_THRESHOLDS),
        "runs": runs,
    }
