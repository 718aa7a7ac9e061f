"""The budget table printed at the end of a pytest session (and by ``perfgate report``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..budgets import BudgetResult, Verdict, worst_first
from ..model import TestResult

_MARK = {Verdict.FAIL: "FAIL", Verdict.WARN: "WARN", Verdict.PASS: "pass", Verdict.NOT_CHECKED: "not checked"}


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    """Plain aligned columns (no box drawing: readable in CI logs and when copied)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def budget_rows(tests: Iterable[TestResult]) -> list[tuple[TestResult, BudgetResult]]:
    pairs = [(t, v) for t in tests for v in t.verdicts]
    order = {id(v): i for i, v in enumerate(worst_first(v for _, v in pairs))}
    return sorted(pairs, key=lambda p: (order[id(p[1])], p[0].nodeid))


def format_budget_table(tests: Iterable[TestResult], *, max_rows: int | None = None) -> list[str]:
    """Budgeted tests, worst first: test, metric, measured, target, critical, verdict, basis."""
    pairs = budget_rows(tests)
    if not pairs:
        return []
    shown = pairs if max_rows is None else pairs[:max_rows]
    rows = [
        (
            t.nodeid,
            v.metric,
            v.fmt(v.measured),
            v.fmt(v.target),
            v.fmt(v.critical),
            _MARK[v.verdict],
            v.detail,
        )
        for t, v in shown
    ]
    lines = table(rows, ("test", "metric", "measured", "target", "critical", "verdict", "basis"))
    if len(shown) < len(pairs):
        lines.append(f"... {len(pairs) - len(shown)} more rows (all rows are in the results file)")
    counts = {verdict: sum(1 for _, v in pairs if v.verdict is verdict) for verdict in Verdict}
    summary = ", ".join(f"{n} {_MARK[k].lower()}" for k, n in counts.items() if n)
    lines.append(f"budgets: {summary} ({len({t.nodeid for t, _ in pairs})} tests)")
    return lines


#: what measured a test's time series (``Series.source``), in the timings table
_SOURCES = {"perf": "perf", "benchmark": "pytest-benchmark", "call": "whole call", "load": "load test"}


def format_timings(
    tests: Iterable[TestResult], *, max_rows: int | None = None, every: str = "-v shows every one"
) -> list[str]:
    """Every test that recorded a time per call, budgeted or not, by name: its median and what it
    is based on (``tests/test_x.py::test_render  median 98.1ms  (32 rounds, pytest-benchmark)``)."""
    from ..metrics import TIME_SERIES
    from ..stats import statistic

    timed = sorted(
        (t for t in tests if TIME_SERIES in t.series and t.series[TIME_SERIES].values), key=lambda t: t.nodeid
    )
    if not timed:
        return []
    shown = timed if max_rows is None else timed[:max_rows]
    rows = []
    for t in shown:
        series = t.series[TIME_SERIES]
        source = "" if series.source == "call" else _SOURCES.get(series.source, series.source)  # said by basis
        basis = ", ".join(part for part in (series.basis, source) if part)
        counts = counts_text(t)
        rows.append((t.nodeid, f"median {series.fmt(statistic(series.values, 'median'))}", f"({basis})" + counts))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"timings: median time per call of {len(timed)} test{'s' if len(timed) != 1 else ''}"]
    lines += [f"{name.ljust(widths[0])}  {median.ljust(widths[1])}  {basis}" for name, median, basis in rows]
    if len(shown) < len(timed):
        more = len(timed) - len(shown)
        lines.append(f"... {more} more test{'s' if more != 1 else ''} ({every}; all are in the results file)")
    return lines


#: the counters beside a test's time, in this order, with their words
_COUNTER_WORDS = (
    ("instructions", "instructions"),
    ("est_cycles", "est. cycles"),
    ("alloc_blocks", "allocations"),
    ("alloc_bytes", "allocated"),
)


def counts_text(test: TestResult) -> str:
    """A test's counters per call, readably, after its timing: ``"  40.2M instructions, 1.2k
    allocations, 5MB allocated"`` (the median of its values; "" for a test without counters)."""
    from ..stats import statistic

    parts = []
    for name, words in _COUNTER_WORDS:
        series = test.series.get(name)
        if series is not None and series.values:
            parts.append(f"{series.fmt(statistic(series.values, 'median'))} {words}")
    return ("  " + ", ".join(parts)) if parts else ""
