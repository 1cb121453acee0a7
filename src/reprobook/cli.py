"""Command line: ``python -m reprobook run|book|run-all|list|new|sweep|migrate-fingerprint|
fingerprint-add-cpu``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reprobook.chapters import find_chapters, get_chapter
from reprobook.results import load_results
from reprobook.runner import (
    ChapterRunError,
    add_cpu_to_fingerprint,
    last_runs,
    migrate_fingerprint,
    parse_value,
    prepare_book,
    run_chapter,
)
from reprobook.scaffold import new_chapter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reprobook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute one chapter with papermill")
    run.add_argument("chapter", help="chapter id, e.g. ch10-bayesian-oracle (or just ch10)")
    run.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="set a parameter of the chapter's parameters cell (repeatable)",
    )  # fmt: skip
    run.add_argument("--budget", type=float, help="time budget of the whole run, in seconds")
    run.add_argument("--results-dir", type=Path, help="write artefacts here instead of results/")
    book = sub.add_parser(
        "book", help="write every chapter's page: the committed full run, else a smoke run"
    )
    book.add_argument("--profile", help="execute every chapter afresh in this profile instead")
    run_all = sub.add_parser("run-all", help="execute every chapter, one after another")
    run_all.add_argument("--profile", default="smoke")
    new = sub.add_parser("new", help="create a chapter from notebooks/_template.md")
    new.add_argument("chapter", help="chapter id, e.g. ch14-short-slug")
    new.add_argument("title", help="the chapter's title (the paper's)")
    new.add_argument("--part", required=True, help="the part's caption in _toc.yml")
    new.add_argument("--package", required=True, help="topic package, e.g. cells")
    sub.add_parser("list", help="list chapters, their profiles and last runs")
    migrate = sub.add_parser(
        "migrate-fingerprint",
        help="rewrite version 1 fingerprints as version 2 from a smoke run, when still current",
    )
    migrate.add_argument("chapters", nargs="+", help="chapter ids (or ch05, ch06, ...)")
    add_cpu = sub.add_parser(
        "fingerprint-add-cpu",
        help="record this CPU's smoke metrics in fingerprints whose code and environment match",
    )
    add_cpu.add_argument("chapters", nargs="+", help="chapter ids (or ch05, ch06, ...)")
    _add_sweep_parser(sub)
    return parser


def _add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser(
        "sweep", help="run one chapter over a grid of seeds and parameters, gather one table"
    )
    sweep.add_argument("chapter", help="chapter id, e.g. ch10-bayesian-oracle (or just ch10)")
    sweep.add_argument(
        "--seeds", type=int, nargs="+", metavar="SEED",
        help="seeds to run (default: the notebook's own seed)",
    )  # fmt: skip
    sweep.add_argument(
        "-p", "--parameter", nargs="+", action="append", default=[], metavar=("NAME", "VALUE"),
        help="NAME VALUE [VALUE ...]: a parameter; several values make a grid axis (repeatable)",
    )  # fmt: skip
    sweep.add_argument(
        "--executor", choices=("local", "slurm", "submitit-local"), default="local",
        help="local: a process pool (default); slurm: one SLURM job array via submitit; "
        "submitit-local: submitit's local executor",
    )  # fmt: skip
    sweep.add_argument(
        "--workers", type=int,
        help="runs at once (local executors: default 1, as each run uses 2 torch threads; "
        "slurm: array parallelism, default as the cluster allows)",
    )  # fmt: skip
    sweep.add_argument("--budget", type=float, help="time budget of each run, in seconds")
    sweep.add_argument(
        "--out", type=Path, help="sweep folder (default: _build/sweeps/<chapter>-<UTC time>)"
    )
    sweep.add_argument("--slurm-partition", help="SLURM partition (default: the cluster's)")
    sweep.add_argument(
        "--timeout-min", type=int, help="SLURM time limit per run (default: from the budget)"
    )
    sweep.add_argument("--cpus-per-task", type=int, default=2, help="SLURM CPUs per run")
    sweep.add_argument("--mem-gb", type=float, help="SLURM memory per run, in GB")


def _sweep(args: argparse.Namespace) -> int:
    from reprobook import sweep

    table = sweep.run_sweep(
        get_chapter(args.chapter),
        args.seeds,
        sweep.parse_axes(args.parameter),
        executor=args.executor,
        workers=args.workers,
        budget_s=args.budget,
        folder=args.out,
        slurm=sweep.SlurmOptions(
            partition=args.slurm_partition,
            timeout_min=args.timeout_min,
            cpus_per_task=args.cpus_per_task,
            mem_gb=args.mem_gb,
        ),
    )
    failed = int((~table["ok"].astype(bool)).sum())
    if failed:
        print(f"error: {failed} of {len(table)} runs failed", file=sys.stderr)
        return 1
    return 0


def _list() -> None:
    runs = last_runs()
    print(f"{'chapter':34} {'profiles (budget s)':28} {'last runs':40} full artefacts")
    for ch in find_chapters():
        profiles = ", ".join(f"{p} ({b:.0f})" for p, b in ch.profiles.items())
        seen = [
            f"{p} {'ok' if r['ok'] else 'FAILED'} {r['wall_time_s']:.0f}s {r['finished_utc'][:10]}"
            for p in ch.profiles
            if (r := runs.get((ch.id, p)))
        ]
        full = load_results(ch.id, "full")
        print(f"{ch.id:34} {profiles:28} {'; '.join(seen) or 'never run here':40} {full.status}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "run":
            params = {name: parse_value(value) for name, value in args.parameter}
            run_chapter(get_chapter(args.chapter), params, args.budget, args.results_dir)
        elif args.command == "new":
            for path in new_chapter(args.chapter, args.title, args.part, args.package):
                print(f"created {path}")
        elif args.command in ("book", "run-all"):
            failed = prepare_book(args.profile)
            if failed:
                print(f"error: chapters failed: {', '.join(failed)}", file=sys.stderr)
                return 1
        elif args.command == "sweep":
            return _sweep(args)
        elif args.command == "migrate-fingerprint":
            for name in args.chapters:
                print(f"{name}: {migrate_fingerprint(get_chapter(name))}")
        elif args.command == "fingerprint-add-cpu":
            for name in args.chapters:
                print(f"{name}: {add_cpu_to_fingerprint(get_chapter(name))}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ChapterRunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
