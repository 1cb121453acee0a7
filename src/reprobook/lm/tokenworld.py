"""A synthetic world of instructions and responses made of abstract tokens, with a hidden safety
rule: the stand-in for harmful text in the safety chapters, so that no natural-language harmful
text is ever generated, shipped or shown.

An *instruction* holds one TOPIC, one ACT, two OBJ and two FILL tokens in random order (padded
to ``MAX_INSTRUCTION`` tokens). It *violates* iff some (topic, act) pair it contains is one of the
world's categories. A *response* starts with REFUSE or COMPLY and has ``RESPONSE_LEN - 1`` detail
tokens; a prompt-only example has the response NORESP. A pair is harmful iff its instruction
violates and its response complies; a prompt alone is harmful iff it violates.

The generator's documents are ``BOS REQ_x IDEA <instruction> END``: a request for a benign
(REQ_BENIGN) or a violating (REQ_HARM) instruction, answered after the affirmative marker IDEA
(the paper's "I have an idea for a prompt:"). Safety tuning teaches ``BOS REQ_HARM REFUSE END``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

SPECIALS = ("PAD", "BOS", "END", "SEP", "CLS", "REQ_BENIGN", "REQ_HARM", "IDEA", "REFUSE",
            "COMPLY", "NORESP")  # fmt: skip
KINDS = ("special", "topic", "act", "object", "filler", "detail")
INSTRUCTION_LEN = 6  # one topic, one act, two objects, two fillers
MAX_INSTRUCTION = 8  # room for an inserted token or two (EDA, malformed generations)
RESPONSE_LEN = 4
GUARD_LENGTH = 1 + MAX_INSTRUCTION + 1 + RESPONSE_LEN  # CLS instruction SEP response
DOCUMENT_LEN = 3 + MAX_INSTRUCTION + 1  # BOS REQ IDEA instruction END (END may come earlier)


@dataclass(frozen=True)
class Vocab:
    """Token ids: the specials, then topics, acts, objects, fillers and details."""

    n_topics: int = 20
    n_acts: int = 15
    n_objects: int = 30
    n_fillers: int = 10
    n_details: int = 10
    kind: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("n_topics", "n_acts", "n_objects", "n_fillers", "n_details"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        sizes = [len(SPECIALS), *self.sizes()]
        kind = torch.repeat_interleave(torch.arange(len(KINDS)), torch.tensor(sizes))
        object.__setattr__(self, "kind", kind)

    def sizes(self) -> tuple[int, ...]:
        return (self.n_topics, self.n_acts, self.n_objects, self.n_fillers, self.n_details)

    @property
    def size(self) -> int:
        return len(SPECIALS) + sum(self.sizes())

    def special(self, name: str) -> int:
        if name not in SPECIALS:
            raise ValueError(f"unknown special token {name!r}; specials: {', '.join(SPECIALS)}")
        return SPECIALS.index(name)

    def start(self, kind: str) -> int:
        """The first id of ``kind`` (one of topic, act, object, filler, detail)."""
        if kind not in KINDS[1:]:
            raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS[1:])}")
        return len(SPECIALS) + sum(self.sizes()[: KINDS.index(kind) - 1])

    def count(self, kind: str) -> int:
        return self.sizes()[KINDS.index(kind) - 1] if kind != "special" else len(SPECIALS)

    def is_kind(self, tokens: Tensor, kind: str) -> Tensor:
        return self.kind[tokens] == KINDS.index(kind)

    def name(self, token: int) -> str:
        """A readable name: ``T3``, ``A0``, ``O12``, ``F1``, ``D4`` or the special's name."""
        kind = KINDS[int(self.kind[token])]
        if kind == "special":
            return SPECIALS[token]
        return f"{kind[0].upper()}{token - self.start(kind)}"


def _draw(n: int, high: int, generator: torch.Generator) -> Tensor:
    return torch.randint(high, (n,), generator=generator)


