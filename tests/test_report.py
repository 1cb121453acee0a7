"""Unit tests of reprobook.report: statistics, the verdict, tables, the protocols, glue."""

import math
import types

import pytest
from scipy import stats

from reprobook import report


def test_mean_se_by_hand():
    mean, se = report.mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1.0 / math.sqrt(3))
    assert report.mean_se([4.0]) == (4.0, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        report.mean_se([])


def test_fmt_mean_se():
    assert report.fmt_mean_se([1.0, 2.0, 3.0], digits=2) == "2.00 ± 0.58"
    assert report.fmt_mean_se([0.25], digits=2, scale=100) == "25.00"


def test_paired_matches_scipy_and_counts_wins():
    a, b = [0.9, 0.8, 0.95, 0.7], [0.85, 0.82, 0.9, 0.6]
    result = report.paired(a, b)
    assert result.mean == pytest.approx((0.05 - 0.02 + 0.05 + 0.1) / 4)
    assert result.p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert result.wins == 3 and result.n == 4
    assert "higher in 3 of 4" in result.text()
    with pytest.raises(ValueError, match="equal"):
        report.paired([1.0], [1.0, 2.0])


def test_paired_one_sided_p_values_match_scipy():
    a, b = [3.0, 5.0, 4.0], [1.0, 1.0, 2.0]
    result = report.paired(a, b)
    assert result.p_higher == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue)
    assert result.p_lower == pytest.approx(stats.ttest_rel(a, b, alternative="less").pvalue)
    reverse = report.paired(b, a)
    assert reverse.p_higher == pytest.approx(result.p_lower)
    text = result.higher_text(1, word="more")
    assert text.startswith("+2.7 ± 0.7, one-sided paired t-test p = ") and text.endswith(
        "; more in 3 of 3"
    )
    assert report.paired([2.0], [1.0]).higher_text(1) == "+1.0; higher in 1 of 1"
    assert report.paired([2.0], [1.0]).p_higher is None


def test_paired_p_edge_cases():
    assert report.paired_p([0.1]) is None
    assert report.paired_p([0.0, 0.0]) == 1.0
    assert report.paired_p([0.2, 0.2, 0.2]) == 0.0


def test_verdict():
    claims = {"a": True, "b": False, "c": True}
    assert report.verdict(claims, ["a", "c"]) == "reproduced"
    assert report.verdict(claims, ["a", "b"]) == "partly reproduced"
    assert report.verdict(claims, ["b"]) == "not reproduced"
    with pytest.raises(ValueError, match="not checked"):
        report.verdict(claims, ["d"])


def test_claims_table_marks_headline_and_failures():
    table = report.claims_table({"a": True, "b": False}, {"a": "A holds"}, ["a"])
    assert list(table.index) == ["A holds", "b"]
    assert table.loc["A holds", "headline"] == "yes"
    assert table.loc["b", "holds in this run"] == "no"


def test_readable_checks_version_and_keys():
    assert report.readable({"metrics_version": 2, "x": 1}, 2, ["x"])
    assert not report.readable({"metrics_version": 1, "x": 1}, 2, ["x"])
    assert not report.readable({"metrics_version": 2}, 2, ["x"])
    assert report.readable({"x": 1}, None, ["x"])


def test_profiles_table_side_by_side_marks_the_page():
    table = {"smoke": {"n": 10, "lr": 0.1}, "full": {"n": 1000, "lr": 0.1}}
    frame = report.profiles_table(table, "full", {"n": 2000, "lr": 0.1})
    assert list(frame.columns) == ["smoke", "full (this page)"]
    assert frame.loc["n", "full (this page)"] == "2000"
    with pytest.raises(ValueError, match="valid profiles"):
        report.profiles_table(table, "large", {})


def test_protocol_gaps_names_what_a_module_lacks():
    module = types.ModuleType("fake")
    module.PROFILES = {}
    assert report.protocol_gaps(module, report.ChapterStudy) == ["resolve_config"]
    module.resolve_config = 3
    assert report.protocol_gaps(module, report.ChapterStudy) == ["resolve_config (not callable)"]


def _fake_report():
    module = types.ModuleType("fake_report")
    module.PAPER_CLAIM = "x beats y"
    module.HEADLINE_CLAIMS = ("main", "full_only")
    module.KEY_ANCHOR = "headline"
    module.check_claims = lambda m: {"main": True}
    module.key_number = lambda m: f"score {m['score']:.2f}"
    return module


def test_at_a_glance_judges_only_full_runs(monkeypatch):
    glued = {}
    monkeypatch.setattr(report, "glue", glued.update)
    anchor = types.SimpleNamespace(paper="0.9", verified=False, figure="Table 1")
    monkeypatch.setattr(report.anchors_mod, "load_anchors", lambda ch: {"headline": anchor})
    shown = report.Shown({"score": 0.5}, "this full run", "full", 90.0, "cpu: x86_64")
    values = report.at_a_glance("ch99-x", _fake_report(), shown)
    assert values["glance_verdict"].startswith("**reproduced**")
    assert "1 need the full profile" in values["glance_verdict"]
    assert values["glance_key"] == "score 0.50; paper: 0.9 (not verified) (Table 1)"
    assert values["glance_run"] == "`full` profile, 90 s on cpu: x86_64"
    assert "make run CH=ch99-x" in values["reproduce_commands"]
    assert glued == values
    smoke = report.Shown({"score": 0.5}, "this smoke run", "smoke", 30.0, "cpu")
    verdict = report.at_a_glance("ch99-x", _fake_report(), smoke)["glance_verdict"]
    assert verdict.startswith("**not judged: a `smoke` run is too small**")


def test_shown_path_is_relative_inside_the_repository(tmp_path):
    from reprobook.chapters import repo_root

    assert report.shown_path(repo_root() / "results" / "ch10-x" / "full") == "results/ch10-x/full"
    assert report.shown_path(tmp_path / "ch10-x" / "smoke") == "<results dir>/ch10-x/smoke"


def test_fmt_seconds_and_pct():
    assert report.fmt_seconds(45) == "45 s" and report.fmt_seconds(450) == "7.5 min"
    assert report.pct(0.0075) == "0.8 %" and report.pct(0.5, 0) == "50 %"


def test_held_text_names_the_outcome_or_says_it_was_not_checked():
    claims = {"a": True, "b": False}
    assert report.held_text(claims, "a") == "holds"
    assert report.held_text(claims, "b") == "does not hold"
    assert report.held_text(claims, "c") == "not tested"
    assert report.held_text(claims, "c", "not checked (one seed)") == "not checked (one seed)"


def test_per_seed():
    assert report.per_seed([12, 9, 14]) == "12/9/14"
    assert report.per_seed([0.5, 0.25], 3) == "0.500/0.250"
    assert report.per_seed([]) == ""
