"""The GitLab Code Quality report: findings at the right file and line, fingerprints that survive
a re-run, every report valid against GitLab's format (tests/codequality_schema.json, strict)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_perfgate.budgets import evaluate, parse_marker
from pytest_perfgate.cli import main
from pytest_perfgate.gate import compare
from pytest_perfgate.model import RunResult, Series, TestResult, load_results, run_from_dict, run_to_dict
from pytest_perfgate.reports.codequality import (
    BUDGET,
    COLLSCAN,
    N_PLUS_1,
    REGRESSION,
    format_codequality,
    gate_findings,
    run_findings,
)
from pytest_perfgate.units import Kind

pytest_plugins = ["pytester"]

SCHEMA = json.loads((Path(__file__).parent / "codequality_schema.json").read_text())
FAST = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]


def valid(text: str) -> list[dict[str, Any]]:
    """The report's issues, after checking them against the schema (and that fingerprints are unique)."""
    issues = json.loads(text)
    jsonschema.validate(issues, SCHEMA)
    fingerprints = [i["fingerprint"] for i in issues]
    assert len(set(fingerprints)) == len(fingerprints), "GitLab keys findings by fingerprint: each must be unique"
    return issues


def _test(nodeid: str, scale: float, *, line: int = 10, evidence: dict[str, Any] | None = None) -> TestResult:
    series = {"time": Series("time", Kind.TIME, tuple(0.001 * scale * (1 + i / 200) for i in range(40)))}
    spec = parse_marker({"median": ("1ms", "3ms")})
    return TestResult(
        nodeid,
        series=series,
        spec=spec,
        verdicts=evaluate(spec, series),
        evidence=evidence or {},
        mode="perf",
        location=(f"pkg/{nodeid.split('::')[0]}", line),
    )


CPU = {
    "calls": 3,
    "total": 0.3,
    "tree": [
        {
            "function": "test_a",
            "location": "pkg/t.py:10",
            "calls": 3,
            "cumulative": 0.3,
            "own": 0.0,
            "children": [
                {
                    "function": "app.slow_sort",
                    "location": "pkg/app.py:42",
                    "calls": 3,
                    "cumulative": 0.25,
                    "own": 0.25,
                    "children": [],
                },
                {"function": "app.fast", "location": "pkg/app.py:7", "calls": 3, "cumulative": 0.05, "own": 0.05},
            ],
        }
    ],
    "top": [],
}


def test_budget_breaches_are_at_the_test_s_line_critical_or_minor_with_the_hot_path() -> None:
    run = RunResult({}, (_test("t.py::a", 4.0, evidence={"cpu_profile": CPU}), _test("t.py::b", 2.0, line=30)))
    issues = valid(format_codequality(run_findings(run)))
    assert [(i["check_name"], i["severity"], i["location"]) for i in issues] == [
        (BUDGET, "critical", {"path": "pkg/t.py", "lines": {"begin": 10}}),
        (BUDGET, "minor", {"path": "pkg/t.py", "lines": {"begin": 30}}),
    ]
    assert issues[0]["description"] == (
        "t.py::a: perf budget median 4.39ms exceeds critical 3ms (target 1ms; 40 rounds); "
        "hot path ends in app.slow_sort (pkg/app.py:42)"
    )
    assert issues[1]["description"].startswith("t.py::b: perf budget median 2.19ms exceeds target 1ms")


def test_fingerprints_survive_moved_lines_and_new_figures_and_tell_findings_apart() -> None:
    first = valid(format_codequality(run_findings(RunResult({}, (_test("t.py::a", 4.0, line=10),)))))
    # the test moved down 5 lines and got slower still: the same finding for GitLab
    again = valid(format_codequality(run_findings(RunResult({}, (_test("t.py::a", 5.0, line=15),)))))
    assert first[0]["fingerprint"] == again[0]["fingerprint"]
    assert first[0]["description"] != again[0]["description"]
    # past the target only (minor): still the same finding, less severe
    minor = valid(format_codequality(run_findings(RunResult({}, (_test("t.py::a", 2.0),)))))
    assert minor[0]["fingerprint"] == first[0]["fingerprint"] and minor[0]["severity"] == "minor"
    other = valid(format_codequality(run_findings(RunResult({}, (_test("t.py::b", 4.0),)))))
    assert other[0]["fingerprint"] != first[0]["fingerprint"]