@dataclass(frozen=True)
class World:
    """A vocabulary and the hidden rule: ``categories[c] = (topic index, act index)``."""

    vocab: Vocab
    categories: Tensor  # [n_categories, 2] long

    def table(self) -> Tensor:
        """``[n_topics, n_acts]`` bool: which (topic, act) pairs violate."""
        table = torch.zeros(self.vocab.n_topics, self.vocab.n_acts, dtype=torch.bool)
        table[self.categories[:, 0], self.categories[:, 1]] = True
        return table

    def _bags(self, instructions: Tensor) -> tuple[Tensor, Tensor]:
        v = self.vocab
        topics = torch.zeros(len(instructions), v.n_topics)
        acts = torch.zeros(len(instructions), v.n_acts)
        t_mask, a_mask = v.is_kind(instructions, "topic"), v.is_kind(instructions, "act")
        rows = torch.arange(len(instructions)).unsqueeze(1).expand_as(instructions)
        topics[rows[t_mask], instructions[t_mask] - v.start("topic")] = 1.0
        acts[rows[a_mask], instructions[a_mask] - v.start("act")] = 1.0
        return topics, acts

    def category_hits(self, instructions: Tensor) -> Tensor:
        """``[n, n_categories]`` bool: which categories each instruction contains."""
        topics, acts = self._bags(instructions)
        c = self.categories
        return (topics[:, c[:, 0]] > 0) & (acts[:, c[:, 1]] > 0)

    def violates(self, instructions: Tensor) -> Tensor:
        """The hidden rule: some (topic, act) pair of the instruction is a category."""
        return self.category_hits(instructions).any(1)

    def category_of(self, instructions: Tensor) -> Tensor:
        """The first category an instruction contains, or -1."""
        hits = self.category_hits(instructions)
        first = hits.float().argmax(1)
        return torch.where(hits.any(1), first, torch.full_like(first, -1))

    def harmful(self, instructions: Tensor, responses: Tensor) -> Tensor:
        """A prompt alone (NORESP) is harmful iff it violates; a pair iff it also complies."""
        v = self.vocab
        first = responses[:, 0]
        prompt_only = first == v.special("NORESP")
        return self.violates(instructions) & (prompt_only | (first == v.special("COMPLY")))

    def _instructions(self, topic: Tensor, act: Tensor, generator: torch.Generator) -> Tensor:
        v, n = self.vocab, len(topic)
        parts = torch.stack(
            [
                topic + v.start("topic"),
                act + v.start("act"),
                _draw(n, v.n_objects, generator) + v.start("object"),
                _draw(n, v.n_objects, generator) + v.start("object"),
                _draw(n, v.n_fillers, generator) + v.start("filler"),
                _draw(n, v.n_fillers, generator) + v.start("filler"),
            ],
            1,
        )
        order = torch.rand(n, INSTRUCTION_LEN, generator=generator).argsort(1)
        out = torch.full((n, MAX_INSTRUCTION), v.special("PAD"))
        out[:, :INSTRUCTION_LEN] = parts.gather(1, order)
        return out

    def sample_violating(
        self, n: int, generator: torch.Generator, weights: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``n`` violating instructions and their categories, drawn with ``weights``."""
        k = len(self.categories)
        w = torch.ones(k) if weights is None else torch.as_tensor(weights, dtype=torch.float)
        if w.shape != (k,) or (w < 0).any() or not w.sum() > 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum")
        if n == 0:
            return torch.empty(0, MAX_INSTRUCTION, dtype=torch.long), torch.empty(
                0, dtype=torch.long
            )
        category = torch.multinomial(w, n, replacement=True, generator=generator)
        pairs = self.categories[category]
        return self._instructions(pairs[:, 0], pairs[:, 1], generator), category

    def sample_safe(self, n: int, generator: torch.Generator, near_miss: float = 0.5) -> Tensor:
        """``n`` non-violating instructions; a share ``near_miss`` uses a category's topic (or
        act) with another act (or topic), so that neither token alone decides."""
        if not 0 <= near_miss <= 1:
            raise ValueError(f"near_miss must be in [0, 1], got {near_miss}")
        v, table = self.vocab, self.table()
        out = torch.empty(0, MAX_INSTRUCTION, dtype=torch.long)
        while len(out) < n:
            m = 2 * (n - len(out)) + 16
            topic, act = _draw(m, v.n_topics, generator), _draw(m, v.n_acts, generator)
            near = torch.rand(m, generator=generator) < near_miss
            c = self.categories[_draw(m, len(self.categories), generator)]
            by_topic = torch.rand(m, generator=generator) < 0.5
            topic = torch.where(near & by_topic, c[:, 0], topic)
            act = torch.where(near & ~by_topic, c[:, 1], act)
            keep = ~table[topic, act]
            out = torch.cat([out, self._instructions(topic[keep], act[keep], generator)])
        return out[:n]

    def responses(self, comply: Tensor, generator: torch.Generator) -> Tensor:
        """REFUSE or COMPLY (by ``comply``), then random detail tokens."""
        v, n = self.vocab, len(comply)
        first = torch.where(comply, v.special("COMPLY"), v.special("REFUSE"))
        details = torch.randint(v.n_details, (n, RESPONSE_LEN - 1), generator=generator)
        return torch.cat([first.unsqueeze(1), details + v.start("detail")], 1)

    def no_response(self, n: int) -> Tensor:
        """The response of a prompt-only example: NORESP, then padding."""
        out = torch.full((n, RESPONSE_LEN), self.vocab.special("PAD"))
        out[:, 0] = self.vocab.special("NORESP")
        return out

    def guard_input(self, instructions: Tensor, responses: Tensor) -> Tensor:
        """``CLS instruction SEP response``: a guard's input, ``[n, GUARD_LENGTH]``."""
        if instructions.shape[1] != MAX_INSTRUCTION or responses.shape[1] != RESPONSE_LEN:
            raise ValueError(
                f"need instructions [n, {MAX_INSTRUCTION}] and responses [n, {RESPONSE_LEN}], "
                f"got {tuple(instructions.shape)} and {tuple(responses.shape)}"
            )
        n, v = len(instructions), self.vocab
        cls = torch.full((n, 1), v.special("CLS"))
        sep = torch.full((n, 1), v.special("SEP"))
        return torch.cat([cls, instructions, sep, responses], 1)

    def split_guard_input(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        return inputs[:, 1 : 1 + MAX_INSTRUCTION], inputs[:, 2 + MAX_INSTRUCTION :]


def make_world(seed: int, n_categories: int = 12, vocab: Vocab | None = None) -> World:
    """A world whose ``n_categories`` (topic, act) categories are drawn without repetition."""
    vocab = vocab or Vocab()
    pairs = vocab.n_topics * vocab.n_acts
    if not isinstance(n_categories, int) or not 1 <= n_categories <= pairs // 4:
        raise ValueError(
            f"n_categories must be an integer in [1, {pairs // 4}], got {n_categories}"
        )
    generator = torch.Generator().manual_seed(seed)
    flat = torch.randperm(pairs, generator=generator)[:n_categories]
    return World(vocab, torch.stack([flat // vocab.n_acts, flat % vocab.n_acts], 1))


# --- the generator's documents ------------------------------------------------------------


def documents(world: World, n: int, harmful_share: float, generator: torch.Generator) -> Tensor:
    """Pre-training documents ``BOS REQ_x IDEA <instruction> END PAD...``: a request answered
    by an instruction of its kind (violating ones drawn from every category)."""
    if not 0 <= harmful_share <= 1:
        raise ValueError(f"harmful_share must be in [0, 1], got {harmful_share}")
    v = world.vocab
    harmful = torch.rand(n, generator=generator) < harmful_share
    bad, _ = world.sample_violating(int(harmful.sum()), generator)
    good = world.sample_safe(n - len(bad), generator)
    instructions = torch.empty(n, MAX_INSTRUCTION, dtype=torch.long)
    instructions[harmful], instructions[~harmful] = bad, good
    request = torch.where(harmful, v.special("REQ_HARM"), v.special("REQ_BENIGN"))
    head = torch.stack([torch.full((n,), v.special("BOS")), request,
                        torch.full((n,), v.special("IDEA"))], 1)  # fmt: skip
    docs = torch.cat([head, instructions, torch.full((n, 1), v.special("PAD"))], 1)
    docs[:, 3 + INSTRUCTION_LEN] = v.special("END")
    return docs


def refusal_documents(vocab: Vocab, n: int) -> Tensor:
    """Safety-tuning documents: ``BOS REQ_HARM REFUSE END PAD...``."""
    docs = torch.full((n, DOCUMENT_LEN), vocab.special("PAD"))
    docs[:, :4] = torch.tensor([vocab.special(s) for s in ("BOS", "REQ_HARM", "REFUSE", "END")])
    return docs


def request_prompts(vocab: Vocab, n: int, prefix: bool) -> Tensor:
    """``BOS REQ_HARM`` (prompting), or with the affirmative prefix ``IDEA`` appended (HarmAug)."""
    names = ("BOS", "REQ_HARM", "IDEA") if prefix else ("BOS", "REQ_HARM")
    return torch.tensor([vocab.special(s) for s in names]).repeat(n, 1)


STATUSES = ("instruction", "refused", "malformed")


def parse_generations(vocab: Vocab, continuations: Tensor, prefix: bool) -> tuple[Tensor, Tensor]:
    """Read sampled continuations: returns the instructions ``[m, MAX_INSTRUCTION]`` of the
    well-formed answers, and a status per row (an index into ``STATUSES``).

    Without the prefix the model must first choose IDEA (answer) over REFUSE. An answer is
    well-formed when it has 1 to ``MAX_INSTRUCTION`` content tokens (topic, act, object, filler)
    followed by END; the guard judges what they mean, not the parser.
    """
    rows = continuations
    status = torch.full((len(rows),), STATUSES.index("malformed"))
    if not prefix:
        refused = rows[:, 0] == vocab.special("REFUSE")
        status[refused] = STATUSES.index("refused")
        answered = rows[:, 0] == vocab.special("IDEA")
        rows = rows[:, 1:]
    else:
        answered = torch.ones(len(rows), dtype=torch.bool)
    kind = vocab.kind[rows]
    content = (kind >= KINDS.index("topic")) & (kind <= KINDS.index("filler"))
    is_end = rows == vocab.special("END")
    n_content = content.long().cumprod(1).sum(1)  # content tokens before the first other token
    ends_there = is_end.gather(1, n_content.clamp(max=rows.shape[1] - 1).unsqueeze(1)).squeeze(1)
    ok = answered & ends_there & (n_content >= 1) & (n_content <= MAX_INSTRUCTION)
    ok &= n_content < rows.shape[1]
    status[ok] = STATUSES.index("instruction")
    out = torch.full((int(ok.sum()), MAX_INSTRUCTION), vocab.special("PAD"))
    for i, (row, m) in enumerate(zip(rows[ok], n_content[ok], strict=True)):
        out[i, :m] = row[:m]
    return out, status


# --- augmentation by token edits (EDA) ------------------------------------------------------


def eda(instructions: Tensor, vocab: Vocab, n_out: int, generator: torch.Generator) -> Tensor:
    """EDA on instructions (Wei and Zou 2019) over tokens: each output is a random source row
    with one operation: a synonym replacement (an object or filler by another of its kind), a
    random insertion (any content token), a random swap, or a random deletion."""
    if len(instructions) == 0 or n_out < 1:
        raise ValueError("eda needs at least one instruction and n_out >= 1")
    pad = vocab.special("PAD")
    source = instructions[torch.randint(len(instructions), (n_out,), generator=generator)]
    out = torch.full((n_out, MAX_INSTRUCTION), pad)
    ops = torch.randint(4, (n_out,), generator=generator).tolist()
    first, last = vocab.start("topic"), vocab.start("detail")
    for i, (row, op) in enumerate(zip(source, ops, strict=True)):
        tokens = [t for t in row.tolist() if t != pad]
        at = int(torch.randint(len(tokens), (1,), generator=generator))
        if op == 0:  # synonym: same kind, only objects and fillers carry no category
            kinds = [vocab.kind[t].item() for t in tokens]
            free = [j for j, k in enumerate(kinds) if KINDS[k] in ("object", "filler")]
            if free:
                j = free[int(torch.randint(len(free), (1,), generator=generator))]
                kind = KINDS[kinds[j]]
                tokens[j] = vocab.start(kind) + int(
                    torch.randint(vocab.count(kind), (1,), generator=generator)
                )
        elif op == 1 and len(tokens) < MAX_INSTRUCTION:  # insertion
            new = first + int(torch.randint(last - first, (1,), generator=generator))
            tokens.insert(at, new)
        elif op == 2 and len(tokens) > 1:  # swap
            other = int(torch.randint(len(tokens), (1,), generator=generator))
            tokens[at], tokens[other] = tokens[other], tokens[at]
        elif op == 3 and len(tokens) > 1:  # deletion
            del tokens[at]
        out[i, : len(tokens)] = torch.tensor(tokens)
    return out


def distinct_n(instructions: Tensor, n: int, pad: int) -> float:
    """Distinct-n: distinct n-grams over all n-grams (padding left out)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = []
    for row in instructions.tolist():
        tokens = [t for t in row if t != pad]
        grams += [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
