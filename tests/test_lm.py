"""Unit tests for reprobook.lm: the small GPT, the synthetic language, sampling, pretraining and
loading real checkpoints (a GPT-2 built from a config and saved locally: nothing downloaded)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reprobook.lm import corpus, hub, models, sampling, training


def tiny(vocab=11, d_model=8, n_layers=2, n_heads=2, context=12, tied=False, seed=0):
    torch.manual_seed(seed)
    return models.TinyGPT(models.GPTConfig(vocab, d_model, n_layers, n_heads, context, tied))


# --- models --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(vocab=1, d_model=8, n_layers=1, n_heads=2, context=4), "vocab"),
        (dict(vocab=8, d_model=0, n_layers=1, n_heads=1, context=4), "d_model"),
        (dict(vocab=8, d_model=6, n_layers=1, n_heads=4, context=4), "divisible"),
        (dict(vocab=8, d_model=8, n_layers=1, n_heads=2, context=2.5), "context"),
    ],
)
def test_config_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.GPTConfig(**kwargs)


def test_logits_shape_and_untied_head():
    model = tiny()
    logits = model(torch.randint(11, (3, 7)))
    assert logits.shape == (3, 7, 11)
    assert model.head.weight is not model.embed.weight
    assert model.head.bias is None  # GPT-2's head has no bias
    tied = tiny(tied=True)
    assert tied.head.weight is tied.embed.weight


def test_causal_attention_ignores_the_future():
    model = tiny()
    tokens = torch.randint(11, (2, 9))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 11
    before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_model_rejects_bad_input():
    model = tiny(context=6)
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, length"):
        model(torch.zeros(7, dtype=torch.long))


def test_gpt2_initialisation_and_parameter_count():
    model = tiny(vocab=50, d_model=16, n_layers=1)
    assert abs(model.head.weight.std().item() - 0.02) < 0.005
    assert model.blocks[0].qkv.bias.abs().max() == 0
    expected = 50 * 16 * 2 + 12 * 16 + (2 * 16 + 16 * 48 + 48 + 16 * 16 + 16) + (
        2 * 16 + 16 * 64 + 64 + 64 * 16 + 16
    ) + 2 * 16  # fmt: skip
    assert models.count_parameters(model) == expected


# --- corpus --------------------------------------------------------------------------------


def test_markov_language_is_stochastic_and_seeded():
    a, b = corpus.markov_language(6, 0.5, 3), corpus.markov_language(6, 0.5, 3)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.sum(1), torch.ones(6, dtype=torch.float64))
    assert not torch.allclose(a, corpus.markov_language(6, 0.5, 4))
    with pytest.raises(ValueError, match="vocab"):
        corpus.markov_language(1, 0.5, 0)
    with pytest.raises(ValueError, match="concentration"):
        corpus.markov_language(4, 0.0, 0)


def test_stream_follows_the_chain():
    cycle = torch.roll(torch.eye(5, dtype=torch.float64), 1, dims=1)  # i -> i + 1 mod 5
    stream = corpus.sample_stream(cycle, 40, torch.Generator().manual_seed(0))
    assert torch.equal((stream[1:] - stream[:-1]) % 5, torch.ones(39, dtype=torch.long))


def test_stream_rejects_bad_chains():
    rng = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="square"):
        corpus.sample_stream(torch.ones(2, 3) / 3, 5, rng)
    with pytest.raises(ValueError, match="sum to 1"):
        corpus.sample_stream(torch.ones(3, 3, dtype=torch.float64), 5, rng)
    with pytest.raises(ValueError, match="length"):
        corpus.sample_stream(torch.eye(3, dtype=torch.float64), 0, rng)


def test_stream_frequencies_match_the_chain():
    chain = torch.tensor([[0.9, 0.1], [0.5, 0.5]], dtype=torch.float64)
    stream = corpus.sample_stream(chain, 20_000, torch.Generator().manual_seed(1))
    after_zero = stream[1:][stream[:-1] == 0].double().mean().item()  # P(next = 1 | 0)
    assert abs(after_zero - 0.1) < 0.015


def test_entropy_rate_hand_cases():
    assert corpus.entropy_rate(torch.full((4, 4), 0.25, dtype=torch.float64)) == pytest.approx(
        math.log(4)
    )
    cycle = torch.roll(torch.eye(3, dtype=torch.float64), 1, dims=1)
    assert corpus.entropy_rate(cycle) == pytest.approx(0.0, abs=1e-12)


def test_random_windows_are_contiguous():
    stream = torch.arange(50)
    windows = corpus.random_windows(stream, 8, 5, torch.Generator().manual_seed(0))
    assert windows.shape == (8, 5)
    assert torch.equal(windows[:, 1:] - windows[:, :-1], torch.ones(8, 4, dtype=torch.long))
    assert corpus.random_windows(stream, 3, 50, torch.Generator()).eq(stream).all()
    with pytest.raises(ValueError, match="length"):
        corpus.random_windows(stream, 2, 51, torch.Generator())
    with pytest.raises(ValueError, match="batch"):
        corpus.random_windows(stream, 0, 5, torch.Generator())
    with pytest.raises(ValueError, match="1-D"):
        corpus.random_windows(stream.reshape(5, 10), 1, 2, torch.Generator())


# --- sampling ------------------------------------------------------------------------------


class FixedNext(torch.nn.Module):
    """Always predicts token ``(last + 1) % vocab`` with certainty."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens):
        return F.one_hot((tokens + 1) % self.vocab, self.vocab).float() * 50.0


