"""Unit tests of reprobook.mathskills (ch04): every skill's reference against its sympy verifier
on every input, the pipeline's stages on hand-made questions, the exponent fit on exact laws,
the solvers on a learnable case, the claims on hand-edited metrics, and the reader's language
model path on a model saved locally."""

import copy

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from reprobook import report
from reprobook.mathskills import law, llm, pipeline, plots, study
from reprobook.mathskills import report as chapter
from reprobook.mathskills import skills as sk
from reprobook.mathskills import solvers as sv


def test_protocols():
    assert not report.protocol_gaps(chapter, report.ChapterReport)
    assert not report.protocol_gaps(study, report.ChapterStudy)


@pytest.mark.parametrize("skill", sk.SKILLS, ids=lambda s: s.name)
def test_reference_equals_verifier_on_every_input(skill):
    rng = np.random.default_rng(0)
    checked = 0
    for n in range(sk.ANSWER_RANGE):
        for _ in range(3):
            extras = skill.extras(rng)
            if not skill.domain(n, extras):
                continue
            value = skill.solve(n, extras)
            assert value == skill.verify(n, extras), (skill.name, n, extras)
            assert 0 <= value < sk.ANSWER_RANGE
            checked += 1
    assert checked >= 100


def test_skills_on_hand_cases():
    assert sk.skill("lcm").solve(12, (8,)) == 24
    assert sk.skill("modular_inverse").solve(3, ()) == 65  # 3 * 65 = 195 = 2 * 97 + 1
    assert sk.skill("largest_prime_factor").solve(84, ()) == 7
    assert sk.skill("totient").solve(36, ()) == 12
    assert sk.skill("base_digit_sum").solve(10, (2,)) == 2
    assert sk.skill("reverse_digits").solve(7, ()) == 70
    assert sk.skill("diagonals").solve(6, ()) == 9
    assert sk.skill("factorial_zeros").solve(25, ()) == 6
    assert sk.skill("linear_system").solve(10, (4,)) == 7
    assert not sk.skill("linear_system").domain(10, (3,))
    assert not sk.skill("modular_inverse").domain(0, ())
    with pytest.raises(ValueError, match="skills"):
        sk.skill("calculus")


