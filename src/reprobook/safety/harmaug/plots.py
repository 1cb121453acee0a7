"""ch11's figures, drawn from the metrics (so committed artefacts re-plot)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from reprobook.lm.tokenworld import Vocab
from reprobook.plotting import colors
from reprobook.safety.harmaug.report import METHOD_WORDS, SET_WORDS, coverages, gains, mean_auprc
from reprobook.safety.harmaug.study import METHODS, TEST_SETS


def plot_world(categories: list, n_covered: int, seed: int) -> plt.Figure:
    """A world's hidden rule: the topic x act table with its categories, the first
    ``n_covered`` with unsafe examples in D and the others missing from D."""
    n_topics, n_acts = Vocab().n_topics, Vocab().n_acts
    table = np.zeros((n_topics, n_acts))
    for i, (t, a) in enumerate(categories):
        table[t, a] = 2 if i < n_covered else 1
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    cmap = plt.matplotlib.colors.ListedColormap(["#f2f2f2", colors(3)[1], colors(3)[0]])
    ax.imshow(table.T, cmap=cmap, vmin=0, vmax=2, aspect="auto")
    ax.set_xlabel("TOPIC token")
    ax.set_ylabel("ACT token")
    ax.set_xticks(range(0, n_topics, 2))
    ax.set_yticks(range(0, n_acts, 2))
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors(3)[0]),
               plt.Rectangle((0, 0), 1, 1, color=colors(3)[1])]  # fmt: skip
    ax.legend(handles, [f"category with unsafe examples in D ({n_covered})",
                        f"category missing from D ({len(categories) - n_covered})"],
              loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # fmt: skip
    ax.set_title(f"Seed {seed}: the (topic, act) pairs that violate", fontsize="medium")
    ax.grid(False)
    return fig


def plot_generation(metrics: dict) -> plt.Figure:
    """Violating instructions per category, with and without the prefix (sum over seeds), the
    categories missing from D shaded (at the lowest coverage); linear below 1, log above."""
    runs = metrics["runs"]
    low = int(coverages(metrics)[0])
    n = metrics["settings"]["n_categories"]
    fig, ax = plt.subplots(figsize=(6.0, 2.8))
    x = np.arange(n)
    palette = colors(2)
    for i, (method, words) in enumerate((("prompting", "without the prefix"),
                                         ("harmaug", "with the prefix"))):  # fmt: skip
        counts = np.sum([r["generation"][method]["per_category"] for r in runs], axis=0)
        ax.bar(x + (i - 0.5) * 0.4, counts, 0.4, label=words, color=palette[i])
    ax.axvspan(low - 0.5, n - 0.5, color="0.9", zorder=0, label="missing from D")
    ax.set_yscale("symlog", linthresh=1)  # zero is drawn as zero
    ax.set_xlabel("category (index in the seed's world)")
    ax.set_ylabel("violating instructions")
    ax.set_xticks(x)
    ax.legend(frameon=False, fontsize="small")
    return fig


def plot_auprc(metrics: dict, subset: str = "missing") -> plt.Figure:
    """AUPRC per test set and guard at the lowest coverage (mean ± s.e. over seeds), with the
    AUPRC chance level (the positive rate of the subset) as a dash."""
    runs, low = metrics["runs"], coverages(metrics)[0]
    guards = ("teacher", *METHODS)
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    width = 0.8 / len(guards)
    palette = colors(len(guards))
    for j, g in enumerate(guards):
        means, errs = [], []
        for name in TEST_SETS:
            values = [
                r["coverages"][low]["methods"][g]["test"][name][subset]["auprc"] for r in runs
            ]
            means.append(np.mean(values))
            errs.append(np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0)
        ax.bar(np.arange(len(TEST_SETS)) + (j - (len(guards) - 1) / 2) * width, means, width,
               yerr=errs, label=METHOD_WORDS[g], color=palette[j], capsize=2)  # fmt: skip
    for i, name in enumerate(TEST_SETS):
        chance = np.mean([r["coverages"][low]["methods"]["teacher"]["test"][name][subset]["chance"]
                          for r in runs])  # fmt: skip
        ax.hlines(chance, i - 0.45, i + 0.45, colors="k", linestyles=":", lw=1)
    ticks = [SET_WORDS[n].replace(" (", "\n(") for n in TEST_SETS]
    ax.set_xticks(range(len(TEST_SETS)), ticks, fontsize="x-small")
    ax.set_ylabel(f"AUPRC ({subset} categories)")
    ax.set_ylim(0, 1.05)
    ax.legend(frameon=False, fontsize="x-small", ncol=2, loc="upper center",
              bbox_to_anchor=(0.5, -0.22))  # fmt: skip
    return fig


def plot_coverage(metrics: dict) -> plt.Figure:
    """The knob: AUPRC (all categories, mean of the test sets) against D's coverage."""
    cov = coverages(metrics)
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    palette = colors(3)
    for i, m in enumerate(("no_aug", "harmaug", "teacher")):
        values = np.array([[mean_auprc(r, c, m) for c in cov] for r in metrics["runs"]])
        err = values.std(0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0 * values[0]
        ax.errorbar([int(c) for c in cov], values.mean(0), yerr=err, marker="o", capsize=3,
                    label=METHOD_WORDS[m], color=palette[i])  # fmt: skip
    g = np.array([gains(metrics, c) for c in cov]).mean(1)
    ax.set_xlabel("categories with unsafe examples in D")
    ax.set_ylabel("AUPRC, all categories")
    ax.set_xticks([int(c) for c in cov])
    ax.set_title("HarmAug gain: " + ", ".join(f"{x:+.2f}" for x in g), fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    return fig
