"""Target metrics Phi on the target model's LM head, as defined by the official DPG code.

In the official code the head kernel is Flax's ``(d_model, vocab)``. Torch's ``nn.Linear``
stores the transpose, ``(vocab, d_model)``, so the paper's patch ``W[i:i+6, j:j+7]`` (hidden
dimensions i.., tokens j..) is ``head.weight.T[i:i+6, j:j+7]`` here: row r of the picture is
hidden unit r, column c is token c.

- ``sixseven``: Phi = -mean(log(1 + exp(-s * Y * (P - P0)))), s = 20, where P is the patch
  after training, P0 the same patch before it, and Y the +-1 picture of "67". The decoded
  picture is sign(P - P0); pixel accuracy is the share of its pixels equal to Y.
- ``l2_norm``: Phi = -||W||, the Frobenius norm of the whole head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# The official TARGET_67 (metagrad_server.py): +1 is one colour, -1 the other.
TARGET_67 = (
    (1, 1, 1, 1, -1, -1, -1),
    (-1, -1, -1, 1, 1, 1, -1),
    (-1, 1, 1, 1, 1, 1, -1),
    (-1, -1, -1, 1, 1, 1, -1),
    (-1, 1, -1, 1, 1, 1, -1),
    (-1, -1, -1, 1, 1, 1, 1),
)
STRENGTH = 20.0  # the official s
TARGETS = ("sixseven", "l2_norm")


def target_picture(dtype: torch.dtype = torch.float64) -> Tensor:
    """The "67" picture as a ``[6, 7]`` tensor of +-1."""
    return torch.tensor(TARGET_67, dtype=dtype)


def head_patch(head_weight: Tensor, rows: int = 6, cols: int = 7) -> Tensor:
    """The paper-oriented patch ``head_weight.T[:rows, :cols]`` (hidden units x tokens)."""
    if head_weight.dim() != 2:
        raise ValueError(f"head weight must be [vocab, d_model], got {tuple(head_weight.shape)}")
    vocab, width = head_weight.shape
    if vocab < cols or width < rows:
        raise ValueError(
            f"the {rows}x{cols} patch needs vocab >= {cols} and d_model >= {rows}; "
            f"the head is [vocab={vocab}, d_model={width}]"
        )
    return head_weight.T[:rows, :cols]


def sixseven_phi(head_weight: Tensor, initial_head: Tensor, strength: float = STRENGTH) -> Tensor:
    """The official logistic margin loss, negated, on the change of the "67" patch."""
    if head_weight.shape != initial_head.shape:
        raise ValueError(
            f"head {tuple(head_weight.shape)} and initial head {tuple(initial_head.shape)} differ"
        )
    diff = head_patch(head_weight) - head_patch(initial_head)
    picture = target_picture(diff.dtype).to(diff.device)
    return -F.softplus(-strength * picture * diff).mean()


def decoded_picture(head_weight: Tensor, initial_head: Tensor) -> Tensor:
    """sign(P - P0): the picture the training wrote into the head (0 where nothing moved)."""
    return torch.sign(head_patch(head_weight) - head_patch(initial_head))


PIXEL_CHARACTERS = {1: "+", -1: "-", 0: "0"}


def picture_to_text(picture: Tensor) -> list[str]:
    """A +-1/0 picture as one string per row ("+" for +1, "-" for -1, "0" for 0): compact JSON."""
    values = picture.to(torch.int64).tolist()
    if not all(v in PIXEL_CHARACTERS for row in values for v in row):
        raise ValueError("a decoded picture holds only -1, 0 and +1")
    return ["".join(PIXEL_CHARACTERS[v] for v in row) for row in values]


def picture_from_text(rows: list[str]) -> Tensor:
    """The inverse of ``picture_to_text``."""
    lookup = {c: v for v, c in PIXEL_CHARACTERS.items()}
    try:
        return torch.tensor([[lookup[c] for c in row] for row in rows], dtype=torch.int64)
    except KeyError as err:
        raise ValueError(f"unknown pixel character {err.args[0]!r}; use +, - or 0") from None


def pixel_accuracy(head_weight: Tensor, initial_head: Tensor) -> float:
    """Share of the 42 pixels of sign(P - P0) that match "67" (0.5 is chance)."""
    picture = target_picture(head_weight.dtype).to(head_weight.device)
    return float((decoded_picture(head_weight, initial_head) == picture).double().mean())


def l2_phi(head_weight: Tensor) -> Tensor:
    """-||W||: the official ``l2_norm`` target (Frobenius norm of the whole head)."""
    return -torch.linalg.norm(head_weight)


@dataclass(frozen=True)
class Target:
    """A named target: Phi of the trained parameters, and the head it reads."""

    name: str
    head_name: str
    initial_head: Tensor

    def phi(self, params: dict[str, Tensor]) -> Tensor:
        head = params[self.head_name]
        if self.name == "sixseven":
            return sixseven_phi(head, self.initial_head)
        return l2_phi(head)

    def describe(self, params: dict[str, Tensor]) -> dict[str, float]:
        """The numbers the chapter logs for trained parameters: Phi, pixel accuracy, norm."""
        head = params[self.head_name].detach()
        return {
            "phi": float(self.phi(params)),
            "pixel_accuracy": pixel_accuracy(head, self.initial_head),
            "head_norm": float(torch.linalg.norm(head)),
        }


def make_target(name: str, head_name: str, start: dict[str, Tensor]) -> Target:
    """The target ``name`` (one of ``TARGETS``) on parameter ``head_name`` of ``start``."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; valid targets: {', '.join(TARGETS)}")
    if head_name not in start:
        raise ValueError(f"no parameter {head_name!r}; parameters: {', '.join(start)}")
    head = start[head_name].detach()
    if name == "sixseven":
        head_patch(head)  # checks the head is big enough
    return Target(name, head_name, head.clone())


PhiFunction = Callable[[dict[str, Tensor]], Tensor]
