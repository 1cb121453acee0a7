"""Unit tests of reprobook.lm.compositionality (ch02): config checks, the claims on hand-made
metrics, and the reader's real-checkpoint path on a model saved locally."""

import numpy as np
import pytest

from reprobook import report
from reprobook.lm import grammar
from reprobook.lm.compositionality import report as chapter
from reprobook.lm.compositionality import study


def test_protocols():
    assert not report.protocol_gaps(chapter, report.ChapterReport)
    assert not report.protocol_gaps(study, report.ChapterStudy)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"sizes": [[64]]}, "sizes"),
        ({"n_sentences": 10}, "n_sentences"),
        ({"n_checkpoints": 400}, "n_checkpoints"),
        ({"sizes": [[66, 2]]}, "multiple of heads"),
        ({"lengths": [14]}, "lengths"),
        ({"lengths": [1]}, "at most 25 distinct"),
    ],
)
def test_bad_config_is_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        study.resolve_config("smoke", **overrides)
    with pytest.raises(ValueError, match="valid profiles"):
        study.resolve_config("nope")


def fake_run(seed, coherent_end, period_init, period_end, shuffled_end, pca=(30.0, 40.0)):
    """One model whose last-layer TwoNN by k is given per condition (two layers, the first at
    half the value); PCA d: (coherent, shuffled) at every layer."""

    def layers(values, estimator):
        if estimator in ("twonn", "twonn_skdim", "mle"):
            return {str(k): [v / 2, v] for k, v in zip((1, 2, 3, 4), values, strict=True)}
        return {str(k): [v, v] for k, v in zip((1, 2, 3, 4), values, strict=True)}

    def entry(coh, per, shf):
        by_condition = {}
        for name, values, p in (("coherent", coh, pca[0]), ("shuffled_period_last", per, pca[0]),
                                ("shuffled", shf, pca[1])):  # fmt: skip
            est = {e: layers(values, e) for e in ("twonn", "twonn_skdim", "mle")}
            est["pca"] = layers([p] * 4, "pca")
            est["participation_ratio"] = layers([3.0] * 4, "pca")
            by_condition[name] = {k: {e: est[e][k] for e in est} for k in ("1", "2", "3", "4")}
        competence = {
            str(k): {"category": 0.99, "tied": 0.9 if k > 1 else None} for k in (1, 2, 3, 4)
        }
        return {"competence": competence, "id": by_condition}

    return {
        "size": "d8-L2", "seed": seed, "held_out_trained": 0, "n_train_sentences": 10,
        "checkpoints": {"0": entry(coherent_end, period_init, [2.0] * 4),
                        "10": entry(coherent_end, period_end, shuffled_end)},
        "lengths": {"3": {"twonn": [1.0, 2.0], "pca": [3.0, 4.0]}},
    }  # fmt: skip


def fake_metrics(runs):
    return {"runs": runs, "steps": [0, 10], "sizes": ["d8-L2"], "couplings": [1, 2, 3, 4],
            "factors": [13, 7, 5, 4], "settings": {"lengths": [3], "n_sentences": 50,
            "steps": 10, "prose_words": 5, "prose_share": 0.5}}  # fmt: skip


def test_claims_on_a_hand_case():
    runs = [fake_run(s, [20 + s, 15, 12, 10], [18, 16, 15, 14 - s], [12, 12, 12, 12 + s / 10],
                     [3.0, 3.0, 3.0, 3.0]) for s in range(3)]  # fmt: skip
    claims = chapter.check_claims(fake_metrics(runs))
    for name in ("sanity", "learned_grammar", "estimators_agree", *chapter.HEADLINE_CLAIMS):
        assert claims[name], name
    assert claims["monotone_in_k"] and claims["period_shuffle_lowers_twonn"]
    assert not claims["spread_grows"]  # the coherent spread is the same at both steps
    assert not claims["pca_ordered_by_k"]  # equal PCA d for every k


