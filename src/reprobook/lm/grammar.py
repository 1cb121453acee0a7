"""The 13-slot grammar of Lee et al.'s compositionality datasets, with our own word lists.

A sentence fills 13 slots in a fixed order (quality, nationality, job, person-to-animal verb,
size, texture, colour, animal, person-to-person verb, then a second size, quality, nationality
and job from four more lists), with the determiners "The", "the", "then", "the" before slots 1,
5, 9 and 10: 17 words and a period, e.g. "The clever Dutch nurse brushes the vast silky blue
crab then comforts the round modest Latvian novelist ."

The coupling k ties each block of k adjacent slots to one shared word index (each list has 50
words), leaving ceil(13 / k) free factors: 13, 7, 5 and 4 for k = 1..4. The shuffled control
permutes a sentence's words; as in the official code the period travels with the last word, so
the last token of a shuffled sentence is usually a word. ``keep_period=True`` keeps it last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

N_WORDS = 50
SLOT_NAMES = (
    "quality", "nationality", "job", "verb_animal", "size", "texture", "colour", "animal",
    "verb_person", "more_size", "more_quality", "more_nationality", "more_job",
)  # fmt: skip
DETERMINERS = {0: "The", 4: "the", 8: "then", 9: "the"}  # before these slot indices
PERIOD = "."
COUPLINGS = (1, 2, 3, 4)

_LISTS = {
    "quality": """marvelous wonderful terrible lovely awful splendid gorgeous horrible pleasant
        nasty charming dreadful superb brilliant clever foolish gentle cruel honest humble proud
        brave timid calm eager jolly grumpy kind rude polite cheerful gloomy witty dull noble
        wicked loyal sincere curious patient generous stingy modest graceful clumsy elegant
        fierce friendly lazy diligent""",
    "nationality": """Portuguese Spanish French German Italian Dutch Belgian Swiss Austrian
        Polish Czech Slovak Hungarian Romanian Bulgarian Greek Turkish Russian Ukrainian Swedish
        Norwegian Danish Finnish Icelandic Irish Scottish Welsh English American Canadian Mexican
        Brazilian Argentine Chilean Peruvian Colombian Cuban Japanese Chinese Korean Vietnamese
        Thai Indian Pakistani Egyptian Moroccan Nigerian Kenyan Ethiopian Australian""",
    "job": """nurse steward doctor lawyer teacher farmer baker butcher carpenter plumber painter
        sculptor poet writer singer dancer actor pilot sailor soldier judge banker clerk cashier
        chef waiter driver mechanic engineer architect dentist surgeon pharmacist librarian
        professor student scientist chemist biologist journalist editor tailor barber gardener
        fisherman miner janitor guard detective priest""",
    "verb_animal": """brushes feeds chases pets washes rides walks tames trains catches hunts
        follows watches grooms carries hugs scolds bathes herds frightens lifts whistles leads
        saves finds loses buys sells adopts sketches photographs studies measures weighs
        examines rescues releases shelters spots tickles strokes kicks pushes pulls holds lures
        startles saddles tethers shears""",
    "size": """vast tiny huge small big little large giant enormous massive miniature petite
        colossal immense gigantic minute compact bulky hefty slender skinny plump chubby stout
        lanky tall short long wide narrow broad thin thick towering puny mighty monstrous
        dwarfish oversized undersized mammoth titanic jumbo pocket teeny wee hulking stubby lean
        stocky""",
    "texture": """soft rough smooth fluffy furry hairy silky scaly spiky bumpy slimy sticky
        greasy oily dusty muddy wet damp dry crusty crispy fuzzy woolly velvety leathery
        feathered prickly slippery glossy shiny matte grainy gritty sandy powdery waxy rubbery
        spongy springy squishy mushy lumpy knobby wrinkled creased tangled matted coarse downy
        glassy""",
    "colour": """blue red green yellow orange purple pink brown black white grey violet indigo
        crimson scarlet maroon beige tan ivory cream golden silver bronze copper teal turquoise
        cyan magenta lavender lilac olive khaki amber ochre rust coral salmon peach mint jade
        emerald azure navy cobalt charcoal ebony auburn chestnut mauve plum""",
    "animal": """crab cat dog horse cow pig sheep goat rabbit mouse rat fox wolf bear lion tiger
        zebra giraffe elephant monkey gorilla camel donkey deer moose otter beaver badger
        squirrel hedgehog turtle frog toad lizard snake duck goose swan owl eagle parrot pigeon
        crow penguin seal walrus dolphin shark lobster hamster""",
    "verb_person": """comforts helps thanks praises blames meets visits invites hires teaches
        advises warns consoles admires insults flatters forgives marries interviews supports
        trusts doubts envies hates loves respects ignores greets congratulates criticizes
        encourages annoys amuses entertains pays rewards punishes nominates introduces
        recommends emails mentors coaches employs sues defends protects betrays obeys fires""",
    "more_size": """round square oval flat curved straight bent crooked pointed blunt hollow
        solid conical spherical cubic circular triangular rectangular oblong lopsided
        symmetrical angular jagged wavy twisted coiled knotted looped domed arched tapered
        flared ridged grooved notched chunky bulbous rotund portly burly brawny scrawny gaunt
        svelte trim willowy dainty diminutive elfin sizable""",
    "more_quality": """admirable adorable agreeable amiable appalling arrogant attentive bashful
        bold bossy careful careless cautious charismatic compassionate confident considerate
        courageous courteous cowardly crafty decent devoted dignified earnest energetic faithful
        fearless frank gallant genial gracious greedy hardworking helpful hopeful impatient
        jealous joyful lively lucky mean merry naive nervous obedient optimistic playful quirky
        sensible""",
    "more_nationality": """Albanian Serbian Croatian Slovenian Bosnian Estonian Latvian
        Lithuanian Belarusian Georgian Armenian Kazakh Uzbek Mongolian Tibetan Nepalese
        Bangladeshi Afghan Iranian Iraqi Syrian Lebanese Jordanian Israeli Saudi Yemeni Omani
        Qatari Kuwaiti Tunisian Algerian Libyan Sudanese Somali Ghanaian Senegalese Malian
        Cameroonian Congolese Angolan Zambian Indonesian Malaysian Filipino Cambodian Burmese
        Taiwanese Venezuelan Ecuadorian Bolivian""",
    "more_job": """accountant actress analyst announcer artist astronaut athlete auditor
        bartender beekeeper blacksmith bookkeeper bricklayer broker builder butler captain
        caretaker chauffeur clown coach composer conductor cook courier curator designer
        diplomat electrician economist firefighter florist geologist historian illustrator
        inspector interpreter jeweler jockey juggler locksmith magician manager mayor merchant
        midwife musician navigator novelist optician""",
}
SLOTS: tuple[tuple[str, ...], ...] = tuple(tuple(_LISTS[name].split()) for name in SLOT_NAMES)


def n_factors(k: int, n_slots: int = len(SLOTS)) -> int:
    """Free factors of a k-coupled sentence of ``n_slots`` slots: ceil(n_slots / k)."""
    _check_k(k)
    return math.ceil(n_slots / k)


def sample_indices(
    k: int, n: int, rng: np.random.Generator, n_slots: int = len(SLOTS)
) -> np.ndarray:
    """``[n, n_slots]`` word indices: each block of k adjacent slots shares one draw."""
    _check_k(k)
    _check_slots(n_slots)
    if n < 1:
        raise ValueError(f"n must be a positive number of sentences, got {n}")
    blocks = rng.integers(N_WORDS, size=(n, n_factors(k, n_slots)))
    return np.repeat(blocks, k, axis=1)[:, :n_slots]


def sentence(indices: Sequence[int]) -> list[str]:
    """The words of one sentence (determiners included, period last) from its slot indices."""
    _check_slots(len(indices))
    words = []
    for slot, index in enumerate(indices):
        if not 0 <= int(index) < N_WORDS:
            raise ValueError(f"word index must be in [0, {N_WORDS}), got {index}")
        if slot in DETERMINERS:
            words.append(DETERMINERS[slot])
        words.append(SLOTS[slot][int(index)])
    return [*words, PERIOD]


def unique_sentences(
    k: int, n: int, rng: np.random.Generator, exclude: set | None = None, n_slots: int = len(SLOTS)
) -> np.ndarray:
    """``n`` distinct index rows of coupling k, none in ``exclude`` (rows as tuples)."""
    if n > N_WORDS ** n_factors(k, n_slots) // 2:
        raise ValueError(f"{n} distinct sentences is too many for k = {k} and {n_slots} slots")
    seen = set(exclude or ())
    rows: list[np.ndarray] = []
    while len(rows) < n:
        for row in sample_indices(k, n - len(rows), rng, n_slots):
            key = tuple(int(i) for i in row)
            if key not in seen:
                seen.add(key)
                rows.append(row)
    return np.stack(rows)


def shuffle_words(
    words: Sequence[str], rng: np.random.Generator, keep_period: bool = False
) -> list[str]:
    """A random order of a sentence's words: the official control keeps the period attached to
    the sentence's last word (it moves with it); ``keep_period`` leaves it at the end instead."""
    if not words or words[-1] != PERIOD:
        raise ValueError("words must be a sentence ending with its period")
    items = (
        [[w] for w in words[:-2]] + [[words[-2], PERIOD]]
        if not keep_period
        else [[w] for w in words[:-1]]
    )
    order = rng.permutation(len(items))
    out = [w for i in order for w in items[i]]
    return [*out, PERIOD] if keep_period else out


def all_words() -> list[str]:
    """Every word the grammar can emit (slot words, determiners, period), in a fixed order."""
    out = [w for slot in SLOTS for w in slot] + sorted(set(DETERMINERS.values())) + [PERIOD]
    return list(dict.fromkeys(out))


def _check_k(k: int) -> None:
    if k not in COUPLINGS:
        raise ValueError(f"coupling k must be one of {COUPLINGS}, got {k!r}")


def _check_slots(n_slots: int) -> None:
    if not 1 <= n_slots <= len(SLOTS):
        raise ValueError(f"a sentence has 1 to {len(SLOTS)} slots, got {n_slots}")
