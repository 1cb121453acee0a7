"""Tests of the minGRU / minLSTM chapter's study and report layers (reprobook.rnn.study and
reprobook.rnn.report): the profiles and their checks, the speed variants, the speedups, the
claims, findings and prose numbers written from a hand-made metrics dictionary, the chapter
protocols, and tiny real runs of the equivalence, speed and copy studies.
"""

import copy
import math

import pytest
import torch
from torch import nn

from reprobook import report
from reprobook.profiles import Config
from reprobook.rnn import cells, models, study
from reprobook.rnn import report as chapter

# --------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_resolve_config_profiles(profile):
    config = study.resolve_config(profile)
    assert dict(config) == study.PROFILES[profile]
    assert config.train_mode == "chunked"
    assert set(config.copy_cells) <= set(study.MIN_CELLS)


def test_resolve_config_overrides():
    config = study.resolve_config(
        "smoke", copy_steps=5, copy_cells=["minlstm"], train_mode="parallel", lr=1, lm_seeds=None
    )
    assert config.copy_steps == 5 and config.copy_cells == ["minlstm"]
    assert config.train_mode == "parallel"
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.lm_seeds == study.PROFILES["smoke"]["lm_seeds"]  # None keeps the profile's
    config = study.resolve_config("smoke", copy_length=4, copy_tokens=4)  # k = length is fine
    assert (config.copy_length, config.copy_tokens) == (4, 4)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(copy_cells=["gru"]),
        dict(copy_cells=[]),
        dict(train_mode="fast"),
        dict(copy_tokens=65),  # smoke's copy_length is 64
        dict(copy_length=3),  # smoke's copy_tokens is 4
        dict(copy_depths=[2]),
        dict(copy_depths=[0, 1]),
        dict(lm_models=["rnn"]),
        dict(lm_params=5_000),
        dict(lm_context=4),
        dict(speed_lengths=[1, 8]),
        dict(equivalence_lengths=[]),
        dict(speed_batch=0),
        dict(copy_steps=1.5),
        dict(no_such_setting=1),
    ],
)
def test_resolve_config_rejects_bad_overrides(overrides):
    with pytest.raises(ValueError):
        study.resolve_config("smoke", **overrides)


def test_resolve_config_rejects_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile"):
        study.resolve_config("paper")


def test_full_profile_accepts_an_lm_max_chars_override():
    assert study.resolve_config("full", lm_max_chars=200_000).lm_max_chars == 200_000
    assert study.resolve_config("smoke", lm_max_chars=0).lm_max_chars == 0  # the whole corpus
    with pytest.raises(ValueError, match="lm_max_chars"):
        study.resolve_config("smoke", lm_max_chars=10)


# --------------------------------------------------------------------------------------------
# speed variants and speedups
# --------------------------------------------------------------------------------------------

VARIANT_TYPES = {
    "mingru": cells.MinGRU,
    "minlstm": cells.MinLSTM,
    "gru/step": cells.StepGRU,
    "lstm/step": cells.StepLSTM,
    "gru/torch": cells.TorchRNN,
    "lstm/torch": cells.TorchRNN,
}


@pytest.mark.parametrize("variant", study.SPEED_VARIANTS)
def test_build_speed_variant(variant):
    torch.manual_seed(0)
    layer = study.build_speed_variant(variant, 4, 5)
    kind, how = variant.split("/")
    assert type(layer) is VARIANT_TYPES.get(kind, VARIANT_TYPES.get(variant))
    if kind in study.MIN_CELLS:
        assert layer.mode == how
    if how == "torch":
        assert isinstance(layer.rnn, nn.GRU if kind == "gru" else nn.LSTM)
    assert layer(torch.randn(2, 3, 4)).shape == (2, 3, 5)


def test_build_speed_variant_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown variant"):
        study.build_speed_variant("mingru/fast", 4, 4)


