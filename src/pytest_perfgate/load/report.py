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
    from ..evidence import MemoryProfile
    from ..model import TestResult
    from .profile import SampledFunction, SampledNode, ServiceCpuProfile
    from .run import LoadRun, ServiceRun

#: what --profile cpu costs the service, measured (bench/RESULTS-load-profile.md)
CPU_COST = (
    "measured at 100/s on the example: 0-3% of rps with a CPU free for py-spy, up to 10-20% on a machine "
    "saturated by other jobs (bench/RESULTS-load-profile.md)"
)
#: what --profile memory costs the service, measured (bench/RESULTS-load-profile.md)
MEMORY_COST = (
    "memray records every allocation: about half the service's rps measured on the example "
    "(bench/RESULTS-load-profile.md); judge latency and throughput on an unprofiled run"
)
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
    return _function_label(node.function, node.location)


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


def _size(value: float) -> str:
    return format_value(float(value), Kind.SIZE)


def _function_label(function: str, location: str) -> str:
    return f"{function} ({short_location(location)})" if location else function


def memory_over_time(memory: MemoryProfile, *, top: int = 5) -> list[tuple[str, int, float, int]]:
    """For the functions that held the most at any time: (function, most held, when, held when
    tracking stopped), from memray's timeline."""
    timeline = memory.timeline
    if timeline is None:
        return []
    rows = []
    for label, held in list(zip(timeline.functions, timeline.held, strict=False))[:top]:
        if not held:
            continue
        most = max(range(len(held)), key=lambda t: held[t])
        rows.append((label, held[most], timeline.times[most] if most < len(timeline.times) else 0.0, held[-1]))
    return rows


def format_memory(service: ServiceRun, *, top: int = TOP_SHOWN) -> list[str]:
    """memray's capture of the service: who held the memory at its high-water mark (own bytes:
    allocated in the function itself), the most each function held over time, what stayed."""
    from .memory import by_own

    memory = service.memory
    if memory is None:
        return []
    lines = [
        f"service memory (memray, the service's whole life: {_size(memory.peak)} at its high-water mark, "
        f"{_size(memory.retained)} still allocated when it stopped):",
        "  own at peak  inclusive  function",
    ]
    for f in by_own(memory)[:top]:
        lines.append(
            f"  {_size(f.self_net):>11}  {_size(f.inclusive_peak):>9}  {_function_label(f.function, f.location)}"
        )
    over_time = memory_over_time(memory)
    if over_time:
        window = service.window
        during = f"; the measured window: {window[0]:.1f}s-{window[1]:.1f}s" if window else ""
        lines.append(f"  over time (own bytes; seconds from the start of memray's tracking{during}):")
        for label, most, when, end in over_time:
            lines.append(f"    {_short_label(label)}: most {_size(most)} at {when:.1f}s, {_size(end)} at the end")
    if memory.leaks:
        site = memory.leaks[0]
        where = site.stack[-1] if site.stack else "?"
        lines.append(f"  largest still allocated at the end: {_size(site.size)} in {site.count} blocks at {where}")
    if service.capture:
        lines.append(f"  memray's capture: {service.capture} (python -m memray flamegraph|table|tree FILE)")
    lines.append(f"  cost: {MEMORY_COST}")
    return lines


def _short_label(label: str) -> str:
    """``function (file:line)`` with the file relative to the current directory."""
    function, sep, rest = label.partition(" (")
    return f"{function} ({short_location(rest.rstrip(')'))})" if sep else label


def format_service(service: ServiceRun) -> list[str]:
    lines = [f"service: {shlex.join(service.command)} (ready after {service.ready_after:.1f}s)"]
    if service.exit_code is not None:
        lines.append(f"service: exited with code {service.exit_code} during the run; its last output:")
        lines.append(service.output_tail)
    if service.cpu is not None:
        lines += format_cpu(service.cpu)
    lines += format_memory(service)
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
        memory = service.memory
        if memory is not None:
            lines += _memory_markdown(memory, escape)
        for notice in service.notices:
            lines += ["", f":warning: {escape(notice)}"]
    return "\n".join(lines) + "\n"


def _memory_markdown(memory: MemoryProfile, escape: Callable[[str], str]) -> list[str]:
    from .memory import by_own

    owners = by_own(memory)
    lines = [
        "",
        f"<details><summary>Service memory: {escape(owners[0].function) if owners else 'nothing'} held the most "
        f"at the high-water mark ({_size(memory.peak)}, memray)</summary>",
        "",
        "| own at peak | inclusive | function | location |",
        "| ---: | ---: | --- | --- |",
    ]
    for f in owners[:TOP_SHOWN]:
        lines.append(
            f"| {_size(f.self_net)} | {_size(f.inclusive_peak)} | {escape(f.function)} | "
            f"{escape(short_location(f.location))} |"
        )
    over_time = memory_over_time(memory)
    if over_time:
        lines += ["", "| over time | most held | at | at the end |", "| --- | ---: | ---: | ---: |"]
        for label, most, when, end in over_time:
            lines.append(f"| {escape(_short_label(label))} | {_size(most)} | {when:.1f}s | {_size(end)} |")
    lines += ["", f"Still allocated when the service stopped: {_size(memory.retained)}.", "", "</details>"]
    return lines
