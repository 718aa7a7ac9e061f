"""``perfgate load``: a headless locust run judged by perfgate's KPIs.

    perfgate load examples/api_service/locustfile.py --host http://127.0.0.1:8000 \\
        --users 50 --spawn-rate 10 --run-time 30s --kpi api_response_time --kpi api_throughput \\
        --save .perfgate/load.json --gitlab-report load-performance.json --html locust.html

    perfgate load examples/api_service/locustfile.py --serve "python -m uvicorn app:app --port {port}" \
        --profile cpu --run-time 20s --warmup 5s

``--serve CMD`` starts the service (``{port}``: a free loopback port; the host then defaults to
it), waits until it is ready, and stops it at the end and on any fault; ``--profile cpu``
samples it with py-spy during the measured window, ``--profile memory`` runs it under memray.

Exit codes:
  0  every KPI level met (warnings past a target do not fail; --strict makes them fail)
  1  a KPI's critical level breached (latency, throughput, or the error rate)
  2  bad input or configuration: missing locustfile, run-time or level that does not parse,
     unknown KPI, no perfgate.yml for --kpi, locust not installed (with an install hint)
  3  the run could not be done: the target does not answer, the service did not start or was
     not ready in time, locust failed or hung

"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..options import duration
from ._common import Exit, from_args, guarded

if TYPE_CHECKING:
    from ..load.runner import LoadSettings
    from ..load.serve import ServeSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("locustfile", nargs="?", help="the locustfile (its User classes generate the load)")
    parser.add_argument(
        "--host", help="the service under load, e.g. http://127.0.0.1:8000 (default with --serve: 127.0.0.1:{port})"
    )
    parser.add_argument(
        "--serve",
        metavar="CMD",
        help="start the service with CMD (split like a shell, not run by one; {port}: a free loopback port) "
        "and stop it after the run",
    )
    parser.add_argument(
        "--serve-ready",
        metavar="URL",
        help="the service is ready when URL answers (below 500; {port} allowed); "
        "default: when its port accepts connections",
    )
    parser.add_argument(
        "--serve-timeout",
        type=duration,
        default=30.0,
        metavar="DURATION",
        help="wait this long for the service to be ready (default 30s)",
    )
    parser.add_argument(
        "--profile",
        choices=("cpu", "memory"),
        help="profile the service started by --serve: cpu (py-spy samples it during the measured window) "
        "or memory (it runs under memray)",
    )
    parser.add_argument(
        "--profile-rate", type=int, default=100, metavar="N", help="py-spy samples per second (default 100)"
    )
    parser.add_argument(
        "--profile-nonblocking",
        action="store_true",
        help="py-spy reads the service's stacks without pausing it (a sample may be torn)",
    )
    parser.add_argument(
        "--profile-dir",
        default=os.path.join(".perfgate", "profile"),
        metavar="DIR",
        help="where the profile's files go: flame graph, py-spy's speedscope file, memray's capture "
        "(default .perfgate/profile)",
    )
    parser.add_argument("--markdown", metavar="PATH", help="write the run's summary in Markdown (merge-request notes)")
    parser.add_argument(
        "--codequality",
        metavar="PATH",
        help="write GitLab's Code Quality report: KPI breaches at the locustfile (artifacts:reports:codequality)",
    )
    parser.add_argument("-u", "--users", type=int, default=10, help="concurrent users (default 10)")
    parser.add_argument(
        "-r", "--spawn-rate", type=float, default=None, help="users started per second (default: all at once)"
    )
    parser.add_argument(
        "-t",
        "--run-time",
        default="10s",
        metavar="DURATION",
        help="how long to run: '30s', '90', '2m', '1h30m', '1.5min' (whole seconds: rounded up; default 10s)",
    )
    parser.add_argument(
        "--warmup",
        type=duration,
        default=0.0,
        metavar="DURATION",
        help="leave out requests completed in the first DURATION (ramp-up) from every figure (default 0)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="locust processes on this machine: N > 1 forks N workers under a local master, -1 one per core",
    )
    parser.add_argument(
        "--expect-workers",
        type=int,
        default=0,
        metavar="N",
        help="run as a locust master and wait for N external workers (other machines; see docs/load.md)",
    )
    parser.add_argument("--master-bind-port", type=int, default=None, help="master port for external workers")
    parser.add_argument(
        "--kpi", action="append", default=[], metavar="NAME", help="a KPI from perfgate.yml (repeatable)"
    )
    parser.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="METRIC=LEVEL",
        help="a level of your own, e.g. p95=200ms,500ms (target,critical) or rps=500/s (repeatable; wins over --kpi)",
    )
    parser.add_argument(
        "--error-rate",
        default="1%",
        metavar="LEVEL",
        help="critical error-rate level when no KPI or --budget sets one (default 1%%; 'none' for no default)",
    )
    parser.add_argument("--config", default=None, help="perfgate.yml (default: found from the locustfile's folder up)")
    parser.add_argument("--strict", action="store_true", help="a level past its target (warn) fails too")
    parser.add_argument(
        "--save", metavar="PATH", help="write the results file (perfgate's schema) for perfgate compare"
    )
    parser.add_argument(
        "--gitlab-report", metavar="PATH", help="write GitLab's load_performance JSON (k6 summary shape)"
    )
    parser.add_argument("--html", metavar="PATH", help="write locust's HTML report")
    parser.add_argument(
        "--connect-timeout",
        type=duration,
        default=5.0,
        metavar="DURATION",
        help="wait this long for the target's first answer (default 5s)",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="live progress: auto (on a terminal only), always (a line every 10s in logs), never",
    )
    parser.add_argument("--workdir", metavar="DIR", help="keep locust's log and the raw per-request data here")
    parser.add_argument(
        "--locust-arg", action="append", default=[], metavar="ARG", help="pass ARG on to locust (repeatable)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also print locust's command line and log folder")
    parser.add_argument(
        "--listener-path", action="store_true", help="print the path of perfgate's locust listener and exit"
    )


def _generators(settings: LoadSettings) -> str:
    if settings.expect_workers:
        return f"master + {settings.expect_workers} external worker{'s' if settings.expect_workers != 1 else ''}"
    if settings.processes == 1:
        return "1 process"
    count = os.cpu_count() if settings.processes == -1 else settings.processes
    return f"{count} worker processes"


def _config_path(args: argparse.Namespace) -> str | None:
    from ..config import find_config

    if args.config:
        return str(args.config)
    start = os.path.dirname(os.path.abspath(args.locustfile))
    found = find_config(start, os.path.commonpath([start, os.getcwd()]))
    return str(found) if found else None


def _check_outputs(args: argparse.Namespace) -> dict[str, Path]:
    """Every output path checked before the run (paths.check_output): where to write each. The
    results file overwrites only a perfgate file; two options naming one file are refused."""
    from ..errors import LoadError
    from ..paths import check_input, check_output

    if args.locustfile and os.path.exists(args.locustfile):
        check_input(args.locustfile, "a locustfile (a Python file)")  # a FIFO would hang locust
    if args.config:
        check_input(args.config, "a perfgate.yml (YAML file)")
    targets: dict[str, Path] = {}
    if args.save is not None:  # an empty path is refused (check_output), not skipped
        targets["save"] = check_output(args.save, "the results file (--save)", perfgate_only=True)
    if args.gitlab_report is not None:
        targets["gitlab_report"] = check_output(args.gitlab_report, "the load_performance report (--gitlab-report)")
    if args.html is not None:
        targets["html"] = check_output(args.html, "locust's HTML report (--html)")
    if args.markdown is not None:
        targets["markdown"] = check_output(args.markdown, "the Markdown summary (--markdown)")
    if args.codequality is not None:
        targets["codequality"] = check_output(args.codequality, "the Code Quality report (--codequality)")
    if args.profile is not None:
        check_output(args.profile_dir, "the profile's folder (--profile-dir)", directory=True)
    if args.workdir is not None:
        check_output(args.workdir, "locust's work folder (--workdir)", directory=True)
    named = list(targets.items())
    for i, (option, target) in enumerate(named):
        for other, again in named[i + 1 :]:
            if target == again:
                raise LoadError(
                    f"--{option.replace('_', '-')} and --{other.replace('_', '-')} name the same file {target}: "
                    "pass a file for each"
                )
    return targets


def _execute(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..errors import LoadError
    from ..load.gitlab import k6_summary
    from ..load.kpi import build_spec
    from ..load.report import (
        ProgressLine,
        format_markdown,
        format_notes,
        format_service,
        format_stats,
        format_verdicts,
    )
    from ..load.run import ProfileSettings, run_load
    from ..load.runner import LoadSettings, listener_path
    from ..load.serve import default_host
    from ..model import save_results
    from ..paths import check_input, write_json_atomic, write_text_atomic, writing
    from ..reports.markdown import escape as markdown_escape

    if args.listener_path:
        print(listener_path())
        return Exit.OK
    if not args.locustfile:
        raise LoadError("a locustfile is required, e.g. perfgate load locustfile.py --host http://127.0.0.1:8000")
    serve = _serve_settings(args)
    if args.profile is not None and serve is None:
        raise LoadError("--profile needs --serve: perfgate profiles a service it starts itself")
    host = args.host or (default_host(serve.port) if serve is not None and serve.port is not None else None)
    if not host:
        if serve is not None:
            raise LoadError(
                "--serve without {port} in its command needs --host: where the service listens, e.g. "
                '--serve "python -m uvicorn app:app --port 8000" --host http://127.0.0.1:8000'
            )
        raise LoadError("--host is required: the URL of the service under load, e.g. http://127.0.0.1:8000")
    outputs = _check_outputs(args)  # before any load: a long run never loses its figures at the end
    run_time = _run_time(args.run_time)
    settings = from_args(LoadSettings, args, host=host, run_time=run_time, locust_args=tuple(args.locust_arg))
    settings.validate()
    profile = None
    if args.profile is not None:
        profile = ProfileSettings(
            kind=args.profile, folder=args.profile_dir, rate=args.profile_rate, nonblocking=args.profile_nonblocking
        )
        profile.validate()
    # every level is checked before any load is generated
    config_path = _config_path(args)
    if config_path is not None:
        check_input(config_path, "a perfgate.yml (YAML file)")  # a FIFO would block the read
    config = load_config(config_path)
    error_rate = None if str(args.error_rate).lower() == "none" else args.error_rate
    spec = build_spec(config, args.kpi, args.budget, error_rate=error_rate)

    progress = ProgressLine(sys.stderr, run_time, mode=args.progress)
    try:
        run = run_load(settings, progress=progress, workdir=args.workdir, serve=serve, profile=profile)
    finally:
        progress.close()
    total = run.judged(spec, strict=args.strict)

    workers = run.raw.workers_reporting
    print(
        f"perfgate load: {run.locustfile_id} against {settings.host}: {settings.users} users, "
        f"{settings.run_time}s, {_generators(settings)}, locust {run.raw.locust_version}"
    )
    for line in [
        *format_stats(run.stats),
        *format_notes(
            run.stats, locust_requests=run.raw.locust_requests, processes=settings.processes, workers=workers
        ),
        *format_verdicts(total.verdicts),
        *(format_service(run.service) if run.service is not None else []),
    ]:
        print(line)
    if args.verbose:
        print("locust command: " + " ".join(run.command))
        if args.workdir:
            print(f"locust log and raw data: {args.workdir}")
    result = run.run_result(total)
    if args.save:
        with writing(args.save, "the results file (--save)"):
            save_results(outputs["save"], result)
        print(f"results: {args.save} ({len(run.stats.endpoints) + 1} entries)")
    if args.codequality:
        from ..reports.codequality import format_codequality, run_findings

        with writing(args.codequality, "the Code Quality report (--codequality)"):
            write_text_atomic(outputs["codequality"], format_codequality(run_findings(result)))
        print(f"Code Quality report: {args.codequality}")
    if args.gitlab_report:
        with writing(args.gitlab_report, "the load_performance report (--gitlab-report)"):
            write_json_atomic(
                outputs["gitlab_report"], k6_summary(run.stats, max_users=run.raw.max_users or settings.users)
            )
        print(f"GitLab load_performance report: {args.gitlab_report}")
    if args.html:
        print(f"locust HTML report: {args.html}")
    if args.markdown:
        with writing(args.markdown, "the Markdown summary (--markdown)"):
            write_text_atomic(outputs["markdown"], format_markdown(run, total, escape=markdown_escape))
        print(f"Markdown summary: {args.markdown}")
    return Exit.FAILED if total.outcome == "failed" else Exit.OK


def _serve_settings(args: argparse.Namespace) -> ServeSettings | None:
    """``--serve`` and its options; ``{port}`` gets a free loopback port now."""
    from ..errors import LoadError
    from ..load.runner import free_port
    from ..load.serve import PORT, ServeSettings

    if args.serve is None:
        if args.serve_ready is not None:
            raise LoadError("--serve-ready needs --serve")
        return None
    port = free_port() if PORT in args.serve else None
    serve = ServeSettings(args.serve, port=port, ready_url=args.serve_ready, ready_timeout=args.serve_timeout)
    serve.validate()
    return serve


def _run_time(raw: str) -> int:
    """``--run-time`` in the whole seconds locust runs, with a notice when a fraction was rounded up."""
    from ..load.runner import parse_run_time
    from ..units import parse_duration

    whole = parse_run_time(raw)
    if whole != parse_duration(raw):
        print(f"perfgate load: run-time {raw} rounded up to {whole}s (locust runs whole seconds)", file=sys.stderr)
    return whole


def run(args: argparse.Namespace) -> int:
    """Run ``perfgate load``; errors become ``error: ...`` on stderr and an exit code."""
    stopped = "locust and the service were stopped" if getattr(args, "serve", None) else "locust was stopped"
    return guarded(lambda: _execute(args), interrupted=f"interrupted; {stopped}")