def seconds_of(variant: str, length: int) -> float:
    """Hand-made timings: the loops grow with T, the parallel forms do not."""
    how = variant.split("/")[1]
    per_512 = {"sequential": 4.0, "step": 8.0, "torch": 0.5}
    if how in per_512:
        return per_512[how] * length / 512
    return {"parallel": 1.0, "chunked": 2.0}[how]


def make_speed(lengths=(512, 4096), variants=study.SPEED_VARIANTS) -> dict:
    timings = {
        v: {
            str(t): {
                "seconds": seconds_of(v, t),
                "seconds_min": seconds_of(v, t),
                "activation_bytes": float(3 * t if v == "mingru/parallel" else 2 * t),
            }
            for t in lengths
        }
        for v in variants
    }
    return {"batch": 64, "hidden": 128, "device": "cpu", "timings": timings}


def test_speedup_by_hand():
    speed = {
        "timings": {
            "slow": {"8": {"seconds": 2.0}, "16": {"seconds": 6.0}},
            "fast": {"8": {"seconds": 1.0}, "16": {"seconds": 2.0}},
        }
    }
    assert study.speedup(speed, "slow", "fast") == {"8": 2.0, "16": 3.0}
    assert study.speedup(speed, "fast", "slow") == {"8": 0.5, "16": pytest.approx(1 / 3)}


def test_speedup_table_only_pairs_that_were_timed():
    speed = make_speed(variants=["mingru/parallel", "mingru/sequential", "gru/step"])
    assert study.speedup_table(speed) == {
        "mingru/parallel vs mingru/sequential": {"512": 4.0, "4096": 32.0},
        "mingru/parallel vs gru/step": {"512": 8.0, "4096": 64.0},
    }


def test_speedup_table_all_variants():
    table = study.speedup_table(make_speed())
    assert len(table) == 12  # 2 cells x 2 fast modes x 3 slow baselines
    assert table["minlstm/chunked vs lstm/torch"] == {"512": 0.25, "4096": 2.0}
    assert table["mingru/chunked vs mingru/sequential"] == {"512": 2.0, "4096": 16.0}


def test_speed_ratios_at():
    speed = make_speed()
    ratios = study.speed_ratios_at(speed, 512)
    assert ratios["mingru/parallel vs gru/step"] == 8.0
    assert ratios["minlstm/chunked vs minlstm/sequential"] == 2.0
    assert all(math.isnan(v) for v in study.speed_ratios_at(speed, 1024).values())


# --------------------------------------------------------------------------------------------
# claims, can_read, findings and prose numbers on hand-made metrics
# --------------------------------------------------------------------------------------------


def make_community(lengths=(64, 512)) -> dict:
    """Ours 2x as fast as the package's best at every point (chunked vs its step loop)."""
    times = {"ours/chunked": 1.0, "ours/parallel": 3.0, "ours/sequential": 2.5,
             "community/parallel": 3.0, "community/sequential": 2.0}  # fmt: skip
    return {
        "package": "minGRU-pytorch 0.2.1", "hidden": 4, "device": "cpu",
        "timings": {phase: {batch: {v: {str(t): s * int(t) for t in lengths}
                                    for v, s in times.items()}
                            for batch in ("1", "64")}
                    for phase in ("training", "inference")},
    }  # fmt: skip


