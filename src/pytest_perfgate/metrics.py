"""The registry of metrics a budget can name.

A *metric* is a statistic of a recorded *series*: ``p95`` is the 95th percentile of the ``time``
series, ``mem_peak`` the largest value of the ``mem_peak`` series. Every built-in metric (time,
memory, MongoDB, load tests) is defined below, so budgets, KPI files, reports and the gate all
learn about them from this one table; a test's own figures are :func:`custom`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .units import Kind


@dataclass(frozen=True)
class MetricDef:
    """One budgetable metric."""

    name: str
    kind: Kind
    series: str
    statistic: str
    description: str
    higher_is_better: bool = False
    unit: str = ""
    #: a count that does not depend on the machine's load (instructions, allocations): the gate
    #: judges it by the counter rule (docs/gate.md), not by a t test over noisy runs
    counter: bool = False


TIME_SERIES = "time"
MEMORY_SERIES = "mem_peak"

_REGISTRY: dict[str, MetricDef] = {}
_ALIASES: dict[str, str] = {}


def _define(metric: MetricDef, *aliases: str) -> None:
    """Add a built-in metric to the table (at import, below)."""
    assert metric.name not in _REGISTRY, metric.name
    _REGISTRY[metric.name] = metric
    for alias in aliases:
        _ALIASES[alias] = metric.name


def is_counter(name: str) -> bool:
    """Whether the series or metric ``name`` is a counter (:attr:`MetricDef.counter`)."""
    metric = get(name)
    return metric is not None and metric.counter


def canonical(name: str) -> str:
    return _ALIASES.get(name, name)


def get(name: str) -> MetricDef | None:
    return _REGISTRY.get(canonical(name))


def known_names() -> list[str]:
    return sorted([*_REGISTRY, *_ALIASES])


def custom(name: str, kind: Kind, *, higher_is_better: bool = False, unit: str = "") -> MetricDef:
    """The definition of a test's own figure (``perf.record``); judged by its worst value."""
    return MetricDef(
        name=name,
        kind=kind,
        series=name,
        statistic="min" if higher_is_better else "max",
        description="custom metric recorded by the test",
        higher_is_better=higher_is_better,
        unit=unit,
    )


for _stat, _text in (
    ("min", "fastest round"),
    ("mean", "mean over rounds"),
    ("median", "median over rounds"),
    ("p90", "90th percentile over rounds"),
    ("p95", "95th percentile over rounds"),
    ("p99", "99th percentile over rounds"),
    ("max", "slowest round"),
):
    _define(
        MetricDef(_stat, Kind.TIME, TIME_SERIES, _stat, f"time per call: {_text}"),
        *(("p50",) if _stat == "median" else ()),
    )

_define(
    MetricDef(
        "mem_peak",
        Kind.SIZE,
        MEMORY_SERIES,
        "max",
        "peak memory traced (tracemalloc) during one measured call",
    )
)

# --------------------------------------------------------------------------- MongoDB (mongo/)

MONGO_QUERIES_SERIES = "queries"
MONGO_DOCS_EXAMINED_SERIES = "docs_examined"
MONGO_COLLSCAN_SERIES = "collscan"

#: metrics whose budget may be written as ``False`` meaning "none allowed" (critical level 0);
#: ``True`` is rejected (it names no level). Read by :func:`budgets.parse_level`.
FALSE_MEANS_ZERO: frozenset[str] = frozenset({MONGO_COLLSCAN_SERIES})

_define(
    MetricDef(
        "queries",
        Kind.COUNT,
        MONGO_QUERIES_SERIES,
        "max",
        "MongoDB commands issued by the test body (captured from pymongo or mongomock)",
    )
)
_define(
    MetricDef(
        "docs_examined",
        Kind.COUNT,
        MONGO_DOCS_EXAMINED_SERIES,
        "max",
        "documents the server examined for the test's queries (explain executionStats; real servers only)",
    )
)
_define(
    MetricDef(
        "collscan",
        Kind.COUNT,
        MONGO_COLLSCAN_SERIES,
        "max",
        "queries whose winning plan is a collection scan (explain; real servers only); collscan=False means none",
    )
)

# --------------------------------------------------------------------------- load tests (load/)
# A load run records, per endpoint and in total: ``time`` (every response time, seconds; so the
# time percentiles above apply), ``rps`` (completed requests in each whole second of the run),
# ``error_rate`` (one value: failed / all requests) and ``requests`` (one value: the count).

LOAD_RPS_SERIES = "rps"
LOAD_ERROR_RATE_SERIES = "error_rate"
LOAD_REQUESTS_SERIES = "requests"

_define(
    MetricDef(
        "rps",
        Kind.RATE,
        LOAD_RPS_SERIES,
        "mean",
        "load test throughput: completed requests per second, averaged over the whole seconds of the run",
        higher_is_better=True,
    ),
    "throughput",
)
_define(
    MetricDef(
        "error_rate",
        Kind.RATIO,
        LOAD_ERROR_RATE_SERIES,
        "max",
        "load test: failed requests / all requests",
    )
)
_define(
    MetricDef(
        "requests",
        Kind.COUNT,
        LOAD_REQUESTS_SERIES,
        "max",
        "load test: requests completed; a floor such as requests=1000 catches a run that barely ran",
        higher_is_better=True,
    )
)

# --------------------------------------------------------------------------- counters (counts/)
# Counted, not timed (docs/instructions.md). Each series holds one value per separate measurement
# of one call (normally one per run; several when the call was measured repeatedly); a counter
# metric's value is the per-call count, and with several values their median. Values that differ
# within a run, or between stored runs, make the counter nondeterministic (the gate says so).

INSTRUCTIONS_SERIES = "instructions"
EST_CYCLES_SERIES = "est_cycles"
ALLOC_BLOCKS_SERIES = "alloc_blocks"
ALLOC_BYTES_SERIES = "alloc_bytes"
#: the ``source`` of the counter series: callgrind's (instructions, estimated cycles) and the
#: allocation counter's (blocks, bytes)
CALLGRIND_SOURCE = "callgrind"
ALLOCATIONS_SOURCE = "allocations"
#: counters measured under valgrind: their comparison needs the same valgrind on both sides
CALLGRIND_SERIES: frozenset[str] = frozenset({INSTRUCTIONS_SERIES, EST_CYCLES_SERIES})

_define(
    MetricDef(
        INSTRUCTIONS_SERIES,
        Kind.COUNT,
        INSTRUCTIONS_SERIES,
        "median",
        "instructions executed by one measured call (callgrind; --perfgate-instructions); "
        "the median when the call was counted several times",
        counter=True,
    )
)
_define(
    MetricDef(
        EST_CYCLES_SERIES,
        Kind.COUNT,
        EST_CYCLES_SERIES,
        "median",
        "estimated cycles of one measured call: instructions plus weighted cache misses "
        "(callgrind with --perfgate-cache-sim)",
        counter=True,
    )
)
_define(
    MetricDef(
        ALLOC_BLOCKS_SERIES,
        Kind.COUNT,
        ALLOC_BLOCKS_SERIES,
        "median",
        "allocator calls made by one measured call (blocks allocated)",
        counter=True,
    )
)
_define(
    MetricDef(
        ALLOC_BYTES_SERIES,
        Kind.SIZE,
        ALLOC_BYTES_SERIES,
        "median",
        "bytes requested from the allocator by one measured call (the sum over its allocations, not a peak)",
        counter=True,
    )
)
