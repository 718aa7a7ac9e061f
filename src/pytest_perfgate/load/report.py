"""Text for people: the per-endpoint table, the KPI verdicts, and the live progress line.

``format_*`` functions return lines; only the CLI prints them.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..budgets import BudgetResult, Verdict, worst_first
from ..units import Kind, format_value
from .results import EndpointStats, LoadStats

if TYPE_CHECKING:
    from ..model import TestResult
    from .profile import SampledFunction, SampledNode, ServiceCpuProfile
    from .run import LoadRun, ServiceRun

#: what --profile cpu costs the service, measured (bench/RESULTS-load-profile.md)
CPU_COST = "py-spy pauses the service's threads at every sample; cost measured in bench/RESULTS-load-profile.md"
#: functions listed in the terminal and the Markdown summary
TOP_SHOWN = 10
#: frames of the hot path shown on one line (the innermost)
PATH_SHOWN = 8

_COLUMNS = ("requests", "fails", "errors", "rps", "p50", "p90", "p95", "p99", "max")


def _time(ep: EndpointStats, statistic: str) -> str:
    value = ep.statistic(statistic)
    return "-" if math.isnan(value) else format_value(value, Kind.TIME)


def _row(ep: EndpointStats) -> tuple[str, ...]:
    return (
        ep.name,
        str(ep.requests),
        str(ep.failures),
        format_value(ep.error_rate, Kind.RATIO),
        format_value(ep.rps, Kind.RATE),
        *(_time(ep, s) for s in ("p50", "p90", "p95", "p99", "max")),
    )


def format_stats(load: LoadStats) -> list[str]:
    """One row per endpoint and the total, aligned."""
    rows = [("endpoint", *_COLUMNS), *(_row(ep) for ep in load.endpoints), _row(load.total)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))]
        lines.append("  ".join(cells).rstrip())
        if index == len(rows) - 2:
            lines.append("-" * len(lines[0]))
    return lines


def format_verdicts(verdicts: Sequence[BudgetResult]) -> list[str]:
    if not verdicts:
        return ["KPIs: none given (use --kpi NAME from perfgate.yml or --budget METRIC=LEVEL)"]
    lines = ["KPIs (whole run):"]
    for v in worst_first(verdicts):
        word = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "not checked": "SKIP"}[v.verdict.value]
        source = f"  [{v.source}]" if v.source else ""
        lines.append(f"  {word}  {v.message()}{source}")
    failed = sum(1 for v in verdicts if v.verdict is Verdict.FAIL)
    warned = sum(1 for v in verdicts if v.verdict is Verdict.WARN)
    lines.append(
        f"load: {'FAILED' if failed else 'passed'}: {failed} critical breach{'es' if failed != 1 else ''}, "
        f"{warned} past target, {len(verdicts) - failed - warned} within budget"
    )
    return lines


def format_notes(load: LoadStats, *, locust_requests: int | None, processes: int, workers: int) -> list[str]:
    notes = [
        f"measured {load.window:.1f}s"
        + (f" after a {load.warmup:g}s warm-up ({load.excluded} requests left out)" if load.warmup else "")
        + f"; percentiles from all {load.total.requests} response times (full precision, not locust's rounded ones)"
    ]
    seen = load.total.requests + load.excluded
    if locust_requests is not None and locust_requests != seen:
        notes.append(
            f"note: locust counted {locust_requests} requests, perfgate's listener {seen}; "
            "a worker's last report may have been lost"
        )
    if processes != 1 and workers:
        notes.append(f"{workers} worker process{'es' if workers != 1 else ''} reported")
    top = sorted(load.total.errors.items(), key=lambda kv: -kv[1])[:5]
    if top:
        notes.append("errors (most frequent first):")
        notes.extend(f"  {count} x {message}" for message, count in top)
    return notes


class ProgressLine:
    """Live progress: rewritten in place on a terminal, a line every ``every`` seconds otherwise
    (when asked for), nothing in a CI log by default."""

    def __init__(self, stream: TextIO, run_time: float, *, mode: str = "auto", every: float = 10.0) -> None:
        self.stream = stream
        self.run_time = run_time
        tty = bool(getattr(stream, "isatty", lambda: False)())
        self.inplace = tty and mode != "never"
        self.enabled = mode == "always" or self.inplace
        self.every = every
        self.next_at = 0.0
        self.width = 0

    @staticmethod
    def text(point: Mapping[str, Any], run_time: float) -> str:
        return (
            f"load {float(point.get('elapsed', 0)):5.0f}s/{run_time:g}s  users {int(point.get('users', 0))}  "
            f"rps {float(point.get('rps', 0)):.1f}  requests {int(point.get('requests', 0))}  "
            f"failures {int(point.get('failures', 0))}"
        )

    def __call__(self, point: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        line = self.text(point, self.run_time)
        if self.inplace:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        elif float(point.get("elapsed", 0)) >= self.next_at:
            self.stream.write(line + "\n")
            self.next_at = float(point.get("elapsed", 0)) + self.every
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.inplace and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


# --------------------------------------------------------------------------- the service


def short_location(location: str, cwd: str | None = None) -> str:
    """``file:line`` relative to ``cwd`` when the file is under it."""
    path, sep, line = location.rpartition(":")
    if not sep or not os.path.isabs(path):
        return location
    rel = os.path.relpath(path, cwd or os.getcwd())
    return (path if rel.startswith("..") else rel) + ":" + line


def _frame(node: SampledNode | SampledFunction) -> str:
    return f"{node.function} ({short_location(node.location)})" if node.location else node.function


def hot_path_text(
    cpu: ServiceCpuProfile, *, shown: int = PATH_SHOWN, arrow: str = " > ", name: Callable[[str], str] = str
) -> str:
    """The innermost ``shown`` functions of the hot path and the share of samples at its end."""
    path = cpu.hot_path()
    names = [name(n.function) for n in path if n.location]  # the process frame is not code
    if not names:
        return "(no samples)"
    head = f"... {len(names) - shown} frames{arrow}" if len(names) > shown else ""
    share = 100 * cpu.share(path[-1].total)
    return f"{head}{arrow.join(names[-shown:])}  ({share:.0f}% of samples)"


def format_cpu(cpu: ServiceCpuProfile, *, top: int = TOP_SHOWN) -> list[str]:
    procs = f"{cpu.processes} process{'es' if cpu.processes != 1 else ''}"
    lines = [
        f"service CPU ({cpu.profiler}, {cpu.rate} samples/s per thread, {cpu.samples} samples in {cpu.seconds:.1f}s "
        f"of the measured window, {procs}):",
        "     own   total  function",
    ]
    for f in cpu.top[:top]:
        lines.append(f"  {100 * cpu.share(f.own):5.1f}%  {100 * cpu.share(f.total):5.1f}%  {_frame(f)}")
    lines.append(f"  hot path: {hot_path_text(cpu)}")
    files = dict(cpu.files)
    if "flamegraph" in files:
        lines.append(f"  flame graph: {files['flamegraph']}")
    if "speedscope" in files:
        lines.append(f"  py-spy's profile (speedscope format): {files['speedscope']}")
    lines.append(f"  cost: {CPU_COST}")
    return lines


def format_memory(memory: Any) -> list[str]:
    """The memray summary's own text (``format_lines``/``summary_lines``) when it has one."""
    for name in ("format_lines", "summary_lines"):
        method = getattr(memory, name, None)
        if callable(method):
            return ["service memory (memray):", *(f"  {line}" for line in method())]
    return ["service memory (memray): captured (see the results file's evidence)"]


