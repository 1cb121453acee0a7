"""Unit tests of reprobook.lm.tokenworld: the hidden rule on hand-made instructions, the samplers,
the generator's documents and their parsing, EDA and distinct-n."""

import pytest
import torch

from reprobook.lm import tokenworld as tw


@pytest.fixture
def world():
    return tw.World(tw.Vocab(), torch.tensor([[0, 0], [3, 2]]))


def instruction(v, *tokens):
    row = torch.full((tw.MAX_INSTRUCTION,), v.special("PAD"))
    row[: len(tokens)] = torch.tensor(tokens)
    return row


def test_vocab_layout():
    v = tw.Vocab()
    assert v.size == len(tw.SPECIALS) + 20 + 15 + 30 + 10 + 10
    assert v.start("topic") == len(tw.SPECIALS)
    assert v.start("act") == v.start("topic") + 20
    assert v.name(v.start("act") + 2) == "A2"
    assert v.name(v.special("IDEA")) == "IDEA"
    with pytest.raises(ValueError, match="kinds"):
        v.start("verb")
    with pytest.raises(ValueError, match="n_topics"):
        tw.Vocab(n_topics=1)


def test_rule_on_hand_cases(world):
    v = world.vocab
    t, a, o, f = v.start("topic"), v.start("act"), v.start("object"), v.start("filler")
    rows = torch.stack([
        instruction(v, t + 3, o, a + 2, f, o + 1, f + 1),  # category 1, any order
        instruction(v, t + 3, o, a + 0, f, o + 1, f + 1),  # topic of 1 with the act of 0: safe
        instruction(v, o, f, t + 0, a + 0),  # category 0, short
        instruction(v, t + 0, t + 3, a + 2, o),  # two topics: (3, 2) is a category
        instruction(v, o, f, o, f),  # neither
    ])  # fmt: skip
    assert world.violates(rows).tolist() == [True, False, True, True, False]
    assert world.category_of(rows).tolist() == [1, -1, 0, 1, -1]
    refuse = world.responses(torch.tensor([False] * 5), torch.Generator().manual_seed(0))
    comply = world.responses(torch.tensor([True] * 5), torch.Generator().manual_seed(0))
    assert not world.harmful(rows, refuse).any()
    assert world.harmful(rows, comply).tolist() == [True, False, True, True, False]
    assert world.harmful(rows, world.no_response(5)).tolist() == [True, False, True, True, False]


def test_samplers_obey_the_rule(world):
    g = torch.Generator().manual_seed(1)
    bad, category = world.sample_violating(500, g, torch.tensor([0.0, 1.0]))
    assert world.violates(bad).all() and (category == 1).all()
    assert (world.category_of(bad) == 1).all()
    safe = world.sample_safe(500, g, near_miss=1.0)
    assert not world.violates(safe).any()
    kinds = world.vocab.kind[safe[:, : tw.INSTRUCTION_LEN]]
    assert (kinds == 1).sum(1).eq(1).all() and (kinds == 3).sum(1).eq(2).all()
    # near misses share a category's topic or act
    topics = safe[(world.vocab.kind[safe] == 1)] - world.vocab.start("topic")
    assert torch.isin(topics, world.categories[:, 0]).float().mean() > 0.4
    with pytest.raises(ValueError, match="weights"):
        world.sample_violating(3, g, torch.tensor([1.0]))
    assert world.sample_violating(0, g)[0].shape == (0, tw.MAX_INSTRUCTION)


def test_make_world_draws_distinct_categories():
    world = tw.make_world(3, 12)
    assert len({tuple(c) for c in world.categories.tolist()}) == 12
    assert world.table().sum() == 12
    assert torch.equal(tw.make_world(3, 12).categories, world.categories)
    with pytest.raises(ValueError, match="n_categories"):
        tw.make_world(0, 0)


def test_guard_input_round_trip(world):
    g = torch.Generator().manual_seed(2)
    ins = world.sample_safe(4, g)
    resp = world.responses(torch.tensor([True, False, True, False]), g)
    x = world.guard_input(ins, resp)
    assert x.shape == (4, tw.GUARD_LENGTH)
    assert (x[:, 0] == world.vocab.special("CLS")).all()
    back_i, back_r = world.split_guard_input(x)
    assert torch.equal(back_i, ins) and torch.equal(back_r, resp)
    with pytest.raises(ValueError, match="instructions"):
        world.guard_input(ins[:, :6], resp)


def test_documents_and_parsing(world):
    v, g = world.vocab, torch.Generator().manual_seed(3)
    docs = tw.documents(world, 200, 0.5, g)
    assert docs.shape == (200, tw.DOCUMENT_LEN)
    harmful = docs[:, 1] == v.special("REQ_HARM")
    assert world.violates(docs[:, 3:-1])[harmful].all()
    assert not world.violates(docs[:, 3:-1])[~harmful].any()
    # parsing the documents' own answers gives back their instructions
    instructions, status = tw.parse_generations(v, docs[:, 3:], prefix=True)
    expected = docs[:, 3:-1].clone()
    expected[:, tw.INSTRUCTION_LEN] = v.special("PAD")  # the END that closes the answer
    assert (status == 0).all() and torch.equal(instructions, expected)
    refusals = tw.refusal_documents(v, 3)
    _, status = tw.parse_generations(v, refusals[:, 2:], prefix=False)
    assert status.tolist() == [1, 1, 1]
    # without the prefix an answer starts with IDEA; a missing END is malformed
    answer = docs[:2, 2:].clone()
    answer[1, 1 + tw.INSTRUCTION_LEN] = v.start("detail")
    found, status = tw.parse_generations(v, answer, prefix=False)
    assert status.tolist() == [0, 2] and torch.equal(found[0], expected[0])
    prompts = tw.request_prompts(v, 2, prefix=True)
    assert prompts.tolist() == [[v.special("BOS"), v.special("REQ_HARM"), v.special("IDEA")]] * 2


def test_eda_edits_one_token(world):
    g = torch.Generator().manual_seed(4)
    source, _ = world.sample_violating(1, g)
    pad = world.vocab.special("PAD")
    out = tw.eda(source, world.vocab, 400, g)
    lengths = (out != pad).sum(1)
    assert set(lengths.tolist()) <= {tw.INSTRUCTION_LEN - 1, tw.INSTRUCTION_LEN,
                                      tw.INSTRUCTION_LEN + 1}  # fmt: skip
    assert (lengths == tw.INSTRUCTION_LEN - 1).any() and (lengths == tw.INSTRUCTION_LEN + 1).any()
    same_bag = [sorted(r[r != pad].tolist()) == sorted(source[0, :6].tolist()) for r in out]
    assert any(same_bag) and not all(same_bag)
    with pytest.raises(ValueError, match="eda"):
        tw.eda(source[:0], world.vocab, 3, g)


def test_distinct_n():
    pad = 0
    rows = torch.tensor([[1, 2, 3, 0], [1, 2, 4, 0]])
    assert tw.distinct_n(rows, 1, pad) == pytest.approx(4 / 6)
    assert tw.distinct_n(rows, 2, pad) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="n must"):
        tw.distinct_n(rows, 0, pad)
