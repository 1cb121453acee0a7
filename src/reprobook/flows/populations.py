"""A population: paired source and target points, the unit every task of this package is made of."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Population:
    """Paired source and target points of one population, and what it is.

    ``x0`` and ``x1`` are ``(n, d)`` float32 arrays with ``x1[i]`` the target of ``x0[i]``;
    ``name`` says which population this is (e.g. ``"A@36"``: letter A rotated by 36 degrees),
    ``source`` which source population it starts from (the name when empty: CGFM's one-hot
    indexes these) and ``treatment`` which treatment it received (0 when the task has one).
    """

    x0: np.ndarray
    x1: np.ndarray
    name: str
    source: str = ""
    treatment: int = 0

    def __post_init__(self) -> None:
        if self.x0.shape != self.x1.shape or self.x0.ndim != 2:
            raise ValueError(
                f"x0 and x1 must be paired (n, d) arrays, got {self.x0.shape} and {self.x1.shape}"
            )
        if not self.source:
            object.__setattr__(self, "source", self.name)
