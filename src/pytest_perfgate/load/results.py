"""Per-endpoint and total figures of a load run, and their place in perfgate's results schema.

Pure: raw rows in, frozen figures out. Every percentile is computed from every recorded
response time (:func:`pytest_perfgate.stats.percentile`, linear interpolation), not from
locust's histogram, which rounds to two significant digits.

Results-file convention: one :class:`~pytest_perfgate.model.TestResult` per endpoint, with the
node id ``load:<locustfile>::<request type> <name>`` (e.g. ``load:locustfile.py::GET /products``),
and one for the whole run, ``load:<locustfile>::total``, which carries the KPI verdicts. Each
records the series ``time`` (seconds, every response), ``rps`` (requests completed in each whole
second of the measured window), ``error_rate`` and ``requests``, so ``perfgate compare`` gates
them like any pytest result.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import stats
from ..evidence import LoadFigures
from ..metrics import LOAD_ERROR_RATE_SERIES, LOAD_REQUESTS_SERIES, LOAD_RPS_SERIES, TIME_SERIES
from ..model import Series, TestResult
from ..recorder import Mode
from ..units import Kind
from .runner import RawRun

TOTAL = "total"
NODEID_PREFIX = "load:"
SOURCE = Mode.LOAD.value
PERCENTILES = ("p50", "p90", "p95", "p99")
#: distinct error messages kept per endpoint in the evidence
MAX_ERRORS = 10


@dataclass(frozen=True)
class EndpointStats:
    """One locust request name (``GET /products``), or the whole run (``total``)."""

    name: str
    times: tuple[float, ...]  # seconds, every response in the measured window, in completion order
    failures: int
    per_second: tuple[float, ...]  # requests completed in each whole second of the window
    window: float  # seconds measured
    errors: Mapping[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.times)

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        """Mean of the per-second counts: what the ``rps`` metric budgets."""
        if self.per_second:
            return stats.mean(self.per_second)
        return self.requests / self.window if self.window > 0 else 0.0

    def statistic(self, name: str) -> float:
        """A time statistic in seconds (``p50``..``p99``, ``min``, ``max``, ``mean``); NaN without requests."""
        return stats.statistic(self.times, name) if self.times else math.nan

    def series(self) -> dict[str, Series]:
        """The series a budget or the gate reads (see the module doc)."""
        rps = self.per_second or ((self.rps,) if self.requests else ())
        return {
            TIME_SERIES: Series(TIME_SERIES, Kind.TIME, self.times, source=SOURCE),
            LOAD_RPS_SERIES: Series(LOAD_RPS_SERIES, Kind.RATE, rps, higher_is_better=True, source=SOURCE),
            LOAD_ERROR_RATE_SERIES: Series(LOAD_ERROR_RATE_SERIES, Kind.RATIO, (self.error_rate,), source=SOURCE),
            LOAD_REQUESTS_SERIES: Series(
                LOAD_REQUESTS_SERIES, Kind.COUNT, (float(self.requests),), higher_is_better=True, source=SOURCE
            ),
        }

    def summary(self) -> dict[str, Any]:
        """:meth:`figures` as JSON."""
        return self.figures().to_json()

    def figures(self) -> LoadFigures:
        """The figures (seconds, /s, fraction) for the evidence and the reports."""
        times = ((name, self.statistic(name)) for name in (*PERCENTILES, "min", "mean", "max"))
        return LoadFigures(
            requests=self.requests,
            failures=self.failures,
            error_rate=self.error_rate,
            rps=self.rps,
            times=tuple((name, None if math.isnan(value) else value) for name, value in times),
            errors=tuple(self.errors.items()),
        )


@dataclass(frozen=True)
class LoadStats:
    endpoints: tuple[EndpointStats, ...]
    total: EndpointStats
    window: float
    warmup: float
    excluded: int  # requests completed during the warm-up, left out of every figure

    def all(self) -> tuple[EndpointStats, ...]:
        return (*self.endpoints, self.total)


def _buckets(completed: Iterable[float], start: float, seconds: int) -> tuple[float, ...]:
    counts = [0] * seconds
    for ts in completed:
        index = math.floor(ts - start)
        if 0 <= index < seconds:
            counts[index] += 1
    return tuple(float(c) for c in counts)


def _errors(messages: Iterable[str]) -> dict[str, int]:
    return dict(Counter(messages).most_common(MAX_ERRORS))


def compute(raw: RawRun, *, warmup: float = 0.0) -> LoadStats:
    """Figures per request name and in total, over ``[start + warmup, stop]``. Responses that
    complete after the stop (with a stop timeout) count in the totals, not in ``rps``."""
    begin = raw.start + warmup
    window = max(raw.stop - begin, 0.0)
    seconds = math.floor(window)
    grouped: dict[str, list[tuple[float, float, str | None]]] = defaultdict(list)
    excluded = 0
    for request_type, name, ms, ts, error in raw.rows:
        if ts < begin:
            excluded += 1
            continue
        grouped[f"{request_type} {name}"].append((ms / 1000.0, ts, error))

    def build(name: str, rows: Sequence[tuple[float, float, str | None]]) -> EndpointStats:
        return EndpointStats(
            name=name,
            times=tuple(r[0] for r in rows),
            failures=sum(1 for r in rows if r[2] is not None),
            per_second=_buckets((r[1] for r in rows), begin, seconds),
            window=window,
            errors=_errors(r[2] for r in rows if r[2] is not None),
        )

    endpoints = tuple(build(name, grouped[name]) for name in sorted(grouped))
    everything = sorted((r for rows in grouped.values() for r in rows), key=lambda r: r[1])
    return LoadStats(endpoints, build(TOTAL, everything), window, warmup, excluded)


def nodeid(locustfile: str, endpoint: str) -> str:
    return f"{NODEID_PREFIX}{locustfile}::{endpoint}"


def to_test_results(load: LoadStats, locustfile: str, total_result: TestResult | None = None) -> tuple[TestResult, ...]:
    """One TestResult per endpoint, plus ``total_result`` (the judged total) or a plain total."""
    tests = [
        TestResult(
            nodeid=nodeid(locustfile, ep.name),
            mode=SOURCE,
            duration=load.window,
            series=ep.series(),
            evidence={"load": ep.figures()},
        )
        for ep in load.endpoints
    ]
    tests.append(
        total_result
        or TestResult(
            nodeid=nodeid(locustfile, TOTAL),
            mode=SOURCE,
            duration=load.window,
            series=load.total.series(),
            evidence={"load": load.total.figures()},
        )
    )
    return tuple(tests)
