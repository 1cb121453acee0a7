"""Chapter 11's experiments as functions of a config, returning JSON-ready metrics.

For every seed: a token world (``reprobook.lm.tokenworld``) with its own 12 hidden categories;
a teacher guard trained on abundant data of every category; a generator LM pre-trained on
requests answered by instructions of every kind, then safety-tuned to refuse requests for
violating ones; four test sets. For every coverage (how many categories the labelled set D
has unsafe examples of), four students are distilled from the teacher on D plus an
augmentation: none, EDA token edits of D's unsafe instructions, the generator prompted without
the prefix, and HarmAug (the generator with the affirmative prefix).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score
from tqdm.std import tqdm

from reprobook.lm import tokenworld as tw
from reprobook.lm.models import GPTConfig, TinyGPT, count_parameters
from reprobook.lm.sampling import sample_continuations
from reprobook.lm.training import train_on_documents
from reprobook.profiles import Config, resolve_profile
from reprobook.safety import guard

METRICS_VERSION = 1
METHODS = ("no_aug", "eda", "prompting", "harmaug")
# Four test sets with different category mixes and positive rates, named after the paper's:
# (input, positive rate, category weights: uniform, rising or falling with the category index).
TEST_SETS = {
    "prompt_a": ("prompt", 0.31, "uniform"),  # like OpenAI Moderation (31 % unsafe)
    "prompt_b": ("prompt", 0.07, "rising"),  # like ToxicChat (a few % unsafe)
    "pair_a": ("pair", 0.45, "uniform"),  # like HarmBench (45 % unsafe)
    "pair_b": ("pair", 0.15, "falling"),  # like WildGuardMix's response-harm test
}
SHARED = dict(
    n_categories=12, teacher=[96, 3, 4], student=[32, 2, 2], generator=[64, 2, 4],
    harmful_share=0.3, teacher_noise=0.03, near_miss=0.5, comply_share=0.5, batch=256,
    lr_teacher=1e-3, lr_student=2e-3, lr_generator=1e-2, refusal_target=0.95,
    corpus_refusals=0.3, warmup=100, weight_decay=0.1, clip=1.0, val_share=0.1, n_safe=4000,
    n_unsafe=400, n_bootstrap=200,
)  # fmt: skip
PROFILES = {
    "smoke": dict(  # CI: one seed, the base coverage only
        n_seeds=1, coverages=[4], n_generations=1000, teacher_examples=20000, teacher_steps=500,
        generator_docs=20000, generator_steps=1000, safety_steps=300, student_steps=300,
        n_test=1000, **SHARED,
    ),
    "full": dict(  # 3 seeds, coverage sweep 4 -> 8 -> 12 of 12 categories
        n_seeds=3, coverages=[4, 8, 12], n_generations=8000, teacher_examples=40000,
        teacher_steps=1500, generator_docs=40000, generator_steps=1500, safety_steps=300,
        student_steps=800, n_test=2000, **SHARED,
    ),
}  # fmt: skip


def _positive(v) -> bool:
    return v > 0


def _size(s) -> bool:
    return len(s) == 3 and all(x >= 1 for x in s) and s[0] % s[2] == 0


CONFIG_CHECKS = {
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "coverages": (lambda c: len(c) >= 1, "a non-empty list of category counts"),
    "n_generations": (lambda n: n >= 50, "an integer >= 50 (sampling attempts per method)"),
    "teacher_examples": (lambda n: n >= 1000, "an integer >= 1000"),
    "teacher_steps": (lambda n: n >= 1, "a positive integer"),
    "generator_docs": (lambda n: n >= 100, "an integer >= 100"),
    "generator_steps": (lambda n: n >= 1, "a positive integer"),
    "safety_steps": (lambda n: n >= 0, "a non-negative integer"),
    "student_steps": (lambda n: n >= 1, "a positive integer"),
    "n_test": (lambda n: n >= 200, "an integer >= 200 (examples per test set)"),
    "n_categories": (lambda n: 2 <= n <= 75, "an integer in [2, 75]"),
    "teacher": (_size, "[d_model, layers, heads] with d_model a multiple of heads"),
    "student": (_size, "[d_model, layers, heads] with d_model a multiple of heads"),
    "generator": (_size, "[d_model, layers, heads] with d_model a multiple of heads"),
    "harmful_share": (lambda x: 0 < x < 1, "a fraction in (0, 1)"),
    "teacher_noise": (lambda x: 0 <= x < 0.5, "a fraction in [0, 0.5)"),
    "near_miss": (lambda x: 0 <= x <= 1, "a fraction in [0, 1]"),
    "comply_share": (lambda x: 0 < x < 1, "a fraction in (0, 1)"),
    "batch": (lambda n: n >= 2, "an integer >= 2"),
    "lr_teacher": (_positive, "a positive learning rate"),
    "lr_student": (_positive, "a positive learning rate"),
    "lr_generator": (_positive, "a positive learning rate"),
    "warmup": (lambda n: n >= 0, "a non-negative number of steps"),
    "weight_decay": (lambda x: x >= 0, "a non-negative number"),
    "clip": (_positive, "a positive gradient norm"),
    "refusal_target": (lambda x: 0 < x < 1, "a probability in (0, 1)"),
    "corpus_refusals": (lambda x: 0 <= x < 1, "a fraction in [0, 1)"),
    "val_share": (lambda x: 0 < x < 0.5, "a fraction in (0, 0.5)"),
    "n_safe": (lambda n: n >= 100, "an integer >= 100"),
    "n_unsafe": (lambda n: n >= 20, "an integer >= 20"),
    "n_bootstrap": (lambda n: n >= 20, "an integer >= 20"),
}


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    bad = [c for c in config.coverages if not 1 <= c <= config.n_categories]
    if bad:
        raise ValueError(f"coverages must lie in [1, n_categories = {config.n_categories}]: {bad}")
    return config


# --- data ------------------------------------------------------------------------------------


def category_weights(kind: str, n: int) -> torch.Tensor:
    """How a test set draws its unsafe categories: uniform, rising or falling with the index."""
    ranks = torch.arange(1, n + 1, dtype=torch.float)
    weights = {"uniform": torch.ones(n), "rising": ranks, "falling": ranks.flip(0)}
    if kind not in weights:
        raise ValueError(f"unknown category mix {kind!r}; mixes: {', '.join(weights)}")
    return weights[kind]


def labelled_examples(
    world: tw.World,
    n_safe: int,
    n_unsafe: int,
    pair: bool,
    generator: torch.Generator,
    weights: torch.Tensor,
    near_miss: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Guard inputs, true labels and categories (-1 for safe) of ``n_safe`` + ``n_unsafe``
    examples: prompts alone, or pairs whose safe half is a safe instruction with any response or
    a violating one refused (the hard negatives), and whose unsafe part complies."""
    bad, category = world.sample_violating(n_unsafe, generator, weights)
    if not pair:
        instructions = torch.cat([world.sample_safe(n_safe, generator, near_miss), bad])
        responses = world.no_response(n_safe + n_unsafe)
        category = torch.cat([torch.full((n_safe,), -1), category])
    else:
        half = n_safe // 2
        refused, _ = world.sample_violating(half, generator, weights)
        safe = world.sample_safe(n_safe - half, generator, near_miss)
        instructions = torch.cat([safe, refused, bad])
        comply = torch.cat([torch.rand(n_safe - half, generator=generator) < 0.5,
                            torch.zeros(half, dtype=torch.bool),
                            torch.ones(n_unsafe, dtype=torch.bool)])  # fmt: skip
        responses = world.responses(comply, generator)
        category = torch.cat([torch.full((n_safe,), -1), category])
    labels = world.harmful(instructions, responses)
    return world.guard_input(instructions, responses), labels, category