def make_metrics(lengths=(512, 4096)) -> dict:
    equivalence = {
        f"{cell}/{dtype}/{h0}": {
            "parallel": 1e-15 if dtype == "float64" else 2e-7,
            "chunked": 1e-16 if dtype == "float64" else 1e-7,
            "stable": 1e-15 if dtype == "float64" else 2e-7,
        }
        for cell in study.MIN_CELLS
        for dtype in ("float64", "float32")
        for h0 in ("zero", "h0")
    }
    speed = make_speed(lengths)

    def copy_result(accuracy):
        return {"accuracy": accuracy, "exact_match": [0.0] * len(accuracy), "params": 100,
                "seconds": 1.0}  # fmt: skip

    selective_copy = {
        "depths": {
            "mingru": {"1": copy_result([0.5, 0.5, 0.5]), "2": copy_result([0.7, 0.7, 0.7]),
                       "3": copy_result([0.9, 0.95, 1.0])},
            "minlstm": {"1": copy_result([0.6]), "3": copy_result([0.8])},
        },
        "wide": {"mingru": dict(copy_result([0.6, 0.6, 0.6]), d_model=12),
                 "minlstm": dict(copy_result([0.7]), d_model=10)},
    }  # fmt: skip
    char_lm = {
        "corpus": {"source": "pydoc_data.topics (CPython's help topics)", "sha256": "0" * 64,
                   "vocab": 90, "train_chars": 1000, "test_chars": 100},
        "models": {
            "mingru": {"test_loss": [1.5, 1.7], "val_steps": [1], "val_loss": [[2.0], [2.1]],
                       "params": 1000, "width": 8, "seconds": 1.0},
            "transformer": {"test_loss": [1.4, 1.4], "val_steps": [1], "val_loss": [[2.0], [2.1]],
                            "params": 1000, "width": 8, "seconds": 1.0},
        },
    }  # fmt: skip
    metrics = {
        "metrics_version": chapter.METRICS_VERSION,
        "equivalence": equivalence,
        "float32_by_length": {
            "parallel": {"64": 4e-6, "4096": 4e-4},  # grows 100-fold over 64-fold T
            "stable": {"64": 2e-6, "4096": 3e-6},
            "chunked": {"64": 2e-7, "4096": 3e-7},
        },
        "speed": speed,
        "speed_ratios_512": study.speed_ratios_at(speed, 512),
        "speed_community": make_community(),
        "selective_copy": selective_copy,
        "char_lm": char_lm,
    }
    metrics["claims"] = chapter.check_claims(metrics)
    return metrics


CLAIMS = (
    "modes_agree_float64", "modes_agree_float32", "log_space_error_grows_float32",
    "stable_error_flat_float32", "parallel_faster_than_sequential_512",
    "chunked_faster_than_sequential_512", "ours_faster_than_community",
    "ours_faster_1_5x_community_512", "parallel_speedup_grows_with_length",
    "deeper_copies_better", "depth_beats_width",
)  # fmt: skip


def test_check_claims_all_true():
    claims = chapter.check_claims(make_metrics())
    assert claims == dict.fromkeys(CLAIMS, True)


def _set_seconds(metrics, variant, length, seconds):
    metrics["speed"]["timings"][variant][str(length)]["seconds"] = seconds
    metrics["speed_ratios_512"] = study.speed_ratios_at(metrics["speed"], 512)


def _break_float64(m):
    m["equivalence"]["minlstm/float64/h0"]["chunked"] = 1.1e-5


def _break_float32(m):
    m["equivalence"]["mingru/float32/zero"]["parallel"] = 1.1e-3


def _break_growth_float32(m):
    m["float32_by_length"]["parallel"]["4096"] = 2e-5  # 5-fold: below sqrt(4096 / 64) = 8


def _break_stable(m):
    m["float32_by_length"]["stable"]["4096"] = 5.1e-6  # above 2 x 2e-6 + 1e-6


def _break_parallel_512(m):
    _set_seconds(m, "minlstm/parallel", 512, 5.0)  # sequential takes 4.0


def _break_chunked_512(m):
    _set_seconds(m, "mingru/chunked", 512, 4.0)  # a tie with sequential is no speed-up


def _break_growth(m):
    _set_seconds(m, "mingru/parallel", 4096, 100.0)  # 32 / 100 at 4096 < 4 / 1 at 512


def _community_time(m, variant, length, seconds, phase="inference", batch="1"):
    m["speed_community"]["timings"][phase][batch][variant][str(length)] = seconds


def _break_community(m):  # a tie at T = 64 (below the 1.5x goal's range)
    _community_time(m, "community/sequential", 64, 64.0)


def _break_community_goal(m):  # 1.49x at T = 512
    _community_time(m, "community/sequential", 512, 1.49 * 512, phase="training", batch="64")


def _break_depth(m):
    m["selective_copy"]["depths"]["mingru"]["1"]["accuracy"][1] = 0.95  # a tie in one seed


