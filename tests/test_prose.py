"""Unit tests of reprobook.prose: what counts as a number typed into the prose."""

from reprobook import prose


def test_decimals_and_percentages_in_prose_are_found():
    text = "Deaths fall to 0.75 % here, reward 12.5, and 30% of runs stop; 3 seeds in 2024."
    assert prose.typed_numbers(text) == ["0.75 %", "12.5", "30%"]


def test_math_code_roles_links_versions_and_ids_are_allowed():
    text = (
        "With $\\alpha = 0.2$ and $$p = 0.5$$ the code `lr = 0.1` runs; "
        "{glue:md}`margin` is glued; see [2408.05284](https://arxiv.org/abs/2408.05284) "
        "and torchgfn 2.4.1; {cite}`key2024`.\n"
        "```python\nx = 0.5\n```\n:::{note}\n:width: 0.5\nplain\n:::\n"
    )
    assert prose.typed_numbers(text) == []


def test_names_with_numbers_are_not_results():
    assert prose.typed_numbers("Llama-3.2-1B writes for GPT-2") == []


def test_allow_list_takes_literals_whatever_the_spacing():
    assert prose.typed_numbers("random 80 % crops and 0.05 margin", ["80%", "0.05"]) == []


def test_rewrap_puts_one_sentence_per_line_and_keeps_code_math_and_lists():
    text = (
        "First sentence. Second one, e.g. with an abbreviation.\n"
        "Same paragraph $a. B$ goes on.\n\n"
        "- An item. Its second sentence\n  continues here.\n"
        "```python\nx = 1. Y = 2\n```\n"
        "| a. B | c |\n"
    )
    assert prose.rewrap(text) == (
        "First sentence.\nSecond one, e.g. with an abbreviation.\n"
        "Same paragraph $a. B$ goes on.\n\n"
        "- An item.\n  Its second sentence continues here.\n"
        "```python\nx = 1. Y = 2\n```\n"
        "| a. B | c |\n"
    )
    assert prose.rewrap(prose.rewrap(text)) == prose.rewrap(text)


def test_glued_names_leave_out_the_glance_box():
    text = "{glue:md}`glance_key` and {glue:md}`n_seeds`, {cite}`paper`; {glue:md}`diff_a_b`."
    assert prose.glued_names(text) == {"n_seeds", "diff_a_b"}
