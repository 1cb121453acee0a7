"""Unit tests of reprobook.gfn.generalization."""

import pytest

from reprobook import report
from reprobook.gfn.generalization import report as chapter
from reprobook.gfn.generalization import study


def test_protocols():
    assert not report.protocol_gaps(chapter, report.ChapterReport)
    assert not report.protocol_gaps(study, report.ChapterStudy)


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="valid profiles"):
        study.resolve_config("nope")


def test_claims_on_a_hand_case():
    assert chapter.check_claims({"mean": 0.0, "n": 100}) == {"sanity": True}
    assert chapter.check_claims({"mean": 1.0, "n": 100}) == {"sanity": False}