def test_a_result_without_a_recorded_location_is_placed_at_its_node_id_s_file() -> None:
    test = TestResult("tests/t.py::a[x]", spec=parse_marker({"median": "1ms"}))
    series = {"time": Series("time", Kind.TIME, (0.002,) * 5)}
    test = TestResult(test.nodeid, series=series, spec=test.spec, verdicts=evaluate(test.spec, series))
    issues = valid(format_codequality(run_findings(RunResult({}, (test,)))))
    assert issues[0]["location"] == {"path": "tests/t.py", "lines": {"begin": 1}}


def _stored(scale: float, created: str) -> RunResult:
    return RunResult({"created": created}, (_test("t.py::a", scale), _test("t.py::b", 0.5)))


def test_a_regression_is_at_the_test_s_line_and_names_the_most_changed_function() -> None:
    stored = [_stored(0.5 * (1 + i / 100), f"2026-01-0{i + 1}") for i in range(3)]
    # perfgate ab's differential profile: the changes ranked by size, a shrink first here
    diff = {
        "changes": [
            {"function": "app.cache", "location": "pkg/app.py:7", "base_per_call": 0.004, "current_per_call": 0.001},
            {
                "function": "app.slow_sort",
                "location": "pkg/app.py:42",
                "base_per_call": 0.001,
                "current_per_call": 0.003,
            },
            {"function": "app.new", "location": "pkg/app.py:50", "base_per_call": None, "current_per_call": 0.0005},
        ]
    }
    current = RunResult({}, (_test("t.py::a", 0.8, line=12, evidence={"cpu_diff": diff}), _test("t.py::b", 0.5)))
    report = compare(stored, current)
    assert [c.verdict.value for c in report.regressions] == ["regression"]
    issues = valid(format_codequality(gate_findings(report, current)))
    regression = [i for i in issues if i["check_name"] == REGRESSION]
    assert len(regression) == 1
    assert regression[0]["severity"] == "critical" and regression[0]["location"]["lines"]["begin"] == 12
    description = regression[0]["description"]
    assert description.startswith("t.py::a: time (median) regression: ")
    assert re.fullmatch(r"t\.py::a: time \(median\) regression: \d+us -> \d+us \(\+\d+\.\d%\); .*", description)
    assert description.endswith("; own time grew most in app.slow_sort (pkg/app.py:42): +2ms per call")
    # without a differential profile: the end of the hot path
    current = RunResult({}, (_test("t.py::a", 0.8, evidence={"cpu_profile": CPU}), _test("t.py::b", 0.5)))
    issues = valid(format_codequality(gate_findings(compare(stored, current), current)))
    assert [i["description"].rsplit("; ", 1)[1] for i in issues if i["check_name"] == REGRESSION] == [
        "hot path ends in app.slow_sort (pkg/app.py:42)"
    ]


def _mongo_test(mongo: dict[str, Any]) -> TestResult:
    # recorded at the repository's examples/shop/tests/test_orders.py (rootdir examples/shop)
    return TestResult(
        "tests/test_orders.py::test_list", evidence={"mongo": mongo}, location=("examples/shop/tests/test_orders.py", 8)
    )


