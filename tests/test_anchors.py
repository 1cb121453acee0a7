"""Unit tests of ``reprobook.anchors``: anchors.yaml and the comparison table."""

import pytest
import yaml

from conftest import CH
from reprobook import anchors


def _anchor(id_, verified=True, **changes):
    entry = {
        "id": id_,
        "quantity": f"quantity {id_}",
        "paper": f"value {id_}",
        "source": "arXiv:0000.00000v1",
        "figure": "Fig. 1",
        "tag": "P",
        "verified": verified,
    }
    entry.update(changes)
    return entry


def _anchors_file(tmp_path, entries):
    path = tmp_path / "anchors.yaml"
    path.write_text(yaml.safe_dump({"anchors": entries}, sort_keys=False))
    return path


def test_load_anchors(tmp_path):
    path = _anchors_file(tmp_path, [_anchor("b"), _anchor("a", verified=False, tag="S")])
    loaded = anchors.load_anchors(CH, path)
    assert list(loaded) == ["b", "a"]
    assert loaded["a"] == anchors.Anchor(
        "a", "quantity a", "value a", "arXiv:0000.00000v1", "Fig. 1", "S", False
    )
    assert loaded["b"].verified is True


def test_load_anchors_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no anchors file"):
        anchors.load_anchors(CH, tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{k: v for k, v in _anchor("a").items() if k != "source"}], "lacks source"),
        ([{k: v for k, v in _anchor("a").items() if k != "verified"}], "lacks verified"),
        ([_anchor("a", tag="X")], "tag 'X'"),
        ([_anchor("a"), _anchor("a")], "'a' appears twice"),
    ],
)
def test_load_anchors_refuses_bad_entries(tmp_path, entries, message):
    with pytest.raises(ValueError, match=message):
        anchors.load_anchors(CH, _anchors_file(tmp_path, entries))


def test_comparison_table(tmp_path):
    path = _anchors_file(tmp_path, [_anchor("x"), _anchor("y", verified=False, tag="S")])
    loaded = anchors.load_anchors(CH, path)
    table = anchors.comparison_table(loaded, {"x": "0.93 ± 0.01"})
    assert list(table.columns) == ["quantity", "paper", "read from", "this miniature"]
    assert list(table["quantity"]) == ["quantity x", "quantity y"]
    assert list(table["paper"]) == ["value x", "value y (not verified)"]
    assert list(table["this miniature"]) == ["0.93 ± 0.01", "not measured here"]
    assert table["read from"][1] == "Fig. 1; arXiv:0000.00000v1 [S]"


def test_comparison_table_refuses_unknown_ids(tmp_path):
    loaded = anchors.load_anchors(CH, _anchors_file(tmp_path, [_anchor("x")]))
    with pytest.raises(ValueError, match="unknown anchors: zz"):
        anchors.comparison_table(loaded, {"x": "1", "zz": "2"})


# --------------------------------------------------------------------------------------------
# regressions: bugs found in review
# --------------------------------------------------------------------------------------------


def test_anchor_verified_must_be_a_boolean(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "anchors:\n  - {id: a, quantity: q, paper: p, source: s, figure: f, tag: P, "
        "verified: 'false'}\n"
    )
    with pytest.raises(ValueError, match="verified must be true or false"):
        anchors.load_anchors("ch99-x", path)
