from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_perfgate.budgets import evaluate, parse_marker
from pytest_perfgate.errors import ResultsFileError
from pytest_perfgate.model import (
    SCHEMA_VERSION,
    RunResult,
    Series,
    TestResult,
    load_results,
    run_to_dict,
    save_results,
)
from pytest_perfgate.units import Kind


def _result(nodeid: str, values: tuple[float, ...]) -> TestResult:
    series = {"time": Series("time", Kind.TIME, values, loops=4)}
    spec = parse_marker({"p95": ("1ms", "5ms"), "max_regression": "20%"})
    return TestResult(nodeid, series=series, spec=spec, verdicts=evaluate(spec, series), mode="perf")


def test_round_trip(tmp_path: Path) -> None:
    run = RunResult({"python": "3.11"}, (_result("t.py::b", (0.002, 0.003)), _result("t.py::a", (0.0001,))))
    path = save_results(tmp_path / "sub" / "r.json", run)
    back = load_results(path)
    assert back.by_nodeid() == run.by_nodeid()
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert [t.nodeid for t in back.tests] == ["t.py::a", "t.py::b"]  # sorted, deterministic


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_results(tmp_path / "r.json", RunResult({}, ()))
    save_results(tmp_path / "r.json", RunResult({}, (_result("x", (1.0,)),)))
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "is empty"),
        ('{"schema": "perfgate-results", "schema_version": 1, "tests": [', "is not valid JSON (line 1"),
        ('{"schema": "other"}', "not a perfgate results file (schema is 'other'"),
        (
            '{"schema": "perfgate-results", "schema_version": 99, "tests": []}',
            "schema_version 99 is not supported by this perfgate (it reads version 1)",
        ),
        ('{"schema": "perfgate-results", "schema_version": 1, "tests": {}}', "tests: expected a list, got dict"),
        (
            '{"schema": "perfgate-results", "schema_version": 1, "tests": [{"nodeid": ""}]}',
            "tests[0].nodeid: missing or not a string",
        ),
        (
            '{"schema": "perfgate-results", "schema_version": 1, "tests": [{"nodeid": "a", "series": '
            '{"time": {"kind": "time", "values": ["x"]}}}]}',
            "tests[0].series.time.values[0]: expected a number, got 'x'",
        ),
        (
            '{"schema": "perfgate-results", "schema_version": 1, "tests": [{"nodeid": "a"}, {"nodeid": "a"}]}',
            "test 'a' appears twice",
        ),
        ("[]", "top level: expected an object, got list"),
    ],
)
def test_corrupt_files_are_rejected_with_path_and_reason(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsFileError) as info:
        load_results(path)
    assert str(info.value).startswith(f"{path}: ")
    assert reason in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ResultsFileError, match="no such file"):
        load_results(tmp_path / "none.json")
    with pytest.raises(ResultsFileError, match="is a directory"):
        load_results(tmp_path)


@given(st.lists(st.floats(min_value=0, max_value=1e3, allow_nan=False), min_size=1, max_size=20))
def test_any_samples_survive_the_round_trip(values: list[float]) -> None:
    from pytest_perfgate.model import run_from_dict

    run = RunResult({}, (_result("t", tuple(values)),))
    assert run_from_dict(json.loads(json.dumps(run_to_dict(run)))).tests == run.tests