def format_service(service: ServiceRun) -> list[str]:
    lines = [f"service: {shlex.join(service.command)} (ready after {service.ready_after:.1f}s)"]
    if service.exit_code is not None:
        lines.append(f"service: exited with code {service.exit_code} during the run; its last output:")
        lines.append(service.output_tail)
    if service.cpu is not None:
        lines += format_cpu(service.cpu)
    if service.memory is not None:
        lines += format_memory(service.memory)
    lines += [f"notice: {notice}" for notice in service.notices]
    return lines


# --------------------------------------------------------------------------- Markdown


def format_markdown(run: LoadRun, total: TestResult, *, escape: Callable[[str], str]) -> str:
    """The run for a merge-request note: figures, verdicts, the service's profile (folded).
    ``escape`` makes any name safe in a table cell (``reports.markdown.escape``)."""
    s = run.settings
    failed = total.outcome == "failed"
    lines = [
        f"### perfgate load: {escape(run.locustfile_id)}",
        "",
        f"{':x: **failed**' if failed else ':white_check_mark: **passed**'}: {s.users} users, {s.run_time}s, "
        f"measured {run.stats.window:.1f}s" + (f" after a {s.warmup:g}s warm-up" if s.warmup else ""),
        "",
        "| endpoint | requests | fails | rps | p50 | p95 | p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ep in run.stats.all():
        lines.append(
            f"| {escape(ep.name)} | {ep.requests} | {ep.failures} | {format_value(ep.rps, Kind.RATE)} | "
            + " | ".join(_time(ep, p) for p in ("p50", "p95", "p99"))
            + " |"
        )
    if total.verdicts:
        lines += ["", "| KPI | verdict |", "| --- | --- |"]
        for v in worst_first(total.verdicts):
            lines.append(f"| {escape(v.metric)} | {v.verdict.value}: {escape(v.message())} |")
    service = run.service
    if service is not None:
        if service.exit_code is not None:
            lines += ["", f"**The service exited with code {service.exit_code} during the run.**"]
        cpu = service.cpu
        if cpu is not None:
            lines += [
                "",
                f"<details><summary>Service CPU: {escape(cpu.top[0].function) if cpu.top else 'no samples'} "
                f"on top ({cpu.samples} samples, {escape(cpu.profiler)})</summary>",
                "",
                "| own | total | function | location |",
                "| ---: | ---: | --- | --- |",
            ]
            for f in cpu.top[:TOP_SHOWN]:
                lines.append(
                    f"| {100 * cpu.share(f.own):.1f}% | {100 * cpu.share(f.total):.1f}% | {escape(f.function)} | "
                    f"{escape(short_location(f.location))} |"
                )
            path = hot_path_text(cpu, arrow=" → ", name=escape)
            lines += ["", f"Hot path: {path}", "", f"Cost: {escape(CPU_COST)}", "", "</details>"]
        if service.memory is not None:
            lines += ["", "<details><summary>Service memory (memray)</summary>", ""]
            lines += [escape(line) + "  " for line in format_memory(service.memory)[1:]]
            lines += ["", "</details>"]
        for notice in service.notices:
            lines += ["", f":warning: {escape(notice)}"]
    return "\n".join(lines) + "\n"
