"""The ``perfgate`` command: a thin dispatcher. Each subcommand is a function; heavy imports
happen inside it; domain errors become ``error: ...`` on stderr with a documented exit code.

Exit codes (docs/gate.md): 0 success / gate passed (also partly judged, or no baseline yet);
1 a regression or a critical budget breach; 2 bad input or configuration, or an incomplete gate
(a selected test or the run not compared); 3 the stored-baseline gate could judge nothing
(``allow_failure: exit_codes: [3]`` in GitLab CI shows it as a warning).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import PerfgateError

if TYPE_CHECKING:
    from .config import GateSettings
    from .gate import GateReport
    from .model import RunResult

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
    parser.add_argument("--html", metavar="FILE", help="also write the self-contained HTML report to FILE")
    parser.add_argument(
        "--baseline", metavar="PATH", help="with --html: stored runs (file or directory) for the plots, trend and gate"
    )


@command("report", "print the budget table and every test's timings of a results file (and its HTML report)")(
    _report_args
)
def cmd_report(args: argparse.Namespace) -> int:
    from .model import load_results
    from .paths import check_output, write_text_atomic, writing
    from .reports.terminal import format_budget_table, format_timings

    html = check_output(args.html, "the HTML report") if args.html is not None else None  # before any work
    run = load_results(args.results)
    budgets = format_budget_table(run.tests, max_rows=None if args.all else 30)
    timings = format_timings(run.tests, max_rows=None if args.all else 30, every="--all shows every one")
    lines = budgets + ([""] if budgets and timings else []) + timings
    if not budgets:
        n = len(run.tests)
        lines.append(f"{args.results}: no budgets ({n} test{'s' if n != 1 else ''} recorded)")
    print("\n".join(lines))
    if html is not None:
        from .config import find_config, load_config
        from .gate import compare_for_session
        from .reports.html import render_html

        gate = compare_for_session(run, args.baseline, load_config(find_config(".")).gate) if args.baseline else None
        if gate is not None and gate.report is None:
            print(gate.lines[0], file=sys.stderr)
            return gate.code
        page = render_html(run, baseline=gate.baseline_runs if gate else (), gate=gate.report if gate else None)
        with writing(args.html, "the HTML report"):
            write_text_atomic(html or args.html, page)
        print(f"html report: {args.html}")
    return EXIT_FAIL if any(t.verdict.value == "fail" for t in run.tests) else EXIT_OK


def _merge_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="the shards' results files")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the merged results file")


@command("merge", "merge the results files of a sharded run (GitLab parallel: N) into one")(_merge_args)
def cmd_merge(args: argparse.Namespace) -> int:
    from .merge import merge_files
    from .model import save_results
    from .paths import check_output, writing

    target = check_output(args.output, "the merged results file", perfgate_only=True)
    merged = merge_files(args.results)
    with writing(args.output, "the merged results file"):
        save_results(target, merged)
    print(f"{args.output}: {len(merged.tests)} tests from {len(args.results)} files")
    return EXIT_OK


def _comment_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", help="the Markdown report (perfgate compare --markdown)")
    parser.add_argument("--mr", metavar="IID", help="merge request iid (default: CI_MERGE_REQUEST_IID)")
    parser.add_argument(
        "--token-variable",
        default="PERFGATE_GITLAB_TOKEN",
        metavar="NAME",
        help="environment variable holding a token with the 'api' scope (default PERFGATE_GITLAB_TOKEN)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the note instead of posting it")


@command("gitlab-comment", "create or update perfgate's note on the merge request")(_comment_args)
def cmd_gitlab_comment(args: argparse.Namespace) -> int:
    import os

    from .gitlab import MAX_NOTE_CHARS, check_mr_iid, from_environment, note_body
    from .paths import check_input

    check_input(args.report, "the Markdown report to post")  # a FIFO would block the read
    try:
        with open(args.report, "rb") as handle:
            raw = handle.read(4 * MAX_NOTE_CHARS + 1)  # a UTF-8 character is at most 4 bytes
    except OSError as exc:
        raise PerfgateError(f"{args.report}: cannot be read ({exc.strerror or exc})") from None
    try:
        report = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PerfgateError(
            f"{args.report}: is not UTF-8 text (byte {exc.start}): expected the Markdown report perfgate compare "
            "--markdown writes"
        ) from None
    body = note_body(report, args.report)  # a perfgate report, its quick-action lines neutralised
    if args.dry_run:
        print(body)
        return EXIT_OK
    given, source = args.mr, "--mr"
    if given is None:
        given, source = os.environ.get("CI_MERGE_REQUEST_IID"), "CI_MERGE_REQUEST_IID"
    if not given:
        raise PerfgateError("no merge request: pass --mr IID or run in a merge-request pipeline (CI_MERGE_REQUEST_IID)")
    mr = check_mr_iid(given, source)
    action, note = from_environment(token_variable=args.token_variable).upsert_note(mr, body)
    print(f"perfgate note {note} {action} on merge request !{mr}")
    return EXIT_OK


def _load_args(parser: argparse.ArgumentParser) -> None:
    from .load import cli as load_cli

    load_cli.add_arguments(parser)


@command("load", "run a locust load test (in a subprocess) and judge it by the KPIs")(_load_args)
def cmd_load(args: argparse.Namespace) -> int:
    from .load import cli as load_cli

    return load_cli.run(args)


def _ab_args(parser: argparse.ArgumentParser) -> None:
    from .ab import cli as ab_cli

    ab_cli.add_arguments(parser)


@command("ab", "paired A/B gate: the base revision and this tree measured side by side, round by round")(_ab_args)
def cmd_ab(args: argparse.Namespace) -> int:
    from .ab import cli as ab_cli

    return ab_cli.run(args)


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default="perfgate.yml", help="the KPI file (default: perfgate.yml)")


@command("check-config", "validate a perfgate.yml and list its KPIs")(_config_args)
def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import load_config
    from .paths import check_input
    from .units import format_value

    check_input(args.path, "a perfgate.yml (YAML file)")  # a FIFO would block the read
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


# --------------------------------------------------------------------------- the gate


def _ratio_arg(upper: float | None = None) -> Callable[[str], float]:
    """argparse type for a percentage or fraction in (0, upper)."""

    def parse_ratio(text: str) -> float:
        from .errors import UnitError
        from .units import Kind, parse

        try:
            value = parse(text, Kind.RATIO)
        except UnitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value <= 0 or (upper is not None and value >= upper):
            bound = f" and below {upper:.0%}" if upper is not None else ""
            raise argparse.ArgumentTypeError(f"{text!r} must be above 0{bound}")
        return value

    return parse_ratio


def _compare_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", help="a results file, or a directory of stored runs (perfgate baseline promote)")
    parser.add_argument("current", help="this run's results (pytest --perfgate-save, or a pytest-benchmark JSON)")
    _gate_args(parser)
    parser.add_argument("--require-baseline", action="store_true", help="a missing baseline is an error (exit 2)")
    parser.add_argument(
        "--budgets-only",
        action="store_true",
        help="report regressions but fail only on critical budget breaches (when perfgate ab judges regressions)",
    )


def _gate_args(parser: argparse.ArgumentParser) -> None:
    """The gate's settings and report files: shared by compare and ab."""
    parser.add_argument("--config", metavar="PATH", help="perfgate.yml with the gate settings (default ./perfgate.yml)")
    parser.add_argument("--markdown", metavar="FILE", help="write the merge-request comment (Markdown) to FILE")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML to FILE")
    parser.add_argument("--metrics", metavar="FILE", help="write OpenMetrics text (GitLab metrics report) to FILE")
    parser.add_argument("--json", metavar="FILE", help="write the whole comparison as JSON to FILE")
    parser.add_argument("--max-regression", type=_ratio_arg(), metavar="PCT", help="override gate.max_regression")
    parser.add_argument("--warn-regression", type=_ratio_arg(), metavar="PCT", help="override gate.warn_regression")
    parser.add_argument("--min-improvement", type=_ratio_arg(1.0), metavar="PCT", help="override gate.min_improvement")
    parser.add_argument("--alpha", type=_ratio_arg(0.5), metavar="P", help="override gate.alpha")
    parser.add_argument("--all", action="store_true", help="also list unchanged metrics in the terminal")


