"""Chapter 3's experiments as functions of a config, returning JSON-ready metrics.

One *run* trains a fresh copy of the pretrained generator with one arm's rewards for one
target: every outer step samples ``n_rollouts`` continuations of each of ``n_prompts`` prompts,
scores them, and takes a GRPO step. All arms of a seed share the same language, the same
pretrained generator and target, the same prompts and the same held-out evaluation prompts,
so their curves differ only by their rewards.

Every number a curve shows is measured the same way for every arm: the target, restarted from
its initial weights, is trained with the paper's AdamW inner loop on the batch, and Phi, the
pixel accuracy of the decoded "67" and the head's norm are read off the trained weights. The
SGD arm also records what its own SGD-trained target reached.

The reading of the metrics (claims, tables, notes, the numbers the prose discusses) lives in
``reprobook.metagrad.report``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import nn
from torch.func import grad
from tqdm.std import tqdm  # plain text bars: no ipywidgets needed in the book

from reprobook.lm.corpus import (
    chain_nll,
    entropy_rate,
    markov_language,
    random_windows,
    rare_transition_share,
    sample_stream,
)
from reprobook.lm.hub import load_causal_lm
from reprobook.lm.models import GPTConfig, TinyGPT, count_parameters
from reprobook.lm.sampling import sample_continuations
from reprobook.lm.training import pretrain
from reprobook.metagrad.gradient_check import gradient_study
from reprobook.metagrad.inner import (
    InnerLoop,
    Params,
    initial_params,
    metagradient,
    step_order,
    train,
    train_detached,
    weighted_loss,
)
from reprobook.metagrad.judge import Judge, judge_data
from reprobook.metagrad.policy import GRPOSettings, grpo_step
from reprobook.metagrad.rewards import (
    exact_rewards,
    group_advantages,
    groupless_advantages,
    naive_rewards,
)
from reprobook.metagrad.targets import (
    TARGETS,
    Target,
    decoded_picture,
    head_patch,
    make_target,
    picture_to_text,
)
from reprobook.profiles import Config, resolve_profile
from reprobook.report import mean_se, paired_p
from reprobook.runtime import map_processes

ARMS = ("dpg", "naive", "sgd", "random")
ARM_LABELS = {
    "dpg": "DPG (exact τ through AdamW)",
    "naive": "naive (Φ of each inverse group)",
    "sgd": "DPG with an SGD inner loop",
    "random": "random rewards (control)",
}
TARGET_LABELS = {"sixseven": 'the "67" patch', "l2_norm": "the head's ℓ² norm"}
# Settings of the official runs (verl GRPO and the optax AdamW of the metagrad server).
PAPER_SETTINGS = dict(
    temperature=1.0, clip_ratio=0.2, max_grad_norm=1.0, generator_weight_decay=0.01,
)  # fmt: skip
MINIATURE = dict(  # the sizes of our stand-ins, shared by both profiles
    vocab=32, language_concentration=0.1, stream_tokens=60_000, prompt_length=8,
    completion_length=24, target_d_model=16, target_layers=1, generator_d_model=32,
    generator_layers=2, n_heads=2, pretrain_steps_generator=300, pretrain_steps_target=200,
    pretrain_lr=3e-3, pretrain_batch=64,
)  # fmt: skip
PROFILES = {
    "smoke": dict(  # CI: the "67" target only, M = 4, 50 outer steps, one seed
        targets=["sixseven"], arms=list(ARMS), n_seeds=1, outer_steps=50, inner_steps=4,
        n_prompts=8, n_rollouts=8, inner_lr=1e-3, sgd_lr=0.1, sgd_lr_grid=[0.1],
        generator_lr=1e-3, eval_every=10, eval_batches=2, cost_repeats=3, judge_steps=32,
        gradient_steps=[2, 4], gradient_samples=[256, 4096], gradient_draws=3,
        gradient_problems=1, workers=2,
        target_model_name="", generator_model_name="", **MINIATURE, **PAPER_SETTINGS,
    ),
    "full": dict(  # both targets, M = 8, 300 outer steps, three seeds (about 20 min on 2 cores)
        targets=list(TARGETS), arms=list(ARMS), n_seeds=3, outer_steps=300, inner_steps=8,
        n_prompts=8, n_rollouts=8, inner_lr=1e-3, sgd_lr=0.1, sgd_lr_grid=[0.01, 0.1, 1.0],
        generator_lr=1e-3, eval_every=25, eval_batches=4, cost_repeats=5, judge_steps=96,
        gradient_steps=[2, 4, 8, 16], gradient_samples=[256, 2048, 16384], gradient_draws=6,
        gradient_problems=2, workers=2, target_model_name="", generator_model_name="", **MINIATURE,
        **PAPER_SETTINGS,
    ),
}  # fmt: skip


def _distinct_subset(allowed: Sequence[str]):
    return (
        lambda items: (
            len(items) > 0 and len(set(items)) == len(items) and set(items) <= set(allowed)
        ),
        f"a non-empty list of distinct names from {list(allowed)}",
    )


def _positive_int(minimum: int = 1):
    return (lambda n: isinstance(n, int) and n >= minimum, f"an integer >= {minimum}")


CONFIG_CHECKS = {
    "targets": _distinct_subset(TARGETS),
    "arms": _distinct_subset(ARMS),
    "n_seeds": _positive_int(),
    "outer_steps": _positive_int(),
    "inner_steps": _positive_int(2),  # one Adam step is sign(g): its metagradient is ~0
    "n_prompts": _positive_int(),
    "n_rollouts": _positive_int(2),  # GRPO normalises within a prompt's rollouts
    "inner_lr": (lambda x: x > 0, "> 0"),
    "sgd_lr": (lambda x: x > 0, "> 0"),
    "generator_lr": (lambda x: x > 0, "> 0"),
    "eval_every": _positive_int(),
    "eval_batches": _positive_int(),
    "cost_repeats": _positive_int(),
    "vocab": _positive_int(8),  # the "67" patch needs tokens 0..6
    "target_d_model": _positive_int(6),  # ... and hidden units 0..5
    "prompt_length": _positive_int(),
    "completion_length": _positive_int(2),
    "temperature": (lambda x: x > 0, "> 0"),
    "sgd_lr_grid": (
        lambda xs: (
            len(xs) > 0
            and len(set(xs)) == len(xs)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in xs)
        ),
        "a non-empty list of distinct learning rates > 0 (numbers)",
    ),
    "judge_steps": _positive_int(),
    "gradient_steps": (
        lambda xs: len(xs) > 0 and all(isinstance(m, int) and m >= 1 for m in xs),
        "a non-empty list of integers >= 1",
    ),  # fmt: skip
    "gradient_samples": (
        lambda xs: len(xs) > 0 and all(isinstance(n, int) and n >= 2 for n in xs),
        "a non-empty list of integers >= 2",
    ),  # fmt: skip
    "gradient_draws": _positive_int(2),
    "gradient_problems": _positive_int(),
    "workers": (lambda w: isinstance(w, int) and 1 <= w <= 64, "an integer in [1, 64]"),
}
METRICS_VERSION = 4  # 4: independent judge, true-chain NLL, SGD lr grid, gradient check
HEADLINE = {"sixseven": "pixel_accuracy", "l2_norm": "head_norm"}
TRAIN_CURVES = {"sixseven": ("phi", "pixel_accuracy"), "l2_norm": ("head_norm",)}


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked.

    ``None`` overrides keep the profile's value; so does an empty model name (build from config).
    """
    overrides = {
        k: ("" if v is None and k.endswith("model_name") else v) for k, v in overrides.items()
    }
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    if config.sgd_lr not in config.sgd_lr_grid:
        raise ValueError(
            f"sgd_lr_grid {config.sgd_lr_grid} must include sgd_lr ({config.sgd_lr}), the rate "
            "the SGD arm runs at on every target"
        )
    batch = config.n_prompts * config.n_rollouts
    if batch % config.inner_steps:
        raise ValueError(
            f"n_prompts x n_rollouts ({batch}) must split evenly into inner_steps "
            f"({config.inner_steps}) minibatches"
        )
    return config