def test_sampling_keeps_prompts_and_follows_the_model():
    prompts = torch.tensor([[0, 1], [3, 4]])
    out = sampling.sample_continuations(FixedNext(5), prompts, 4, torch.Generator())
    assert torch.equal(out[:, :2], prompts)
    assert torch.equal(out[0, 2:], torch.tensor([2, 3, 4, 0]))
    assert torch.equal(out[1, 2:], torch.tensor([0, 1, 2, 3]))


def test_sampling_is_seeded_and_validates():
    model = tiny()
    prompts = torch.randint(11, (4, 3))
    a = sampling.sample_continuations(model, prompts, 5, torch.Generator().manual_seed(2))
    b = sampling.sample_continuations(model, prompts, 5, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="n_new"):
        sampling.sample_continuations(model, prompts, 0, torch.Generator())
    with pytest.raises(ValueError, match="temperature"):
        sampling.sample_continuations(model, prompts, 2, torch.Generator(), temperature=0)
    with pytest.raises(ValueError, match="prompts"):
        sampling.sample_continuations(model, prompts[0], 2, torch.Generator())


def test_continuation_logprobs_by_hand():
    model = tiny()
    tokens = torch.randint(11, (2, 8))
    got = sampling.continuation_logprobs(model, tokens, 3)
    logp = model(tokens).log_softmax(-1)
    expected = torch.stack(
        [torch.stack([logp[b, t - 1, tokens[b, t]] for t in range(3, 8)]) for b in range(2)]
    )
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="prompt_length"):
        sampling.continuation_logprobs(model, tokens, 8)


# --- training ------------------------------------------------------------------------------


def test_pretraining_learns_a_deterministic_chain():
    cycle = torch.roll(torch.eye(7, dtype=torch.float64), 1, dims=1)
    stream = corpus.sample_stream(cycle, 500, torch.Generator().manual_seed(0))
    model = tiny(vocab=7, context=10)
    losses = training.pretrain(model, stream, 60, 16, 10, 1e-2, torch.Generator().manual_seed(0))
    assert len(losses) == 60 and losses[-1] < 0.3 * losses[0]
    windows = corpus.random_windows(stream, 4, 10, torch.Generator())
    assert training.evaluate_loss(model, windows) < 0.5


