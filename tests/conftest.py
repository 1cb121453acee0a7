"""Shared fixtures: each chapter's smoke run happens once per session and is timed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from reprobook import chapters
from reprobook.chapters import Chapter
from reprobook.runner import ChapterRunError, run_chapter

SMOKE_HARD_CAP_S = 240.0


@dataclass
class SmokeRun:
    chapter: Chapter
    results_dir: Path
    wall_s: float
    notebook: Path
    error: str = ""


_SMOKE_RUNS: dict[str, SmokeRun] = {}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Unit tests use small tensors: one thread is as fast, and immune to a busy machine (two
    threads on two cores shared with another job made single runs up to 100x slower). Chapter
    smoke runs happen in their own kernels and are not affected."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def saved_gpt2(tmp_path_factory):
    """A tiny GPT-2 built from a config and saved to disk: a 'checkpoint' loadable offline by
    name, for the code paths that load real models (``reprobook.lm.hub``)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=40, n_positions=16, n_embd=12, n_layer=1, n_head=2, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    folder = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="session")
def smoke_results_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="session")
def run_smoke(smoke_results_dir):
    """Run a chapter in the smoke profile (once per session), writing the executed notebook
    and its artefacts into a temporary folder (the book test decides what to render)."""

    def _run(chapter: Chapter) -> SmokeRun:
        if chapter.id not in _SMOKE_RUNS:
            start = time.monotonic()
            error = ""
            notebook = smoke_results_dir / f"{chapter.id}.ipynb"
            try:
                run_chapter(
                    chapter,
                    {"profile": "smoke"},
                    budget_s=SMOKE_HARD_CAP_S,
                    results_dir=smoke_results_dir,
                    output=notebook,
                    quiet=True,
                )
            except ChapterRunError as err:
                error = str(err)
            _SMOKE_RUNS[chapter.id] = SmokeRun(
                chapter, smoke_results_dir, time.monotonic() - start, notebook, error
            )
        return _SMOKE_RUNS[chapter.id]

    return _run


def pytest_terminal_summary(terminalreporter):
    if not _SMOKE_RUNS:
        return
    tr = terminalreporter
    tr.section("chapter smoke runs (papermill, 2 cores)")
    tr.write_line(f"{'chapter':34} {'wall s':>8} {'budget s':>9}  result")
    for run in _SMOKE_RUNS.values():
        budget = run.chapter.profiles["smoke"]
        status = "FAILED" if run.error else ("over budget" if run.wall_s > budget else "ok")
        tr.write_line(f"{run.chapter.id:34} {run.wall_s:8.1f} {budget:9.0f}  {status}")
    total = sum(r.wall_s for r in _SMOKE_RUNS.values())
    tr.write_line(f"{'total':34} {total:8.1f}")


# Shared by the unit tests of the core modules (test_results.py, test_anchors.py,
# test_runner.py, test_cli.py).

CH = "ch99-test-chapter"


def _chapter_md(path, *code_cells, profiles_block=None):
    """A minimal jupytext MyST chapter: a parameters cell, then ``code_cells``."""
    front = {
        "jupytext": {
            "text_representation": {"extension": ".md", "format_name": "myst"},
        },
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "reprobook": {"title": "Runner test", "profiles": profiles_block or {"smoke": 120}},
    }
    cells = ['```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = "smoke"\nseed = 0\n```']
    cells += [f"```{{code-cell}} ipython3\n{src}\n```" for src in code_cells]
    text = (
        "---\n"
        + yaml.safe_dump(front, sort_keys=False)
        + "---\n\n# Runner test\n\n"
        + "\n\n".join(cells)
        + "\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return chapters.load_chapter(path)


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """A temporary checkout: the runner's scratch files and run log go under it."""
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    monkeypatch.setenv("REPROBOOK_ROOT", str(root))
    monkeypatch.setenv("REPROBOOK_RESULTS_DIR", str(tmp_path / "results"))
    return root


def _save_local_model(folder, words):
    """A config-built GPT-NeoX and a word-level tokenizer, saved as a hub folder would be."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<eos>", "<unk>", *words])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()  # "nurse." -> "nurse", "."
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", unk_token="<unk>")
    tokenizer.save_pretrained(folder)
    from reprobook.lm import lifetime

    lifetime.build_neox(len(vocab), 16, 2, 2, 64, 0).save_pretrained(folder)


@pytest.fixture
def save_local_model():
    """Saves a config-built GPT-NeoX and a word-level tokenizer in a folder, as a hub checkpoint."""
    return _save_local_model
