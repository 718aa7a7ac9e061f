"""Results, runs and pytest-benchmark documents to build in tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_perfgate.budgets import BudgetResult, BudgetSpec
from pytest_perfgate.model import RunResult, Series, TestResult
from pytest_perfgate.units import Kind


def make_test(
    nodeid: str,
    values: Sequence[float],
    *,
    metric: str = "time",
    kind: Kind = Kind.TIME,
    higher_is_better: bool = False,
    spec: BudgetSpec | None = None,
    verdicts: tuple[BudgetResult, ...] = (),
    outcome: str = "passed",
) -> TestResult:
    series = Series(metric, kind, tuple(values), higher_is_better=higher_is_better)
    return TestResult(
        nodeid=nodeid,
        outcome=outcome,
        mode="perf",
        series={metric: series},
        spec=spec or BudgetSpec(),
        verdicts=verdicts,
    )


def make_run(tests: dict[str, Sequence[float]] | Sequence[TestResult]) -> RunResult:
    built = tuple(make_test(k, v) for k, v in tests.items()) if isinstance(tests, dict) else tuple(tests)
    return RunResult(metadata={"created": "2026-01-01T00:00:00+00:00"}, tests=built)


def bench_doc(data: list[float] | None, *, name: str = "tests/test_b.py::test_sort") -> dict[str, Any]:
    values = data or [0.001, 0.002, 0.003]
    stats: dict[str, Any] = {
        "min": min(values),
        "max": max(values),
        "mean": sum(values) / len(values),
        "median": sorted(values)[len(values) // 2],
        "stddev": 0.0,
        "rounds": len(values),
        "iterations": 4,
    }
    if data is not None:
        stats["data"] = data
    return {
        "machine_info": {"node": "x"},
        "commit_info": {"id": "abc"},
        "datetime": "2026-01-01T00:00:00",
        "version": "5.1.0",
        "benchmarks": [{"name": "test_sort", "fullname": name, "stats": stats}],
    }
