"""Unit tests of ``reprobook.profiles``: resolving a profile table with overrides."""

import pandas as pd
import pytest

from reprobook import profiles

TABLE = {
    "smoke": {"n_episodes": 100, "C": 0.1, "alphas": [0.1, 0.01], "verbose": False, "name": "s"},
    "full": {"n_episodes": 10_000, "C": 0.1, "alphas": [0.1, 0.01], "verbose": False, "name": "f"},
}


def test_resolve_profile_picks_a_row():
    config = profiles.resolve_profile(TABLE, "full")
    assert config == TABLE["full"]
    assert config is not TABLE["full"]


def test_resolve_profile_does_not_mutate_the_table():
    profiles.resolve_profile(TABLE, "smoke", {"n_episodes": 7})
    assert TABLE["smoke"]["n_episodes"] == 100


def test_resolve_profile_ignores_none_overrides():
    config = profiles.resolve_profile(TABLE, "smoke", {"n_episodes": None, "C": None})
    assert config == TABLE["smoke"]


def test_resolve_profile_applies_a_real_override():
    config = profiles.resolve_profile(TABLE, "smoke", {"n_episodes": 7, "alphas": (0.5,)})
    assert config["n_episodes"] == 7
    assert config["alphas"] == (0.5,)
    assert config["C"] == 0.1


def test_resolve_profile_accepts_an_int_for_a_float_knob():
    config = profiles.resolve_profile(TABLE, "smoke", {"C": 1})
    assert config["C"] == 1.0
    assert isinstance(config["C"], float)


def test_resolve_profile_unknown_profile_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown profile 'nope'.*smoke, full"):
        profiles.resolve_profile(TABLE, "nope")


def test_resolve_profile_unknown_setting_raises():
    with pytest.raises(ValueError, match=r"unknown setting 'bogus'.*n_episodes"):
        profiles.resolve_profile(TABLE, "smoke", {"bogus": 1})


@pytest.mark.parametrize(
    "overrides",
    [
        {"n_episodes": 1.5},  # float for an int knob
        {"n_episodes": "10"},  # str for an int knob
        {"n_episodes": True},  # bool is not an int here
        {"C": "0.1"},  # str for a float knob
        {"C": True},  # bool is not a float
        {"verbose": 1},  # int for a bool knob
        {"alphas": 0.1},  # scalar for a list knob
        {"name": 3},  # int for a str knob
    ],
)
def test_resolve_profile_wrong_type_raises(overrides):
    with pytest.raises(ValueError, match="must be of type"):
        profiles.resolve_profile(TABLE, "smoke", overrides)


def test_resolve_profile_failing_check_raises_with_its_description():
    checks = {"C": (lambda c: 0 < c <= 1, "in (0, 1]")}
    assert profiles.resolve_profile(TABLE, "smoke", {"C": 0.5}, checks).C == 0.5
    with pytest.raises(ValueError, match=r"C must be in \(0, 1\], got 2\.0"):
        profiles.resolve_profile(TABLE, "smoke", {"C": 2}, checks)


def test_resolve_profile_check_of_unknown_setting_raises():
    with pytest.raises(ValueError, match="unknown setting 'bogus'"):
        profiles.resolve_profile(TABLE, "smoke", checks={"bogus": (bool, "true")})


def test_config_attribute_access_and_table():
    config = profiles.resolve_profile(TABLE, "smoke")
    assert config.n_episodes == 100
    assert config.alphas == [0.1, 0.01]
    with pytest.raises(AttributeError):
        _ = config.missing
    table = config.table()
    assert isinstance(table, pd.DataFrame)
    assert table.index.name == "setting"
    assert list(table.index) == list(TABLE["smoke"])
    assert list(table.columns) == ["value"]
    assert table.loc["alphas", "value"] == "0.1, 0.01"
    assert table.loc["C", "value"] == "0.1"
    assert table.loc["n_episodes", "value"] == "100"
