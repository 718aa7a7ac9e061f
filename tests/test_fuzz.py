"""Fuzz layer (issue 16, requirement 7): any JSON or YAML value in any position.

Each property generates a *valid* document (a results file, a pytest-benchmark JSON file, a
``perfgate.yml``, a ``perf_budget`` marker), then damages it: a random node replaced by an
arbitrary JSON value (NaN, Infinity, 10**400, 5e-324, strings, lists, objects), a key deleted, a
key duplicated (in YAML) or an unknown key added. The outcome must be a clear
:class:`~pytest_perfgate.errors.PerfgateError` or a valid result that every consumer (the gate,
the text reports, saving) handles: never another exception. Example counts are bounded so that
the whole file runs in well under 20 s on a busy 2-CPU runner.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_perfgate.budgets import parse_marker
from pytest_perfgate.config import GATE_STATISTICS, GateSettings, parse_config
from pytest_perfgate.errors import PerfgateError
from pytest_perfgate.gate import compare
from pytest_perfgate.importers import from_benchmark_json
from pytest_perfgate.merge import merge_runs
from pytest_perfgate.model import RunResult, load_results, run_to_dict
from pytest_perfgate.reports.gate_terminal import format_terminal
from pytest_perfgate.reports.html import render_html
from pytest_perfgate.reports.json_report import gate_to_dict
from pytest_perfgate.reports.junit import format_junit
from pytest_perfgate.reports.markdown import format_markdown
from pytest_perfgate.reports.openmetrics import format_openmetrics
from pytest_perfgate.reports.prometheus import branch_of
from pytest_perfgate.reports.terminal import format_budget_table, format_timings

#: PERFGATE_FUZZ_EXAMPLES=2000 for a deeper run by hand; the suite's default stays small
FUZZ = settings(
    max_examples=int(os.environ.get("PERFGATE_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

# --------------------------------------------------------------------------- values

#: the figures that broke the gate: 0, tiny, huge, negative, and past the float range
EDGE_NUMBERS = st.sampled_from(
    [0, 0.0, -0.0, 5e-324, 1e-300, 1.7e308, -1.7e308, 1e308, -1.0, 10**400, -(10**400), math.nan, math.inf, -math.inf]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    EDGE_NUMBERS,
    st.text(max_size=12),
    st.sampled_from(["", "1s", "10%", "50MB", "-1", "nan", "1e400", "p95", "time", "pass", "fail", "median"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
finite_positive = st.floats(min_value=5e-324, max_value=1.7e308, allow_nan=False, allow_infinity=False)
any_finite = st.one_of(finite_positive, st.just(0.0), st.floats(allow_nan=False, allow_infinity=False))


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON document (the root included)."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths_of(value, (*prefix, index))
    return found


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def damaged(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> Any:
    """A valid document with one node replaced, one key deleted or one unknown key added."""
    doc = copy.deepcopy(draw(valid))
    path = draw(st.sampled_from(paths_of(doc)))
    action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if not path:
        return draw(json_values) if action == "replace" else doc
    parent, last = at(doc, path[:-1]), path[-1]
    if action == "replace":
        parent[last] = draw(json_values)
    elif action == "delete":
        del parent[last]
    else:
        target = at(doc, path)
        if isinstance(target, dict):
            target[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        elif isinstance(target, list):
            target.append(draw(json_values))
        else:
            parent[last] = draw(json_values)
    return doc


def dumps(doc: Any) -> str:
    """JSON text as a careless writer makes it: NaN and Infinity literals, unbounded integers."""
    return json.dumps(doc, allow_nan=True)


def consume(run: RunResult) -> None:
    """What the commands do with a loaded run: gate it against itself, print, save. The gate may
    refuse the run in words (a GateError such as "no test in common"): that is a clear error too."""
    json.dumps(run_to_dict(run), allow_nan=False)
    format_budget_table(run.tests)
    format_timings(run.tests)
    try:
        report = compare([run], run)
    except PerfgateError as exc:
        assert str(exc)
        return
    format_terminal(report)
    format_junit(report)
    format_openmetrics(report)
    json.dumps(gate_to_dict(report), allow_nan=False)
    format_markdown(report, current=run)
    render_html(run, baseline=[run], gate=report)
    merge_runs([("a.json", run), ("b.json", RunResult(metadata=run.metadata, tests=()))])
    branch_of(run)


# --------------------------------------------------------------------------- results files

metric_names = st.sampled_from(["p95", "median", "mean", "mem_peak", "queries", "hits"])


#: evidence as perfgate writes it for a failing test (memory and cpu profiles): damaged, it must be
#: refused at load, not crash the Markdown and HTML reports that read it
EVIDENCE = {
    "memory_profile": {
        "peak": 2048,
        "functions": [{"function": "f", "location": "a.py:1", "calls": 1, "inclusive_peak": 2048, "self_net": 1024}],
        "peak_stack": ["f (a.py:1)"],
        "peak_sites": [{"size": 1024, "count": 2, "stack": ["a.py:2"]}],
        "retained": 0,
        "leaks": [],
        "tree": {"function": "f", "location": "a.py:1", "peak": 2048, "self_net": 1024, "calls": 1, "children": []},
    },
    "cpu_profile": {
        "calls": 3,
        "total": 0.01,
        "tree": [{"function": "f", "location": "a.py:1", "calls": 3, "cumulative": 0.01, "own": 0.005, "children": []}],
        "top": [{"function": "f", "location": "a.py:1", "calls": 3, "own": 0.005, "cumulative": 0.01}],
    },
}


@st.composite
def results_docs(draw: st.DrawFn) -> dict[str, Any]:
    tests = []
    for i in range(draw(st.integers(1, 3))):
        series = {
            name: {
                "kind": kind,
                "unit": "",
                "higher_is_better": draw(st.booleans()),
                "loops": draw(st.integers(1, 1000)),
                "source": "perf",
                "values": draw(st.lists(any_finite, min_size=1, max_size=6)),
            }
            for name, kind in draw(st.sampled_from([[("time", "time")], [("time", "time"), ("mem_peak", "size")]]))
        }
        target, critical = sorted(draw(st.lists(finite_positive, min_size=2, max_size=2)))
        budgets = [
            {
                "metric": "p95",
                "kind": "time",
                "target": target,
                "critical": critical,
                "higher_is_better": False,
                "source": "marker",
            }
        ]
        verdicts = [
            {
                "metric": "p95",
                "kind": "time",
                "unit": "",
                "measured": draw(any_finite),
                "target": target,
                "critical": critical,
                "verdict": draw(st.sampled_from(["pass", "warn", "fail"])),
                "samples": 5,
                "higher_is_better": False,
                "detail": "",
                "source": "marker",
            }
        ]
        tests.append(
            {
                "nodeid": f"t.py::test_{i}",
                "outcome": "passed",
                "mode": "perf",
                "duration": draw(any_finite),
                "series": series,
                "spec": {
                    "kpi": None,
                    "max_regression": 0.2,
                    "warn_regression": 0.1,
                    "evidence": [],
                    "budgets": budgets,
                },
                "verdicts": verdicts,
                "evidence": copy.deepcopy(EVIDENCE) if draw(st.booleans()) else {},
            }
        )
    metadata = {
        "created": "2026-01-01T00:00:00",
        "python": "3.11",
        "git": {"commit": "abc", "branch": "main", "dirty": False},
        "ci": {"CI_NODE_INDEX": "1", "CI_COMMIT_REF_NAME": "main"},
        "settings": {"min_rounds": 5},
    }
    return {"schema": "perfgate-results", "schema_version": 1, "metadata": metadata, "tests": tests}


@FUZZ
@given(doc=results_docs())
def test_valid_results_files_with_any_finite_figure_load_and_are_gated(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "valid.json"
    path.write_text(dumps(doc))
    consume(load_results(path))


@FUZZ
@given(doc=damaged(results_docs()))
def test_damaged_results_files_are_a_clear_error_or_a_valid_run(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "damaged.json"
    path.write_text(dumps(doc))
    try:
        run = load_results(path)
    except PerfgateError as exc:
        assert str(exc).startswith(str(path)) and "Traceback" not in str(exc)
        return
    consume(run)


# --------------------------------------------------------------------------- pytest-benchmark JSON


@st.composite
def benchmark_docs(draw: st.DrawFn) -> dict[str, Any]:
    benchmarks = []
    for i in range(draw(st.integers(1, 3))):
        data = draw(st.lists(finite_positive | st.just(0.0), min_size=1, max_size=6))
        stats: dict[str, Any] = {
            "min": min(data),
            "max": max(data),
            "mean": data[0],
            "rounds": len(data),
            "iterations": draw(st.integers(1, 100)),
        }
        if draw(st.booleans()):
            stats["data"] = data
        benchmarks.append({"group": None, "name": f"test_{i}", "fullname": f"t.py::test_{i}", "stats": stats})
    return {
        "machine_info": {"node": "x"},
        "commit_info": {"id": "abc"},
        "benchmarks": benchmarks,
        "datetime": "2026-01-01T00:00:00",
        "version": "5.1.0",
    }


@FUZZ
@given(doc=damaged(benchmark_docs()))
def test_damaged_benchmark_json_is_a_clear_error_or_a_valid_run(doc: Any) -> None:
    text = dumps(doc)
    try:
        run = from_benchmark_json(json.loads(text), "bench.json")
    except PerfgateError as exc:
        assert str(exc).startswith("bench.json")
        return
    consume(run)


# --------------------------------------------------------------------------- perfgate.yml

levels = st.one_of(
    st.sampled_from(["200ms", "1s", 0.5, "50MB", 3]),
    st.fixed_dictionaries({"target": st.just("100ms"), "critical": st.just("1s")}),
)


@st.composite
def config_docs(draw: st.DrawFn) -> dict[str, Any]:
    max_r = draw(st.sampled_from(["10%", "20%", 0.3]))
    return {
        "metrics": {"hits": {"kind": "ratio", "higher_is_better": True}},
        "kpis": {
            "api": {"p95": {"target": "200ms", "critical": "500ms"}, "hits": {"target": "90%", "critical": "80%"}},
            "db": {"queries": 3},
        },
        "gate": {
            "metric": draw(st.sampled_from(GATE_STATISTICS)),
            "max_regression": max_r,
            "warn_regression": "5%",
            "alpha": 0.01,
            "overrides": [{"match": "t.py::*", "max_regression": "30%", "warn_regression": "10%"}],
            "correction": draw(st.sampled_from(["holm", "bh", "none"])),
            "min_baseline_runs": 3,
        },
    }


def _yaml(doc: Any) -> str:
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@st.composite
def damaged_yaml(draw: st.DrawFn) -> str:
    """A perfgate.yml damaged as a document (any value anywhere) or as text (a line repeated, an
    anchor and alias, a line cut)."""
    text = _yaml(draw(damaged(config_docs())))
    lines = text.splitlines()
    how = draw(st.sampled_from(["as is", "as is", "repeat a line", "alias", "cut"]))
    if how == "repeat a line" and lines:
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
    elif how == "alias":
        lines += ["x: &a [1, 2]", "y: [*a, *a]"]
    elif how == "cut" and lines:
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=damaged_yaml())
def test_damaged_config_is_a_clear_error_or_a_valid_config(text: str) -> None:
    try:
        config = parse_config(text, "perfgate.yml")
    except PerfgateError as exc:
        assert str(exc).startswith("perfgate.yml")
        return
    gate = config.gate
    assert isinstance(gate, GateSettings)
    warn, fail = gate.thresholds_for("t.py::test_0")
    assert 0 < warn <= fail
    for override in gate.overrides:
        if override.warn_regression is not None and override.max_regression is not None:
            assert override.warn_regression <= override.max_regression
    for kpi in config.kpis.values():
        for budget in kpi.spec().budgets:
            assert budget.target is not None or budget.critical is not None


# --------------------------------------------------------------------------- markers

marker_keys = st.sampled_from(
    [
        "p95",
        "median",
        "mem_peak",
        "queries",
        "collscan",
        "target_p95",
        "critical_p95",
        "max_regression",
        "warn_regression",
        "kpi",
        "metrics",
        "evidence",
        "rps",
        "bogus",
    ]
)


@FUZZ
@given(kwargs=st.dictionaries(marker_keys, json_values | levels, max_size=4))
def test_any_marker_arguments_are_a_clear_error_or_a_budget_spec(kwargs: dict[str, Any]) -> None:
    try:
        spec = parse_marker(kwargs)
    except PerfgateError as exc:
        assert str(exc)
        return
    for budget in spec.budgets:
        assert budget.target is not None or budget.critical is not None
        assert all(math.isfinite(v) for v in (budget.target, budget.critical) if v is not None)
    if spec.max_regression is not None and spec.warn_regression is not None:
        assert spec.warn_regression <= spec.max_regression


@pytest.mark.parametrize("value", [10**400, math.nan, -1, 5e-324, 1.7e308, "1e400", [], {}])
def test_marker_edge_numbers_examples(value: Any) -> None:
    """The named edge values, always run (hypothesis may not draw each one)."""
    try:
        spec = parse_marker({"p95": value})
    except PerfgateError:
        return
    (budget,) = spec.budgets
    assert budget.critical is not None and math.isfinite(budget.critical)
