"""Unit tests of reprobook.lm.lifetime: the config-built GPT-NeoX, checkpoints, last-token
states and the real-checkpoint path (on a model and tokenizer saved locally)."""

import numpy as np
import pytest
import torch

from reprobook.lm import lifetime


def small(seed=0, vocab=30):
    return lifetime.build_neox(vocab, hidden=16, layers=2, heads=2, positions=32, seed=seed)


def test_lifetime_steps_hand_cases():
    assert lifetime.lifetime_steps(300, 3) == [0, 17, 300]
    assert lifetime.lifetime_steps(10, 11) == list(range(11))
    steps = lifetime.lifetime_steps(2000, 10)
    assert len(steps) == 10 and steps[0] == 0 and steps[-1] == 2000 and steps == sorted(set(steps))
    with pytest.raises(ValueError, match="at most"):
        lifetime.lifetime_steps(3, 5)


def test_pack_joins_documents_with_the_end_id():
    assert lifetime.pack([[5, 6], [7, 8, 9]], 5, end=0) == [5, 6, 0, 7, 8]
    with pytest.raises(ValueError, match="fewer"):
        lifetime.pack([[1]], 5, end=0)


def test_build_is_seeded_and_checked():
    a, b = small(seed=1), small(seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert a.config.model_type == "gpt_neox"
    with pytest.raises(ValueError, match="multiple"):
        lifetime.build_neox(30, 15, 2, 2, 32, 0)


def test_last_token_states_match_the_hidden_states():
    model = small()
    tokens = torch.randint(30, (5, 7), generator=torch.Generator().manual_seed(0))
    states = lifetime.last_token_states(model, tokens, batch=2)
    assert states.shape == (2, 5, 16)  # layers (embeddings left out), sentences, width
    with torch.no_grad():
        hidden = model(input_ids=tokens, output_hidden_states=True).hidden_states
    for layer in range(2):
        assert np.allclose(states[layer], hidden[layer + 1][:, -1].numpy(), atol=1e-5)


def test_right_padding_reads_the_last_real_token():
    model = small()
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11]])
    alone = lifetime.last_token_states(model, short)
    both = lifetime.last_token_states(model, padded, lengths=[3, 5])
    assert np.allclose(both[:, 0], alone[:, 0], atol=1e-5)
    with pytest.raises(ValueError, match="lengths"):
        lifetime.last_token_states(model, padded, lengths=[0, 5])


def test_training_keeps_the_initialisation_and_learns():
    model = small()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    batch = torch.arange(1, 11).repeat(4, 1)  # a fixed sequence: easy to learn
    checkpoints, losses = lifetime.train_lifetime(model, lambda s: batch, 60, [0, 30, 60], 1e-2, 5)
    assert sorted(checkpoints) == [0, 30, 60]
    assert all(torch.equal(initial[k], checkpoints[0][k]) for k in initial)
    assert len(losses) == 60 and losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="checkpoint steps"):
        lifetime.train_lifetime(model, lambda s: batch, 5, [9], 1e-2, 0)


def test_pythia_revisions():
    assert lifetime.pythia_revision(0) == "step0"
    assert lifetime.pythia_revision(512) == "step512"
    assert lifetime.pythia_revision(143000) == "step143000"
    with pytest.raises(ValueError, match="Pythia publishes"):
        lifetime.pythia_revision(3)


def test_load_checkpoint_passes_the_revision(tmp_path, monkeypatch, save_local_model):
    save_local_model(tmp_path, ["a", "b"])
    model, tokenizer = lifetime.load_checkpoint(str(tmp_path))
    tokens, lengths = lifetime.encode_texts(tokenizer, ["a b", "b"])
    assert tokens.tolist() == [[2, 3], [3, 0]] and lengths == [2, 1]
    assert lifetime.last_token_states(model, tokens, lengths).shape == (2, 2, 16)

    import transformers

    seen = []

    def record(name, **kwargs):
        seen.append(kwargs.get("revision"))
        raise RuntimeError("stop")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", record)
    with pytest.raises(RuntimeError, match="stop"):
        lifetime.load_checkpoint("EleutherAI/pythia-410m-deduped", lifetime.pythia_revision(1000))
    assert seen == ["step1000"]
    with pytest.raises(ValueError, match="model_name"):
        lifetime.load_checkpoint("")
