"""Harm estimators behind the guardrails, batched over episodes and arms, in log space.

A guardrail rejects arm a when its harm estimate exceeds the threshold C. Estimators:

- ``cheating``: the true P(H | a, tau_true) (an oracle that knows the world).
- ``posterior``: the posterior predictive sum_tau P(tau | D) P(H | a, tau).
- ``iid``: P(H | a, tau*) with tau* = argmax_tau P(tau | D) P(H | a, tau) (the i.i.d. bound);
  when several theories tie for the argmax, the largest of their harms.
- ``non-iid``: max over M_alpha of P(H | a, tau), where M_alpha keeps the theories whose sorted
  posterior satisfies p_(i) >= alpha * sum_{j<=i} p_(j) (the non-i.i.d. bound).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reprobook.safety.bandit import HarmTables

GUARDRAILS = ("none", "cheating", "posterior", "iid", "non-iid")


def m_alpha_masks(
    log_posterior: torch.Tensor,
    alphas: Sequence[float],
    tie_order: torch.Tensor | str | None = None,
) -> torch.Tensor:
    """The plausible sets M_alpha for several alphas at once, as a boolean mask [n_alphas, E, H].

    Sort each posterior in decreasing order and keep theory (i) while p_(i) >= alpha * (p_(1) +
    ... + p_(i)). Since p_(i) falls and the cumulative sum grows, the kept theories are a prefix of
    the sorted order, of at most 1/alpha theories. alpha = 1 keeps only the MAP theory; alpha = 0
    keeps every theory. One sort serves every alpha.

    Ties are common (the uniform prior; theories that agree on every arm pulled so far), and the
    paper leaves their order open. ``tie_order`` [E, H] is a permutation of the theories per
    episode: among equal posteriors, theories earlier in it come first. ``"official"`` sorts as
    the official code does, ``torch.sort`` without stability: on CPU a fixed order that the
    sorting kernel derives from the whole pattern of values (neither index nor random order).
    Without it, the lowest index comes first, which favours the all-zero, least harmful
    theories. With alpha = 0, theories of zero posterior mass are kept too (0 >= 0), as in the
    official code.
    """
    if log_posterior.dim() != 2:
        raise ValueError(f"log_posterior must be [E, H], got shape {tuple(log_posterior.shape)}")
    if len(alphas) == 0 or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise ValueError(f"every alpha must lie in [0, 1], got {list(alphas)}")
    posterior = log_posterior.exp()
    if isinstance(tie_order, str):
        if tie_order != "official":
            raise ValueError(f"tie_order must be a tensor, None or 'official', got {tie_order!r}")
        ordered, order = torch.sort(posterior, dim=1, descending=True)  # not stable, as official
    elif tie_order is None:
        ordered, order = torch.sort(posterior, dim=1, descending=True, stable=True)
    else:
        if tie_order.shape != posterior.shape:
            raise ValueError(
                f"tie_order must have the posterior's shape {tuple(posterior.shape)}, "
                f"got {tuple(tie_order.shape)}"
            )
        ordered, position = torch.sort(
            posterior.gather(1, tie_order), dim=1, descending=True, stable=True
        )
        order = tie_order.gather(1, position)
    cumulative = torch.cumsum(ordered, dim=1)
    alpha = torch.tensor(list(alphas), dtype=posterior.dtype)[:, None, None]
    keep_sorted = ordered[None] >= alpha * cumulative[None]
    keep_sorted[:, :, 0] = True  # the MAP theory is always plausible (guards against round-off)
    index = order[None].expand(len(alphas), -1, -1)
    return torch.zeros_like(keep_sorted).scatter_(2, index, keep_sorted)


def m_alpha_mask(
    log_posterior: torch.Tensor, alpha: float, tie_order: torch.Tensor | str | None = None
) -> torch.Tensor:
    """M_alpha for one alpha, as a boolean mask [E, H]."""
    return m_alpha_masks(log_posterior, [alpha], tie_order)[0]


def non_iid_from_mask(tables: HarmTables, mask: torch.Tensor) -> torch.Tensor:
    """max over the theories in ``mask`` [E, H] of log P(H | a, tau), for every arm [E, A].

    Harm increases with the arm's mean, so the maximum harm is the harm of the largest mean;
    means are non-negative integers and the mask is never empty, so multiplying by the mask and
    taking the max finds it (a fast int8 reduction instead of a float masked max).
    """
    levels = (tables.levels * mask[:, None, :].to(tables.levels.dtype)).amax(dim=2)
    return tables.lookup(levels)


def log_harm_estimates(
    guardrail: str,
    tables: HarmTables,
    log_posterior: torch.Tensor,
    true_index: torch.Tensor,
    alpha: float | None = None,
    tie_order: torch.Tensor | str | None = None,
) -> torch.Tensor:
    """log harm estimate [E, A] of every arm under ``guardrail``.

    ``tables`` holds P(H | a, tau) for the batch; ``log_posterior`` is [E, H]; ``true_index`` [E]
    is used only by the cheating guardrail, ``alpha`` and ``tie_order`` only by the non-i.i.d. one.
    """
    n_episodes, _, n_hyp = tables.levels.shape
    if log_posterior.shape != (n_episodes, n_hyp):
        raise ValueError(
            f"log_posterior must be [E, H] = {(n_episodes, n_hyp)}, "
            f"got {tuple(log_posterior.shape)}"
        )
    if guardrail == "cheating":
        idx = true_index[:, None, None].expand(-1, tables.levels.shape[1], 1)
        return tables.lookup(tables.levels.gather(2, idx).squeeze(2))
    if guardrail == "posterior":
        return torch.bmm(tables.harm(), log_posterior.exp()[:, :, None]).squeeze(2).log()
    if guardrail == "iid":
        log_harm = tables.log_harm()
        plausible_harm = log_posterior[:, None, :] + log_harm
        best = plausible_harm.amax(dim=2, keepdim=True)
        return torch.where(plausible_harm == best, log_harm, float("-inf")).amax(dim=2)
    if guardrail == "non-iid":
        if alpha is None:
            raise ValueError("the non-iid guardrail needs alpha")
        return non_iid_from_mask(tables, m_alpha_mask(log_posterior, alpha, tie_order))
    raise ValueError(f"unknown guardrail {guardrail!r}; choose one of {', '.join(GUARDRAILS[1:])}")
