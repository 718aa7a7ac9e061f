"""The ``perfgate`` command, modelled on pyperf's ``__main__``: a table of commands, each a module of
this package with ``add_arguments(parser)`` and ``run(args) -> int``, imported only when that
command is given (``perfgate --help`` lists every command from the table alone). Domain errors
become ``error: ...`` on stderr with a documented exit code (:class:`~._common.Exit`: 0 passed,
1 regression, 2 bad input, 3 not judged).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType

from ._common import Exit, guarded

#: command -> (its module in this package, one-line help), in the order ``perfgate --help`` lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "report": ("report", "print the budget table and every test's timings of a results file (and its HTML report)"),
    "merge": (
        "merge",
        "merge the results files of a sharded run (GitLab parallel: N), and of a timed and a counted run, into one",
    ),
    "gitlab-comment": ("gitlab_comment", "create or update perfgate's note on the merge request"),
    "load": ("load", "run a locust load test (in a subprocess) and judge it by the KPIs"),
    "ab": ("ab", "paired A/B gate: the base revision and this tree measured side by side, round by round"),
    "check-config": ("check_config", "validate a perfgate.yml and list its KPIs"),
    "compare": (
        "compare",
        "compare a run with a stored baseline: the CI gate (exit 1 on a regression, 3 when nothing could be judged)",
    ),
    "baseline": ("baseline", "manage stored baselines: promote a run, show what is stored"),
    "import": ("import_", "convert a pytest-benchmark JSON file into a perfgate results file"),
    "history": ("history", "the change points of every series in a baseline directory's long history"),
}


def command_module(name: str) -> ModuleType:
    """The module of command ``name`` (imported now)."""
    return importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; the options (and the import of the command's module) only of
    ``commands`` (default: all)."""
    from .. import __version__

    wanted = set(COMMANDS if commands is None else commands)
    parser = argparse.ArgumentParser(prog="perfgate", description="performance budgets and CI gate")
    parser.add_argument("--version", action="version", version=f"perfgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (_, text) in COMMANDS.items():
        command = sub.add_parser(name, help=text, description=text)
        if name in wanted:
            module = command_module(name)
            module.add_arguments(command)
            command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the top-level options take no value: the first other argument names the command
    given = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser([given] if given in COMMANDS else []).parse_args(argv)
    return guarded(lambda: args.run(args))


__all__ = ["COMMANDS", "Exit", "build_parser", "command_module", "guarded", "main"]
