"""``perfgate report``: the budget table and every test's timings of a results file, and its HTML
report."""

from __future__ import annotations

import argparse
import sys

from ._common import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a results file written by pytest --perfgate-save")
    parser.add_argument("--all", action="store_true", help="show every row (default: the worst 30)")
    parser.add_argument("--html", metavar="FILE", help="also write the self-contained HTML report to FILE")
    parser.add_argument(
        "--codequality",
        metavar="FILE",
        help="also write the GitLab Code Quality report (budget breaches, MongoDB findings at file:line) to FILE",
    )
    parser.add_argument(
        "--baseline", metavar="PATH", help="with --html: stored runs (file or directory) for the plots, trend and gate"
    )


def run(args: argparse.Namespace) -> int:
    from ..model import load_results
    from ..paths import check_output
    from ..reports.terminal import format_budget_table, format_timings
    from ._common import write_report

    if args.html is not None:
        check_output(args.html, "the HTML report")  # before any work
    if args.codequality is not None:
        check_output(args.codequality, "the Code Quality report")
    run = load_results(args.results)
    budgets = format_budget_table(run.tests, max_rows=None if args.all else 30)
    timings = format_timings(run.tests, max_rows=None if args.all else 30, every="--all shows every one")
    lines = budgets + ([""] if budgets and timings else []) + timings
    if not budgets:
        n = len(run.tests)
        lines.append(f"{args.results}: no budgets ({n} test{'s' if n != 1 else ''} recorded)")
    print("\n".join(lines))
    if args.codequality is not None:
        from ..reports.codequality import format_codequality, run_findings

        write_report(args.codequality, format_codequality(run_findings(run)), "the Code Quality report")
        print(f"code quality report: {args.codequality}")
    if args.html is not None:
        from ..config import find_config, load_config
        from ..gate import compare_for_session
        from ..reports.gate_terminal import format_session_gate
        from ..reports.html import render_html

        gate = compare_for_session(run, args.baseline, load_config(find_config(".")).gate) if args.baseline else None
        if gate is not None and gate.report is None:
            print(format_session_gate(gate)[0], file=sys.stderr)
            return gate.code
        if gate is not None:
            from ..gatediff import explain_session
            from ..store import newest_first

            gate, run = explain_session(gate, run, newest_first(gate.baseline_runs, gate.baseline_sources))
        page = render_html(run, baseline=gate.baseline_runs if gate else (), gate=gate.report if gate else None)
        write_report(args.html, page, "the HTML report")
        print(f"html report: {args.html}")
    return Exit.FAILED if any(t.verdict.value == "fail" for t in run.tests) else Exit.OK