def inner_loop(config, optimizer: str = "adamw", lr: float | None = None) -> InnerLoop:
    """The target's inner training: the official AdamW (or SGD) with the chapter's lr and M."""
    if lr is None:
        lr = config.sgd_lr if optimizer == "sgd" else config.inner_lr
    return InnerLoop(optimizer=optimizer, steps=config.inner_steps, lr=lr)


def judge_of(config) -> Judge:
    """The independent judge: ``judge_steps`` AdamW steps of the reward's per-step batch."""
    per_step = config.n_prompts * config.n_rollouts // config.inner_steps
    return Judge(steps=config.judge_steps, per_step=per_step, lr=config.inner_lr)


@dataclass
class Setup:
    """What every arm of one seed shares: the language, the pretrained models, the prompts."""

    seed: int
    language: torch.Tensor
    train_stream: torch.Tensor
    eval_prompts: torch.Tensor  # [eval_batches, n_prompts, prompt_length]
    judge_prompts: torch.Tensor  # [judge rollouts / n_rollouts, prompt_length]
    generator: nn.Module
    target_model: nn.Module
    start: Params
    head_name: str
    facts: dict
    judged_start: dict | None = None  # the judge's reading of the pretrained generator


def _tiny_gpt(config, d_model: int, n_layers: int, seed: int) -> TinyGPT:
    torch.manual_seed(seed)
    context = config.prompt_length + config.completion_length
    return TinyGPT(GPTConfig(config.vocab, d_model, n_layers, config.n_heads, context))