def test_sets(world: tw.World, n: int, near_miss: float, generator: torch.Generator) -> dict:
    out = {}
    for name, (kind, rate, mix) in TEST_SETS.items():
        n_unsafe = round(rate * n)
        weights = category_weights(mix, len(world.categories))
        out[name] = labelled_examples(
            world, n - n_unsafe, n_unsafe, kind == "pair", generator, weights, near_miss
        )
    return out


def augment(
    world: tw.World, instructions: torch.Tensor, comply_share: float, generator: torch.Generator
) -> torch.Tensor:
    """Guard inputs from instructions: each alone, and with a sampled response (the response
    sampler complies with probability ``comply_share``)."""
    n = len(instructions)
    comply = torch.rand(n, generator=generator) < comply_share
    prompts = world.guard_input(instructions, world.no_response(n))
    pairs = world.guard_input(instructions, world.responses(comply, generator))
    return torch.cat([prompts, pairs])


def teacher_data(world: tw.World, config: Config, generator: torch.Generator):
    """Abundant data over every category, a fifth of the instructions token-edited so that the
    teacher also judges malformed ones; labels by the rule, a share ``teacher_noise`` flipped."""
    n = config.teacher_examples // 2
    parts = [
        labelled_examples(world, n - n // 3, n // 3, pair, generator,
                          torch.ones(len(world.categories)), config.near_miss)[0]
        for pair in (False, True)
    ]  # fmt: skip
    inputs = torch.cat(parts)
    instructions, responses = world.split_guard_input(inputs)
    edit = torch.rand(len(inputs), generator=generator) < 0.2
    edited = tw.eda(instructions[edit], world.vocab, int(edit.sum()), generator)
    instructions = instructions.clone()
    instructions[edit] = edited
    labels = world.harmful(instructions, responses)
    flip = torch.rand(len(labels), generator=generator) < config.teacher_noise
    return world.guard_input(instructions, responses), (labels ^ flip).float()


