"""pytest-benchmark JSON import: raw rounds when present, summary statistics otherwise."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.results import bench_doc
from pytest_perfgate.errors import ResultsFileError
from pytest_perfgate.importers import from_benchmark_json, load_run
from pytest_perfgate.model import run_from_dict, run_to_dict


def test_raw_rounds_become_the_time_series() -> None:
    run = from_benchmark_json(bench_doc([0.001, 0.002, 0.004]))
    (test,) = run.tests
    assert test.nodeid == "tests/test_b.py::test_sort" and test.mode == "benchmark"
    assert test.series["time"].values == (0.001, 0.002, 0.004) and test.series["time"].loops == 4
    assert "summary" not in test.evidence
    assert run.metadata["commit_info"] == {"id": "abc"}


def test_summary_only_keeps_the_summary() -> None:
    (test,) = from_benchmark_json(bench_doc(None)).tests
    assert test.series["time"].values == ()
    assert test.evidence["summary"]["time"]["median"] == 0.002


def test_import_round_trips_through_the_results_format() -> None:
    run = from_benchmark_json(bench_doc(None))
    again = run_from_dict(json.loads(json.dumps(run_to_dict(run))))
    assert again.tests[0].evidence["summary"] == run.tests[0].evidence["summary"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"benchmarks": "x"}, "not a pytest-benchmark JSON file"),
        ({"benchmarks": [{"stats": {}}]}, r"benchmarks\[0\]: no 'fullname'"),
        ({"benchmarks": [{"name": "a", "stats": {"data": ["x"]}}]}, r"stats.data\[0\]: expected a finite number"),
        ({"benchmarks": [{"name": "a", "stats": {}}]}, "neither raw 'data' nor summary"),
        ({"benchmarks": [{"name": "a", "stats": {"mean": 1}}, {"name": "a", "stats": {"mean": 1}}]}, "twice"),
    ],
)
def test_bad_benchmark_files(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ResultsFileError, match=message):
        from_benchmark_json(doc, "b.json")


def test_load_run_recognises_either_format(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bench_doc([0.5, 0.6])))
    assert load_run(path).tests[0].series["time"].values == (0.5, 0.6)
    path.write_text(json.dumps({"something": "else"}))
    with pytest.raises(ResultsFileError, match="not a perfgate results file"):
        load_run(path)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=1e-9, max_value=1e3), min_size=1, max_size=50))
def test_any_positive_rounds_import_exactly(values: list[float]) -> None:
    (test,) = from_benchmark_json(bench_doc(values)).tests
    assert test.series["time"].values == tuple(values)
    assert all(math.isfinite(v) for v in test.series["time"].values)


def test_real_pytest_benchmark_file(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # pytest-benchmark turns itself off under xdist
    pytester.makepyfile(
        test_b="""
        def test_sum(benchmark):
            benchmark(lambda: sum(range(50)))
    """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--benchmark-json=bench.json", "--benchmark-max-time=0.05", "--benchmark-min-rounds=5"
    )
    result.assert_outcomes(passed=1)
    run = load_run(pytester.path / "bench.json")
    (test,) = run.tests
    assert test.nodeid.endswith("test_b.py::test_sum")
    assert len(test.series["time"].values) >= 5