def test_collscans_and_n_plus_1_are_at_the_line_that_issued_the_query_relative_to_the_repository() -> None:
    test = _mongo_test(
        {
            "explain": [
                {
                    "query": "find orders filter={...}",
                    "collscans": 1,
                    "docs_examined": 500,
                    "n_returned": 2,
                    "location": "shop/orders.py:31 in list_orders",
                },
                {"query": "find users filter={_id}", "collscans": 0, "location": "shop/users.py:5 in get"},
            ],
            "index_advice": [
                # explain's own verdict is above; the static estimate of the same shape adds nothing
                {
                    "query": "find orders filter={...}",
                    "status": "unsupported",
                    "basis": "explain",
                    "location": "shop/orders.py:31 in list_orders",
                },
                {
                    "query": "find items filter={sku}",
                    "status": "unsupported",
                    "basis": "static",
                    "suggestion": [["sku", 1]],
                    "location": "shop/items.py:12 in by_sku",
                },
            ],
            "repeats": [
                {
                    "shape": "find users filter={_id}",
                    "count": 20,
                    "locations": [{"location": "shop/users.py:5 in get", "count": 20}],
                },
                # issued from outside the repository (an installed library): the test's line
                {
                    "shape": "find carts filter={_id}",
                    "count": 9,
                    "locations": [{"location": "/usr/lib/python3/site-packages/odm.py:88 in load", "count": 9}],
                },
            ],
        }
    )
    issues = valid(format_codequality(run_findings(RunResult({}, (test,)))))
    placed = [(i["check_name"], i["severity"], i["location"]["path"], i["location"]["lines"]["begin"]) for i in issues]
    assert placed == [
        (COLLSCAN, "major", "examples/shop/shop/orders.py", 31),
        (COLLSCAN, "minor", "examples/shop/shop/items.py", 12),
        (N_PLUS_1, "major", "examples/shop/shop/users.py", 5),
        (N_PLUS_1, "major", "examples/shop/tests/test_orders.py", 8),
    ]
    assert issues[0]["description"] == (
        "tests/test_orders.py::test_list: COLLSCAN (explain): find orders filter={...} examined 500 documents "
        "for 2 returned"
    )
    assert issues[1]["description"].endswith("suggested index sku: 1")
    assert "issued at /usr/lib/python3/site-packages/odm.py:88 in load (x9)" in issues[3]["description"]


def test_hostile_evidence_gives_a_valid_report() -> None:
    test = _mongo_test(
        {
            "explain": [{"collscans": True}, "x", {"collscans": 2, "location": "../../../outside.py:3 in f"}],
            "index_advice": {"not": "a list"},
            "repeats": [{"locations": [{"location": "no line here"}]}, {"count": -1, "locations": "x"}],
        }
    )
    issues = valid(format_codequality(run_findings(RunResult({}, (test,)))))
    assert {i["location"]["path"] for i in issues} == {"examples/shop/tests/test_orders.py"}
    assert valid(format_codequality([])) == []


def test_the_location_is_recorded_in_the_results_and_old_files_still_load(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_loc="""
        import pytest


        @pytest.mark.perf_budget(max="1ms")
        def test_slow():
            sum(range(10))
        """
    )
    pytester.runpytest(*FAST, "--perfgate-save=out.json").assert_outcomes(passed=1)
    run = load_results(pytester.path / "out.json")
    # the first line of the definition, its decorators included: the perf_budget marker's
    assert run.tests[0].location == ("test_loc.py", 4)
    data = json.loads((pytester.path / "out.json").read_text())
    assert data["tests"][0]["location"] == {"path": "test_loc.py", "line": 4}
    assert run_from_dict(run_to_dict(run)).tests[0].location == ("test_loc.py", 4)
    del data["tests"][0]["location"]  # written by an older perfgate
    assert run_from_dict(data).tests[0].location is None
    data["tests"][0]["location"] = {"path": "", "line": 0}
    with pytest.raises(Exception, match=r"tests\[0\]\.location\.path: missing or empty"):
        run_from_dict(data)