def make_guard(world: tw.World, size: Sequence[int]) -> guard.GuardClassifier:
    d, layers, heads = size
    return guard.GuardClassifier(world.vocab.size, d, layers, heads, tw.GUARD_LENGTH)


def examples_table(world: tw.World, n: int, seed: int):
    """A few examples of each kind, tokens by name (T3 = topic 3, A0 = act 0, O = object,
    F = filler, D = detail), with the rule's label: what the guards see."""
    generator = torch.Generator().manual_seed(seed)
    v = world.vocab
    parts = [
        ("prompt, safe", world.sample_safe(n, generator), world.no_response(n)),
        ("prompt, violating", world.sample_violating(n, generator)[0], world.no_response(n)),
    ]
    bad = world.sample_violating(2 * n, generator)[0]
    comply = torch.arange(2 * n) % 2 == 0
    parts.append(("pair", bad, world.responses(comply, generator)))
    rows = []
    for kind, instructions, responses in parts:
        for instruction, response, harmful in zip(
            instructions, responses, world.harmful(instructions, responses), strict=True
        ):
            words = [v.name(t) for t in instruction.tolist() if t != v.special("PAD")]
            said = [v.name(t) for t in response.tolist() if t != v.special("PAD")]
            rows.append({"kind": kind, "instruction": " ".join(words),
                         "response": " ".join(said), "harmful": bool(harmful)})  # fmt: skip
    return pd.DataFrame(rows)


# --- the generator --------------------------------------------------------------------------


def refusal_probability(model: TinyGPT, vocab: tw.Vocab) -> float:
    """p(REFUSE | BOS REQ_HARM): how often the model refuses a request, read off its logits."""
    with torch.no_grad():
        logits = model(tw.request_prompts(vocab, 1, prefix=False))[0, -1]
    return float(logits.softmax(-1)[vocab.special("REFUSE")])


def train_generator(
    world: tw.World, config: Config, generator: torch.Generator
) -> tuple[TinyGPT, dict]:
    """Pre-train on requests of both kinds (a share ``corpus_refusals`` of harmful requests
    refused in the corpus itself, as on the web), then safety-tune on refusals of REQ_HARM and
    benign answers to REQ_BENIGN, in rounds of 10 steps until the model refuses with probability
    ``refusal_target`` (or ``safety_steps`` run out); the harmful documents are not seen again."""
    d, layers, heads = config.generator
    model = TinyGPT(GPTConfig(world.vocab.size, d, layers, heads, tw.DOCUMENT_LEN))
    pad = world.vocab.special("PAD")
    docs = tw.documents(world, config.generator_docs, config.harmful_share, generator)
    n_refusals = round(config.generator_docs * config.harmful_share * config.corpus_refusals)
    docs = torch.cat([docs, tw.refusal_documents(world.vocab, n_refusals)])
    losses = train_on_documents(model, docs, config.generator_steps, config.batch,
                                config.lr_generator, pad, generator)  # fmt: skip
    before = refusal_probability(model, world.vocab)
    n = config.generator_docs // 4
    tuning = torch.cat([tw.refusal_documents(world.vocab, n),
                        tw.documents(world, n, 0.0, generator)])  # fmt: skip
    steps = 0
    while (
        steps < config.safety_steps
        and refusal_probability(model, world.vocab) < config.refusal_target
    ):
        train_on_documents(
            model, tuning, 10, config.batch, config.lr_generator / 10, pad, generator
        )
        steps += 10
    info = {"pretrain_loss": losses[-1], "refusal_before": before, "safety_steps": steps,
            "refusal_after": refusal_probability(model, world.vocab)}  # fmt: skip
    return model.eval(), info


