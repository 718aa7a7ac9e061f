"""Text for people: the per-endpoint table, the KPI verdicts, and the live progress line.

``format_*`` functions return lines; only the CLI prints them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ..budgets import BudgetResult, Verdict, worst_first
from ..units import Kind, format_value
from .results import EndpointStats, LoadStats

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