def _gate_settings(args: argparse.Namespace) -> GateSettings:
    from dataclasses import replace

    from .config import find_config, load_config
    from .errors import ConfigError
    from .paths import check_input

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
    # compare and ab read their settings first: the report files they will write are checked here,
    # before any work (a long paired run never ends by failing to write its report)
    _check_report_outputs(args)
    if settings.warn_regression > settings.max_regression:
        raise ConfigError(
            f"warn regression ({settings.warn_regression:.0%}) is above max regression ({settings.max_regression:.0%})"
        )
    return settings


def _write_text(path: str | os.PathLike[str], text: str) -> None:
    import os
    import tempfile
    from pathlib import Path

    from .errors import ResultsFileError

    target = Path(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise ResultsFileError(os.fspath(path), f"cannot be written: {exc.strerror or exc}") from None


@command(
    "compare",
    "compare a run with a stored baseline: the CI gate (exit 1 on a regression, 3 when nothing could be judged)",
)(_compare_args)
def cmd_compare(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .errors import GateError
    from .gate import compare_baseline
    from .importers import load_run
    from .store import open_store

    settings = _gate_settings(args)  # the report files are checked there too
    current = load_run(args.current)
    baseline = open_store(args.baseline).load()
    if baseline is None and args.require_baseline:
        raise GateError(f"{args.baseline}: no baseline there (no results file, or no stored runs)")
    report = compare_baseline(baseline, current, settings, location=args.baseline)
    if args.budgets_only:
        report = replace(report, regressions_fail=False)
    _write_reports(args, report, current)
    return report.exit_code


#: the report files of the gate's options: (option, attribute, what)
REPORT_OUTPUTS = (
    ("--markdown", "markdown", "the Markdown report"),
    ("--junit", "junit", "the JUnit XML report"),
    ("--metrics", "metrics", "the OpenMetrics report"),
    ("--json", "json", "the JSON report"),
)


def _check_report_outputs(args: argparse.Namespace) -> None:
    """Every report file asked for can be written: checked before any work (paths.check_output);
    two options naming the same file are refused (one would silently replace the other)."""
    from .errors import ResultsFileError
    from .paths import check_output

    seen: dict[str, str] = {}
    for option, name, what in REPORT_OUTPUTS:
        path = getattr(args, name, None)
        if path is not None:  # an empty path is refused, not skipped (check_output)
            target = str(check_output(path, what))
            if target in seen:
                raise ResultsFileError(path, f"given to both {seen[target]} and {option}: pass a file for each report")
            seen[target] = option


def _write_reports(args: argparse.Namespace, report: GateReport, current: RunResult | None) -> None:
    """The report files asked for (--markdown, --junit, --metrics, --json), then the terminal."""
    import json

    from .reports.gate_terminal import format_terminal

    outputs: list[tuple[str | None, Callable[[], str]]] = [
        (args.markdown, lambda: _lazy("markdown", "format_markdown")(report, current=current)),
        (args.junit, lambda: _lazy("junit", "format_junit")(report)),
        (args.metrics, lambda: _lazy("openmetrics", "format_openmetrics")(report)),
        (args.json, lambda: json.dumps(_lazy("json_report", "gate_to_dict")(report), allow_nan=False) + "\n"),
    ]
    from .paths import check_output

    for path, render in outputs:
        if path is not None:  # a symlink is written through: its target is replaced, the link stays
            _write_text(check_output(path, "the report"), render())
    every = len(report.comparisons) if args.all else None
    print("\n".join(format_terminal(report, max_unchanged=every or 0, max_listed=every or 10)))


def _lazy(module: str, name: str) -> Callable[..., Any]:
    import importlib

    return getattr(importlib.import_module(f"{__package__}.reports.{module}"), name)  # type: ignore[no-any-return]


def _baseline_args(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    promote = sub.add_parser("promote", help="store a run as the newest baseline run (keeps the last K)")
    promote.add_argument("current", help="the results file to promote")
    promote.add_argument("--to", required=True, metavar="DIR", help="the baseline directory (or a .json file)")
    promote.add_argument("--keep", type=_positive, default=None, metavar="K", help="runs to keep (default 10)")
    show = sub.add_parser("show", help="list the runs a baseline holds")
    show.add_argument("location", help="a baseline directory or results file")
    fetch = sub.add_parser(
        "fetch",
        help="fetch the default branch's stored runs (GitLab job artifact, CI_JOB_TOKEN) or a committed or local "
        "baseline into a baseline directory",
    )
    fetch.add_argument("--to", required=True, metavar="DIR", help="the baseline directory to store the runs in")
    fetch.add_argument(
        "--ref", metavar="REF", help="the branch whose latest artifact is the baseline (default: CI_DEFAULT_BRANCH)"
    )
    fetch.add_argument(
        "--job", default=FETCH_JOB, metavar="NAME", help=f"the job keeping the baseline artifact (default {FETCH_JOB})"
    )
    fetch.add_argument(
        "--path",
        default=None,
        metavar="PATH",
        help="where the runs are in the job's artifacts: a directory of stored runs when PATH ends in / or has no "
        f".json suffix (its {INDEX_NAME} lists them; the newest K are fetched), else one results file "
        f"(default {FETCH_PATH}, or {LEGACY_FETCH_PATH} when the artifact has no {FETCH_PATH}{INDEX_NAME})",
    )
    source = fetch.add_mutually_exclusive_group()
    source.add_argument("--from-dir", metavar="DIR", help="copy the stored runs of a local or committed directory")
    source.add_argument("--from-file", metavar="FILE", help="copy a local or committed results file")
    fetch.add_argument("--keep", type=_positive, default=None, metavar="K", help="runs to keep in DIR (default 10)")
    fetch.add_argument(
        "--require-baseline", action="store_true", help="no baseline to fetch is an error (exit 2), not a notice"
    )


#: where the default-branch job of ci/perfgate.gitlab-ci.yml keeps the run history baseline fetch
#: downloads: a directory store (its index.json lists the runs, oldest first)
FETCH_JOB, FETCH_PATH = "perfgate-baseline", ".perfgate/baseline/"
#: what that job kept before it kept a history (one results file): fetched when the default
#: FETCH_PATH has no index, so that the artifact of a job set up before still serves as a baseline
LEGACY_FETCH_PATH = ".perfgate/results.json"
#: a directory store's index: pytest_perfgate.store.files.INDEX_NAME, repeated so that building the
#: parser imports no store code (tests/test_baseline_fetch.py keeps the two equal)
INDEX_NAME = "index.json"


def _artifact_runs(ref: str, job: str, path: str, keep: int) -> tuple[str, list[RunResult]] | None:
    """``(where, runs)`` from ``path`` in the artifacts of ``job`` in the latest successful pipeline
    on ``ref``, or ``None`` when it is not there (404: no such pipeline or job yet, or no such file
    in its artifacts).

    A directory is fetched through its index (GitLab's raw endpoint serves single files, not
    listings): the index, then the newest ``keep`` runs it lists (older ones would be dropped on
    promotion anyway), oldest first. Everything is read and checked before anything is stored; a
    corrupt file, or a run the index lists that is not in the artifact, is a
    :class:`ResultsFileError` naming its path in the artifact."""
    import tempfile
    from pathlib import Path

    from .errors import ResultsFileError
    from .gitlab import from_environment
    from .importers import load_run
    from .store import names_a_directory
    from .store.files import parse_index

    client = from_environment(job_token=True)

    def where(file: str) -> str:
        return f"artifact {file} of job {job!r} on {ref}"

    def parse(content: bytes, file: str, tmp: str) -> RunResult:
        local = Path(tmp, Path(file).name or "results.json")
        local.write_bytes(content)
        try:
            return load_run(local)
        except ResultsFileError as exc:
            raise ResultsFileError(where(file), exc.reason) from None

    with tempfile.TemporaryDirectory(prefix="perfgate-fetch-") as tmp:
        if not names_a_directory(path):
            content = client.artifact(ref, path, job)
            return None if content is None else (where(path), [parse(content, path, tmp)])
        directory = path if path.endswith("/") else path + "/"
        # a newer baseline job may finish while the files are read: the raw endpoint then serves its
        # artifact, which may have dropped the oldest run the first index listed; read it all again
        missing = ""
        for _ in range(2):
            index = client.artifact(ref, directory + INDEX_NAME, job)
            if index is None:
                return None
            names = parse_index(index, where(directory + INDEX_NAME))[-keep:]
            contents = [(name, client.artifact(ref, directory + name, job)) for name in names]
            missing = next((name for name, content in contents if content is None), "")
            if not missing:
                return where(directory), [parse(c, directory + name, tmp) for name, c in contents if c is not None]
        raise ResultsFileError(
            where(directory + missing),
            f"listed in {directory}{INDEX_NAME} but not in the artifact (404), twice: the artifact is incomplete",
        )


def _fetch_baseline(args: argparse.Namespace) -> int:
    """``perfgate baseline fetch``: the baseline runs from a GitLab artifact (a directory of stored
    runs, or one results file), a local file or a local directory, promoted (oldest first) into the
    directory store ``args.to``."""
    import os
    from pathlib import Path

    from .errors import GateError, ResultsFileError
    from .importers import load_run
    from .store import DEFAULT_KEEP, names_a_directory, open_store

    runs: list[RunResult] = []
    note = ""
    from .paths import check_input, check_output, same_place

    check_output(args.to, "the baseline directory", directory=True)  # before anything is fetched
    if args.from_file or args.from_dir:
        where = args.from_file or args.from_dir
        if args.from_file and Path(where).is_dir():
            raise ResultsFileError(where, "is a directory: use --from-dir for a directory of stored runs")
        # a file named by --from-file must be there (a typo is not "no baseline yet"); a directory
        # of stored runs that does not exist yet is
        kind = check_input(
            where,
            "a results file" if args.from_file else "a directory of stored runs",
            directory_ok=bool(args.from_dir),
            missing_ok=bool(args.from_dir),
        )
        if args.from_dir and kind == "file":
            raise ResultsFileError(where, "is a file: use --from-file for one results file, --from-dir for a directory")
        if args.from_dir and kind is not None and same_place(where, args.to):
            raise ResultsFileError(
                where, f"is the same directory as --to {args.to}: every run would be stored twice; fetch into another"
            )
        stored = open_store(where).load() if kind is not None else None
        if stored is not None:
            runs = [load_run(source) for source in stored.sources]  # full files, not the summaries
        missing = f"{where}: no baseline yet (no results file or stored runs there)"
    else:
        ref = args.ref or os.environ.get("CI_DEFAULT_BRANCH")
        if not ref:
            raise GateError("no ref to fetch the baseline from: pass --ref REF or run in GitLab CI (CI_DEFAULT_BRANCH)")
        if args.path is not None and not args.path.strip():
            raise GateError("--path is empty: pass the directory of stored runs or the results file in the artifact")
        if args.path is not None and (args.path.startswith("/") or {".", ".."} & set(args.path.split("/"))):
            raise GateError(
                f"--path {args.path!r} leaves the job's artifacts: pass a path inside them, relative, without . or .. "
                f"(e.g. {FETCH_PATH})"
            )
        if not args.job.strip():
            raise GateError(f"--job is empty: pass the name of the job keeping the baseline artifact ({FETCH_JOB})")
        paths = [args.path] if args.path is not None else [FETCH_PATH, LEGACY_FETCH_PATH]
        shown = [p.rstrip("/") + "/" + INDEX_NAME if names_a_directory(p) else p for p in paths]
        missing = f"no baseline yet (first run on {ref}): no artifact {shown[0]}"
        missing += "".join(f" (nor {p})" for p in shown[1:]) + f" of job {args.job!r} on {ref}"
        for path in paths:
            found = _artifact_runs(ref, args.job, path, args.keep or DEFAULT_KEEP)
            if found is not None:
                where, runs = found
                if not runs:
                    missing = f"no baseline yet: {where} lists no runs"
                if path == LEGACY_FETCH_PATH and args.path is None:
                    note = f"; that job kept no run history ({shown[0]}) yet, only its latest results"
                break
    if not runs:
        if args.require_baseline:
            raise GateError(missing)
        print(f"perfgate: NOTICE: {missing}; the gate will pass without a comparison")
        return EXIT_OK
    store = open_store(args.to if args.to.endswith(("/", os.sep)) or Path(args.to).is_dir() else args.to + os.sep)
    keep = args.keep or DEFAULT_KEEP
    for run in runs:
        store.promote(run, keep=keep)
    loaded = store.load()
    count = len(loaded.runs) if loaded else 0
    print(
        f"fetched {len(runs)} run{'s' if len(runs) != 1 else ''} from {where} into {args.to} "
        f"({count} run{'s' if count != 1 else ''} stored, keeping {keep}){note}"
    )
    return EXIT_OK


def _positive(text: str) -> int:
    from .options import positive_int

    return positive_int(text)


@command("baseline", "manage stored baselines: promote a run, show what is stored")(_baseline_args)
def cmd_baseline(args: argparse.Namespace) -> int:
    from .importers import load_run
    from .store import DEFAULT_KEEP, open_store

    if args.action == "promote":
        from .paths import check_input, check_output
        from .store.files import FileStore

        check_input(args.current, "the results file to promote")
        store = open_store(args.to)
        if isinstance(store, FileStore):  # never overwrite a file that is not perfgate's
            check_output(args.to, "the baseline file", perfgate_only=True)
        else:
            check_output(args.to, "the baseline directory", directory=True)
        run = load_run(args.current)
        keep = args.keep or DEFAULT_KEEP
        where = store.promote(run, keep=keep)
        stored = store.load()
        count = len(stored.runs) if stored else 0
        print(f"promoted {args.current} to {where} ({count} run{'s' if count != 1 else ''} stored, keeping {keep})")
        return EXIT_OK
    if args.action == "fetch":
        return _fetch_baseline(args)
    stored = open_store(args.location).load()
    if stored is None:
        print(f"{args.location}: no baseline")
        return EXIT_OK
    for source, run in zip(stored.sources, stored.runs, strict=True):
        created = run.metadata.get("created") or "?"
        print(f"{source}: {len(run.tests)} tests, created {created}")
    return EXIT_OK


def _import_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a pytest-benchmark JSON file (pytest --benchmark-json=FILE)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the perfgate results file to write")


@command("import", "convert a pytest-benchmark JSON file into a perfgate results file")(_import_args)
def cmd_import(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .errors import ResultsFileError
    from .importers import from_benchmark_json
    from .model import parse_json, run_to_dict
    from .paths import check_input, check_output

    check_input(args.source, "a pytest-benchmark JSON file")
    target = check_output(args.output, "the perfgate results file", perfgate_only=True)
    try:
        text = Path(args.source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsFileError(args.source, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(args.source, f"cannot be read: {exc}") from None
    if not text.strip():
        raise ResultsFileError(args.source, "is empty")
    run = from_benchmark_json(parse_json(text, args.source), args.source)
    _write_text(target, json.dumps(run_to_dict(run), indent=1, allow_nan=False) + "\n")
    summary_only = sum(1 for t in run.tests if "summary" in t.evidence)
    note = f" ({summary_only} without raw rounds: summary statistics only)" if summary_only else ""
    print(f"imported {len(run.tests)} benchmarks from {args.source} into {args.output}{note}")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(lambda: args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
