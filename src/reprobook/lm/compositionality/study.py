"""Chapter 2's experiments as functions of a config, returning JSON-ready metrics.

For every model size and seed, ``lifetime`` trains a GPT-NeoX from a config on a mix of the
13-slot grammar (every coupling k) and English prose from the pinned packages' docstrings,
keeping log-spaced checkpoints; at each checkpoint it measures the dimension of the last-token
states of every layer on held-out sentences of each k, coherent and shuffled, and the model's
competence at the grammar. ``model_name`` measures a real checkpoint instead (a reader's path).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.std import tqdm

from reprobook.geometry import intrinsic
from reprobook.lm import grammar, lifetime, text
from reprobook.profiles import Config, resolve_profile

shuffle = grammar.shuffle_words

METRICS_VERSION = 1
CONDITIONS = ("coherent", "shuffled", "shuffled_period_last")
LIFETIME_ESTIMATORS = ("twonn", "pca", "participation_ratio")
FINAL_ESTIMATORS = ("twonn_skdim", "mle")
SHARED = dict(lr=2e-3, warmup=100, batch=32, length=64, prose_share=0.5, prose_words=1000,
              heads=4)  # fmt: skip
PROFILES = {
    "smoke": dict(  # CI: one small model, 3 checkpoints, 500 sentences per k
        sizes=[[64, 3]], n_seeds=1, steps=300, n_checkpoints=3, n_sentences=500,
        lengths=[3, 6, 13], **SHARED,
    ),
    "full": dict(  # 2 sizes x 3 seeds, 10 checkpoints, 2,000 sentences per k
        sizes=[[64, 3], [128, 4]], n_seeds=3, steps=1600, n_checkpoints=10, n_sentences=2000,
        lengths=[3, 6, 9, 11, 13], **SHARED,
    ),
}  # fmt: skip

CONFIG_CHECKS = {
    "sizes": (
        lambda s: len(s) >= 1 and all(len(x) == 2 and x[0] >= 4 and x[1] >= 1 for x in s),
        "a non-empty list of [hidden, layers] pairs (hidden >= 4, layers >= 1)",
    ),
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "steps": (lambda n: n >= 2, "an integer >= 2 (training steps)"),
    "n_checkpoints": (lambda n: n >= 2, "an integer >= 2 (step 0 and the last step at least)"),
    "n_sentences": (lambda n: n >= 50, "an integer >= 50 (sentences per k and condition)"),
    "lengths": (
        lambda ls: len(ls) >= 1 and all(1 <= n <= len(grammar.SLOTS) for n in ls),
        f"a list of slot counts in [1, {len(grammar.SLOTS)}]",
    ),
    "lr": (lambda x: x > 0, "a positive learning rate"),
    "warmup": (lambda n: n >= 0, "a non-negative number of steps"),
    "batch": (lambda n: n >= 1, "a positive integer"),
    "length": (lambda n: n >= 2 * (len(grammar.SLOTS) + 5), "an integer >= 36 (two sentences)"),
    "prose_share": (lambda x: 0 <= x < 1, "a fraction in [0, 1)"),
    "prose_words": (lambda n: n >= 0, "a non-negative number of words"),
    "heads": (lambda n: n >= 1, "a positive integer"),
}


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    if config.n_checkpoints > config.steps + 1:
        raise ValueError(f"n_checkpoints must be <= steps + 1 = {config.steps + 1}")
    for n_slots in config.lengths:
        if config.n_sentences > grammar.N_WORDS**n_slots // 2:
            raise ValueError(
                f"lengths: {n_slots} content words allow at most "
                f"{grammar.N_WORDS**n_slots // 2} distinct sentences, fewer than n_sentences"
            )
    for hidden, _ in config.sizes:
        if hidden % config.heads:
            raise ValueError(f"every hidden size must be a multiple of heads ({config.heads})")
    return config


def size_name(size: Sequence[int]) -> str:
    return f"d{size[0]}-L{size[1]}"


def vocabulary(prose: Sequence[str], prose_words: int) -> text.Vocabulary:
    """The grammar's words, then the most frequent prose words."""
    return text.Vocabulary.from_corpus(grammar.all_words(), prose, prose_words)


