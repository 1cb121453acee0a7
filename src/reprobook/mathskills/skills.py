"""A library of programmatic math micro-skills: each a question generator with parameters, a
reference solution and an independent verifier built on ``sympy``.

Every skill reads one *input* number n (the slot a composed question fills with another skill's
answer) and a few extra parameters, and answers an integer in ``[0, ANSWER_RANGE)``. A skill's
domain says which inputs make a well-posed question (a modular inverse needs a unit, a linear
system an integer solution); the pipeline rejects compositions that leave the domain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy
from sympy.ntheory import digits as sympy_digits

ANSWER_RANGE = 100  # every answer and every input lies in [0, 100)
MAX_EXTRAS = 2  # extra parameters per question, beside the input


@dataclass(frozen=True)
class Skill:
    """One micro-skill.

    ``solve(n, extras)`` is the reference solution (plain Python); ``verify(n, extras)`` computes
    the same answer another way with sympy; ``domain(n, extras)`` says whether the question is
    well-posed; ``extras(rng)`` draws the extra parameters; ``text`` is the question's wording
    with ``{n}``, ``{e0}``, ``{e1}``.
    """

    name: str
    topic: str
    text: str
    solve: Callable[[int, tuple[int, ...]], int]
    verify: Callable[[int, tuple[int, ...]], int]
    extras: Callable[[np.random.Generator], tuple[int, ...]] = field(default=lambda rng: ())
    domain: Callable[[int, tuple[int, ...]], bool] = field(default=lambda n, e: True)

    def question(self, n: int, extras: tuple[int, ...]) -> str:
        named = {f"e{i}": v for i, v in enumerate(extras)}
        return self.text.format(n=n, **named)


def _digit_sum(n: int, base: int) -> int:
    total = 0
    while n:
        n, r = divmod(n, base)
        total += r
    return total


def _largest_prime_factor(n: int) -> int:
    p, largest = 2, 1
    while n > 1:
        while n % p == 0:
            n, largest = n // p, p
        p += 1
    return largest


def _fib_mod(n: int, m: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, (a + b) % m
    return a


def _count_primes(n: int) -> int:
    return sum(all(k % p for p in range(2, int(k**0.5) + 1)) for k in range(2, n + 1))


P = 97  # the prime modulus of the modular skills

SKILLS: tuple[Skill, ...] = (
    Skill("lcm", "divisibility",
          "What are the last two digits of the least common multiple of {n} and {e0}?",
          lambda n, e: n * e[0] // math.gcd(n, e[0]) % 100,
          lambda n, e: int(sympy.lcm(n, e[0]) % 100),
          lambda rng: (int(rng.integers(2, 13)),), lambda n, e: n > 0),
    Skill("remainder", "divisibility", "What is the remainder when {n} is divided by {e0}?",
          lambda n, e: n % e[0], lambda n, e: int(sympy.Mod(n, e[0])),
          lambda rng: (int(rng.integers(2, 20)),)),
    Skill("divisor_sum", "divisibility",
          "What are the last two digits of the sum of the positive divisors of {n}?",
          lambda n, e: sum(d for d in range(1, n + 1) if n % d == 0) % 100,
          lambda n, e: int(sympy.divisor_sigma(n) % 100), domain=lambda n, e: n > 0),
    Skill("largest_prime_factor", "primes", "What is the largest prime factor of {n}?",
          lambda n, e: _largest_prime_factor(n), lambda n, e: int(max(sympy.primefactors(n))),
          domain=lambda n, e: n > 1),
    Skill("prime_count", "primes", "How many primes are less than or equal to {n}?",
          lambda n, e: _count_primes(n), lambda n, e: int(sympy.primepi(n))),
    Skill("totient", "primes", "How many integers in 1..{n} are coprime to {n}?",
          lambda n, e: sum(math.gcd(k, n) == 1 for k in range(1, n + 1)),
          lambda n, e: int(sympy.totient(n)), domain=lambda n, e: n > 0),
    Skill("modular_inverse", "modular", f"What is the inverse of {{n}} modulo {P}?",
          lambda n, e: pow(n, -1, P), lambda n, e: int(sympy.mod_inverse(n, P)),
          domain=lambda n, e: n % P != 0),
    Skill("power_mod", "modular", f"What is {{e0}} to the power {{n}}, modulo {P}?",
          lambda n, e: pow(e[0], n, P), lambda n, e: int(sympy.Pow(e[0], n) % P),
          lambda rng: (int(rng.choice([2, 3, 5])),)),
    Skill("fibonacci_mod", "modular", "What are the last two digits of the {n}-th Fibonacci "
          "number?",
          lambda n, e: _fib_mod(n, 100), lambda n, e: int(sympy.fibonacci(n) % 100)),
    Skill("square_last_digits", "modular", "What are the last two digits of {n} squared?",
          lambda n, e: n * n % 100, lambda n, e: int(sympy.Integer(n) ** 2 % 100)),
    Skill("base_digit_sum", "digits", "What is the sum of the digits of {n} written in base "
          "{e0}?",
          lambda n, e: _digit_sum(n, e[0]), lambda n, e: int(sum(sympy_digits(n, e[0])[1:])),
          lambda rng: (int(rng.integers(2, 10)),)),
    Skill("reverse_digits", "digits", "Write {n} with two digits (7 as 07) and reverse them: "
          "what number is it?",
          lambda n, e: (n % 10) * 10 + n // 10,
          lambda n, e: int("".join(reversed(f"{n:02d}")))),
    Skill("pairs", "counting", "How many ways are there to choose 2 of {n} people (last "
          "two digits)?",
          lambda n, e: n * (n - 1) // 2 % 100, lambda n, e: int(sympy.binomial(n, 2) % 100)),
    Skill("diagonals", "counting", "How many diagonals does a convex polygon with {n} sides "
          "have (last two digits)?",
          lambda n, e: n * (n - 3) // 2 % 100,
          lambda n, e: int((sympy.binomial(n, 2) - n) % 100), domain=lambda n, e: n >= 3),
    Skill("factorial_zeros", "counting", "How many zeros does {n}! end with?",
          lambda n, e: n // 5 + n // 25,
          lambda n, e: len(str(sympy.factorial(n))) - len(str(sympy.factorial(n)).rstrip("0"))),
    Skill("linear_system", "algebra", "If x + y = {n} and x - y = {e0}, what is x?",
          lambda n, e: (n + e[0]) // 2,
          lambda n, e: int(sympy.solve([sympy.Symbol("x") + sympy.Symbol("y") - n,
                                        sympy.Symbol("x") - sympy.Symbol("y") - e[0]],
                                       dict=True)[0][sympy.Symbol("x")]),
          lambda rng: (int(rng.integers(0, 20)),),
          lambda n, e: (n + e[0]) % 2 == 0 and n >= e[0]),
)  # fmt: skip
NAMES = tuple(s.name for s in SKILLS)
BY_NAME = {s.name: s for s in SKILLS}


def skill(name: str) -> Skill:
    if name not in BY_NAME:
        raise ValueError(f"unknown skill {name!r}; skills: {', '.join(NAMES)}")
    return BY_NAME[name]


def draw_input(s: Skill, rng: np.random.Generator, extras: tuple[int, ...]) -> int:
    """An input in the skill's domain, uniform over [0, ANSWER_RANGE)."""
    for _ in range(1000):
        n = int(rng.integers(0, ANSWER_RANGE))
        if s.domain(n, extras):
            return n
    raise ValueError(f"no input in the domain of {s.name} for extras {extras}")