def _break_width(m):
    m["selective_copy"]["wide"]["minlstm"]["accuracy"] = [0.81]  # the wide one wins


BREAKERS = {
    "modes_agree_float64": _break_float64,
    "modes_agree_float32": _break_float32,
    "log_space_error_grows_float32": _break_growth_float32,
    "stable_error_flat_float32": _break_stable,
    "parallel_faster_than_sequential_512": _break_parallel_512,
    "chunked_faster_than_sequential_512": _break_chunked_512,
    "parallel_speedup_grows_with_length": _break_growth,
    "ours_faster_than_community": _break_community,
    "ours_faster_1_5x_community_512": _break_community_goal,
    "deeper_copies_better": _break_depth,
    "depth_beats_width": _break_width,
}


def test_community_ratios_by_hand():
    ratios = study.community_ratios(make_community())
    assert set(ratios) == {"training/1", "training/64", "inference/1", "inference/64"}
    assert ratios["training/64"]["512"] == {
        "ratio": 2.0, "ours_best": "chunked", "community_best": "sequential",
    }  # fmt: skip
    community = make_community()
    community["timings"]["training"]["1"]["ours/chunked"]["64"] = 10.0 * 64
    row = study.community_ratios(community)["training/1"]["64"]
    assert row == {"ratio": 2.0 / 2.5, "ours_best": "sequential", "community_best": "sequential"}
    del community["timings"]["inference"]["64"]["ours/parallel"]["64"]  # not timed there
    assert list(study.community_ratios(community)["inference/64"]) == ["512"]
    table = chapter.community_table(make_community())
    assert list(table.columns) == ["T = 64", "T = 512"]
    assert table.loc["training, batch 64", "T = 512"] == "2.00× (chunked / step loop)"


def test_community_goal_is_inclusive_and_needs_a_long_length():
    metrics = make_metrics()
    _community_time(metrics, "community/sequential", 512, 1.5 * 512)
    assert chapter.check_claims(metrics)["ours_faster_1_5x_community_512"]
    metrics["speed_community"] = make_community(lengths=(64, 256))
    assert not chapter.check_claims(metrics)["ours_faster_1_5x_community_512"]