def held_out_words(
    n: int, rng: np.random.Generator, n_slots: int = len(grammar.SLOTS)
) -> tuple[dict[int, np.ndarray], dict[tuple[int, str], list[list[str]]]]:
    """Held-out index rows per k (distinct across k), and their words per (k, condition):
    coherent, the official shuffle, the shuffle with the period kept last."""
    rows, words = {}, {}
    used: set = set()
    for k in grammar.COUPLINGS:
        rows[k] = grammar.unique_sentences(k, n, rng, exclude=used, n_slots=n_slots)
        used |= {tuple(int(i) for i in r) for r in rows[k]}
        sentences = [grammar.sentence(r) for r in rows[k]]
        words[(k, "coherent")] = sentences
        words[(k, "shuffled")] = [shuffle(s, rng) for s in sentences]
        words[(k, "shuffled_period_last")] = [shuffle(s, rng, keep_period=True) for s in sentences]
    return rows, words


def evaluation_sets(
    vocab: text.Vocabulary, n: int, rng: np.random.Generator, n_slots: int = len(grammar.SLOTS)
) -> tuple[dict[int, np.ndarray], dict[tuple[int, str], torch.Tensor]]:
    """Held-out index rows per k, and their token ids per (k, condition)."""
    rows, words = held_out_words(n, rng, n_slots)
    tokens = {key: torch.tensor([vocab.encode(w) for w in ws]) for key, ws in words.items()}
    return rows, tokens


class MixedBatches:
    """Training windows: documents packed with ``<eos>``, each a prose paragraph (with
    probability ``prose_share``) or a grammar sentence of a uniformly drawn k, never one of the
    held-out sentences; each window starts at a document's start."""

    def __init__(self, vocab, prose, held_out: set, config: Config, rng: np.random.Generator):
        self.vocab, self.held_out, self.config, self.rng = vocab, held_out, config, rng
        self.prose = [vocab.encode(text.words_of(p)) for p in prose]
        self.trained: set[tuple[int, ...]] = set()

    def _sentence(self) -> list[int]:
        k = grammar.COUPLINGS[self.rng.integers(len(grammar.COUPLINGS))]
        while True:
            row = grammar.sample_indices(k, 1, self.rng)[0]
            key = tuple(int(i) for i in row)
            if key not in self.held_out:
                self.trained.add(key)
                return self.vocab.encode(grammar.sentence(row))

    def _document(self) -> list[int]:
        if self.rng.random() < self.config.prose_share:
            return self.prose[self.rng.integers(len(self.prose))]
        return self._sentence()

    def __call__(self, step: int) -> torch.Tensor:
        width = self.config.length + 1
        windows = []
        for _ in range(self.config.batch):
            docs, total = [], 0
            while total < width:
                docs.append(self._document())
                total += len(docs[-1]) + 1
            windows.append(lifetime.pack(docs, width, end=0))
        return torch.tensor(windows)


@torch.no_grad()
def grammar_competence(
    model, tokens: torch.Tensor, vocab: text.Vocabulary, k: int
) -> dict[str, float]:
    """On coherent held-out sentences of coupling k: ``category``, the share of slot words whose
    argmax prediction (from the words before) is a word of the right slot; ``tied``, the share of
    tied slots (not the first of their block, k > 1) predicted exactly. The first slot is left
    out: it follows "The", which also opens many prose paragraphs, so nothing before it tells a
    sentence of the grammar from prose."""
    hidden = model.base_model(input_ids=tokens).last_hidden_state
    head = model.get_output_embeddings()
    category, tied = [], []
    for slot, position in enumerate(_slot_positions()):
        if slot == 0:
            continue
        guess = head(hidden[:, position - 1]).argmax(-1)
        allowed = torch.tensor(vocab.encode(grammar.SLOTS[slot]))
        category.append(torch.isin(guess, allowed).float().mean().item())
        if k > 1 and slot % k:
            tied.append((guess == tokens[:, position]).float().mean().item())
    return {"category": float(np.mean(category)), "tied": float(np.mean(tied)) if tied else None}


def _slot_positions() -> list[int]:
    """The token position of each slot's word in a full sentence."""
    positions, at = [], 0
    for slot in range(len(grammar.SLOTS)):
        at += slot in grammar.DETERMINERS
        positions.append(at)
        at += 1
    return positions


def dimensions(states: np.ndarray, estimators: Sequence[str]) -> dict[str, list[float]]:
    """Each estimator's dimension of each layer's states ``[layers, n, d]``."""
    out: dict[str, list[float]] = {e: [] for e in estimators}
    for layer in states:
        for name, value in intrinsic.estimate(layer, tuple(estimators)).items():
            out[name].append(value)
    return out