def test_compare_writes_the_report_with_mongomock_findings_at_the_issuing_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PERFGATE_MONGO_URI", raising=False)
    from pytest_perfgate.mongo import backends

    monkeypatch.setattr(backends, "DOCKER_SOCKETS", ("/nonexistent/docker.sock",))
    pytester.makepyfile(
        shop=textwrap.dedent(
            """
            def names(db, ids):
                return [db.users.find_one({"_id": i})["name"] for i in ids]


            def by_city(db, city):
                return list(db.users.find({"city": city}))
            """
        ),
        test_shop=textwrap.dedent(
            """
            import pytest
            from shop import by_city, names


            @pytest.mark.perf_budget(max="10s")
            def test_names(mongo_db):
                mongo_db.users.insert_many([{"_id": i, "name": str(i), "city": "x"} for i in range(8)])
                assert len(names(mongo_db, range(8))) == 8
                assert len(by_city(mongo_db, "x")) == 8
            """
        ),
    )
    pytester.runpytest(*FAST, "--perfgate-save=out.json").assert_outcomes(passed=1)
    monkeypatch.chdir(pytester.path)
    code = main(["compare", "none-yet", "out.json", "--codequality", "cq.json"])
    assert code == 0, capsys.readouterr()
    issues = valid((pytester.path / "cq.json").read_text())
    placed = {(i["check_name"], i["location"]["path"], i["location"]["lines"]["begin"]) for i in issues}
    assert placed == {(N_PLUS_1, "shop.py", 2), (COLLSCAN, "shop.py", 6)}
    # the report file passes GitLab's format with the check-jsonschema tool too
    tool = shutil.which("check-jsonschema")
    if tool is not None:
        schema = Path(__file__).parent / "codequality_schema.json"
        subprocess.run([tool, "--schemafile", str(schema), "cq.json"], check=True, capture_output=True, timeout=120)


def test_ab_and_compare_share_the_option() -> None:
    import argparse

    from pytest_perfgate.cli import ab
    from pytest_perfgate.cli import compare as compare_cli

    for module in (compare_cli, ab):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        assert "--codequality" in parser.format_help()


def test_report_writes_a_run_s_findings_and_compare_refuses_one_file_for_two_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_perfgate.model import save_results

    results = tmp_path / "r.json"
    save_results(results, RunResult({}, (_test("t.py::a", 4.0, line=21), _test("t.py::b", 0.5))))
    quality = tmp_path / "cq.json"
    assert main(["report", str(results), "--codequality", str(quality)]) == 1  # a critical breach
    assert f"code quality report: {quality}" in capsys.readouterr().out
    issues = valid(quality.read_text())
    assert [(i["severity"], i["location"]) for i in issues] == [
        ("critical", {"path": "pkg/t.py", "lines": {"begin": 21}})
    ]
    assert main(["compare", str(results), str(results), "--json", str(quality), "--codequality", str(quality)]) == 2
    assert "given to both --json and --codequality" in capsys.readouterr().err


def test_an_explained_collscan_on_a_server_is_at_the_line_that_issued_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a server (tests/fake_mongo_server.py: real pymongo, canned plans), explain's COLLSCAN is a
    major finding at the line of the find, from the call site the explain evidence now carries."""
    from fake_mongo_server import FakeMongoServer

    pytester.makepyfile(
        test_it=textwrap.dedent(
            """
            import pytest


            @pytest.mark.perf_budget(collscan=False)
            def test_scan(mongo_db):
                mongo_db.events.insert_many([{"user": f"u{i % 3}"} for i in range(9)])
                assert len(list(mongo_db.events.find({"user": "u1"}))) == 3
            """
        )
    )
    with FakeMongoServer() as server:
        monkeypatch.setenv("PERFGATE_MONGO_URI", server.uri)
        pytester.runpytest(*FAST, "--perfgate-save=out.json").assert_outcomes(failed=1)
    run = load_results(pytester.path / "out.json")
    (explained,) = run.tests[0].evidence["mongo"]["explain"]
    assert explained["collscans"] == 1 and explained["location"] == "test_it.py:7 in test_scan"
    issues = valid(format_codequality(run_findings(run)))
    placed = [(i["check_name"], i["severity"], i["location"]["path"], i["location"]["lines"]["begin"]) for i in issues]
    # the budget breach at the test, the scan at the find (its static advice, reconciled with explain, adds nothing)
    assert placed == [(BUDGET, "critical", "test_it.py", 4), (COLLSCAN, "major", "test_it.py", 7)]
    assert issues[1]["description"] == (
        'test_it.py::test_scan: COLLSCAN (explain): find events filter={"user": "?"} examined 9 documents for 3 returned'
    )
