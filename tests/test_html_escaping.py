"""The HTML report escapes every field it interpolates: names and evidence from a results file, and
evidence that reached it without the file's checks (from the tests' own process)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from pytest_perfgate.gate import compare
from pytest_perfgate.model import RunResult, TestResult, load_results
from pytest_perfgate.reports.html import render_html

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]


def _assert_inert(page: str, *, at_least: int) -> None:
    parser = _Tags()
    parser.feed(page)
    assert SCRIPT not in page and "<script" not in page
    assert "script" not in parser.tags and not any(a.startswith("on") for a in parser.attributes)
    assert page.count(ESCAPED) >= at_least  # shown, as text


def _node(name: str, children: list[dict[str, object]]) -> dict[str, object]:
    return {"function": name, "location": name, "calls": 3, "cumulative": 0.5, "own": 0.1, "children": children}


def _hostile_test(nodeid: str) -> dict[str, object]:
    site = {"size": 2048, "count": 4, "stack": [SCRIPT, SCRIPT]}
    return {
        "nodeid": nodeid,
        "outcome": SCRIPT,
        "mode": "perf",
        "series": {
            "time": {"kind": "time", "unit": "", "values": [0.01, 0.011, 0.012], "source": SCRIPT},
            SCRIPT: {"kind": "number", "unit": SCRIPT, "values": [1.0, 2.0]},
        },
        "spec": {"budgets": [{"metric": "median", "kind": "time", "target": 0.001, "critical": 0.005}]},
        "verdicts": [
            {
                "metric": SCRIPT,
                "kind": "time",
                "measured": 0.011,
                "target": 0.001,
                "critical": 0.005,
                "verdict": "fail",
                "samples": 3,
                "unit": SCRIPT,
                "detail": SCRIPT,
            },
        ],
        "evidence": {
            "memory_profile": {
                "peak": 4096,
                "functions": [
                    {"function": SCRIPT, "location": SCRIPT, "calls": 1, "inclusive_peak": 4096, "self_net": 10}
                ],
                "peak_stack": [SCRIPT],
                "peak_sites": [site],
                "retained": 2048,
                "leaks": [site],
                "tree": {
                    "function": "<call>",
                    "location": "",
                    "calls": 0,
                    "peak": 4096,
                    "self_net": 0,
                    "children": [
                        {
                            "function": SCRIPT,
                            "location": SCRIPT,
                            "calls": 1,
                            "peak": 4096,
                            "self_net": 10,
                            "children": [],
                        }
                    ],
                },
            },
            "cpu_profile": {
                "calls": 2,
                "total": 1.0,
                "tree": [_node(SCRIPT, [_node(SCRIPT, [])])],
                "top": [{"function": SCRIPT, "location": SCRIPT, "calls": 2, "own": 0.1, "cumulative": 0.5}],
            },
            SCRIPT: SCRIPT,  # a key from a newer writer: kept, not shown
        },
    }


def _results_file(path: Path, nodeid: str, created: str) -> Path:
    data = {
        "schema": "perfgate-results",
        "schema_version": 1,
        "metadata": {"created": created, "python": SCRIPT, "cpu": SCRIPT, "git": {"branch": SCRIPT, "commit": SCRIPT}},
        "tests": [_hostile_test(nodeid)],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_names_and_evidence_from_a_results_file_are_escaped(tmp_path: Path) -> None:
    nodeid = f"t.py::test[{SCRIPT}]"
    current = load_results(_results_file(tmp_path / "current.json", nodeid, SCRIPT))
    baseline = [load_results(_results_file(tmp_path / f"b{i}.json", nodeid, SCRIPT)) for i in range(3)]
    gate = compare(baseline, current)
    page = render_html(current, baseline=baseline, gate=gate)
    # the node id, outcome, metric, unit, basis, metadata, run labels and every evidence string
    _assert_inert(page, at_least=20)
    assert current.tests[0].evidence[SCRIPT] == SCRIPT  # the unknown key survives the round trip


def test_evidence_that_skipped_the_file_checks_is_escaped_too() -> None:
    """Evidence made in the tests' process is not shape-checked like a file's: a string where a
    count belongs (``cpu_profile.calls``, a node's ``calls``, a site's ``count``) is still text."""
    site = {"size": 2048, "count": SCRIPT, "stack": [SCRIPT]}
    evidence = {
        "cpu_profile": {
            "calls": SCRIPT,
            "total": 1.0,
            "tree": [{**_node(SCRIPT, []), "calls": SCRIPT}],
            "top": [],
        },
        "memory_profile": {
            "peak": 4096,
            "functions": [{"function": "f", "location": "l", "calls": SCRIPT, "inclusive_peak": 1, "self_net": 1}],
            "peak_stack": [],
            "peak_sites": [],
            "retained": 2048,
            "leaks": [site],
            "tree": {},
        },
    }
    page = render_html(RunResult({}, (TestResult("t.py::x", evidence=evidence),)))
    _assert_inert(page, at_least=4)
