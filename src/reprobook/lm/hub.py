"""Real checkpoints for readers with a network: a ``transformers`` causal LM as a plain
``tokens -> logits`` module.

The book itself never downloads anything (its chapters build their models from a config). A
reader who has a network, or a checkpoint on disk, can pass ``model_name`` (a hub id such as
``"gpt2"`` or a local folder) to use real weights. The model is loaded with eager attention,
which supports the higher-order gradients of a metagradient, in eval mode (no dropout: the
inner training must be a deterministic function of the weights), and its head can be untied
from the input embedding (GPT-2 ties them; a tied head cannot hold a pattern of its own).
"""

from __future__ import annotations

from torch import Tensor, nn


class HubCausalLM(nn.Module):
    """Wraps a ``transformers`` causal LM so that ``forward(tokens)`` returns the logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [batch, length], got shape {tuple(tokens.shape)}")
        return self.model(input_ids=tokens).logits

    @property
    def vocab(self) -> int:
        return self.model.get_output_embeddings().weight.shape[0]

    def head_name(self) -> str:
        """The name, in ``named_parameters()``, of the output head's weight ``[vocab, d]``."""
        head = self.model.get_output_embeddings().weight
        for name, parameter in self.named_parameters():
            if parameter is head:
                return name
        raise ValueError("the output head's weight is not among the model's parameters")


def untie_head(model: nn.Module) -> None:
    """Give a ``transformers`` model an output head of its own (a copy of the tied weights)."""
    head = model.get_output_embeddings()
    if head.weight is model.get_input_embeddings().weight:
        head.weight = nn.Parameter(head.weight.detach().clone())
    model.config.tie_word_embeddings = False


def load_causal_lm(model_name: str, untie: bool = True) -> HubCausalLM:
    """Load ``model_name`` (hub id or local folder) with ``transformers``, eager attention."""
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
    try:
        from transformers import AutoModelForCausalLM
    except ImportError as err:  # pragma: no cover - transformers is in the pinned environment
        raise ValueError("loading a model by name needs the transformers package") from err
    model = AutoModelForCausalLM.from_pretrained(model_name, attn_implementation="eager")
    if untie:
        untie_head(model)
    # Dropout off: the inner training must be a deterministic function of the weights w.
    return HubCausalLM(model).eval()
