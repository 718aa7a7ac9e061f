"""The ``perfgate`` command: a thin dispatcher. Each subcommand is a function; heavy imports
happen inside it; domain errors become ``error: ...`` on stderr with a documented exit code.

Exit codes: 0 success / gate passed; 1 a regression or a critical budget breach;
2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import PerfgateError

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2

Command = Callable[[argparse.Namespace], int]
#: subcommand name -> (help, add_arguments, run); later subsystems register theirs here
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Command]] = {}


AddArguments = Callable[[argparse.ArgumentParser], None]


def command(name: str, help: str) -> Callable[[AddArguments], Callable[[Command], Command]]:
    """Register a subcommand: ``@command(name, help)(add_arguments)(run)``."""

    def with_arguments(add: Callable[[argparse.ArgumentParser], None]) -> Callable[[Command], Command]:
        def with_run(run: Command) -> Command:
            COMMANDS[name] = (help, add, run)
            return run

        return with_run

    return with_arguments


def _report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a results file written by pytest --perfgate-save")
    parser.add_argument("--all", action="store_true", help="show every row (default: the worst 30)")


@command("report", "print the budget table of a results file")(_report_args)
def cmd_report(args: argparse.Namespace) -> int:
    from .model import load_results
    from .reports.terminal import format_budget_table

    run = load_results(args.results)
    lines = format_budget_table(run.tests, max_rows=None if args.all else 30)
    print("\n".join(lines) if lines else f"{args.results}: no budgeted tests ({len(run.tests)} tests recorded)")
    return EXIT_FAIL if any(t.verdict.value == "fail" for t in run.tests) else EXIT_OK


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default="perfgate.yml", help="the KPI file (default: perfgate.yml)")


@command("check-config", "validate a perfgate.yml and list its KPIs")(_config_args)
def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import load_config
    from .units import format_value

    config = load_config(args.path)
    print(f"{args.path}: valid; {len(config.kpis)} KPIs, {len(config.metrics)} custom metrics")
    for kpi in config.kpis.values():
        levels = []
        for b in kpi.budgets:
            target, critical = (
                "-" if v is None else format_value(v, b.kind) if b.kind else str(v) for v in (b.target, b.critical)
            )
            levels.append(f"{b.metric} target {target} critical {critical}")
        print(f"  {kpi.name}: " + "; ".join(levels))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="perfgate", description="performance budgets and CI gate")
    parser.add_argument("--version", action="version", version=f"perfgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (text, add, run) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        add(p)
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except PerfgateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