def generate(
    model: TinyGPT, world: tw.World, n: int, prefix: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` attempts at a violating instruction: the parsed instructions and every status."""
    prompts = tw.request_prompts(world.vocab, n, prefix)
    found, statuses = [], []
    for start in range(0, n, 2000):
        batch = prompts[start : start + 2000]
        tokens = sample_continuations(model, batch, tw.DOCUMENT_LEN - batch.shape[1], generator)
        instructions, status = tw.parse_generations(
            world.vocab, tokens[:, batch.shape[1] :], prefix
        )
        found.append(instructions)
        statuses.append(status)
    return torch.cat(found), torch.cat(statuses)


def generation_summary(world: tw.World, instructions: torch.Tensor, status: torch.Tensor) -> dict:
    """Yield (non-refusal, well-formed), refusals, and what the kept instructions cover."""
    violating = world.violates(instructions)
    category = world.category_of(instructions)
    unsafe = instructions[violating]
    return {
        "attempts": len(status),
        "yield": float((status == 0).double().mean()),
        "refused": float((status == 1).double().mean()),
        "malformed": float((status == 2).double().mean()),
        "violating": int(violating.sum()),
        "distinct_violating": len({tuple(r) for r in unsafe.tolist()}),
        "per_category": torch.bincount(
            category[category >= 0], minlength=len(world.categories)
        ).tolist(),  # fmt: skip
        "distinct_2": tw.distinct_n(unsafe, 2, world.vocab.special("PAD")),
    }


# --- students and evaluation ----------------------------------------------------------------


def evaluate(scores: np.ndarray, labels: np.ndarray, category: np.ndarray, missing) -> dict:
    """Metrics on the whole set, and on its safe examples with the unsafe ones of the categories
    missing from D (``missing``) or seen in D."""
    out = {"all": guard.guard_metrics(scores, labels)}
    for name, cats in (("missing", missing), ("seen", None)):
        unsafe_in = (
            np.isin(category, list(cats))
            if name == "missing"
            else ~np.isin(category, list(missing))
        )
        keep = (labels == 0) | (unsafe_in & (labels == 1))
        if labels[keep].min() != labels[keep].max():
            out[name] = guard.guard_metrics(scores[keep], labels[keep])
    return out


def bootstrap_difference(
    scores_a: dict, scores_b: dict, tests: dict, missing, n_boot: int, seed: int
) -> list[float]:
    """Bootstrap (over the examples of each test set) of the mean over test sets of
    AUPRC_a - AUPRC_b on the missing categories: a paired interval for one seed."""
    rng = np.random.default_rng(seed)
    diffs = np.zeros(n_boot)
    for name, (_, labels, category) in tests.items():
        labels, category = labels.numpy().astype(int), category.numpy()
        keep = (labels == 0) | np.isin(category, list(missing))
        y, a, b = labels[keep], scores_a[name][keep], scores_b[name][keep]
        for i in range(n_boot):
            rows = rng.integers(len(y), size=len(y))
            if y[rows].min() == y[rows].max():
                continue
            diffs[i] += average_precision_score(y[rows], a[rows]) - average_precision_score(
                y[rows], b[rows]
            )
    return (diffs / len(tests)).tolist()


def run_seed(config: Config, seed: int, progress: bool = False) -> dict:
    """Everything for one seed: world, teacher, generator, augmentations, students."""
    generator = torch.Generator().manual_seed(seed)
    world = tw.make_world(seed, config.n_categories)
    tests = test_sets(world, config.n_test, config.near_miss, generator)

    teacher = make_guard(world, config.teacher)
    t_inputs, t_labels = teacher_data(world, config, generator)
    teacher_losses = guard.train_guard(
        teacher, t_inputs, t_labels, config.teacher_steps, config.batch, config.lr_teacher,
        generator, config.warmup, config.weight_decay, config.clip, progress,
    )  # fmt: skip

    def label(inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(guard.unsafe_scores(teacher, inputs)).float()

    gen_model, generator_info = train_generator(world, config, generator)
    generated, summaries = {}, {}
    for method, prefix in (("prompting", False), ("harmaug", True)):
        instructions, status = generate(gen_model, world, config.n_generations, prefix, generator)
        generated[method] = instructions
        summaries[method] = generation_summary(world, instructions, status)

    teacher_scores = {name: guard.unsafe_scores(teacher, x) for name, (x, _, _) in tests.items()}
    out = {
        "seed": seed,
        "categories": world.categories.tolist(),
        "teacher_loss": teacher_losses[-50:],
        "generation": summaries,
        "generator": generator_info,
        "teacher_agreement": {
            name: float(((teacher_scores[name] > 0.5) == y.numpy()).mean())
            for name, (_, y, _) in tests.items()
        },
        "coverages": {},
    }
    probe = tests["pair_a"][0][:256]
    student_probe = make_guard(world, config.student)
    out["cost"] = {
        "teacher_parameters": count_parameters(teacher),
        "student_parameters": count_parameters(student_probe),
        "teacher_flops": guard.forward_flops(teacher, probe),
        "student_flops": guard.forward_flops(student_probe, probe),
        "teacher_latency": guard.latency(teacher, probe),
        "student_latency": guard.latency(student_probe, probe),
    }
    for coverage in config.coverages:
        covered = torch.arange(coverage)
        missing = list(range(coverage, config.n_categories))
        weights = torch.zeros(config.n_categories)
        weights[covered] = 1.0
        half_s, half_u = config.n_safe // 2, config.n_unsafe // 2
        d_parts = [labelled_examples(world, s, u, pair, generator, weights, config.near_miss)
                   for s, u, pair in ((half_s, half_u, False),
                                      (config.n_safe - half_s, config.n_unsafe - half_u,
                                       True))]  # fmt: skip
        d_inputs = torch.cat([p[0] for p in d_parts])
        d_unsafe = world.split_guard_input(d_inputs)[0][torch.cat([p[1] for p in d_parts])]
        augmentations = {
            "no_aug": d_inputs[:0],
            "eda": augment(
                world,
                tw.eda(d_unsafe, world.vocab, config.n_generations, generator),
                config.comply_share,
                generator,
            ),  # fmt: skip
            "prompting": augment(world, generated["prompting"], config.comply_share, generator),
            "harmaug": augment(world, generated["harmaug"], config.comply_share, generator),
        }
        entry = {"missing": missing, "methods": {}, "bootstrap": {}}
        scores = {"teacher": teacher_scores}
        for method in tqdm(METHODS, desc=f"students, coverage {coverage}", disable=not progress):
            inputs = torch.cat([d_inputs, augmentations[method]])
            soft = label(inputs)
            hard = (soft > 0.5).numpy().astype(int)
            train, val = guard.stratified_split(hard, config.val_share, seed)
            student = make_guard(world, config.student)
            guard.train_guard(
                student, inputs[train], soft[train], config.student_steps, config.batch,
                config.lr_student, generator, config.warmup, config.weight_decay, config.clip,
            )  # fmt: skip
            scores[method] = {
                name: guard.unsafe_scores(student, x) for name, (x, _, _) in tests.items()
            }
            aug_unsafe = augmentations[method][soft[len(d_inputs) :] > 0.5]
            aug_cats = world.category_of(world.split_guard_input(aug_unsafe)[0])
            entry["methods"][method] = {
                "n_train": len(train),
                "n_augmented": len(augmentations[method]),
                "augmented_unsafe_share": float((soft[len(d_inputs) :] > 0.5).double().mean())
                if len(augmentations[method])
                else 0.0,  # fmt: skip
                "missing_covered": len(set(aug_cats.tolist()) & set(missing)),
                "val": guard.guard_metrics(guard.unsafe_scores(student, inputs[val]), hard[val]),
            }
        for method in ("teacher", *METHODS):
            entry["methods"].setdefault(method, {})["test"] = {
                name: evaluate(scores[method][name], y.numpy().astype(int), c.numpy(), missing)
                for name, (_, y, c) in tests.items()
            }
        if missing:
            for other in ("no_aug", "eda", "prompting"):
                entry["bootstrap"][other] = bootstrap_difference(
                    scores["harmaug"], scores[other], tests, missing, config.n_bootstrap, seed
                )
        out["coverages"][str(coverage)] = entry
    return out


def run_all(config: Config, seeds: Sequence[int], progress: bool = True) -> dict:
    """Every seed; the metrics the chapter saves."""
    runs = [
        run_seed(config, seed, progress) for seed in tqdm(seeds, desc="seeds", disable=not progress)
    ]
    return {
        "metrics_version": METRICS_VERSION,
        "settings": dict(config),
        "test_sets": {k: list(v) for k, v in TEST_SETS.items()},
        "runs": runs,
    }
