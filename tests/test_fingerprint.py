"""Unit tests of reprobook.fingerprint: flattening, volatile keys, comparison, the check."""

import json

import pytest

from conftest import _chapter_md
from reprobook import fingerprint


def test_flatten_gives_dotted_paths_with_list_indices():
    metrics = {"a": {"b": [1, {"c": 2.5}]}, "d": "x"}
    assert dict(fingerprint.flatten(metrics)) == {"a.b.0": 1, "a.b.1.c": 2.5, "d": "x"}


@pytest.mark.parametrize(
    ("path", "volatile"),
    [
        ("throughput_episode_steps_per_s", True),
        ("runs.tb.0.ms_per_iteration", True),
        ("cost.inner_run_s", True),
        ("bit_accuracy.f8-q8.compile_s", True),
        ("speed.gru.seconds.0", True),
        ("guarded.none.deaths", False),
        ("claims.bound_holds", False),
        ("alphas", False),
    ],
)
def test_default_volatile_patterns(path, volatile):
    assert fingerprint.is_volatile(path, fingerprint.VOLATILE_DEFAULT) is volatile


def test_chapter_patterns_match_whole_prefixes():
    patterns = ("speed*", "claims.*faster*")
    assert fingerprint.is_volatile("speed_ratios_512.gru", patterns)
    assert fingerprint.is_volatile("claims.chunked_faster_than_sequential_512", patterns)
    assert not fingerprint.is_volatile("claims.depth_helps", patterns)


def test_moved_metrics_respects_the_relative_tolerance():
    before = {"a": 1.0, "b": 2, "c": True, "d": "x"}
    assert fingerprint.moved_metrics(before, dict(before)) == []
    assert fingerprint.moved_metrics(before, {**before, "a": 1.0 + 5e-7}) == []
    moved = fingerprint.moved_metrics(before, {**before, "a": 1.01, "c": False})
    assert [m.path for m in moved] == ["a", "c"]
    assert "1.0 -> 1.01" in moved[0].describe() and "rel 0.01" in moved[0].describe()


def test_moved_metrics_reports_new_and_gone_keys_and_type_changes():
    moved = fingerprint.moved_metrics({"a": 1, "b": True}, {"b": 1, "c": 3})
    text = {m.path: m.describe() for m in moved}
    assert set(text) == {"a", "b", "c"}
    assert "gone" in text["a"] and "new metric" in text["c"]


def _chapter(root):
    (root / "requirements.txt").write_text("torch==2.13.0\n")
    (root / "constraints.txt").write_text("torch==2.13.0\n")
    return _chapter_md(root / "notebooks" / "ch99-test-chapter.md", "x = 1")


def test_check_is_current_then_names_each_change(fake_root):
    chapter = _chapter(fake_root)
    smoke = {"score": 0.5, "claims": {"ok": True}, "throughput_per_s": 10.0}
    made = fingerprint.make(chapter, smoke, "a" * 40)
    assert "throughput_per_s" not in made["smoke_metrics"]
    verdict = fingerprint.check(chapter, made, {**smoke, "throughput_per_s": 99.0})
    assert verdict.current and "current" in verdict.message()

    moved = fingerprint.check(chapter, made, {**smoke, "score": 0.75})
    assert not moved.current
    assert "score: 0.5 -> 0.75" in moved.message() and "make run CH=ch99" in moved.message()

    # Pinning something new changes nothing; a new pin of a package the run imported does.
    assert made["distributions"] == {"torch": "2.13.0"}  # imported and pinned; numpy unpinned
    (fake_root / "requirements.txt").write_text("torch==2.13.0\nnumpy==1.26.4\n")
    assert fingerprint.check(chapter, made).current
    (fake_root / "constraints.txt").write_text("torch==2.14.0\n")
    (fake_root / "requirements.txt").write_text("torch==2.14.0\n")
    changed = fingerprint.check(chapter, made)
    assert changed.requirements_changed and not changed.current
    assert "torch 2.13.0 -> 2.14.0" in changed.message()
    (fake_root / "requirements.txt").write_text("numpy==1.26.4\n")
    (fake_root / "constraints.txt").write_text("")
    assert "no longer pinned" in fingerprint.check(chapter, made).message()
    (fake_root / "requirements.txt").write_text("torch==2.13.0\n")

    source = chapter.source.read_text().replace("x = 1", "x = 2")
    chapter.source.write_text(source)
    verdict = fingerprint.check(chapter, made)
    assert verdict.code_changed and "code cells changed" in verdict.message()