def test_a_claim_fails_when_one_model_disagrees():
    runs = [fake_run(s, [20, 15, 12, 10], [18, 16, 15, 14], [12, 12, 12, 12], [3.0] * 4)
            for s in range(3)]  # fmt: skip
    runs.append(fake_run(3, [9, 15, 12, 10], [18, 16, 15, 14], [12, 12, 12, 12], [3.0] * 4))
    claims = chapter.check_claims(fake_metrics(runs))
    assert not claims["ordered_by_k"] and not claims["monotone_in_k"]
    one = chapter.check_claims(fake_metrics(runs[:1]))
    assert "ordered_by_k" not in one  # a single model tests no comparison


def test_sanity_catches_a_held_out_sentence_in_training():
    runs = [fake_run(s, [20, 15, 12, 10], [18, 16, 15, 14], [12] * 4, [3.0] * 4) for s in range(2)]
    runs[1]["held_out_trained"] = 1
    assert not chapter.check_claims(fake_metrics(runs))["sanity"]


def test_tables_and_numbers_read_the_hand_case():
    runs = [
        fake_run(s, [20 + s, 15, 12, 10], [18, 16, 15, 14], [12] * 4, [3.0] * 4) for s in range(3)
    ]
    metrics = fake_metrics(runs)
    metrics.update(
        claims=chapter.check_claims(metrics), vocabulary=9, prose_paragraphs=2, seeds=[0, 1, 2]
    )
    assert chapter.final_table(metrics).shape == (12, 5)
    assert chapter.comparisons_table(metrics).shape == (len(chapter.COMPARISONS), 2)
    assert chapter.key_number(metrics).endswith("21.0, 15.0, 12.0, 10.0")
    numbers = chapter.prose_numbers(metrics)
    assert numbers["coherent_end"] == "21.0, 15.0, 12.0, 10.0"
    assert set(chapter.miniature_findings(metrics)) >= {"gap_sign", "form_meaning"}


def test_training_batches_never_hold_a_held_out_sentence():
    config = study.resolve_config("smoke")
    prose = ["one two three four five six seven eight nine"] * 3
    vocab = study.vocabulary(prose, 5)
    rows, tokens = study.evaluation_sets(vocab, 50, np.random.default_rng(0))
    assert tokens[(2, "coherent")].shape == (50, 18)
    held_out = {tuple(int(i) for i in r) for k in rows for r in rows[k]}
    # hold out every k = 4 sentence with word 0 in its first block: training must skip them
    held_out |= {tuple([0] * 4 + [j] * 4 + [m] * 4 + [n]) for j in range(50) for m in range(50)
                 for n in range(50)}  # fmt: skip
    batches = study.MixedBatches(vocab, prose, held_out, config, np.random.default_rng(1))
    tokens_out = batches(0)
    assert tokens_out.shape == (config.batch, config.length + 1)
    assert batches.trained and not batches.trained & held_out


def test_a_real_checkpoint_is_measured_the_same_way(tmp_path, save_local_model):
    save_local_model(tmp_path, grammar.all_words())
    out = study.measure_checkpoint(str(tmp_path), None, 60, seed=0)
    assert set(out["id"]) == set(study.CONDITIONS)
    twonn = out["id"]["coherent"]["1"]["twonn"]
    assert len(twonn) == 2 and all(np.isfinite(twonn))
    assert chapter.checkpoint_table({"checkpoint": out}).shape == (12, 3)


def test_a_negative_shuffled_spread_counts_by_its_size():
    """A shuffled spread that flips sign (k = 4 above k = 1) is still a spread."""
    runs = [fake_run(s, [20, 15, 12, 10], [18, 16, 15, 14], [0, 12, 12, 40 + s], [3.0] * 4)
            for s in range(3)]  # fmt: skip
    claims = chapter.check_claims(fake_metrics(runs))
    assert not claims["specific_to_coherent"] and not claims["shuffled_spread_shrinks"]
