"""``perfgate merge``: the results files of a sharded run as one, with the counted runs of the same
tests (``--perfgate-instructions``) joined to the timed ones (rules: :mod:`pytest_perfgate.merge`)."""

from __future__ import annotations

import argparse

from ._common import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        help="the shards' results files, and counted runs' (--perfgate-instructions) of the same tests: a test "
        "in two files is joined when their series are disjoint",
    )
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the merged results file")


def run(args: argparse.Namespace) -> int:
    from ..merge import merge_files
    from ..model import save_results
    from ..paths import check_output, writing

    target = check_output(args.output, "the merged results file", perfgate_only=True)
    merged = merge_files(args.results)
    with writing(args.output, "the merged results file"):
        save_results(target, merged)
    joined = sum(shard["tests"] for shard in merged.metadata["shards"]) - len(merged.tests)
    both = f" ({joined} timed and counted)" if joined else ""
    print(f"{args.output}: {len(merged.tests)} tests from {len(args.results)} files{both}")
    return Exit.OK
