"""GFlowNet training objectives on torchgfn, behind one builder and one step.

- ``tb``: trajectory balance (``TBGFlowNet``), a learned scalar log Z.
- ``db``: detailed balance (``DBGFlowNet``), a learned state flow log F(s).
- ``fldb``: forward-looking DB (``DBGFlowNet(forward_looking=True)``): log F(s) =
  log F~(s) + log R(s), with R defined on every state (every grid state can terminate), so the
  network learns only the correction F~ and each transition sees the rewards of its two states.
- ``subtb``: sub-trajectory balance (``SubTBGFlowNet``, geometric-within weighting, lambda 0.9).

All share the grid policies of ``reprobook.gfn.training.policy_estimators`` (uniform P_B), and
the flow networks have the policy's width and depth.
"""

from __future__ import annotations

import torch
from gfn.estimators import ScalarEstimator
from gfn.gflownet import DBGFlowNet, SubTBGFlowNet, TBGFlowNet
from gfn.gym import HyperGrid
from gfn.utils.modules import MLP

from reprobook.gfn.training import policy_estimators

LOSSES = ("tb", "db", "fldb", "subtb")
LOSS_LABELS = {"tb": "TB", "db": "DB", "fldb": "FL-DB", "subtb": "SubTB"}


def check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")


def build_gflownet(loss: str, env: HyperGrid, hidden_dim: int = 256, n_layers: int = 2):
    """A GFlowNet trained with ``loss`` on the grid ``env`` (see the module doc)."""
    check_loss(loss)
    pf, pb = policy_estimators(env, hidden_dim, n_layers)
    if loss == "tb":
        return TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0)
    log_flow = ScalarEstimator(
        MLP(
            input_dim=pf.preprocessor.output_dim, output_dim=1, hidden_dim=hidden_dim,
            n_hidden_layers=n_layers, activation_fn="leaky_relu",
        ),
        preprocessor=pf.preprocessor,
    )  # fmt: skip
    if loss == "subtb":
        return SubTBGFlowNet(pf=pf, pb=pb, logF=log_flow, weighting="geometric_within", lamda=0.9)
    return DBGFlowNet(pf=pf, pb=pb, logF=log_flow, forward_looking=loss == "fldb")


def optimizer(gflownet, lr: float, lr_logz: float) -> torch.optim.Adam:
    """Adam: networks (policy and log-flow) at ``lr``; TB's scalar log Z at ``lr_logz``."""
    groups = [{"params": list(gflownet.pf_pb_parameters()), "lr": lr}]
    if isinstance(gflownet, TBGFlowNet):
        groups.append({"params": list(gflownet.logz_parameters()), "lr": lr_logz})
    else:
        groups.append({"params": list(gflownet.logF_parameters()), "lr": lr})
    return torch.optim.Adam(groups)


def loss_value(gflownet, env: HyperGrid, trajectories) -> torch.Tensor:
    """The objective's mean loss on a batch of complete trajectories (DB on their transitions)."""
    samples = gflownet.to_training_samples(trajectories)
    return gflownet.loss(env, samples, recalculate_all_logprobs=True)


@torch.no_grad()
def log_partition(gflownet, env: HyperGrid) -> float:
    """The model's own estimate of log Z: TB's log Z; log F(s0) for DB and SubTB; for FL-DB,
    log F~(s0) + log R(s0)."""
    if isinstance(gflownet, TBGFlowNet):
        return float(gflownet.logZ)
    s0 = env.States(env.s0.unsqueeze(0))
    log_flow = float(gflownet.logF(s0).squeeze())
    if getattr(gflownet, "forward_looking", False):
        log_flow += float(env.log_reward(s0).squeeze())
    return log_flow