def test_smoke_metrics_are_compared_on_the_cpu_that_recorded_them(fake_root):
    chapter = _chapter(fake_root)
    smoke = {"score": 0.5}
    made = fingerprint.make(chapter, smoke, "a" * 40)
    assert made["cpu"] == fingerprint.cpu_signature()
    made = {**made, "cpu": "GenuineIntel AVX512"}
    other = {"score": 0.5001}  # the same code, another CPU's rounding
    assert not fingerprint.check(chapter, made, other, cpu="GenuineIntel AVX512").current
    elsewhere = fingerprint.check(chapter, made, other, cpu="AuthenticAMD AVX512")
    assert elsewhere.current and not elsewhere.compared_metrics
    assert "not on this CPU (AuthenticAMD AVX512)" in elsewhere.message()
    added = fingerprint.add_cpu(chapter, made, other, "AuthenticAMD AVX512")
    assert added["smoke_metrics_other_cpus"] == {"AuthenticAMD AVX512": {"score": 0.5001}}
    assert fingerprint.check(chapter, added, other, cpu="AuthenticAMD AVX512").compared_metrics
    moved = fingerprint.check(chapter, added, {"score": 0.7}, cpu="AuthenticAMD AVX512")
    assert not moved.current and "score" in moved.message()
    assert fingerprint.check(chapter, added, smoke, cpu="GenuineIntel AVX512").current
    # a record from before CPUs were recorded stands for every CPU without its own
    legacy = {k: v for k, v in made.items() if k != "cpu"}
    assert fingerprint.recorded_metrics(legacy, "AnyCPU") == {"score": 0.5}
    assert fingerprint.add_cpu(chapter, legacy, other, "AnyCPU")["smoke_metrics_other_cpus"]
    # refused when the code changed since the full run
    chapter.source.write_text(chapter.source.read_text().replace("x = 1", "x = 2"))
    with pytest.raises(ValueError, match="cannot add a CPU to a stale record"):
        fingerprint.add_cpu(chapter, made, other, "SomeCPU")


def test_prose_edits_do_not_change_the_code_hash(fake_root):
    chapter = _chapter(fake_root)
    before = fingerprint.code_cells_hash(chapter)
    chapter.source.write_text(chapter.source.read_text().replace("# Runner test", "# Renamed"))
    assert fingerprint.code_cells_hash(chapter) == before


def test_write_and_load_round_trip(fake_root, tmp_path):
    chapter = _chapter(fake_root)
    made = fingerprint.make(chapter, {"score": 1.0}, None, note="bootstrapped")
    path = fingerprint.write(made, fingerprint.path_for(chapter.id, tmp_path))
    assert fingerprint.load(chapter.id, tmp_path) == json.loads(path.read_text())
    assert fingerprint.load("ch98-none", tmp_path) is None
    path.write_text(json.dumps({**made, "fingerprint_version": 0}))
    with pytest.raises(ValueError, match="fingerprint_version"):
        fingerprint.load(chapter.id, tmp_path)


def test_a_metric_that_was_zero_has_no_relative_change():
    (moved,) = fingerprint.moved_metrics({"a": 0}, {"a": 2})
    assert moved.describe() == "a: 0 -> 2 (by +2)"


def test_make_records_the_pinned_distributions_this_process_imported(fake_root):
    chapter = _chapter(fake_root)
    (fake_root / "requirements.txt").write_text("torch==2.13.0\nNumPy==1.26.4  # a comment\n")
    made = fingerprint.make(chapter, {"score": 1.0}, None)
    assert made["fingerprint_version"] == 2
    assert made["distributions"] == {"numpy": "1.26.4", "torch": "2.13.0"}
    given = fingerprint.make(chapter, {"score": 1.0}, None, distributions={"torch": "2.13.0+cpu"})
    assert given["distributions"] == {"torch": "2.13.0"}  # the pin, not the local build tag


def _version_1(chapter, smoke):
    made = fingerprint.make(chapter, smoke, "a" * 40)
    del made["distributions"]
    return {
        **made,
        "fingerprint_version": 1,
        "requirements_sha256": fingerprint.requirements_hash(),
    }


def test_version_1_records_are_checked_by_the_requirement_files(fake_root):
    chapter = _chapter(fake_root)
    old = _version_1(chapter, {"score": 1.0})
    assert fingerprint.check(chapter, old).current
    (fake_root / "constraints.txt").write_text("torch==2.13.0\nscipy==1.17.1\n")
    verdict = fingerprint.check(chapter, old)
    assert verdict.requirements_changed and "version 1 record" in verdict.message()


def test_migrate_only_rewrites_a_current_version_1_record(fake_root):
    chapter = _chapter(fake_root)
    old = _version_1(chapter, {"score": 1.0})
    new = fingerprint.migrate(chapter, old, {"score": 1.0}, {"torch": "2.13.0"})
    assert new["fingerprint_version"] == 2 and new["distributions"] == {"torch": "2.13.0"}
    assert "requirements_sha256" not in new and new["smoke_metrics"] == old["smoke_metrics"]
    assert new["git_sha"] == old["git_sha"] and "migrated" in new["note"]
    with pytest.raises(ValueError, match="stale"):
        fingerprint.migrate(chapter, old, {"score": 2.0}, {"torch": "2.13.0"})
    with pytest.raises(ValueError, match="only version 1"):
        fingerprint.migrate(chapter, new, {"score": 1.0}, {})
