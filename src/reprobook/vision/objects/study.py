"""Chapter 12's study as a function of a config, returning JSON-ready metrics.

One "foundation" encoder per run: a small DINOv2-architecture ViT pre-trained by self-distillation
on a pool of scenes of both training domains (it stands in for DINOv2, which every model of the
paper shares). Per seed, fresh training and evaluation scenes, then the object-centric models:

- trained on the ``diverse`` domain: ``dinosaur`` (frozen encoder, every slot decodes every patch,
  raw targets: the DINOSAUR baseline), ``ft_dinosaur`` (FT-DINOSAUR: the encoder fine-tuned at
  a lower, blockwise-decayed learning rate against a frozen copy's standardised features, top-k
  decoding, clipping 0.1), ``dinosaur_topk`` (FT-DINOSAUR's recipe with the encoder frozen: every
  difference but the fine-tuning) and ``random_encoder`` (``dinosaur_topk`` on the ViT before
  pre-training: how much the self-supervised features matter);
- trained on the ``simple`` domain: ``ft_dinosaur``;
- the data-size sweep: ``dinosaur_topk`` on the diverse domain with a share of the training
  images, the same number of steps.

Every model is scored (FG-ARI, mBO on the decoder's masks) on held-out scenes of every domain.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from reprobook.profiles import Config, resolve_profile
from reprobook.vision import masks, scenes, slots, ssl
from reprobook.vision.encoder import Encoder, build_encoder

METRICS_VERSION = 1
ARMS = {  # (training domain, model): what each arm is
    ("diverse", "dinosaur"): "DINOSAUR (frozen encoder)",
    ("diverse", "dinosaur_topk"): "FT-DINOSAUR's recipe, encoder frozen",
    ("diverse", "ft_dinosaur"): "FT-DINOSAUR (fine-tuned encoder, top-k)",
    ("diverse", "random_encoder"): "frozen recipe on the untrained ViT",
    ("simple", "ft_dinosaur"): "FT-DINOSAUR (fine-tuned encoder, top-k)",
}
SWEEP_MODEL = "dinosaur_topk"
EVAL_DOMAINS = scenes.TRAIN_DOMAINS + scenes.ZERO_SHOT_DOMAINS
N_SHOWN = 3  # scenes per domain kept in memory for the mask figure
# The official settings (rw-ocrl/ftdinosaur-inference; OCLF training configs): 7 slots, 3
# iterations, top-k 3, Adam 4e-4 with clipping 1.0 (DINOSAUR), encoder at 0.125 x the rate with
# blockwise decay 0.85 and clipping 0.1 (FT-DINOSAUR).
OFFICIAL_SETTINGS = dict(
    n_slots=7, iterations=3, top_k=3, lr=4e-4, encoder_lr_factor=0.125, block_decay=0.85,
    clip=1.0, clip_finetune=0.1,
)  # fmt: skip
# Ours: a 4-block ViT of width 128 on 64x64 scenes (8x8 patches: 64 tokens), slots of width 128,
# a decoder MLP of width 256, runs of hundreds of steps instead of 300,000.
MINIATURE_SETTINGS = dict(
    image_size=64, patch_size=8, vit_dim=128, vit_depth=4, vit_heads=4, slot_dim=128,
    decoder_hidden=256, batch_size=32, pretrain_batch_size=48, warmup=40,
)  # fmt: skip
PROFILES = {
    "smoke": dict(  # CI: 1,000 training scenes per domain, 60 steps, one seed
        n_train=1000, n_eval=96, n_pretrain=2000, pretrain_steps=60, steps=60,
        sweep_fractions=[0.25], n_seeds=1, plateau_margin=0.02, crowded_slots=9,
        **OFFICIAL_SETTINGS, **MINIATURE_SETTINGS,
    ),
    "full": dict(  # 8,192 training scenes per domain, 3 seeds
        n_train=8192, n_eval=384, n_pretrain=8192, pretrain_steps=400, steps=400,
        sweep_fractions=[1 / 16, 1 / 4], n_seeds=3, plateau_margin=0.02,
        crowded_slots=9, **OFFICIAL_SETTINGS, **MINIATURE_SETTINGS,
    ),
}  # fmt: skip
CONFIG_CHECKS = {
    "n_train": (lambda n: n >= 64, "an integer >= 64"),
    "n_eval": (lambda n: n >= 8, "an integer >= 8"),
    "n_pretrain": (lambda n: n >= 64, "an integer >= 64"),
    "pretrain_steps": (lambda n: n >= 1, "a positive integer"),
    "steps": (lambda n: n >= 1, "a positive integer"),
    "sweep_fractions": (
        lambda fs: all(isinstance(f, int | float) and 0 < f < 1 for f in fs),
        "a list of shares of n_train, each in (0, 1)",
    ),
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "plateau_margin": (lambda m: m > 0, "a number > 0"),
    "crowded_slots": (lambda n: n >= 2, "an integer >= 2"),
    "n_slots": (lambda n: n >= 2, "an integer >= 2"),
    "iterations": (lambda n: n >= 1, "a positive integer"),
    "top_k": (lambda n: n >= 1, "a positive integer (at most n_slots)"),
    "lr": (lambda x: x > 0, "a number > 0"),
    "encoder_lr_factor": (lambda x: x > 0, "a number > 0"),
    "block_decay": (lambda x: 0 < x <= 1, "a number in (0, 1]"),
    "clip": (lambda x: x > 0, "a number > 0"),
    "clip_finetune": (lambda x: x > 0, "a number > 0"),
    "image_size": (lambda n: n >= 16 and n % 8 == 0, "a multiple of 8, at least 16"),
    "patch_size": (lambda n: n >= 2, "an integer >= 2"),
    "vit_dim": (lambda n: n >= 8, "an integer >= 8"),
    "vit_depth": (lambda n: n >= 1, "a positive integer"),
    "vit_heads": (lambda n: n >= 1, "a positive integer"),
    "slot_dim": (lambda n: n >= 4, "an integer >= 4"),
    "decoder_hidden": (lambda n: n >= 4, "an integer >= 4"),
    "batch_size": (lambda n: n >= 2, "an integer >= 2"),
    "pretrain_batch_size": (lambda n: n >= 2, "an integer >= 2"),
    "warmup": (lambda n: n >= 1, "a positive integer"),
}


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    if config.top_k > min(config.n_slots, config.crowded_slots):
        raise ValueError(
            f"top_k ({config.top_k}) must be at most n_slots ({config.n_slots}) and "
            f"crowded_slots ({config.crowded_slots})"
        )
    sizes = sweep_subset_sizes(config)
    if len(set(sizes)) != len(sizes) or max(sizes, default=0) >= config.n_train:
        raise ValueError(
            f"sweep_fractions {config.sweep_fractions} of n_train {config.n_train} give the sizes "
            f"{sizes}: they must be distinct and below n_train (at least batch_size each)"
        )
    if config.image_size % config.patch_size:
        raise ValueError(
            f"image_size ({config.image_size}) must be a multiple of patch_size "
            f"({config.patch_size})"
        )
    if config.vit_dim % config.vit_heads:
        raise ValueError(
            f"vit_dim ({config.vit_dim}) must be a multiple of vit_heads ({config.vit_heads})"
        )
    return config


def sweep_subset_sizes(config: Config) -> list[int]:
    """The data-size sweep's smaller training sets (the full set is the main arm's)."""
    return [max(config.batch_size, round(f * config.n_train)) for f in config.sweep_fractions]


def eval_slots(config: Config, domain: str) -> int:
    """Slots at evaluation: the trained count, more for the crowded domain (slots are drawn
    from one learned Gaussian, so their number may change at test time, as the paper's does)."""
    return config.crowded_slots if domain == "crowded" else config.n_slots


def pretrain_encoder(
    config: Config, seed: int, progress: bool = False
) -> tuple[Encoder, Encoder, dict]:
    """The untrained ViT and the pre-trained one (self-distillation on both training domains)."""
    torch.manual_seed(seed)
    untrained = build_encoder(
        config.image_size, config.patch_size, config.vit_dim, config.vit_depth, config.vit_heads
    )
    half = config.n_pretrain // 2
    pool = torch.cat([
        scenes.make_scenes("diverse", half, config.image_size, seed + 10_000)[0],
        scenes.make_scenes("simple", config.n_pretrain - half, config.image_size, seed + 10_000)[0],
    ])  # fmt: skip
    encoder = copy.deepcopy(untrained)
    settings = ssl.PretrainSettings(
        steps=config.pretrain_steps, batch_size=config.pretrain_batch_size,
        warmup=max(1, min(50, config.pretrain_steps // 10)),
    )  # fmt: skip
    start = time.perf_counter()
    history = ssl.pretrain(encoder, pool, settings, seed, progress)
    facts = dict(
        seconds=time.perf_counter() - start,
        dino_loss=_thin(history["dino"]), ibot_loss=_thin(history["ibot"]),
        parameters=sum(p.numel() for p in encoder.parameters()),
    )  # fmt: skip
    return untrained.frozen_copy(), encoder.frozen_copy(), facts


def _thin(values: list[float], points: int = 50) -> list[float]:
    """A loss curve thinned to about ``points`` means of equal windows."""
    chunks = np.array_split(np.asarray(values, dtype=float), min(points, len(values)))
    return [float(c.mean()) for c in chunks]


def _model_and_settings(
    config: Config, model: str
) -> tuple[slots.ModelSettings, slots.TrainSettings]:
    """DINOSAUR's recipe for ``dinosaur``; FT-DINOSAUR's (top-k decoding, standardised targets,
    clipping 0.1) for the others, the encoder fine-tuned only in ``ft_dinosaur``."""
    finetune = model == "ft_dinosaur"
    ft_recipe = model != "dinosaur"
    ms = slots.ModelSettings(
        n_slots=config.n_slots, slot_dim=config.slot_dim, iterations=config.iterations,
        decoder_hidden=config.decoder_hidden, top_k=config.top_k if ft_recipe else None,
    )  # fmt: skip
    ts = slots.TrainSettings(
        steps=config.steps, batch_size=config.batch_size, lr=config.lr,
        warmup=min(config.warmup, config.steps), finetune=finetune,
        encoder_lr_factor=config.encoder_lr_factor, block_decay=config.block_decay,
        clip=config.clip_finetune if ft_recipe else config.clip, normalise_targets=ft_recipe,
    )  # fmt: skip
    return ms, ts


def evaluate(
    model: slots.Dinosaur, config: Config, evals: dict, seed: int, shown: dict | None = None
) -> dict[str, dict[str, float]]:
    """FG-ARI and mBO per evaluation domain (and, with ``shown``, the first scenes' masks)."""
    out = {}
    for domain, (images, truth) in evals.items():
        pred = slots.predict_masks(model, images, eval_slots(config, domain), seed)
        out[domain] = masks.score(truth, pred)
        if shown is not None:
            shown[domain] = pred[:N_SHOWN].clone()
    return out


def train_arm(
    config: Config, model_name: str, encoder: Encoder, images: torch.Tensor,
    targets: torch.Tensor, seed: int, progress: bool = False,
) -> tuple[slots.Dinosaur, dict]:  # fmt: skip
    """One object-centric model trained from ``encoder`` (copied; fine-tuned or frozen)."""
    ms, ts = _model_and_settings(config, model_name)
    torch.manual_seed(seed)
    model = slots.Dinosaur(copy.deepcopy(encoder), ms)
    start = time.perf_counter()
    losses = slots.train(model, images if ts.finetune else None, targets, ts, seed, progress)
    return model, dict(seconds=time.perf_counter() - start, loss=_thin(losses))


def run_seed(
    config: Config, seed: int, untrained: Encoder, encoder: Encoder, progress: bool = False
) -> tuple[dict, dict]:
    """Every arm of one seed, scored on every domain; returns metrics and the shown masks."""
    size = config.image_size
    train = {d: scenes.make_scenes(d, config.n_train, size, seed)[0] for d in scenes.TRAIN_DOMAINS}
    evals = {d: scenes.make_scenes(d, config.n_eval, size, seed + 20_000) for d in EVAL_DOMAINS}
    features = {d: slots.encode(encoder, x) for d, x in train.items()}
    arms, shown = {}, {"scenes": {d: evals[d][0][:N_SHOWN].clone() for d in EVAL_DOMAINS}}
    shown["truth"] = {d: evals[d][1][:N_SHOWN].clone() for d in EVAL_DOMAINS}
    for domain, name in ARMS:
        base = untrained if name == "random_encoder" else encoder
        model_name = "dinosaur_topk" if name == "random_encoder" else name
        targets = (
            slots.encode(base, train[domain]) if name == "random_encoder" else features[domain]
        )
        model, facts = train_arm(config, model_name, base, train[domain], targets, seed, progress)
        keep = shown.setdefault((domain, name), {}) if domain == "diverse" else None
        facts["scores"] = evaluate(model, config, evals, seed, keep)
        arms[f"{domain}/{name}"] = facts
    sweep = {}
    for n in sweep_subset_sizes(config):
        model, facts = train_arm(
            config,
            SWEEP_MODEL,
            encoder,
            train["diverse"][:n],
            features["diverse"][:n],
            seed,
            progress,
        )
        facts["scores"] = evaluate(model, config, evals, seed)
        sweep[str(n)] = facts
    sweep[str(config.n_train)] = arms[f"diverse/{SWEEP_MODEL}"]
    truth_segments = {
        d: float(masks.segments_per_image(evals[d][1]).mean()) for d in EVAL_DOMAINS
    }  # true instances + background per scene, beside the models' segments
    return dict(seed=seed, arms=arms, sweep=sweep, truth_segments=truth_segments), shown


def run_all(
    config: Config, seed: int, encoders: tuple | None = None, progress: bool = False
) -> tuple[dict, dict]:
    """The chapter's study: one pre-trained encoder (``encoders``, from :func:`pretrain_encoder`,
    or pre-trained here), then every seed. Returns the metrics (claims added by the caller) and
    the first seed's masks of a few scenes per domain, for the figure."""
    untrained, encoder, pretraining = encoders or pretrain_encoder(config, seed, progress)
    runs, shown = [], None
    for s in range(seed, seed + config.n_seeds):
        run, seen = run_seed(config, s, untrained, encoder, progress)
        runs.append(run)
        shown = shown or seen
    metrics = dict(
        metrics_version=METRICS_VERSION, settings=dict(config), pretraining=pretraining,
        runs=runs,
    )  # fmt: skip
    return metrics, shown
