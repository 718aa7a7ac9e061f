"""What the commands share: exit codes, argument types, the gate's arguments and settings, the
report files, and :func:`guarded` (a domain error becomes ``error: ...`` and its exit code).

Light on purpose: imported to build any command's parser; the gate, config and formatters are
imported only when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import PerfgateError
from ..options import threshold

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from ..config import GateSettings
    from ..gate import GateReport
    from ..model import RunResult
    from ..profdiff import ProfileDiff

T = TypeVar("T", bound="DataclassInstance")


class Exit(IntEnum):
    """The documented exit codes (docs/gate.md)."""

    #: success, gate passed (also partly judged, or no baseline yet)
    OK = 0
    #: a regression or a critical budget breach
    FAILED = 1
    #: bad input or configuration, or an incomplete gate (a selected test or the run not compared)
    BAD_INPUT = 2
    #: the stored-baseline gate could judge nothing, or a load run could not be done
    #: (``allow_failure: exit_codes: [3]`` in GitLab CI shows it as a warning)
    NOT_JUDGED = 3


def guarded(run: Callable[[], int], *, interrupted: str = "interrupted") -> int:
    """Run a command: a domain error becomes ``error: ...`` on stderr and its exit code (2 for bad
    input), Ctrl-C exit 130; never a traceback."""
    try:
        return int(run())
    except PerfgateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        signum = int(getattr(exc, "signum", 2))  # SIGTERM during perfgate load: 143 (load.runner.Terminated)
        print(f"error: {interrupted}" + (f" (signal {exc})" if signum != 2 else ""), file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # the reader went away (`perfgate compare ... | head`): no traceback, and no second
        # BrokenPipeError when the interpreter flushes stdout at exit
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it


# --------------------------------------------------------------------------- argument types


def from_args(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """A dataclass ``cls`` (settings of a run) from the options named like its fields, and ``given``."""
    named = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**{**named, **given})


# --------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class ReportFile:
    """A report file a gate option asks for, and how it is made from the gate's report, the
    current run (its tests' evidence) and the profile diffs of the tests judged slower."""

    option: str
    dest: str
    what: str
    render: Callable[[GateReport, RunResult | None, Mapping[str, ProfileDiff]], str]


def _markdown(report: GateReport, current: RunResult | None, diffs: Mapping[str, ProfileDiff]) -> str:
    from ..reports.markdown import format_markdown

    return format_markdown(report, current=current)


def _junit(report: GateReport, current: RunResult | None, diffs: Mapping[str, ProfileDiff]) -> str:
    from ..reports.junit import format_junit

    return format_junit(report)


def _openmetrics(report: GateReport, current: RunResult | None, diffs: Mapping[str, ProfileDiff]) -> str:
    from ..reports.openmetrics import format_openmetrics

    return format_openmetrics(report)


def _json(report: GateReport, current: RunResult | None, diffs: Mapping[str, ProfileDiff]) -> str:
    import json

    from ..reports.json_report import gate_to_dict

    return json.dumps(gate_to_dict(report, cpu_diffs=diffs), allow_nan=False) + "\n"


def _codequality(report: GateReport, current: RunResult | None, diffs: Mapping[str, ProfileDiff]) -> str:
    from ..reports.codequality import format_codequality, gate_findings

    return format_codequality(gate_findings(report, current))


REPORT_FILES = (
    ReportFile("--markdown", "markdown", "the Markdown report", _markdown),
    ReportFile("--junit", "junit", "the JUnit XML report", _junit),
    ReportFile("--metrics", "metrics", "the OpenMetrics report", _openmetrics),
    ReportFile("--json", "json", "the JSON report", _json),
    ReportFile("--codequality", "codequality", "the Code Quality report", _codequality),
)
_REPORT_HELP = {
    "markdown": "write the merge-request comment (Markdown) to FILE",
    "junit": "write JUnit XML to FILE",
    "metrics": "write OpenMetrics text (GitLab metrics report) to FILE",
    "json": "write the whole comparison as JSON to FILE",
    "codequality": "write the GitLab Code Quality report (findings at file:line) to FILE",
}


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """The gate's settings and report files: shared by compare and ab."""
    parser.add_argument("--config", metavar="PATH", help="perfgate.yml with the gate settings (default ./perfgate.yml)")
    for file in REPORT_FILES:
        parser.add_argument(file.option, metavar="FILE", help=_REPORT_HELP[file.dest])
    parser.add_argument("--max-regression", type=threshold(), metavar="PCT", help="override gate.max_regression")
    parser.add_argument("--warn-regression", type=threshold(), metavar="PCT", help="override gate.warn_regression")
    parser.add_argument("--min-improvement", type=threshold(1.0), metavar="PCT", help="override gate.min_improvement")
    parser.add_argument("--alpha", type=threshold(0.5), metavar="P", help="override gate.alpha")
    parser.add_argument("--all", action="store_true", help="also list unchanged metrics in the terminal")


def gate_settings(args: argparse.Namespace) -> GateSettings:
    """The gate's settings: the config file's, with the options' overrides. The report files
    asked for are checked here too, before any work (a long paired run never ends by failing to
    write its report)."""
    from dataclasses import replace

    from ..config import find_config, load_config
    from ..errors import ConfigError
    from ..paths import check_input

    path = args.config if args.config is not None else find_config(".")
    if path is not None:
        check_input(path, "a perfgate.yml (YAML file)")
    settings = load_config(path).gate
    overrides = {
        name: getattr(args, name)
        for name in ("max_regression", "warn_regression", "min_improvement", "alpha")
        if getattr(args, name) is not None
    }
    if args.max_regression is not None and args.warn_regression is None:
        overrides["warn_regression"] = min(settings.warn_regression, args.max_regression)
    settings = replace(settings, **overrides)
    check_report_files(args)
    if settings.warn_regression > settings.max_regression:
        raise ConfigError(
            f"warn regression ({settings.warn_regression:.0%}) is above max regression ({settings.max_regression:.0%})"
        )
    return settings


def check_report_files(args: argparse.Namespace) -> None:
    """Every report file asked for can be written (paths.check_output); two options naming the
    same file are refused (one would silently replace the other)."""
    from ..errors import ResultsFileError
    from ..paths import check_output

    seen: dict[str, str] = {}
    for file in REPORT_FILES:
        path = getattr(args, file.dest, None)
        if path is not None:  # an empty path is refused, not skipped (check_output)
            target = str(check_output(path, file.what))
            if target in seen:
                raise ResultsFileError(
                    path, f"given to both {seen[target]} and {file.option}: pass a file for each report"
                )
            seen[target] = file.option


def write_report(path: str, text: str, what: str) -> None:
    """Write a report file atomically, with the mode of any file perfgate writes (0666 & ~umask);
    a symlink is written through (its target is replaced, the link stays)."""
    from ..paths import check_output, write_text_atomic, writing

    target = check_output(path, what)
    with writing(path, what):
        write_text_atomic(target, text)


def write_reports(
    args: argparse.Namespace,
    report: GateReport,
    current: RunResult | None,
    diffs: Mapping[str, ProfileDiff] | None = None,
) -> None:
    """The report files asked for (--markdown, --junit, --metrics, --json, --codequality), then
    the terminal. ``diffs`` (node id -> what changed in the profile of a test judged slower, from
    ``perfgate ab`` or ``perfgate compare``) are put in the current run's evidence (``cpu_diff``,
    which the Markdown and Code Quality reports show), in the JSON report (``cpu_diffs``) and in
    the terminal after the table."""
    from ..gatediff import with_diffs
    from ..reports.gate_terminal import format_terminal

    diffs = diffs or {}
    current = with_diffs(current, diffs)
    for file in REPORT_FILES:
        path = getattr(args, file.dest)
        if path is not None:
            write_report(path, file.render(report, current, diffs), file.what)
    every = len(report.comparisons) if args.all else None
    print("\n".join(format_terminal(report, max_unchanged=every or 0, max_listed=every or 10)))
    if diffs:
        from ..reports.evidence_text import format_profile_diffs

        print(format_profile_diffs(diffs))
