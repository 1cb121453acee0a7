"""Command line: ``python -m reprobook run|run-all|list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reprobook.chapters import find_chapters, get_chapter
from reprobook.results import load_results
from reprobook.runner import ChapterRunError, last_runs, parse_value, run_chapter


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
    run_all = sub.add_parser("run-all", help="execute every chapter, one after another")
    run_all.add_argument("--profile", default="smoke")
    sub.add_parser("list", help="list chapters, their profiles and last runs")
    return parser


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
        elif args.command == "run-all":
            failed = []
            for chapter in find_chapters():
                try:
                    run_chapter(chapter, {"profile": args.profile})
                except ChapterRunError as err:
                    print(err, file=sys.stderr)
                    failed.append(chapter.id)
            if failed:
                print(f"error: chapters failed: {', '.join(failed)}", file=sys.stderr)
                return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ChapterRunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
