"""``perfgate import``: a pytest-benchmark JSON file as a perfgate results file."""

from __future__ import annotations

import argparse

from ._common import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a pytest-benchmark JSON file (pytest --benchmark-json=FILE)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the perfgate results file to write")


def run(args: argparse.Namespace) -> int:
    from ..importers import read_benchmark_json
    from ..model import save_results
    from ..paths import check_input, check_output, writing

    check_input(args.source, "a pytest-benchmark JSON file")
    target = check_output(args.output, "the perfgate results file", perfgate_only=True)
    run = read_benchmark_json(args.source)
    with writing(args.output, "the perfgate results file"):
        save_results(target, run)
    summary_only = sum(1 for t in run.tests if "summary" in t.evidence)
    note = f" ({summary_only} without raw rounds: summary statistics only)" if summary_only else ""
    print(f"imported {len(run.tests)} benchmarks from {args.source} into {args.output}{note}")
    return Exit.OK