def prepare(config, seed: int, progress: bool = True) -> Setup:
    """Make the seed's language, pretrain (or load) the generator and the target, cut prompts."""
    rng = torch.Generator().manual_seed(seed)
    language = markov_language(config.vocab, config.language_concentration, seed)
    stream = sample_stream(language, config.stream_tokens, rng)
    cut = int(0.9 * len(stream))
    train_stream, eval_stream = stream[:cut], stream[cut:]
    facts: dict = {"language_entropy_rate": entropy_rate(language)}
    window = config.prompt_length + config.completion_length
    if config.generator_model_name:
        generator = load_causal_lm(config.generator_model_name)
        facts["generator_pretrain_loss"] = None
    else:
        generator = _tiny_gpt(config, config.generator_d_model, config.generator_layers, seed)
        losses = pretrain(
            generator, train_stream, config.pretrain_steps_generator, config.pretrain_batch,
            window, config.pretrain_lr, rng, progress,
        )  # fmt: skip
        facts["generator_pretrain_loss"] = float(np.mean(losses[-20:]))
    if config.target_model_name:
        target_model = load_causal_lm(config.target_model_name)
        head_name = target_model.head_name()
        facts["target_pretrain_loss"] = None
    else:
        target_model = _tiny_gpt(config, config.target_d_model, config.target_layers, seed + 1)
        losses = pretrain(
            target_model, train_stream, config.pretrain_steps_target, config.pretrain_batch,
            config.completion_length, config.pretrain_lr, rng, progress,
        )  # fmt: skip
        facts["target_pretrain_loss"] = float(np.mean(losses[-20:]))
        head_name = "head.weight"
    _check_vocabularies(config.vocab, generator, target_model)
    facts["generator_parameters"] = count_parameters(generator)
    facts["target_parameters"] = count_parameters(target_model)
    eval_rng = torch.Generator().manual_seed(seed + 7)
    eval_prompts = random_windows(
        eval_stream, config.eval_batches * config.n_prompts, config.prompt_length, eval_rng
    ).reshape(config.eval_batches, config.n_prompts, config.prompt_length)
    judge_prompts = random_windows(
        eval_stream, judge_of(config).n_rollouts // config.n_rollouts, config.prompt_length,
        eval_rng,
    )  # fmt: skip
    start = initial_params(target_model)
    facts["initial_head_norm"] = float(torch.linalg.norm(start[head_name]))
    facts["head_norm_floor"] = head_norm_floor(
        start[head_name], config.inner_lr, config.inner_steps
    )
    return Setup(seed, language, train_stream, eval_prompts, judge_prompts, generator,
                 target_model, start, head_name, facts)  # fmt: skip


def head_norm_floor(head: torch.Tensor, lr: float, steps: int) -> float:
    """||W|| if every weight moved ``lr * steps`` towards 0 (stopping there): a reference for how
    far M AdamW steps, each moving a weight by about lr, can lower the norm. Adam's steps can
    exceed lr when gradients shrink, so this is a guide, not a bound."""
    return float(torch.linalg.norm((head.abs() - lr * steps).clamp(min=0)))


def _output_vocab(model: nn.Module) -> int:
    return model(torch.zeros(1, 1, dtype=torch.long)).shape[-1]


def _check_vocabularies(language_vocab: int, generator: nn.Module, target: nn.Module) -> None:
    """The prompts must be tokens of the generator, and its samples tokens of the target."""
    with torch.no_grad():
        generator_vocab, target_vocab = _output_vocab(generator), _output_vocab(target)
    if not language_vocab <= generator_vocab <= target_vocab:
        raise ValueError(
            f"vocabularies do not nest: language {language_vocab}, generator {generator_vocab}, "
            f"target {target_vocab} (need language <= generator <= target)"
        )


