"""Unit tests of ``reprobook.chapters``: reading a chapter's front matter and finding
chapters."""

import textwrap
from pathlib import Path

import pytest
import yaml

from reprobook import chapters, results


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def _front_matter(reprobook_block):
    return (
        "---\n"
        + yaml.safe_dump({"reprobook": reprobook_block}, sort_keys=False)
        + "---\n\n# Body\n"
    )


GOOD_BLOCK = {
    "title": "A test chapter",
    "profiles": {"smoke": 100, "full": 1000},
    "metrics_keys": ["a", "b"],
}


def test_load_chapter_parses_the_reprobook_block(tmp_path):
    path = _write(tmp_path / "ch42-test.md", _front_matter(GOOD_BLOCK))
    chapter = chapters.load_chapter(path)
    assert chapter.id == "ch42-test"
    assert chapter.source == path
    assert chapter.title == "A test chapter"
    assert chapter.profiles == {"smoke": 100.0, "full": 1000.0}
    assert chapter.metrics_keys == ("a", "b")
    assert chapter.budget("smoke") == 100.0
    assert chapter.executed_path == tmp_path / "ch42-test.ipynb"


def test_chapter_budget_of_unknown_profile_names_the_valid_ones(tmp_path):
    chapter = chapters.load_chapter(_write(tmp_path / "ch42-test.md", _front_matter(GOOD_BLOCK)))
    with pytest.raises(ValueError, match=r"unknown profile 'nope'.*smoke, full"):
        chapter.budget("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# no front matter at all\n", "no 'reprobook:' block"),
        ("---\ntitle: x\n---\n", "no 'reprobook:' block"),
        ("---\nreprobook: 3\n---\n", "no 'reprobook:' block"),
        (_front_matter({"title": "t", "profiles": {"full": 10}}), "at least 'smoke'"),
        (_front_matter({"title": "t"}), "at least 'smoke'"),
        (_front_matter({"title": "t", "profiles": {"smoke": 0}}), "positive number"),
        (_front_matter({"title": "t", "profiles": {"smoke": 10, "full": -5}}), "positive number"),
        (_front_matter({"title": "t", "profiles": {"smoke": "fast"}}), "positive number"),
        ("---\nreprobook:\n  title: t\n", "never closed"),
    ],
)
def test_load_chapter_refuses_incomplete_metadata(tmp_path, text, message):
    path = _write(tmp_path / "ch42-test.md", text)
    with pytest.raises(ValueError, match=message):
        chapters.load_chapter(path)


def test_get_chapter_unknown():
    with pytest.raises(ValueError, match="unknown chapter 'nope'"):
        chapters.get_chapter("nope")


def test_get_chapter_by_number_prefix():
    if not (chapters.notebooks_dir() / "ch10-bayesian-oracle.md").is_file():
        pytest.skip("notebooks/ch10-bayesian-oracle.md does not exist yet")
    assert chapters.get_chapter("ch10").id == "ch10-bayesian-oracle"
    assert chapters.get_chapter("ch10-bayesian-oracle").id == "ch10-bayesian-oracle"


def test_find_chapters_in_a_temporary_root(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROBOOK_ROOT", str(tmp_path))
    _write(tmp_path / "notebooks" / "ch02-b.md", _front_matter(GOOD_BLOCK))
    _write(tmp_path / "notebooks" / "ch01-a.md", _front_matter(GOOD_BLOCK))
    _write(tmp_path / "notebooks" / "notes.md", "# not a chapter\n")
    assert [c.id for c in chapters.find_chapters()] == ["ch01-a", "ch02-b"]
    assert chapters.get_chapter("ch02").id == "ch02-b"


# --------------------------------------------------------------------------------------------
# regressions: bugs found in review
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profiles_yaml", ["[smoke]", "{smoke: true}"])
def test_chapter_budgets_must_be_a_mapping_of_numbers(tmp_path, profiles_yaml):
    path = tmp_path / "ch99-bad.md"
    path.write_text(f"---\nreprobook:\n  profiles: {profiles_yaml}\n---\n# x\n")
    with pytest.raises(ValueError):
        chapters.load_chapter(path)


def test_chapter_package_and_volatile_metrics_are_read_and_checked(tmp_path):
    source = tmp_path / "ch98-x.md"
    body = "---\nreprobook:\n  title: x\n  profiles: {smoke: 10}\n%s---\n"
    source.write_text(body % "  package: gfn\n  volatile_metrics: ['speed*']\n")
    chapter = chapters.load_chapter(source)
    assert chapter.package == "gfn" and chapter.volatile_metrics == ("speed*",)
    source.write_text(body % "  package: gfn.generalization\n")
    assert chapters.load_chapter(source).package == "gfn.generalization"
    for bad in ("[gfn]", "gfn..x", "Gfn", "gfn.1x"):
        source.write_text(body % f"  package: {bad}\n")
        with pytest.raises(ValueError, match="package"):
            chapters.load_chapter(source)
    source.write_text(body % "  volatile_metrics: speed\n")
    with pytest.raises(ValueError, match="volatile_metrics"):
        chapters.load_chapter(source)
    source.write_text(body % "  src_packages: [gfn]\n")
    with pytest.raises(ValueError, match="no longer read"):
        chapters.load_chapter(source)


def test_every_chapter_declares_an_existing_package():
    package_root = Path(results.__file__).parent
    for chapter in chapters.find_chapters():
        assert chapter.package, f"{chapter.id} should declare reprobook.package"
        folder = package_root / chapter.package.replace(".", "/")
        assert (folder / "__init__.py").is_file(), chapter.id