def test_pretraining_validates():
    with pytest.raises(ValueError, match="steps"):
        training.pretrain(tiny(), torch.arange(20) % 11, 0, 2, 4, 1e-3, torch.Generator())
    with pytest.raises(ValueError, match="lr"):
        training.pretrain(tiny(), torch.arange(20) % 11, 1, 2, 4, 0.0, torch.Generator())


# --- hub: real checkpoints, offline --------------------------------------------------------


def test_load_causal_lm_unties_and_matches(saved_gpt2):
    folder, original = saved_gpt2
    assert original.lm_head.weight is original.transformer.wte.weight  # GPT-2 ties its head
    lm = hub.load_causal_lm(str(folder))
    assert not lm.training  # eval mode: no dropout
    assert lm.vocab == 40
    inner = lm.model
    assert inner.lm_head.weight is not inner.transformer.wte.weight
    torch.testing.assert_close(inner.lm_head.weight, original.lm_head.weight)
    assert lm.head_name() == "model.lm_head.weight"
    tokens = torch.randint(40, (2, 6))
    original.eval()
    torch.testing.assert_close(lm(tokens), original(input_ids=tokens).logits)
    with pytest.raises(ValueError, match="batch, length"):
        lm(tokens[0])


def test_load_causal_lm_validates_its_name():
    with pytest.raises(ValueError, match="model_name"):
        hub.load_causal_lm("")


def test_chain_nll_by_hand():
    chain = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75], [1.0, 0.0, 0.0]], dtype=torch.float64)
    tokens = torch.tensor([[0, 1, 2, 0], [2, 0, 0, 1]])
    # from position 1: row 0 scores 0->1, 1->2, 2->0; row 1 scores 2->0, 0->0, 0->1
    expected = torch.tensor(
        [-(math.log(0.5) + math.log(0.75) + 0.0) / 3, -(0.0 + 2 * math.log(0.5)) / 3],
        dtype=torch.float64,
    )
    torch.testing.assert_close(corpus.chain_nll(chain, tokens), expected)
    # from position 3 (a continuation after a prompt of 3): one transition each
    torch.testing.assert_close(
        corpus.chain_nll(chain, tokens, 3),
        torch.tensor([-math.log(1.0), -math.log(0.5)], dtype=torch.float64),
    )
    impossible = corpus.chain_nll(chain, torch.tensor([[0, 2]]))  # probability 0: finite, huge
    assert torch.isfinite(impossible).all() and impossible.item() > 600
    single = corpus.chain_nll(chain.float(), torch.tensor([[0, 2]]))  # also from float32
    assert torch.isfinite(single).all() and single.item() > 600
    with pytest.raises(ValueError, match="start"):
        corpus.chain_nll(chain, tokens, 0)
    with pytest.raises(ValueError, match="tokens must be in"):
        corpus.chain_nll(chain, torch.tensor([[0, 3]]))


def test_chain_nll_of_the_chains_own_text_is_near_its_entropy_rate():
    chain = corpus.markov_language(8, 0.5, 0)
    stream = corpus.sample_stream(chain, 20_000, torch.Generator().manual_seed(0))
    nll = corpus.chain_nll(chain, stream[None, :]).item()
    assert abs(nll - corpus.entropy_rate(chain)) < 0.05


def test_rare_transition_share_by_hand():
    chain = torch.tensor(
        [[0.5, 0.5, 0.0], [0.0, 0.9995, 0.0005], [1.0, 0.0, 0.0]], dtype=torch.float64
    )
    tokens = torch.tensor([[0, 1, 2, 0], [2, 0, 0, 1]])  # 1->2 is rare (5e-4)
    share = corpus.rare_transition_share(chain, tokens)
    torch.testing.assert_close(share, torch.tensor([1 / 3, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="start"):
        corpus.rare_transition_share(chain, tokens, 4)
    with pytest.raises(ValueError, match="threshold"):
        corpus.rare_transition_share(chain, tokens, threshold=0.0)
    with pytest.raises(ValueError, match="batch, length"):
        corpus.rare_transition_share(chain, tokens[0])
