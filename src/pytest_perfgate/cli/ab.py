"""``perfgate ab``: the paired A/B gate (the base revision and this tree measured side by side)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..options import duration, positive_int, whole_number
from ._common import add_gate_arguments

if TYPE_CHECKING:
    from ..ab.controller import AbRun
    from ..ab.schedule import PairedTest
    from ..config import GateSettings
    from ..gate import GateReport
    from ..model import RunResult
    from ..profdiff import ProfileDiff

BLOCKS_SCHEMA = "perfgate-ab-blocks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, metavar="REV", help="the revision to compare with, e.g. origin/main")
    parser.add_argument(
        "--cpu", type=int, metavar="N", help="the CPU both workers share (default: the last CPU this process may use)"
    )
    parser.add_argument(
        "--pythonpath",
        action="append",
        metavar="DIR",
        help="a directory (relative to each side's tree) put first on PYTHONPATH; repeatable (default: src, when "
        "the tree has one)",
    )
    parser.add_argument(
        "--install",
        metavar="CMD",
        help="a shell command run in the base tree before its worker starts (e.g. to build extensions)",
    )
    parser.add_argument(
        "--overlay",
        action="append",
        default=[],
        metavar="PATH",
        help="a current file or directory also laid over the base tree (test helpers, data); repeatable",
    )
    parser.add_argument(
        "--min-blocks",
        type=positive_int,
        default=16,
        metavar="N",
        help="paired blocks (4 rounds each) per test at least (default 16)",
    )
    parser.add_argument(
        "--max-time",
        type=duration,
        metavar="DURATION",
        help="measuring time per side and test (default: the tests' perfgate_max_time)",
    )
    parser.add_argument(
        "--min-round-time",
        type=duration,
        default=1e-3,
        metavar="DURATION",
        help="calibrate fast calls into rounds at least this long (default 1ms)",
    )
    parser.add_argument(
        "--test-timeout",
        type=duration,
        default=300.0,
        metavar="DURATION",
        help="a test whose worker does not answer within this is killed (default 5min)",
    )
    parser.add_argument("--timeout", type=duration, metavar="DURATION", help="limit of the whole run (default none)")
    parser.add_argument(
        "--confirm-pairs",
        type=whole_number(0),
        default=2,
        metavar="N",
        help="measure a test whose change reaches half the warning threshold again in a fresh pair of "
        "workers, and in another while the pairs disagree, up to N; judge the median change over "
        "the pairs (default 2; 0: never)",
    )
    parser.add_argument(
        "--no-whole-calls",
        dest="whole_calls",
        action="store_false",
        help="do not time tests that use neither perf nor benchmark as whole calls (they are listed as "
        "not compared, and do not make the run incomplete)",
    )
    parser.add_argument(
        "--profile-time",
        type=duration,
        default=1.0,
        metavar="DURATION",
        help="after the rounds, profile the timed call of each test judged a regression or a warning on both "
        "sides, and report the functions whose own time changed most; with --profiler cpu, sample each side's "
        "call for this long (default 1s; 0: no profiles)",
    )
    parser.add_argument(
        "--profiler",
        choices=("auto", "instructions", "cpu"),
        default="auto",
        help="how those tests are profiled: instructions (one call counted by Python function under valgrind's "
        "callgrind: exact, unmoved by a loaded machine), cpu (pyinstrument, sampled CPU time), auto (default: "
        "instructions where valgrind is installed, else cpu, said in a notice)",
    )
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="tests selected on both sides but not compared (failed, timed nothing, ...) are listed in "
        "a notice instead of making the run incomplete (exit 2); a run that broke off stays exit 2",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="the paired gate on counts: each side runs its session once under valgrind's callgrind "
        "(--perfgate-instructions) and each test's instructions and allocations are judged by the counter "
        'rule (no pinning, no rounds; docs/ab.md, "Counted")',
    )
    parser.add_argument(
        "--allocations",
        action="store_true",
        help="the paired gate on allocation counts only (--perfgate-allocations: no valgrind); with "
        "--instructions, allocations are counted anyway",
    )
    parser.add_argument("--hashseed", default="0", metavar="SEED", help="PYTHONHASHSEED of both workers (default 0)")
    parser.add_argument("--keep-worktree", action="store_true", help="keep the base worktree (for debugging)")
    parser.add_argument("--save-current", metavar="FILE", help="write the current side's results file to FILE")
    parser.add_argument("--save-base", metavar="FILE", help="write the base side's results file to FILE")
    parser.add_argument(
        "--save-blocks",
        metavar="FILE",
        help="write every test's paired block ratios (per pair of workers) to FILE as JSON",
    )
    add_gate_arguments(parser)
    parser.add_argument("pytest_args", nargs="*", metavar="-- PYTEST ARGS", help="what pytest runs on both sides")


#: timed-mode options and their defaults: given with --instructions/--allocations they are refused
TIMED_ONLY = {
    "cpu": None,
    "min_blocks": 16,
    "max_time": None,
    "min_round_time": 1e-3,
    "test_timeout": 300.0,
    "confirm_pairs": 2,
    "whole_calls": True,
    "hashseed": "0",
    "save_blocks": None,
    "profile_time": 1.0,
    "profiler": "auto",
}


def _refused(args: argparse.Namespace) -> list[str]:
    """The timed-mode options given with a counted mode, as the user wrote them."""
    return [
        "--" + ("no-whole-calls" if name == "whole_calls" else name.replace("_", "-"))
        for name, default in TIMED_ONLY.items()
        if getattr(args, name) != default
    ]


def run(args: argparse.Namespace) -> int:
    if args.instructions or args.allocations:
        return run_counted(args)
    return run_timed(args)


def run_counted(args: argparse.Namespace) -> int:
    """``perfgate ab --instructions`` / ``--allocations``: each side counted once, the counter rule."""
    from ..ab.counted import CountOptions
    from ..ab.counted import run_counted as count
    from ..ab.judge import compare_counted
    from ..ab.schedule import Side
    from ..errors import AbError
    from ..model import save_results
    from ._common import gate_settings, write_reports

    mode = "--instructions" if args.instructions else "--allocations"
    refused = _refused(args)
    if refused:
        raise AbError(
            f"perfgate ab {mode} counts one call per test and side (no rounds, no pinning, the hash seed of "
            f"the counted session): {', '.join(refused)} only apply to the timed mode; remove "
            f"{'it' if len(refused) == 1 else 'them'} (--timeout limits the whole run)"
        )
    settings = gate_settings(args)
    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    options = CountOptions(
        base=args.base,
        pytest_args=tuple(pytest_args),
        pythonpath=tuple(args.pythonpath) if args.pythonpath is not None else None,
        install=args.install,
        overlay=tuple(args.overlay),
        instructions=bool(args.instructions),
        timeout=args.timeout,
        keep_worktree=args.keep_worktree,
    )
    try:
        result = count(options, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except AbError as exc:
        write_reports(args, compare_counted({}, settings, subject=args.base, broken=f"{exc}", started=False), None)
        raise
    for path, side in ((args.save_current, Side.CURRENT), (args.save_base, Side.BASE)):
        side_run = result.run_of(side)
        if path and side_run is not None:
            save_results(path, side_run)
    report = compare_counted(
        result.sessions,
        settings,
        subject=result.subject,
        notices=result.notices,
        broken=result.incomplete,
        allow_incomplete=args.allow_incomplete,
    )
    write_reports(args, report, result.run_of(Side.CURRENT))
    print(f"perfgate ab {mode}: both sides counted in {result.elapsed:.1f}s", file=sys.stderr)
    return _exit(report, result.incomplete)


def run_timed(args: argparse.Namespace) -> int:
    from ..ab.controller import AbOptions, run_ab
    from ..ab.judge import compare_paired
    from ..errors import AbError
    from ..model import save_results
    from ._common import from_args, gate_settings, write_reports

    settings = gate_settings(args)
    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    options = from_args(
        AbOptions,
        args,
        pytest_args=tuple(pytest_args),
        pythonpath=tuple(args.pythonpath) if args.pythonpath is not None else None,
        overlay=tuple(args.overlay),
        # half the warning threshold (no less than the smallest change judged at all): a pair whose offset
        # hides half of a real change is measured again too
        confirm_above=max(min(settings.warn_regression, settings.min_improvement) / 2, settings.min_effect),
        confirm_verdict_at=max(settings.max_regression, settings.min_effect),
    )
    live = _live_line() if sys.stderr.isatty() else None
    try:
        result = run_ab(
            options,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
            live=live,
            profile=lambda run: judged_slower(run, settings),
        )
    except AbError as exc:
        # the run could not start (no such revision, nothing selected, a failing install, ...):
        # the reports asked for still say so, with the same exit code
        write_reports(args, compare_paired((), settings, subject=args.base, broken=f"{exc}", started=False), None)
        raise
    diffs = profile_diffs(result)
    result.current_run = with_diffs(result.current_run, diffs)
    for path, side_run in ((args.save_current, result.current_run), (args.save_base, result.base_run)):
        if path and side_run is not None:
            save_results(path, side_run)
    if args.save_blocks:
        save_blocks(args.save_blocks, result.tests)
    report = compare_paired(
        result.tests,
        settings,
        base_run=result.base_run,
        current_run=result.current_run,
        subject=result.subject,
        notices=result.notices,
        broken=result.incomplete,
        allow_incomplete=args.allow_incomplete,
    )
    write_reports(args, report, result.current_run, diffs)
    print(f"perfgate ab: {len(result.tests)} test(s) in {result.elapsed:.1f}s", file=sys.stderr)
    return _exit(report, result.incomplete)


def judged_slower(run: AbRun, settings: GateSettings) -> list[str]:
    """The tests the paired gate judges a regression or a warning on time (they get profiled)."""
    from ..ab.judge import compare_paired
    from ..gatediff import slower_on_time

    return slower_on_time(compare_paired(run.tests, settings, allow_incomplete=True))


def profile_diffs(run: AbRun) -> dict[str, ProfileDiff]:
    """What changed in each profiled test: its base profile against its current one."""
    from ..ab.schedule import Side
    from ..profdiff import diff_profiles

    return {nodeid: diff_profiles(sides[Side.BASE], sides[Side.CURRENT]) for nodeid, sides in run.profiles.items()}


def with_diffs(current: RunResult | None, diffs: dict[str, ProfileDiff]) -> RunResult | None:
    """The current run with each profiled test's diff in its evidence (:func:`..gatediff.with_diffs`)."""
    from ..gatediff import with_diffs as attach

    return attach(current, diffs)


def _exit(report: GateReport, broken: str) -> int:
    """The run's exit code, with why it is incomplete on stderr."""
    if broken:
        print(f"error: the paired run did not finish: {broken}", file=sys.stderr)
    elif report.incomplete:
        print(
            f"error: the paired run is incomplete: {'; '.join(report.incomplete)[:2000]} (--allow-incomplete "
            "lists tests not compared without failing)",
            file=sys.stderr,
        )
    return report.exit_code


def save_blocks(path: str, tests: Sequence[PairedTest]) -> None:
    """Each test's block log ratios, pair by pair (``--save-blocks``; schema ``perfgate-ab-blocks`` 1)."""
    import json
    from dataclasses import asdict

    from ..paths import write_text_atomic

    data = {"schema": BLOCKS_SCHEMA, "schema_version": 1, "tests": [asdict(t) for t in tests]}
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def _live_line() -> Callable[[str], None]:
    def show(text: str) -> None:
        sys.stderr.write("\r\x1b[2K" + text[:150])
        sys.stderr.flush()

    return show
