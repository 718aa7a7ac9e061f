"""Import pytest-benchmark ``--benchmark-json`` files as perfgate runs.

With the raw per-round timings (``stats.data``, present unless pytest-benchmark was told not to
keep them) each benchmark becomes a ``time`` series of those rounds. Without them only the
summary statistics exist: the series has no samples and the summary is kept in the test's
evidence under ``"summary"``, so the gate can use a statistic the summary has (min, mean, median,
max) and reports "insufficient data" for one it lacks (p90, p95, p99).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from .errors import ResultsFileError
from .model import RunResult, Series, TestResult, _short, load_results, parse_json
from .paths import read_text
from .units import Kind

_SUMMARY = ("min", "max", "mean", "median", "stddev", "q1", "q3", "iqr", "rounds")


def is_benchmark_json(data: Any) -> bool:
    return isinstance(data, Mapping) and isinstance(data.get("benchmarks"), list) and "schema" not in data


def from_benchmark_json(data: Any, path: str = "<data>") -> RunResult:
    """A pytest-benchmark JSON document as a :class:`RunResult` (one test per benchmark)."""
    if not is_benchmark_json(data):
        raise ResultsFileError(path, "not a pytest-benchmark JSON file (no 'benchmarks' list)")
    tests: dict[str, TestResult] = {}
    for i, bench in enumerate(data["benchmarks"]):
        where = f"benchmarks[{i}]"
        if not isinstance(bench, Mapping):
            raise ResultsFileError(path, f"{where}: expected an object")
        nodeid = bench.get("fullname") or bench.get("name")
        if not isinstance(nodeid, str) or not nodeid:
            raise ResultsFileError(path, f"{where}: no 'fullname' or 'name'")
        if nodeid in tests:
            raise ResultsFileError(path, f"{where}: benchmark {nodeid!r} appears twice")
        raw = bench.get("stats")
        if not isinstance(raw, Mapping):
            raise ResultsFileError(path, f"{where}.stats: expected an object")
        samples = raw.get("data")
        evidence: dict[str, Any] = {"imported_from": "pytest-benchmark"}
        if isinstance(samples, list) and samples:
            values = tuple(_number(path, f"{where}.stats.data[{j}]", v) for j, v in enumerate(samples))
        else:
            values = ()
            summary = {k: _number(path, f"{where}.stats.{k}", raw[k]) for k in _SUMMARY if raw.get(k) is not None}
            if not summary:
                raise ResultsFileError(path, f"{where}.stats: neither raw 'data' nor summary statistics")
            evidence["summary"] = {"time": summary}
        iterations = raw.get("iterations")
        loops = iterations if isinstance(iterations, int) and iterations > 0 else 1
        series = Series(name="time", kind=Kind.TIME, values=values, loops=loops, source="benchmark")
        tests[nodeid] = TestResult(nodeid=nodeid, mode="benchmark", series={"time": series}, evidence=evidence)
    metadata = {
        "imported_from": "pytest-benchmark",
        "source": path,
        "created": data.get("datetime"),
        "pytest_benchmark_version": data.get("version"),
        "machine_info": data.get("machine_info") or {},
        "commit_info": data.get("commit_info") or {},
    }
    for key, origin in (
        ("created", "datetime"),
        ("pytest_benchmark_version", "version"),
        ("machine_info", "machine_info"),
        ("commit_info", "commit_info"),
    ):
        try:  # carried into the results file as is: it must be writable as strict JSON
            json.dumps(metadata[key], allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            raise ResultsFileError(
                path, f"{origin}: holds a value a results file cannot carry (NaN, Infinity or a number past 1.8e308)"
            ) from None
    return RunResult(metadata=metadata, tests=tuple(tests.values()))


def _number(path: str, where: str, value: Any) -> float:
    """A timing (or round count) of pytest-benchmark: a finite number, 0 or above."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultsFileError(path, f"{where}: expected a finite number of 0 or above, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer past the float range (JSON numbers are unbounded)
        number = math.inf
    if not math.isfinite(number):
        raise ResultsFileError(
            path, f"{where}: {_short(value)} is not a finite number; accepted: seconds within 0..1.8e308"
        )
    if number < 0:
        raise ResultsFileError(
            path, f"{where}: {_short(value)} is negative; a pytest-benchmark timing is 0 or above (seconds)"
        )
    return number


def read_benchmark_json(path: str | os.PathLike[str]) -> RunResult:
    """Read a pytest-benchmark JSON file (``perfgate import``); :class:`ResultsFileError` naming it
    for anything that is not one."""
    name = os.fspath(path)
    return from_benchmark_json(parse_json(read_text(name, "a pytest-benchmark JSON file"), name), name)


def load_run(path: str | os.PathLike[str]) -> RunResult:
    """A perfgate results file, or a pytest-benchmark JSON file (recognised by its shape)."""
    try:
        return load_results(path)
    except ResultsFileError as exc:
        if "not a perfgate results file" not in exc.reason:
            raise
        name = os.fspath(path)
        data = parse_json(read_text(name), name)
        if not is_benchmark_json(data):
            raise
        return from_benchmark_json(data, name)
