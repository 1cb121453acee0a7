"""Unit tests of ``reprobook.cli``."""

from conftest import _chapter_md
from reprobook import cli


def test_cli_run_unknown_chapter(capsys):
    assert cli.main(["run", "nope"]) == 2
    assert "unknown chapter" in capsys.readouterr().err


def test_cli_run_bad_parameter(fake_root, capsys):
    _chapter_md(fake_root / "notebooks" / "ch97-cli.md", "x = 1")
    assert cli.main(["run", "ch97", "-p", "bogus", "1"]) == 2
    assert "unknown parameter 'bogus'" in capsys.readouterr().err


def test_cli_list(fake_root, capsys):
    _chapter_md(fake_root / "notebooks" / "ch97-cli.md", "x = 1")
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ch97-cli" in out
    assert "never run here" in out
    assert "missing" in out


def test_cli_list_in_the_real_checkout(capsys):
    assert cli.main(["list"]) == 0
    assert "chapter" in capsys.readouterr().out
