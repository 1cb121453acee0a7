"""Unit tests of reprobook.safety.harmaug (ch11): config checks, a tiny end-to-end run whose
metrics every table, figure and claim must read, and the claims on hand-edited metrics."""

import copy

import matplotlib.pyplot as plt
import pytest
import torch

from reprobook import report
from reprobook.lm import tokenworld as tw
from reprobook.safety.harmaug import plots, study
from reprobook.safety.harmaug import report as chapter

TINY = dict(
    n_seeds=2, coverages=[2, 4], n_categories=4, n_generations=60, teacher_examples=1000,
    teacher_steps=150, generator_docs=200, generator_steps=3, safety_steps=10, student_steps=2,
    n_test=200, n_safe=100, n_unsafe=20, n_bootstrap=20, batch=32, warmup=10,
    teacher=[32, 1, 2], student=[8, 1, 2], generator=[16, 1, 2], lr_teacher=3e-3,
)  # fmt: skip


@pytest.fixture(scope="module")
def metrics():
    config = study.resolve_config("smoke", **TINY)
    out = study.run_all(config, [0, 1], progress=False)
    out["claims"] = chapter.check_claims(out)
    return out


def test_protocols():
    assert not report.protocol_gaps(chapter, report.ChapterReport)
    assert not report.protocol_gaps(study, report.ChapterStudy)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"coverages": [13]}, "coverages"),
        ({"student": [30, 1, 4]}, "student"),
        ({"n_generations": 10}, "n_generations"),
        ({"refusal_target": 1.0}, "refusal_target"),
        ({"profile_typo": 1}, "profile_typo"),
    ],
)
def test_bad_config_is_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        study.resolve_config("smoke", **overrides)


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="valid profiles"):
        study.resolve_config("nope")


def test_test_sets_have_their_positive_rates():
    world = tw.make_world(0, 12)
    sets = study.test_sets(world, 400, 0.5, torch.Generator().manual_seed(0))
    for name, (kind, rate, _) in study.TEST_SETS.items():
        x, y, category = sets[name]
        assert y.float().mean().item() == pytest.approx(rate, abs=0.005)
        assert ((category >= 0) == y).all()  # every unsafe example has its category
        instructions, responses = world.split_guard_input(x)
        assert torch.equal(world.harmful(instructions, responses), y)
        prompt_only = (responses[:, 0] == world.vocab.special("NORESP")).all()
        assert bool(prompt_only) == (kind == "prompt")
    with pytest.raises(ValueError, match="mix"):
        study.category_weights("zigzag", 4)


def test_examples_table_labels_by_the_rule():
    world = tw.make_world(0, 12)
    table = study.examples_table(world, 2, 0)
    assert len(table) == 8
    assert table.loc[table.kind == "prompt, safe", "harmful"].eq(False).all()
    assert table.loc[table.kind == "prompt, violating", "harmful"].all()
    pair = table[table.kind == "pair"]
    assert (pair.harmful == pair.response.str.startswith("COMPLY")).all()


def test_tiny_run_is_read_by_every_table_and_figure(metrics):
    run = metrics["runs"][0]
    assert set(run["coverages"]) == {"2", "4"}
    for method in ("teacher", *study.METHODS):
        assert set(run["coverages"]["2"]["methods"][method]["test"]) == set(study.TEST_SETS)
    assert run["coverages"]["2"]["methods"]["no_aug"]["n_augmented"] == 0
    assert run["coverages"]["2"]["methods"]["eda"]["n_augmented"] == 2 * TINY["n_generations"]
    for g in run["generation"].values():
        assert g["yield"] + g["refused"] + g["malformed"] == pytest.approx(1)
    assert set(metrics["claims"]) >= set(chapter.HEADLINE_CLAIMS) - {"beats_baselines_missing"}
    for table in (chapter.generation_table(metrics), chapter.results_table(metrics),
                  chapter.results_table(metrics, subset="missing"),
                  chapter.coverage_table(metrics), chapter.cost_table(metrics),
                  chapter.augmented_table(metrics),
                  chapter.paper_table("ch11-harmaug")):  # fmt: skip
        assert len(table) >= 2
    numbers = chapter.prose_numbers(metrics)
    assert all(isinstance(v, str) and v for v in numbers.values())
    assert set(chapter.miniature_findings(metrics)) <= set(
        __import__("reprobook.anchors", fromlist=["x"]).load_anchors("ch11-harmaug")
    )
    assert chapter.key_number(metrics)
    figures = [plots.plot_generation(metrics), plots.plot_auprc(metrics)]
    figures += [plots.plot_coverage(metrics), plots.plot_world(run["categories"], 2, 0)]
    for fig in figures:
        plt.close(fig)


def _set_auprc(metrics, coverage, method, subset, value):
    for run in metrics["runs"]:
        for cell in run["coverages"][coverage]["methods"][method]["test"].values():
            if subset in cell:
                cell[subset]["auprc"] = value


def test_claims_follow_the_numbers(metrics):
    m = copy.deepcopy(metrics)
    for run in m["runs"]:
        run["generation"]["harmaug"].update({"yield": 0.9, "refused": 0.0, "malformed": 0.1})
        run["generation"]["prompting"].update({"yield": 0.05, "refused": 0.9, "malformed": 0.05})
        run["coverages"]["2"]["methods"]["harmaug"]["missing_covered"] = 2
        run["coverages"]["2"]["methods"]["prompting"]["missing_covered"] = 0
        for other in chapter.BASELINES:
            run["coverages"]["2"]["bootstrap"][other] = [0.1, 0.2, 0.3] * 10
    for seed_shift, run in enumerate(m["runs"]):
        for method, value in (("no_aug", 0.3), ("eda", 0.35), ("prompting", 0.32),
                              ("harmaug", 0.8), ("teacher", 0.95)):  # fmt: skip
            for cell in run["coverages"]["2"]["methods"][method]["test"].values():
                for subset in cell:
                    cell[subset]["auprc"] = value + 0.01 * seed_shift
            for cell in run["coverages"]["4"]["methods"][method]["test"].values():
                for subset in cell:
                    cell[subset]["auprc"] = (
                        0.9 + 0.01 * seed_shift + (0.02 if method == "harmaug" else 0)
                    )
    claims = chapter.check_claims(m)
    assert claims["prefix_raises_yield"] and claims["prefix_raises_coverage"]
    assert claims["beats_baselines_missing"]
    assert claims["gain_shrinks_with_coverage"]
    assert claims["approaches_teacher"] and not claims["student_beats_teacher"]
    # one seed against: the paired claim fails
    _set_auprc(m, "2", "eda", "missing", 0.9)
    assert not chapter.check_claims(m)["beats_baselines_missing"]
    # an equal yield is not raised by the prefix
    for run in m["runs"]:
        run["generation"]["prompting"].update({"yield": 0.9, "refused": 0.05, "malformed": 0.05})
    assert not chapter.check_claims(m)["prefix_raises_yield"]


def test_yield_test_on_hand_cases():
    a = {"attempts": 1000, "yield": 0.5}
    assert chapter.yield_test(a, {"attempts": 1000, "yield": 0.4}) < 1e-4
    assert chapter.yield_test(a, {"attempts": 1000, "yield": 0.5}) == pytest.approx(0.5)
    assert chapter.yield_test({"attempts": 10, "yield": 1.0}, {"attempts": 10, "yield": 1.0}) == 1.0