def evaluate(
    config, setup: Setup, generator: nn.Module, target: Target, step: int,
    sgd_lr: float | None = None,
) -> dict:  # fmt: skip
    """Phi, pixel accuracy and head norm of targets trained on held-out rollouts.

    Each batch of rollouts trains one target with the AdamW inner loop (the top-level numbers)
    and one with the SGD inner loop (under ``"sgd"``), so every arm's data is scored through
    both. The prompts and the sampling noise are the same at every evaluation and for every
    arm. Returns means over ``eval_batches`` batches and the first batch's AdamW picture, and
    the rollouts' negative log-likelihood under the true chain (``chain_nll``, nats per token)
    and the share of their transitions the chain takes with probability below 1e-3
    (``rare_share``).
    """
    loops = {"adamw": inner_loop(config), "sgd": inner_loop(config, "sgd", sgd_lr)}
    sample_rng = torch.Generator().manual_seed(setup.seed * 1_000 + 11)
    order_rng = torch.Generator().manual_seed(setup.seed * 1_000 + 13)
    rows: dict[str, list[dict]] = {name: [] for name in loops}
    picture, nll, rare = None, [], []
    for prompts in setup.eval_prompts:
        sequences = _rollouts(config, generator, prompts, sample_rng)
        nll.append(float(chain_nll(setup.language, sequences, config.prompt_length).mean()))
        rare.append(
            float(rare_transition_share(setup.language, sequences, config.prompt_length).mean())
        )
        completions = sequences[:, config.prompt_length :]
        order = step_order(completions.shape[0], loops["adamw"], order_rng)
        for name, loop in loops.items():
            trained = train_detached(setup.target_model, setup.start, completions, order, loop)
            rows[name].append(target.describe(trained))
            if picture is None and name == "adamw" and target.name == "sixseven":
                picture = decoded_picture(trained[target.head_name], target.initial_head)

    def means(described: list[dict]) -> dict:
        return {key: round(float(np.mean([r[key] for r in described])), 6) for key in described[0]}

    out = means(rows["adamw"])
    out["chain_nll"] = round(float(np.mean(nll)), 5)
    out["rare_share"] = round(float(np.mean(rare)), 5)
    out["sgd"] = means(rows["sgd"])
    out["step"] = step
    if picture is not None:
        out["picture"] = picture_to_text(picture)
    return out


def _rollouts(config, generator: nn.Module, prompts: torch.Tensor, rng: torch.Generator):
    """``n_rollouts`` continuations of each prompt, prompt-major: ``[P * n, prompt + L]``."""
    repeated = prompts.repeat_interleave(config.n_rollouts, dim=0)
    return sample_continuations(
        generator, repeated, config.completion_length, rng, config.temperature
    )


def judge_generator(config, setup: Setup, generator: nn.Module) -> dict:
    """The independent judge on fresh rollouts of held-out prompts (the same for every arm)."""
    rng = torch.Generator().manual_seed(setup.seed * 1_000 + 17)
    sequences = _rollouts(config, generator, setup.judge_prompts, rng)
    order = torch.randperm(sequences.shape[0], generator=rng)
    completions = sequences[order, config.prompt_length :]
    out = judge_data(
        setup.target_model, setup.start, setup.head_name, completions, judge_of(config)
    )
    out["chain_nll"] = float(chain_nll(setup.language, sequences, config.prompt_length).mean())
    return {k: round(v, 6) for k, v in out.items()}


SAMPLES_SHOWN = 3  # held-out rollouts kept per run, to be read


def sample_rollouts(config, setup: Setup, generator: nn.Module) -> list[dict]:
    """A few held-out rollouts (tokens and chain NLL), the same prompts and noise for every arm."""
    rng = torch.Generator().manual_seed(setup.seed * 1_000 + 19)
    prompts = setup.eval_prompts[0][:SAMPLES_SHOWN]
    sequences = sample_continuations(
        generator, prompts, config.completion_length, rng, config.temperature
    )
    nll = chain_nll(setup.language, sequences, config.prompt_length)
    return [
        {"prompt": row[: config.prompt_length].tolist(),
         "completion": row[config.prompt_length :].tolist(), "chain_nll": round(float(v), 4)}
        for row, v in zip(sequences, nll, strict=True)
    ]  # fmt: skip