def run_model(
    config: Config, size: Sequence[int], seed: int, prose: Sequence[str], index: int = 0
) -> dict:
    """Train one model of ``size`` from ``seed`` and measure it along its lifetime; ``index``
    (the size's place in the profile) makes every model's data and weights its own."""
    vocab = vocabulary(prose, config.prose_words)
    rng = np.random.default_rng([seed, index, 2])
    rows, tokens = evaluation_sets(vocab, config.n_sentences, rng)
    held_out = {tuple(int(i) for i in r) for k in rows for r in rows[k]}
    batches = MixedBatches(vocab, prose, held_out, config, np.random.default_rng([seed, index, 1]))
    hidden, layers = size
    model = lifetime.build_neox(
        len(vocab), hidden, layers, config.heads, 2 * config.length, 1000 * seed + index
    )
    steps = lifetime.lifetime_steps(config.steps, config.n_checkpoints)
    checkpoints, losses = lifetime.train_lifetime(
        model, batches, config.steps, steps, config.lr, config.warmup
    )
    out = {"size": size_name(size), "seed": seed, "n_train_sentences": len(batches.trained),
        "held_out_trained": len(batches.trained & held_out),
           "loss": _thin(losses), "checkpoints": {}}  # fmt: skip
    for step in tqdm(steps, desc=f"{size_name(size)} seed {seed}", mininterval=10):
        model.load_state_dict(checkpoints[step])
        final = step == steps[-1]
        estimators = LIFETIME_ESTIMATORS + (FINAL_ESTIMATORS if final else ())
        entry = {"competence": {}, "id": {c: {} for c in CONDITIONS}}
        for k in grammar.COUPLINGS:
            entry["competence"][str(k)] = grammar_competence(
                model, tokens[(k, "coherent")], vocab, k
            )
            for condition in CONDITIONS:
                states = lifetime.last_token_states(model, tokens[(k, condition)])
                entry["id"][condition][str(k)] = dimensions(states, estimators)
        out["checkpoints"][str(step)] = entry
    out["lengths"] = {}
    for n_slots in config.lengths:  # the sentence-length ablation: coherent, k = 1
        rows_short = grammar.unique_sentences(
            1, config.n_sentences, np.random.default_rng([seed, index, 3, n_slots]), n_slots=n_slots
        )
        short = torch.tensor([vocab.encode(grammar.sentence(r)) for r in rows_short])
        out["lengths"][str(n_slots)] = dimensions(
            lifetime.last_token_states(model, short), ("twonn", "pca")
        )
    return out


def _thin(losses: Sequence[float], points: int = 50) -> list[list[float]]:
    """The loss curve as ``points`` [step, mean loss over the steps since the last point]."""
    edges = np.linspace(0, len(losses), min(points, len(losses)) + 1).astype(int)
    return [
        [int(b), round(float(np.mean(losses[a:b])), 4)]
        for a, b in zip(edges, edges[1:], strict=False)
    ]


def run_all(config: Config, seeds: Sequence[int]) -> dict:
    """Every model size x seed; the metrics the chapter reads."""
    prose = text.docstring_prose()
    runs = [run_model(config, size, seed, prose, index)
            for index, size in enumerate(config.sizes) for seed in seeds]  # fmt: skip
    vocab = vocabulary(prose, config.prose_words)
    return {
        "metrics_version": METRICS_VERSION,
        "settings": {k: v for k, v in config.items()},
        "sizes": [size_name(s) for s in config.sizes],
        "seeds": list(seeds),
        "steps": lifetime.lifetime_steps(config.steps, config.n_checkpoints),
        "couplings": list(grammar.COUPLINGS),
        "factors": [grammar.n_factors(k) for k in grammar.COUPLINGS],
        "conditions": list(CONDITIONS),
        "vocabulary": len(vocab),
        "prose_paragraphs": len(prose),
        "runs": runs,
    }


def measure_checkpoint(model_name: str, revision: str | None, n_sentences: int, seed: int) -> dict:
    """A reader's path: the same measurements on a real checkpoint (e.g. ``EleutherAI/pythia-410m-
    deduped`` at ``lifetime.pythia_revision(step)``) with its own tokenizer; the sentences are
    written as the official code writes them (the period attached to the last word)."""
    model, tokenizer = lifetime.load_checkpoint(model_name, revision)
    rng = np.random.default_rng([seed, 2])
    out: dict = {"model_name": model_name, "revision": revision, "id": {c: {} for c in CONDITIONS}}
    _, words = held_out_words(n_sentences, rng)
    for (k, condition), sentences in words.items():
        texts = [" ".join(w).replace(" " + grammar.PERIOD, grammar.PERIOD) for w in sentences]
        tokens, lengths = lifetime.encode_texts(tokenizer, texts)
        states = lifetime.last_token_states(model, tokens, lengths)
        out["id"][condition][str(k)] = dimensions(states, LIFETIME_ESTIMATORS)
    return out
