"""``perfgate compare``: a run against a stored baseline, the CI gate."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import add_gate_arguments

if TYPE_CHECKING:
    from ..gate import GateReport


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
    parser.add_argument(
        "--history",
        metavar="PATH",
        help="the default branch's history (perfgate history --json FILE, or a baseline directory): the report says "
        "which compared tests' series have an open change point there (default: the baseline directory's own "
        "history file, when it has one)",
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..errors import GateError
    from ..gate import Notice, NoticeKind, compare_baseline
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
    for line in moved_baseline(args.history, args.baseline, report):
        report = with_notice(report, Notice(NoticeKind.TEXT, text=line))
    current = with_diffs(current, {}, only=True) or current  # a perfgate ab diff is against another base
    write_reports(args, report, current, found.diffs)
    return report.exit_code


def moved_baseline(history: str | None, baseline: str, report: GateReport) -> list[str]:
    """A line per compared test whose default-branch series has an open change point, from the
    history at ``history`` (a ``perfgate history --json`` file, or a baseline directory), else from
    the baseline directory's own history file when it has one; none without a history."""
    import os

    from ..history.alerts import baseline_moved
    from ..history.analyse import judge_directory
    from ..history.log import has_log
    from ..history.model import load_history

    if history is not None and not os.path.isdir(history):
        judged = load_history(history)
    elif history is not None or (os.path.isdir(baseline) and has_log(baseline)):
        judged, _ = judge_directory(history or baseline, keep=False)  # continued from its judged state
    else:
        return []
    return baseline_moved(judged, sorted({c.nodeid for c in report.comparisons}))