def run_arm(
    config, setup: Setup, arm: str, target_name: str, progress: bool = True,
    sgd_lr: float | None = None,
) -> dict:  # fmt: skip
    """Train a copy of the generator with ``arm``'s rewards on ``target_name``; curves and evals.

    ``sgd_lr`` sets the SGD arm's inner learning rate (``config.sgd_lr`` by default).
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; valid arms: {', '.join(ARMS)}")
    if sgd_lr is not None and arm != "sgd":
        raise ValueError(f"sgd_lr applies to the sgd arm only, not to {arm!r}")
    target = make_target(target_name, setup.head_name, setup.start)
    generator = copy.deepcopy(setup.generator)
    optimizer = torch.optim.AdamW(
        generator.parameters(), lr=config.generator_lr,
        weight_decay=config.generator_weight_decay,
    )  # fmt: skip
    grpo = GRPOSettings(clip_ratio=config.clip_ratio, max_grad_norm=config.max_grad_norm)
    adam = inner_loop(config)
    own = inner_loop(config, "sgd", sgd_lr) if arm == "sgd" else adam
    # Every arm of this seed starts the same streams of prompts, samples and step orders (the
    # naive arm draws extra orders for its groups, so its later orders differ).
    prompt_rng = torch.Generator().manual_seed(setup.seed * 1_000 + 1)
    sample_rng = torch.Generator().manual_seed(setup.seed * 1_000 + 2)
    order_rng = torch.Generator().manual_seed(setup.seed * 1_000 + 3)
    reward_rng = torch.Generator().manual_seed(setup.seed * 1_000 + 4)
    kept = TRAIN_CURVES[target_name]  # per-step numbers worth keeping (Phi_l2 is -head_norm)
    curves: dict[str, list[float]] = {key: [] for key in (*kept, "nll", "chain_nll")}
    evals = [evaluate(config, setup, generator, target, 0, sgd_lr)]
    judged = {"start": setup.judged_start or judge_generator(config, setup, generator)}
    samples = {"start": sample_rollouts(config, setup, generator)}
    started = time.perf_counter()
    label = f"seed {setup.seed} {target_name} {arm}"
    for step in tqdm(
        range(config.outer_steps), desc=label, disable=not progress, leave=False, mininterval=10
    ):
        prompts = random_windows(
            setup.train_stream, config.n_prompts, config.prompt_length, prompt_rng
        )
        sequences = _rollouts(config, generator, prompts, sample_rng)
        completions = sequences[:, config.prompt_length :]
        order = step_order(completions.shape[0], own, order_rng)
        if arm == "naive":
            rewards = naive_rewards(
                setup.target_model, setup.start, completions, config.n_prompts, target, own,
                order_rng,
            )  # fmt: skip
            advantages = groupless_advantages(rewards)
            trained = train_detached(setup.target_model, setup.start, completions, order, adam)
        elif arm == "random":  # the same GRPO update on rewards that carry no information
            noise = torch.randn(config.n_prompts, config.n_rollouts, generator=reward_rng)
            advantages = group_advantages(noise.double())
            trained = train_detached(setup.target_model, setup.start, completions, order, adam)
        else:
            tau, trained = exact_rewards(
                setup.target_model, setup.start, completions, target, order, own
            )
            advantages = group_advantages(tau.reshape(config.n_prompts, config.n_rollouts))
            if arm == "sgd":  # the curves score every arm's batch through AdamW
                trained = train_detached(setup.target_model, setup.start, completions, order, adam)
        described = target.describe(trained)
        for key in kept:
            curves[key].append(described[key])
        update = grpo_step(
            generator, optimizer, sequences, config.prompt_length, advantages.reshape(-1), grpo
        )
        curves["nll"].append(update["nll"])
        curves["chain_nll"].append(
            float(chain_nll(setup.language, sequences, config.prompt_length).mean())
        )
        if (step + 1) % config.eval_every == 0 or step + 1 == config.outer_steps:
            evals.append(evaluate(config, setup, generator, target, step + 1, sgd_lr))
    judged["end"] = judge_generator(config, setup, generator)
    samples["end"] = sample_rollouts(config, setup, generator)
    out = {
        "arm": arm,
        "target": target_name,
        "seed": setup.seed,
        "sgd_lr": own.lr if arm == "sgd" else None,
        "initial_head_norm": setup.facts["initial_head_norm"],
        "head_norm_floor": setup.facts["head_norm_floor"],
        "train": {k: [round(v, 5) for v in vals] for k, vals in curves.items()},
        "eval": evals,
        "judge": judged,
        "samples": samples,
        "seconds": time.perf_counter() - started,
    }
    return out


def _run_job(config, setup: Setup, arm: str, target_name: str, sgd_lr: float | None) -> dict:
    return run_arm(config, setup, arm, target_name, progress=False, sgd_lr=sgd_lr)


def run_all(config, setups: dict[int, Setup], progress: bool = True) -> tuple[list, list]:
    """Every (seed, target, arm) run, and the SGD arm at the other rates of ``sgd_lr_grid``
    on the "67" target; over ``config.workers`` single-threaded processes (each run seeds its
    own random streams, so the results do not depend on the number of workers).

    Returns ``(runs, grid_runs)``; grid runs keep their evaluations and judge, not their curves.
    """
    for setup in setups.values():  # the same in every arm of a seed: read it once
        setup.judged_start = judge_generator(config, setup, setup.generator)
    jobs = [
        (config, setups[s], arm, target, None)
        for s in setups for target in config.targets for arm in config.arms
    ]  # fmt: skip
    extra = [lr for lr in config.sgd_lr_grid if lr != config.sgd_lr]
    if "sixseven" in config.targets and "sgd" in config.arms:
        jobs += [(config, setups[s], "sgd", "sixseven", lr) for s in setups for lr in extra]
    done = map_processes(_run_job, jobs, config.workers, "runs" if progress else None)
    main = [r["arm"] != "sgd" or r["sgd_lr"] == config.sgd_lr for r in done]
    runs = [r for r, keep in zip(done, main, strict=True) if keep]
    grid = [
        {k: v for k, v in r.items() if k not in ("train", "samples")}
        for r, keep in zip(done, main, strict=True) if not keep
    ]  # fmt: skip
    return runs, grid


def finite_difference_check(seed: int = 0, step: float = 1e-5) -> dict:
    """tau against central finite differences of Phi(w), on a tiny float64 case.

    A 1-layer model (vocabulary 8, width 6), 6 examples, 3 AdamW steps, the "67" target. The
    finite differences are a check of the method, never part of it.
    """
    torch.manual_seed(seed)
    model = TinyGPT(GPTConfig(vocab=8, d_model=6, n_layers=1, n_heads=2, context=8)).double()
    start = initial_params(model)
    target = make_target("sixseven", "head.weight", start)
    rng = torch.Generator().manual_seed(seed)
    tokens = torch.randint(8, (6, 8), generator=rng)
    loop = InnerLoop(steps=3, lr=1e-2)
    order = step_order(6, loop, rng)
    ones = torch.ones(6, dtype=torch.float64)
    tau, _, _ = metagradient(model, start, tokens, target.phi, order, loop, ones)

    def phi(weights: torch.Tensor) -> float:
        return float(target.phi(train(model, start, tokens, weights, order, loop)))

    finite = []
    for i in range(6):
        bump = torch.zeros(6, dtype=torch.float64)
        bump[i] = step
        finite.append((phi(ones + bump) - phi(ones - bump)) / (2 * step))
    finite_t = torch.tensor(finite, dtype=torch.float64)
    error = (tau - finite_t).abs().max().item()
    return {
        "tau": tau.tolist(),
        "finite_differences": finite,
        "max_abs_error": error,
        "max_rel_error": error / max(tau.abs().max().item(), 1e-300),
        "step": step,
    }


def attribution_cost(config, setup: Setup, target_name: str = "sixseven") -> dict:
    """Time of all tau for one batch vs one inner run and vs leave-one-out retraining.

    Leave-one-out retrains the target once per example with that example's weight set to 0
    (the mean's denominator kept), so ``Phi(1) - Phi(1 - e_i)`` is the finite version of
    tau_i; we also report how well the two agree.
    """
    target = make_target(target_name, setup.head_name, setup.start)
    loop = inner_loop(config)
    rng = torch.Generator().manual_seed(setup.seed * 1_000 + 5)
    prompts = random_windows(setup.train_stream, config.n_prompts, config.prompt_length, rng)
    completions = _rollouts(config, setup.generator, prompts, rng)[:, config.prompt_length :]
    order = step_order(completions.shape[0], loop, rng)
    model, start = setup.target_model, setup.start
    n = completions.shape[0]
    ones = torch.ones(n, dtype=next(iter(start.values())).dtype)

    def phi(weights: torch.Tensor) -> float:
        return float(target.phi(train(model, start, completions, weights, order, loop)))

    def best_time(fn) -> float:
        times = []
        for _ in range(config.cost_repeats):
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
        return min(times)

    phi(ones)  # warm-up
    inner_s = best_time(lambda: phi(ones))
    metagrad_s = best_time(lambda: metagradient(model, start, completions, target.phi, order, loop))
    tau, base, _ = metagradient(model, start, completions, target.phi, order, loop)
    begin = time.perf_counter()
    loo = []
    for i in range(n):
        weights = ones.clone()
        weights[i] = 0.0
        loo.append(float(base) - phi(weights))
    loo_s = time.perf_counter() - begin
    tau_np, loo_np = tau.numpy(), np.asarray(loo)
    # How large are the head patch's per-step gradients against sqrt(eps_root)? Where they are
    # far larger, one Adam step is a sign step and its metagradient nearly vanishes.
    chunk = order[0]
    grads = grad(weighted_loss, argnums=1)(model, start, completions[chunk], ones[: len(chunk)])
    patch_grad = head_patch(grads[setup.head_name]).abs()
    sqrt_eps_root = math.sqrt(loop.eps_root)
    return {
        "patch_gradient_median": float(patch_grad.median()),
        "sqrt_eps_root": sqrt_eps_root,
        "patch_gradient_share_below_sqrt_eps_root": float(
            (patch_grad < sqrt_eps_root).double().mean()
        ),
        "n_examples": n,
        "inner_steps": loop.steps,
        "inner_run_s": inner_s,
        "metagradient_s": metagrad_s,
        "leave_one_out_s": loo_s,
        "metagradient_over_inner": metagrad_s / inner_s,
        "leave_one_out_over_inner": loo_s / inner_s,
        "leave_one_out_over_metagradient": loo_s / metagrad_s,
        "pearson_tau_loo": float(stats.pearsonr(tau_np, loo_np)[0]),
        "spearman_tau_loo": float(stats.spearmanr(tau_np, loo_np)[0]),
        "sign_agreement_tau_loo": float(np.mean(np.sign(tau_np) == np.sign(loo_np))),
        "tau": tau_np.tolist(),
        "leave_one_out": loo_np.tolist(),
    }


def gradient_check(config) -> dict:
    """Experiment 5: DPG's gradient against the true one on the enumerable problem, through
    the chapter's AdamW and SGD inner loops (their learning rates), for each M and n.
    ``chapter_steps`` records the chapter's own M, the one its claims read."""
    loops = {"adamw": inner_loop(config), "sgd": inner_loop(config, "sgd")}
    out = gradient_study(
        loops, list(config.gradient_steps), list(config.gradient_samples),
        config.gradient_draws, config.gradient_problems,
    )  # fmt: skip
    out["chapter_steps"] = config.inner_steps
    return out


def build_metrics(
    config, seeds, runs, setups, cost, fd_check, grid_runs=(), gradient=None
) -> dict:  # fmt: skip
    """The chapter's metrics from the studies' outputs (claims are added by the caller)."""
    return {
        "metrics_version": METRICS_VERSION,
        "seeds": list(seeds),
        "settings": {k: v for k, v in config.items() if not k.endswith("model_name")},
        "models": {
            "target": config.target_model_name or "TinyGPT from config",
            "generator": config.generator_model_name or "TinyGPT from config",
        },
        "setups": {str(seed): facts for seed, facts in setups.items()},
        "runs": runs,
        "summary": summarize(runs),
        "judge": summarize_judge(runs),
        "language": summarize_language(runs),
        "sgd_grid": summarize_sgd_grid(runs, list(grid_runs)),
        "gradient_check": gradient,
        "cost": cost,
        "finite_difference_check": fd_check,
    }


# --- summarising the runs -------------------------------------------------------------------

BETTER_IF_HIGHER = {"pixel_accuracy": True, "head_norm": False}
END_EVALS = 3  # the end of a run is the mean of its last three evaluations


def _end(evals: list[dict], key: str, scored_by: str = "adamw") -> float:
    values = [e[key] if scored_by == "adamw" else e[scored_by][key] for e in evals[-END_EVALS:]]
    return float(np.mean(values))


def better(metric: str, a: float, b: float) -> bool:
    """Whether ``a`` is better than ``b`` for ``metric``."""
    return a > b if BETTER_IF_HIGHER[metric] else a < b


def summarize(runs: list[dict]) -> dict:
    """Per target and arm: start and end of the headline metric, per seed and mean +- SE.

    ``end`` scores the arm's held-out rollouts through the AdamW inner loop, ``end_sgd``
    through the SGD inner loop. All arms of a seed share their language, models and prompts,
    so comparisons are paired: each arm gets ``change`` (end - start, per seed) and, against
    DPG, ``dpg_minus`` (DPG's end - this arm's end, per seed), its paired t-test p-value
    ``dpg_p`` (two-sided, n - 1 degrees of freedom) and ``dpg_better`` (seeds where DPG is
    better). The SGD arm also gets ``own_minus``: DPG's end through AdamW minus its own end
    through SGD, each arm scored by its own inner loop (the paper's sense of "Adam vs SGD")."""
    out: dict = {}
    for run in runs:
        key = HEADLINE[run["target"]]
        cell = out.setdefault(run["target"], {}).setdefault(
            run["arm"],
            {"metric": key, "start": [], "end": [], "end_sgd": [], "seeds": [], "seconds": []},
        )
        cell["start"].append(run["eval"][0][key])
        cell["end"].append(_end(run["eval"], key))
        cell["end_sgd"].append(_end(run["eval"], key, "sgd"))
        cell["seeds"].append(run["seed"])
        cell["seconds"].append(run["seconds"])
    for per_arm in out.values():
        for cell in per_arm.values():
            cell["change"] = [e - s for s, e in zip(cell["start"], cell["end"], strict=True)]
            for which in ("start", "end", "end_sgd", "change"):
                cell[f"{which}_mean"], cell[f"{which}_se"] = mean_se(cell[which])
        _pair_cells(per_arm)
        dpg, sgd = per_arm.get("dpg"), per_arm.get("sgd")
        if dpg is not None and sgd is not None and sgd["seeds"] == dpg["seeds"]:
            _add_paired(sgd, "own_minus", dpg["end"], sgd["end_sgd"])
    return out


def _pair_cells(per_arm: dict, keys: Sequence[str] = ("end",)) -> None:
    """Add ``dpg_minus`` (per seed), its mean, SE, p and ``dpg_minus_better`` to each arm."""
    dpg = per_arm.get("dpg")
    for arm, cell in per_arm.items():
        if dpg is None or arm == "dpg" or cell["seeds"] != dpg["seeds"]:
            continue
        for key in keys:
            name = "dpg_minus" if key == "end" else f"dpg_minus_{key}"
            _add_paired(cell, name, dpg[key], cell[key])


def _add_paired(cell: dict, name: str, dpg: Sequence[float], other: Sequence[float]) -> None:
    """``cell[name]`` = DPG - other per seed, with its mean, SE, p and seeds where DPG is better."""
    diffs = [d - e for d, e in zip(dpg, other, strict=True)]
    cell[name] = diffs
    cell[f"{name}_mean"], cell[f"{name}_se"] = mean_se(diffs)
    cell[f"{name}_p"] = paired_p(diffs)
    cell[f"{name}_better"] = sum(better(cell["metric"], d, 0.0) for d in diffs)


def summarize_judge(runs: list[dict]) -> dict:
    """The independent judge per target and arm: its reading of the target's headline metric on
    the pretrained generator's data (``start``) and the trained generator's (``end``), per seed
    and mean +- SE, with the paired DPG - arm differences at the end."""
    out: dict = {}
    for run in runs:
        if "judge" not in run:
            continue
        key = HEADLINE[run["target"]]
        cell = out.setdefault(run["target"], {}).setdefault(
            run["arm"], {"metric": key, "start": [], "end": [], "seeds": []}
        )
        cell["start"].append(run["judge"]["start"][key])
        cell["end"].append(run["judge"]["end"][key])
        cell["seeds"].append(run["seed"])
    for per_arm in out.values():
        for cell in per_arm.values():
            cell["change"] = [e - s for s, e in zip(cell["start"], cell["end"], strict=True)]
            for which in ("start", "end", "change"):
                cell[f"{which}_mean"], cell[f"{which}_se"] = mean_se(cell[which])
        _pair_cells(per_arm)
    return out


def summarize_language(runs: list[dict]) -> dict:
    """Per target and arm: the held-out rollouts' NLL under the true chain (nats per token) at
    the start and the end (mean of the last three evaluations), per seed and mean +- SE, and
    the share of rare transitions (``rare_start``, ``rare_end``)."""
    out: dict = {}
    for run in runs:
        cell = out.setdefault(run["target"], {}).setdefault(
            run["arm"], {"start": [], "end": [], "rare_start": [], "rare_end": [], "seeds": []}
        )
        cell["start"].append(run["eval"][0]["chain_nll"])
        cell["end"].append(_end(run["eval"], "chain_nll"))
        cell["rare_start"].append(run["eval"][0]["rare_share"])
        cell["rare_end"].append(_end(run["eval"], "rare_share"))
        cell["seeds"].append(run["seed"])
    for per_arm in out.values():
        for cell in per_arm.values():
            cell["change"] = [e - s for s, e in zip(cell["start"], cell["end"], strict=True)]
            for which in ("start", "end", "change", "rare_start", "rare_end"):
                cell[f"{which}_mean"], cell[f"{which}_se"] = mean_se(cell[which])
    return out


def summarize_sgd_grid(runs: list[dict], grid_runs: list[dict]) -> dict:
    """The SGD arm on "67" at each inner learning rate: its end through its own SGD inner loop
    (and through AdamW), per seed; the rate with the best mean own end (chosen with hindsight,
    which favours SGD); and DPG through AdamW minus SGD at that rate, paired by seed."""
    sgd = [r for r in runs + grid_runs if r["arm"] == "sgd" and r["target"] == "sixseven"]
    dpg = {r["seed"]: r for r in runs if r["arm"] == "dpg" and r["target"] == "sixseven"}
    if not sgd or not dpg:
        return {}
    per_lr: dict = {}
    for run in sorted(sgd, key=lambda r: (r["sgd_lr"], r["seed"])):
        if run["seed"] not in dpg:
            raise ValueError(f"the SGD run of seed {run['seed']} has no DPG run to pair with")
        cell = per_lr.setdefault(
            f"{run['sgd_lr']:g}", {"lr": run["sgd_lr"], "own": [], "adamw": [], "seeds": []}
        )
        cell["own"].append(_end(run["eval"], "pixel_accuracy", "sgd"))
        cell["adamw"].append(_end(run["eval"], "pixel_accuracy"))
        cell["seeds"].append(run["seed"])
    for cell in per_lr.values():
        cell["own_mean"], cell["own_se"] = mean_se(cell["own"])
        cell["adamw_mean"], cell["adamw_se"] = mean_se(cell["adamw"])
    best = max(per_lr, key=lambda k: per_lr[k]["own_mean"])
    seeds = per_lr[best]["seeds"]
    out = {"per_lr": per_lr, "best_lr": per_lr[best]["lr"], "seeds": seeds,
           "metric": "pixel_accuracy"}  # fmt: skip
    dpg_ends = [_end(dpg[s]["eval"], "pixel_accuracy") for s in seeds]
    _add_paired(out, "dpg_minus_best", dpg_ends, per_lr[best]["own"])
    return out
