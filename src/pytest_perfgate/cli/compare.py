"""``perfgate compare``: a run against a stored baseline, the CI gate."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import add_gate_arguments

if TYPE_CHECKING:
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", help="a results file, or a directory of stored runs (perfgate baseline promote)")
    parser.add_argument("current", help="this run's results (pytest --perfgate-save, or a pytest-benchmark JSON)")
    add_gate_arguments(parser)
    parser.add_argument("--require-baseline", action="store_true", help="a missing baseline is an error (exit 2)")
    parser.add_argument(
        "--budgets-only",
        action="store_true",
        help="report regressions but fail only on critical budget breaches (when perfgate ab judges regressions)",
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..errors import GateError
    from ..gate import compare_baseline
    from ..gatediff import stored_diffs, with_diffs, with_notice
    from ..importers import load_run
    from ..store import newest_first, open_store
    from ._common import gate_settings, write_reports

    settings = gate_settings(args)  # the report files are checked there too
    current = load_run(args.current)
    baseline = open_store(args.baseline).load()
    if baseline is None and args.require_baseline:
        raise GateError(f"{args.baseline}: no baseline there (no results file, or no stored runs)")
    report = compare_baseline(baseline, current, settings, location=args.baseline)
    if args.budgets_only:
        report = replace(report, regressions_fail=False)
    # what changed in the profile of each test judged slower on time, against the newest stored
    # run that has one (evidence: the verdicts stay the gate's)
    found = stored_diffs(report, current, newest_first(baseline.runs, baseline.sources) if baseline else ())
    report = with_notice(report, found.notice())
    current = with_diffs(current, {}, only=True) or current  # a perfgate ab diff is against another base
    write_reports(args, report, current, found.diffs)
    return report.exit_code