def test_community_variant_and_study_tiny():
    with pytest.raises(ValueError, match="valid"):
        study.community_variant("ours/stable", 4)
    with pytest.raises(ValueError, match="valid"):
        study.community_variant("community/chunked", 4)
    # The package's minGRU and ours in their step loops compute the same function when the
    # weights agree (ours: its linear map holds [gate, hidden]; the package's: [hidden, gate]).
    ours, _ = study.community_variant("ours/sequential", 4)
    theirs, loop = study.community_variant("community/sequential", 4)
    with torch.no_grad():
        weight = theirs.to_hidden_and_gate.weight
        ours.linear.weight.copy_(torch.cat([weight[4:], weight[:4]]))
        ours.linear.bias.zero_()
    x = torch.randn(2, 7, 4)
    with torch.no_grad():
        torch.testing.assert_close(loop(theirs, x), ours(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(theirs(x), ours(x, mode="chunked"), rtol=1e-5, atol=1e-6)
    out = study.community_study([4, 8], batches=[1, 2], hidden=4, repeats=1, seed=0)
    assert out["package"].startswith("minGRU-pytorch ")
    assert set(out["timings"]) == {"training", "inference"}
    for per_batch in out["timings"].values():
        assert set(per_batch) == {"1", "2"}
        for curves in per_batch.values():
            assert len(curves) == 5
            assert all(set(c) == {"4", "8"} and min(c.values()) > 0 for c in curves.values())


@pytest.mark.parametrize("claim", CLAIMS)
def test_check_claims_each_false_alone(claim):
    metrics = make_metrics()
    BREAKERS[claim](metrics)
    claims = chapter.check_claims(metrics)
    assert claims == {c: c != claim for c in CLAIMS}


def test_check_claims_thresholds_are_inclusive():
    metrics = make_metrics()
    metrics["equivalence"]["mingru/float64/zero"]["parallel"] = 1e-5
    metrics["equivalence"]["mingru/float32/zero"]["parallel"] = 1e-3
    claims = chapter.check_claims(metrics)
    assert claims["modes_agree_float64"] and claims["modes_agree_float32"]


def test_can_read():
    metrics = make_metrics()
    assert report.can_read(chapter, metrics)
    for key in ("equivalence", "float32_by_length", "speed", "speed_ratios_512",
                "speed_community", "selective_copy", "char_lm", "claims",
                "metrics_version"):  # fmt: skip
        old = copy.deepcopy(metrics)
        del old[key]
        assert not report.can_read(chapter, old)
    assert not report.can_read(chapter, dict(metrics, metrics_version=chapter.METRICS_VERSION + 1))


def test_protocols():
    assert report.protocol_gaps(chapter, report.ChapterReport) == []
    assert report.protocol_gaps(study, report.ChapterStudy) == []
    assert set(chapter.HEADLINE_CLAIMS) <= set(chapter.CLAIMS)
    assert set(chapter.CLAIMS) == set(CLAIMS)  # every id check_claims returns is described
    assert not hasattr(study, "can_read") and not hasattr(study, "check_claims")


def test_key_number():
    assert chapter.key_number(make_metrics()) == (
        "minGRU log-space scan trains 8.00× as fast as the GRU step loop at T = 512 (cpu)"
    )
    assert chapter.key_number(make_metrics(lengths=(256, 1024))).startswith(
        "minGRU log-space scan trains not timed"
    )


def test_prose_numbers():
    numbers = chapter.prose_numbers(make_metrics())
    assert numbers == {
        "community_faster_points": "8 of 8",
        "community_goal": "1.5×",
        "community_goal_points": "4 of 4",
        "community_goal_range": "2.00× to 2.00×",
        "community_package": "minGRU-pytorch 0.2.1",
        "community_range": "2.00× to 2.00×",
        "eq_float64_worst": "1e-15",
        "eq_float32_parallel": "2e-7",
        "eq_float32_chunked": "1e-7",
        "eq_float32_stable": "2e-7",
        "f32_parallel_range": "4e-6 at T = 64 and 4e-4 at T = 4,096",
        "f32_stable_range": "2e-6 at T = 64 and 3e-6 at T = 4,096",
        "f32_chunked_range": "2e-7 at T = 64 and 3e-7 at T = 4,096",
        "speed_device": "cpu",
        "speed_batch": "64",
        "speed_hidden": "128",
        "tensor_mib_512": "16 MiB",
        "mingru_parallel_vs_gru_step_512": "8.00×",
        "copy_shallowest": "mingru 50.0 %, minlstm 60.0 %",
        "copy_deepest": "mingru 95.0 %, minlstm 80.0 %",
        "copy_depths": "1, 2, 3",
        "copy_wide": "mingru 60.0 % (width 12, 100 parameters); minlstm 70.0 % (width 10, "
        "100 parameters)",
        "lm_losses": "mingru 1.600, transformer 1.400",
        "lm_gap_to_transformer": "mingru +0.200",
        "lm_params": "1,000 to 1,000",
        "lm_train_chars": "1,000",
        "lm_seeds": "2",
        "mingru_parallel_vs_sequential_512": "4.00×",
        "mingru_chunked_vs_sequential_512": "2.00×",
        "minlstm_parallel_vs_sequential_512": "4.00×",
        "minlstm_chunked_vs_sequential_512": "2.00×",
    }


def test_prose_numbers_without_512_or_a_transformer():
    metrics = make_metrics(lengths=(256, 1024))
    del metrics["char_lm"]["models"]["transformer"]
    numbers = chapter.prose_numbers(metrics)
    assert numbers["mingru_chunked_vs_sequential_512"] == "not timed"
    assert numbers["lm_gap_to_transformer"] == "no Transformer in this run"


def test_reading_notes():
    notes = chapter.reading_notes(make_metrics())
    assert notes.startswith("**Reading the results** (speed measured on cpu):")
    assert "- **mingru.** Against its own step loop, the log-space scan is 4.00× as fast" in notes
    assert "- **Growth with T.** The log-space scan's speedup grows from T = 512" in notes
    assert "mingru minus Transformer: +0.200 nats per character." in notes
    assert (
        "mingru: 1 layer 50.0 %, 2 layers 70.0 %, 3 layers 95.0 %, one layer of width 12 (100 "
        "parameters) 60.0 %" in notes
    )
    assert (
        "The deepest model copies better than one layer in every seed. It copies better than one "
        "layer of its size in every seed." in notes
    )
    metrics = make_metrics()
    _break_depth(metrics)
    metrics["claims"] = chapter.check_claims(metrics)
    notes = chapter.reading_notes(metrics)
    assert "copies **not** better than one layer in every seed. It copies better than" in notes


def test_paper_speedups():
    from reprobook import anchors

    speedups = chapter.paper_speedups(anchors.load_anchors("ch01-minrnn"))
    assert set(speedups) == {512, 4096}
    assert set(speedups[512]) == {"mingru", "minlstm"}


def test_miniature_findings():
    findings = chapter.miniature_findings(make_metrics())
    assert set(findings) == {
        "speedup_512", "speedup_4096", "memory", "copy_1_layers", "copy_2_layers",
        "copy_3_layers", "char_lm",
    }  # fmt: skip
    assert all(isinstance(v, str) and v for v in findings.values())
    where = "(cpu, batch 64, hidden 128)"
    assert findings["speedup_512"] == (
        "mingru parallel: 8.00×; mingru chunked: 4.00×; minlstm parallel: 8.00×; "
        f"minlstm chunked: 4.00× vs our GRU/LSTM step loop {where}"
    )
    assert findings["speedup_4096"].startswith("mingru parallel: 64.00×; mingru chunked: 32.00×")
    assert findings["memory"] == (
        "minGRU parallel keeps 1.50× the activation memory of the GRU step loop "
        f"at T = 4096 {where}"
    )
    assert findings["copy_1_layers"] == (
        "mingru 50.0 ± 0.0 (3 seeds); minlstm 60.0 (1 seed) % per-token accuracy; one layer "
        "widened to the deepest model's size: mingru 60.0 ± 0.0 (3 seeds); minlstm 70.0 (1 seed) "
        "% per-token accuracy"
    )
    assert findings["copy_2_layers"] == "mingru 70.0 ± 0.0 (3 seeds) % per-token accuracy"
    assert findings["copy_3_layers"] == (
        "mingru 95.0 ± 5.0 (3 seeds); minlstm 80.0 (1 seed) % per-token accuracy"
    )
    assert findings["char_lm"] == (
        "test loss (nats/char, mean of 2 seeds): mingru 1.600, transformer 1.400; "
        "on pydoc_data.topics (CPython's help topics), not Shakespeare"
    )


def test_miniature_findings_when_4096_was_not_timed():
    findings = chapter.miniature_findings(make_metrics(lengths=(256, 512)))
    assert findings["speedup_4096"] == "not timed at T = 4096 in this run"
    assert "8.00×" in findings["speedup_512"]
    assert "at T = 512" in findings["memory"]  # the longest length timed


# --------------------------------------------------------------------------------------------
# width_for_budget, models of the studies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "step", "width"),
    [(50, 4, 48), (1, 4, 4), (10**6, 4, 1024), (33, 5, 30), (37, 5, 35)],
)
def test_width_for_budget_picks_the_closest(target, step, width):
    # nn.Linear(d, 1) has d + 1 parameters
    assert study.width_for_budget(lambda d: nn.Linear(d, 1), target, step=step) == width


def test_copy_model_and_build_lm():
    config = study.resolve_config("smoke", copy_d_model=8, lm_layers=1, lm_context=16)
    model = study.copy_model("minlstm", 2, config)
    assert len(model.blocks) == 2
    assert all(b.conv is None and b.mlp is None for b in model.blocks)
    assert model.blocks[0].rnn.d_hidden == 16 and model.blocks[0].rnn.mode == "chunked"
    tokens = torch.randint(0, study.COPY_VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))
    assert model(tokens).shape == (2, 6, study.COPY_VOCAB)
    lm = study.build_lm("mingru", 11, 8, config)
    assert lm.blocks[0].conv is not None and lm.blocks[0].mlp is not None
    assert lm(tokens % 11).shape == (2, 6, 11)
    transformer = study.build_lm("transformer", 11, 8, config)
    assert isinstance(transformer, models.CausalTransformer) and transformer.context == 16
    assert transformer(tokens % 11).shape == (2, 6, 11)


