"""Profiles: a named configuration of a chapter's experiment (``smoke`` for CI, ``full`` for real).

A chapter declares a table ``{profile: {knob: value}}``; ``resolve_profile`` picks one row and
applies the reader's overrides (a knob left as ``None`` in the parameters cell means "as the
profile says"). Every mistake raises ``ValueError`` naming what was wrong and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

Check = tuple[Callable[[Any], bool], str]


class Config(dict):
    """A resolved profile: a dict with attribute access and a display table."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def table(self) -> pd.DataFrame:
        """The configuration as a two-column table, for the notebook to show."""
        rows = [(k, _fmt(v)) for k, v in self.items()]
        return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")


def _fmt(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))


def resolve_profile(
    table: Mapping[str, Mapping[str, Any]],
    profile: str,
    overrides: Mapping[str, Any] | None = None,
    checks: Mapping[str, Check] | None = None,
) -> Config:
    """Resolve ``profile`` in ``table``, apply non-``None`` ``overrides``, validate with ``checks``.

    ``checks`` maps a knob to ``(predicate, description)``; a value failing its predicate raises
    ``ValueError("<knob> must be <description>, got ...")``.
    """
    if not isinstance(profile, str) or profile not in table:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(table)}")
    config = Config(table[profile])
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in config:
            raise ValueError(f"unknown setting {key!r}; valid settings: {', '.join(config)}")
        if not _same_kind(config[key], value):
            raise ValueError(
                f"{key} must be of type {type(config[key]).__name__} "
                f"(like the profile's {config[key]!r}), got {value!r}"
            )
        config[key] = type(config[key])(value) if isinstance(config[key], float) else value
    for key, (predicate, description) in (checks or {}).items():
        if key not in config:
            raise ValueError(f"check names unknown setting {key!r}")
        if not predicate(config[key]):
            raise ValueError(f"{key} must be {description}, got {config[key]!r}")
    return config
