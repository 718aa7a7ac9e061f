"""Typed evidence: read once from JSON, written back as it was read, unknown keys kept."""

from __future__ import annotations

import json
from dataclasses import replace

from pytest_perfgate import model
from pytest_perfgate.evidence import CpuProfile, Evidence, ImportedSummary, LoadFigures, LoadRun, MemoryProfile
from pytest_perfgate.measure.cpuprofile import profile_cpu
from pytest_perfgate.measure.memprofile import profile_memory
from pytest_perfgate.model import TestResult, run_from_dict, run_to_dict

FIGURES = {
    "requests": 10, "failures": 1, "error_rate": 0.1, "rps": 2.0, "p50": 0.1, "p90": None, "p95": 0.2,
    "p99": 0.3, "min": 0.01, "mean": 0.1, "max": 0.5, "errors": {"boom": 1},
}  # fmt: skip
SITE = {"size": 2048, "count": 4, "stack": ["a.py:1 in f: x = []"]}


def _work() -> int:
    return len([bytes(100) for _ in range(2000)])


def _every_kind() -> dict[str, object]:
    return {
        "memory_profile": profile_memory(_work).to_json(),
        "cpu_profile": profile_cpu(_work, min_time=0.01).to_json(),
        "memory_sites_at_end": [SITE],
        "summary": {"time": {"median": 0.5, "rounds": 7}},
        "load": {
            "locustfile": "l.py",
            "users": 2,
            "run_time": 5.0,
            "processes": 1,
            "window": 4.0,
            "total": FIGURES,
            "endpoints": {"GET /": FIGURES},
        },
        "mongo": {"backend": "mongomock", "queries": 3, "commands": [{"op": "find"}]},
        "mongo_profile": [{"op": "query", "millis": 1}],
        "race": [{"strategy": "random", "schedules": 4}],
        "crash": "worker 'gw0' crashed",
        "error": "AssertionError: boom",
        "awaited": {"label": "one asyncio loop", "overhead": 1e-6},
        "mem_retained": 128,
        "timed_under_tracemalloc": True,
        "imported_from": "pytest-benchmark",
        "from_a_newer_perfgate": {"anything": [1, "two", None]},
    }


def test_a_results_file_reads_into_typed_evidence_and_writes_back_unchanged() -> None:
    raw = {"schema": "perfgate-results", "schema_version": 1, "metadata": {},
           "tests": [{"nodeid": "t.py::x", "evidence": _every_kind()}]}  # fmt: skip
    run = run_from_dict(json.loads(json.dumps(raw)))
    evidence = run.tests[0].evidence
    assert isinstance(evidence.memory_profile, MemoryProfile) and isinstance(evidence.cpu_profile, CpuProfile)
    assert evidence.memory_sites_at_end[0].size == 2048 and evidence.memory_sites_at_end[0].stack == tuple(
        SITE["stack"]
    )
    assert isinstance(evidence.summary, ImportedSummary) and evidence.summary.statistic("time", "median") == 0.5
    assert isinstance(evidence.load, LoadRun) and evidence.load.total.time("p95") == 0.2
    assert evidence.text("crash") == "worker 'gw0' crashed" and evidence.text("mem_retained") == ""
    assert evidence["from_a_newer_perfgate"] == {"anything": [1, "two", None]}  # kept as written
    assert json.dumps(run_to_dict(run)["tests"][0]["evidence"]) == json.dumps(raw["tests"][0]["evidence"])


def test_a_recorders_json_and_typed_values_give_the_same_evidence() -> None:
    profile = profile_cpu(_work, min_time=0.01)
    typed = TestResult("t.py::x", evidence={"cpu_profile": profile, "load": LoadFigures.from_json(FIGURES)})
    from_json = TestResult("t.py::x", evidence={"cpu_profile": profile.to_json(), "load": FIGURES})
    assert typed == from_json and typed.evidence.cpu_profile == profile
    assert model.test_from_json(model.test_to_dict(typed)) == typed  # across pytest-xdist and back


def test_evidence_is_set_from_any_mapping_and_stays_immutable() -> None:
    result = TestResult("t.py::x", evidence={"error": "boom"})
    assert isinstance(result.evidence, Evidence) and dict(result.evidence) == {"error": "boom"}
    crashed = replace(result, evidence={**result.evidence, "crash": "gw0"})
    assert crashed.evidence.text("crash") == "gw0" and crashed.evidence.text("error") == "boom"
    assert TestResult("t.py::y").evidence == {} and not TestResult("t.py::y").evidence