# --------------------------------------------------------------------------------------------
# tiny real runs
# --------------------------------------------------------------------------------------------


def test_equivalence_study_tiny():
    out = study.equivalence_study([8, 3], seed=0, batch=2, hidden=4)
    assert set(out) == {
        f"{c}/{d}/{h}" for c in study.MIN_CELLS for d in ("float64", "float32")
        for h in ("zero", "h0")
    }  # fmt: skip
    for key, worst in out.items():
        assert set(worst) == {"parallel", "chunked", "stable"}
        assert max(worst.values()) <= (1e-10 if "/float64/" in key else 1e-4)
    assert study.equivalence_study([8, 3], seed=0, batch=2, hidden=4) == out


def test_float32_error_by_length_tiny():
    out = study.float32_error_by_length([8, 64], seed=0, batch=2, hidden=4)
    assert set(out) == set(study.FLOAT32_MODES) and set(out["stable"]) == {"8", "64"}
    assert all(0 <= e < 1e-4 for by_length in out.values() for e in by_length.values())
    table = chapter.float32_table(out)
    assert list(table.columns) == ["T = 8", "T = 64"] and len(table) == 3


def test_speed_study_tiny():
    variants = ["mingru/parallel", "gru/step"]
    speed = study.speed_study([8], batch=2, hidden=4, repeats=1, seed=0, variants=variants)
    assert (speed["batch"], speed["hidden"], speed["device"]) == (2, 4, "cpu")
    assert set(speed["timings"]) == set(variants)
    for variant in variants:
        result = speed["timings"][variant]["8"]
        assert result["seconds"] > 0 and result["activation_bytes"] > 0
    assert set(study.speedup_table(speed)) == {"mingru/parallel vs gru/step"}


