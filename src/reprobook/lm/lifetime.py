"""A language model's "lifetime": a GPT-NeoX (the Pythia architecture) built from a config,
trained with checkpoints saved at log-spaced steps, and the last-token hidden state of every
layer at each checkpoint.

Readers with a network can measure real Pythia checkpoints instead: ``load_checkpoint`` passes
``revision="step{n}"`` to ``from_pretrained`` (the official pipeline builds that name but never
passes it, so it always measures the final model).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.std import tqdm

PYTHIA_STEPS = (0, *(2**i for i in range(10)), *range(1000, 143001, 1000))


def build_neox(
    vocab: int, hidden: int, layers: int, heads: int, positions: int, seed: int
) -> nn.Module:
    """A ``GPTNeoXForCausalLM`` from a config (nothing downloaded), eager attention, seeded."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    if min(vocab, hidden, layers, heads, positions) < 1:
        raise ValueError("vocab, hidden, layers, heads and positions must all be positive")
    config = GPTNeoXConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * hidden, max_position_embeddings=positions, bos_token_id=0,
        eos_token_id=0, attn_implementation="eager",
    )  # fmt: skip
    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(config)


def lifetime_steps(total: int, count: int) -> list[int]:
    """``count`` checkpoint steps from 0 to ``total``: step 0, then log-spaced between 1 and
    ``total`` (as Pythia's 0, 1, 2, 4, ...; the point at 1 itself left out), distinct, ending at
    ``total``."""
    if total < 1 or count < 2:
        raise ValueError(f"need total >= 1 and count >= 2, got total={total}, count={count}")
    if count > total + 1:
        raise ValueError(f"at most total + 1 = {total + 1} distinct steps, got count={count}")
    steps = {0, total}
    n = count
    while len(steps) < count:  # widen the grid until rounding leaves enough distinct steps
        steps = {0} | {int(round(s)) for s in np.geomspace(1, total, n)[1:]}
        n += 1
    ordered = sorted(steps)
    return [*ordered[: count - 1], total] if len(ordered) > count else ordered


def pack(documents: Sequence[Sequence[int]], length: int, end: int) -> list[int]:
    """Documents joined by the ``end`` id and cut to ``length`` tokens (a packed window)."""
    out: list[int] = []
    for doc in documents:
        out += [*doc, end]
        if len(out) >= length:
            return out[:length]
    raise ValueError(f"the documents hold fewer than {length} tokens")


def train_lifetime(
    model: nn.Module,
    batches: Callable[[int], Tensor],
    steps: int,
    save_at: Sequence[int],
    lr: float,
    warmup: int,
    progress: bool = False,
) -> tuple[dict[int, dict[str, Tensor]], list[float]]:
    """AdamW next-token training for ``steps`` steps on ``batches(step)`` ([batch, length + 1]
    token ids), linear warm-up then cosine decay to a tenth, gradients clipped at 1; the
    weights are copied at every step in ``save_at`` (before that step's update, so step 0 is the
    initialisation). Returns the checkpoints and the loss per step."""
    if steps < 1 or not lr > 0 or warmup < 0:
        raise ValueError(f"need steps >= 1, lr > 0, warmup >= 0; got {steps}, {lr}, {warmup}")
    if any(not 0 <= s <= steps for s in save_at):
        raise ValueError(f"checkpoint steps must lie in [0, {steps}], got {list(save_at)}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / max(warmup, 1))
        return ramp * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    checkpoints: dict[int, dict[str, Tensor]] = {}
    losses: list[float] = []
    model.train()
    for step in tqdm(range(steps + 1), desc="training", disable=not progress, mininterval=10):
        if step in save_at:
            checkpoints[step] = copy.deepcopy(model.state_dict())
        if step == steps:
            break
        tokens = batches(step)
        logits = model(input_ids=tokens[:, :-1]).logits
        loss = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return checkpoints, losses


@torch.no_grad()
def last_token_states(
    model: nn.Module, tokens: Tensor, lengths: Sequence[int] | None = None, batch: int = 512
) -> np.ndarray:
    """``[layers, n, hidden]``: every transformer block's output (the embedding layer left out,
    as the paper) at each sequence's last real token. ``tokens`` is ``[n, length]``, right-padded
    when ``lengths`` is given."""
    if tokens.dim() != 2 or len(tokens) == 0:
        raise ValueError(
            f"tokens must be a non-empty [n, length] tensor, got {tuple(tokens.shape)}"
        )
    n, width = tokens.shape
    last = torch.full((n,), width - 1) if lengths is None else torch.as_tensor(lengths) - 1
    if len(last) != n or (last < 0).any() or (last >= width).any():
        raise ValueError(f"lengths must be {n} values in [1, {width}]")
    model.eval()
    body = getattr(model, "base_model", model)  # the transformer without the LM head: faster
    chunks = []
    for start in range(0, n, batch):
        rows = slice(start, start + batch)
        mask = (torch.arange(width)[None] <= last[rows, None]).long()
        out = body(input_ids=tokens[rows], attention_mask=mask, output_hidden_states=True)
        hidden = torch.stack(out.hidden_states[1:])  # [layers, b, length, d]
        chunks.append(hidden[:, torch.arange(len(last[rows])), last[rows]].float().numpy())
    return np.concatenate(chunks, axis=1)


def pythia_revision(step: int) -> str:
    """The hub revision of a published Pythia checkpoint, ``"step{n}"``."""
    if step not in PYTHIA_STEPS:
        raise ValueError(
            f"Pythia publishes steps 0, 1, 2, 4, ..., 512, 1000, 2000, ..., 143000; got {step}"
        )
    return f"step{step}"


def load_checkpoint(model_name: str, revision: str | None = None) -> tuple[nn.Module, object]:
    """A causal LM and its tokenizer by hub id or local folder, at ``revision`` (for Pythia,
    ``pythia_revision(step)``), in eval mode with eager attention."""
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {} if revision is None else {"revision": revision}
    model = AutoModelForCausalLM.from_pretrained(model_name, attn_implementation="eager", **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(model_name, **kwargs)
    return model.eval(), tokenizer


def encode_texts(tokenizer, texts: Sequence[str]) -> tuple[Tensor, list[int]]:
    """Right-padded token ids of ``texts`` (no special tokens added) and their lengths."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if not ids or min(map(len, ids)) == 0:
        raise ValueError("every text must have at least one token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(map(len, ids))
    tokens = torch.tensor([row + [pad or 0] * (width - len(row)) for row in ids])
    return tokens, [len(row) for row in ids]