def test_question_answers_and_texts():
    q = pipeline.Question("square_last_digits", 12, (), "reverse_digits", ())
    assert pipeline.answer(q) == 44  # 144 -> 44 -> 44
    assert pipeline.answer(q, "verify") == 44
    assert "12" in q.text() and q.skills == ("square_last_digits", "reverse_digits")
    par = pipeline.Question("square_last_digits", 12, (), "reverse_digits", (), parallel=True)
    assert pipeline.answer(par) == (44 + 21) % 100
    three = pipeline.Question("square_last_digits", 12, (), "reverse_digits", (), glue="pairs")
    assert pipeline.answer(three) == (44 * 43 // 2 % 100) % 10 * 10 + (44 * 43 // 2 % 100) // 10
    with pytest.raises(ValueError, match="method"):
        pipeline.answer(q, "guess")


def test_reparse_reads_the_question_back():
    rng = np.random.default_rng(1)
    for kind in ("sequential", "parallel", "three_step"):
        questions, _ = pipeline.generate_pairs(60, rng, kind=kind)
        for q in questions:
            assert pipeline.reparse(q) == q, q.text()
    for q in pipeline.single_questions(3, rng):
        assert pipeline.reparse(q) == q


def test_stages_reject_what_they_should():
    # a prime has largest prime factor itself: the totient then reads 0 < n? always well-posed
    bad = pipeline.Question("factorial_zeros", 3, (), "modular_inverse", ())  # 3! ends in no 0
    assert not pipeline.well_posed(bad)  # the inverse of 0 does not exist
    # the remainder mod 2 of the first answer: half of all other answers reach the same
    shortcut = pipeline.Question("square_last_digits", 12, (), "remainder", (2,))
    assert pipeline.well_posed(shortcut) and not pipeline.needs_both(shortcut)
    good = pipeline.Question("square_last_digits", 12, (), "reverse_digits", ())
    assert pipeline.needs_both(good)
    assert pipeline.rubric_vote(good, 44) and not pipeline.rubric_vote(good, 45)
    questions, found = pipeline.generate_pairs(50, np.random.default_rng(2))
    counts = list(found.counts.values())
    assert counts == sorted(counts, reverse=True) and counts[-1] == 50
    assert all(sk.skill(q.first).topic != sk.skill(q.second).topic for q in questions)
    with pytest.raises(ValueError, match="kind"):
        pipeline.generate_pairs(1, np.random.default_rng(0), kind="nested")


def test_exponent_fit_recovers_exact_laws():
    x = np.array([0.2, 0.4, 0.6, 0.8])
    for a in (1.0, 2.0, 3.0):
        assert law.fit_exponent(x, x**a) == pytest.approx(a)
    a, lo, hi = law.bootstrap_exponent(x, x**2, 10_000, 10_000, 200, 0)
    assert a == pytest.approx(2) and lo < 2 < hi and hi - lo < 0.1
    _, lo, hi = law.bootstrap_exponent(x, x**2, 50, 50, 200, 0)
    assert hi - lo > 0.1  # fewer questions, a wider interval
    with pytest.raises(ValueError, match="accuracies"):
        law.fit_exponent([1.0, 1.0], [0.5, 0.5])


def test_solver_learns_and_chains():
    rng = np.random.default_rng(0)
    steps = sv.practice_steps(range(100), 1, rng)
    assert {s for s, _, _ in steps} == set(sk.NAMES)
    x = sv.encode(*sv.steps_tensor(steps[:4]))
    assert x.shape == (4, sv.FEATURES)
    solver = sv.Solver(128)
    sv.train_solver(solver, [s for s in steps if s[0] == "reverse_digits"], 600, 64, 3e-3,
                    torch.Generator().manual_seed(0))  # fmt: skip
    singles = [pipeline.Question("reverse_digits", n, ()) for n in range(100)]
    assert sv.accuracy(solver, singles).mean() > 0.9
    # reversing twice gives the number back: the chain uses the solver's own first answer
    twice = [pipeline.Question("reverse_digits", n, (), "reverse_digits", ()) for n in range(100)]
    assert (sv.solve(solver, twice) == np.arange(100)).mean() > 0.8
    with pytest.raises(ValueError, match="separate"):
        sv.solve(solver, singles[:1] + twice[:1])
    diag = sv.chain_diagnostics(solver, twice, sv.per_skill_accuracy(solver, singles))
    assert diag["first_step"] > 0.9 and diag["second_step_on_answers"] > 0.9
    assert diag["second_skill_uniform"] == pytest.approx(sv.accuracy(solver, singles).mean())
    assert diag["luck"] <= 0.2  # a wrong reversal seldom reverses back to the start
    with pytest.raises(ValueError, match="sequential"):
        sv.chain_diagnostics(solver, singles[:2], {})


TINY = dict(sizes=[10, 60], updates=150, checkpoints=[50, 150], singles_per_skill=5, n_pairs=50,
            n_extra=10, n_boot=50, n_seeds=2, width=32)  # fmt: skip


@pytest.fixture(scope="module")
def metrics():
    config = study.resolve_config("smoke", **TINY)
    out = study.run_all(config, [0, 1], progress=False)
    out["claims"] = chapter.check_claims(out)
    return out


def test_bad_config_is_refused():
    for overrides, match in (({"sizes": [5]}, "sizes"), ({"checkpoints": [5000]}, "checkpoints"),
                             ({"n_pairs": 3}, "n_pairs"), ({"nope": 1}, "nope")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            study.resolve_config("smoke", **overrides)


def test_tiny_run_is_read_by_every_table_and_figure(metrics):
    run = metrics["runs"][0]
    assert len(run["solvers"]) == 4 and set(run["extra"]) == set(study.ARMS)
    assert run["extra"]["composed"]["n_steps"] == run["extra"]["single_equal_steps"]["n_steps"]
    assert set(metrics["claims"]) >= set(chapter.HEADLINE_CLAIMS)
    for table in (chapter.yield_table(metrics), chapter.solver_table(metrics),
                  chapter.exponent_table(metrics), chapter.extra_table(metrics),
                  chapter.skill_table(metrics), chapter.paper_models("ch04-math-squared"),
                  study.skills_table(0), study.examples_table(0)):  # fmt: skip
        assert len(table) >= 3
    assert all(isinstance(v, str) and v for v in chapter.prose_numbers(metrics).values())
    assert chapter.key_number(metrics)
    from reprobook import anchors

    assert set(chapter.miniature_findings(metrics)) <= set(
        anchors.load_anchors("ch04-math-squared")
    )
    assert 1.8 < chapter.paper_exponent("ch04-math-squared") < 2.2
    for fig in (plots.plot_law(metrics), plots.plot_extra(metrics)):
        plt.close(fig)


def test_claims_follow_the_numbers(metrics):
    m = copy.deepcopy(metrics)
    for k, run in enumerate(m["runs"]):
        for i, s in enumerate(run["solvers"]):
            x = 0.2 + 0.15 * i + 0.01 * k
            s["x"] = x
            s["y"] = {"sequential": x**2, "parallel": x**1.2, "three_step": x**3}
            s["chain"].update(first_step=x, second_step_on_answers=x, second_skill_uniform=x)
        run["extra"]["composed"]["x"] = 0.6 + 0.01 * k
        run["extra"]["single"]["x"] = 0.5 + 0.02 * k
        run["extra"]["single_equal_steps"]["x"] = 0.55 + 0.01 * k
        run["n_pairs"] = dict.fromkeys(run["n_pairs"], 5000)
        run["n_singles"] = 5000
    claims = chapter.check_claims(m)
    assert claims["exponent_near_two"] and claims["correlated_below_two"]
    assert claims["extra_step_above_two"] and claims["pairs_harder"]
    assert claims["composed_help_singles"] and claims["composed_beat_equal_steps"]
    assert claims["luck_free_near_two"] and claims["steps_independent"]
    for run in m["runs"]:
        for s in run["solvers"]:
            s["y"]["sequential"] = s["x"] ** 1.3
    assert not chapter.check_claims(m)["exponent_near_two"]
    m["runs"][1]["extra"]["single"]["x"] = 0.9
    assert not chapter.check_claims(m)["composed_help_singles"]


def test_llm_path_on_a_local_model(tmp_path, save_local_model):
    words = ["Question", "Answer", ":", "What", "is", "?"] + [str(i) for i in range(100)]
    save_local_model(tmp_path, words)
    solver = llm.LLMSolver(str(tmp_path), max_new_tokens=2)
    rng = np.random.default_rng(0)
    questions = pipeline.single_questions(1, rng)[:3]
    text = llm.prompt(questions[0], questions[1:])
    assert text.count("Answer:") == 3 and text.endswith("Answer:")
    assert 0.0 <= solver.accuracy(questions[:2], questions[2:]) <= 1.0
    assert llm.read_answer(" 42 and 7") == 42 and llm.read_answer("none") is None
    with pytest.raises(ValueError, match="model_name"):
        llm.LLMSolver("")