def test_selective_copy_study_tiny():
    config = study.resolve_config(
        "smoke", copy_steps=2, copy_length=8, copy_tokens=2, copy_d_model=8, copy_depths=[1, 2],
        workers=1,
    )  # fmt: skip
    out = study.selective_copy_study(config, seeds=[0, 1])
    assert set(out["depths"]) == {"mingru"} and set(out["depths"]["mingru"]) == {"1", "2"}
    runs = [*out["depths"]["mingru"].values(), out["wide"]["mingru"]]
    for result in runs:
        assert {"accuracy", "exact_match", "params", "seconds"} <= set(result)
        assert len(result["accuracy"]) == 2 and all(0 <= a <= 1 for a in result["accuracy"])
        pairs = zip(result["exact_match"], result["accuracy"], strict=True)
        assert all(0 <= e <= a for e, a in pairs)
    assert out["depths"]["mingru"]["2"]["params"] > out["depths"]["mingru"]["1"]["params"]
    wide = out["wide"]["mingru"]
    assert wide["d_model"] == study.copy_wide_width("mingru", config) > config.copy_d_model
    # the closest width in steps of 2: at this tiny size a step moves the count by ~10 %
    assert abs(wide["params"] / out["depths"]["mingru"]["2"]["params"] - 1) < 0.15
    # Two worker processes give the same results (each run seeds itself).
    parallel = study.selective_copy_study(Config(config, workers=2), seeds=[0, 1])
    assert parallel["wide"]["mingru"]["accuracy"] == wide["accuracy"]
    assert not study.selective_copy_study(Config(config, copy_wide=False), seeds=[0])["wide"]
