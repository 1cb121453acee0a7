"""Unit tests of reprobook.lm.grammar and reprobook.lm.text."""

from collections import Counter

import numpy as np
import pytest

from reprobook.lm import grammar, text


def test_thirteen_disjoint_slots_of_fifty_words():
    assert len(grammar.SLOTS) == 13
    assert all(len(slot) == grammar.N_WORDS == len(set(slot)) for slot in grammar.SLOTS)
    words = [w for slot in grammar.SLOTS for w in slot]
    assert len(set(words)) == 13 * 50
    assert not set(words) & set(grammar.DETERMINERS.values())


def test_sentence_layout():
    words = grammar.sentence([0] * 13)
    assert len(words) == 18  # 17 words and the period
    assert words[0] == "The" and words[5] == "the" and words[10] == "then" and words[12] == "the"
    assert words[-1] == grammar.PERIOD
    assert words[1] == grammar.SLOTS[0][0] and words[-2] == grammar.SLOTS[12][0]
    assert grammar.sentence([3, 4, 5]) == ["The", *(grammar.SLOTS[i][i + 3] for i in range(3)), "."]


@pytest.mark.parametrize(("k", "factors"), [(1, 13), (2, 7), (3, 5), (4, 4)])
def test_coupling_ties_blocks_of_k_slots(k, factors):
    assert grammar.n_factors(k) == factors
    rows = grammar.sample_indices(k, 200, np.random.default_rng(k))
    assert rows.shape == (200, 13)
    for start in range(0, 13, k):
        block = rows[:, start : start + k]
        assert (block == block[:, :1]).all()
    if k > 1:  # different blocks are independent draws
        assert (rows[:, 0] != rows[:, k]).mean() > 0.9


def test_shuffles_keep_the_words():
    rng = np.random.default_rng(0)
    words = grammar.sentence(grammar.sample_indices(1, 1, rng)[0])
    official = grammar.shuffle_words(words, rng)
    assert Counter(official) == Counter(words)
    at = official.index(grammar.PERIOD)
    assert official[at - 1] == words[-2]  # the period travels with the last word
    kept = grammar.shuffle_words(words, rng, keep_period=True)
    assert Counter(kept) == Counter(words) and kept[-1] == grammar.PERIOD
    moved = [grammar.shuffle_words(words, rng)[-1] != grammar.PERIOD for _ in range(50)]
    assert sum(moved) > 30  # usually a word ends the official shuffle


def test_unique_sentences_are_distinct_and_exclude():
    rng = np.random.default_rng(1)
    first = grammar.unique_sentences(4, 300, rng)
    keys = {tuple(r) for r in first}
    assert len(keys) == 300
    second = grammar.unique_sentences(4, 300, rng, exclude=keys)
    assert not keys & {tuple(r) for r in second}
    short = grammar.unique_sentences(1, 100, rng, n_slots=3)
    assert short.shape == (100, 3)


def test_bad_input_is_refused():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="coupling k"):
        grammar.sample_indices(5, 3, rng)
    with pytest.raises(ValueError, match="slots"):
        grammar.sentence([0] * 14)
    with pytest.raises(ValueError, match="word index"):
        grammar.sentence([50])
    with pytest.raises(ValueError, match="too many"):
        grammar.unique_sentences(3, 500, rng, n_slots=3)
    with pytest.raises(ValueError, match="period"):
        grammar.shuffle_words(["The", "cat"], rng)


def test_docstring_prose_is_plain_text():
    prose = text.docstring_prose(("numpy.linalg",))
    assert len(prose) > 5
    assert not any(">>>" in p or "=" in p for p in prose)
    assert all(len(p.split()) >= 8 for p in prose)
    assert text.docstring_prose(("numpy.linalg",)) == prose  # fixed by the pinned package


def test_vocabulary_hand_case():
    vocab = text.Vocabulary.from_corpus(["cat"], ["a dog, a cat; a b", "b a"], top=2)
    assert vocab.words == ["<eos>", "<unk>", "cat", "a", "b"]
    assert vocab.encode(["cat", "zebra", "a"]) == [2, 1, 3]
    assert vocab.decode([3, 2]) == ["a", "cat"]
    assert text.words_of("Hi, there.") == ["Hi", ",", "there", "."]
    with pytest.raises(ValueError, match="top"):
        text.Vocabulary.from_corpus([], [], top=-1)
