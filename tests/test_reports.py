"""Every report format of the gate: rendered or parsed by a real consumer, then asserted on."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from harness.results import make_run, make_test
from pytest_perfgate.budgets import BudgetResult, Verdict
from pytest_perfgate.gate import GateReport, GateVerdict, compare
from pytest_perfgate.reports.gate_terminal import format_terminal
from pytest_perfgate.reports.json_report import gate_to_dict
from pytest_perfgate.reports.junit import format_junit
from pytest_perfgate.reports.markdown import escape, format_markdown
from pytest_perfgate.reports.openmetrics import format_openmetrics
from pytest_perfgate.units import Kind

XSD = Path(__file__).parent / "data" / "junit.xsd"
EVIL = "tests/t.py::test_x[a|b`c<script>alert(1)</script>*_**[link](http://x)\n| --- |:x:&amp;]"


def _report() -> GateReport:
    levels = (0.99, 1.0, 1.01, 1.0, 1.005)
    names = ["reg", "warn", "better", "same", "noisy", "gone", EVIL]
    base = [
        make_run({n: [lv * (1.5 if n == "noisy" and i % 2 else 1.0)] * 5 for n in names}) for i, lv in enumerate(levels)
    ]
    breach = BudgetResult("p95", Kind.TIME, 0.6, 0.2, 0.5, Verdict.FAIL, 10)
    current = make_run(
        [
            make_test("reg", [1.3] * 5),
            make_test("warn", [1.07] * 5),
            make_test("better", [0.5] * 5),
            make_test("same", [1.0] * 5),
            make_test("noisy", [1.3] * 5),
            make_test("new", [1.0] * 5),
            make_test(EVIL, [1.5] * 5, verdicts=(breach,)),
        ]
    )
    return compare(base, current)


@pytest.fixture(scope="module")
def report() -> GateReport:
    return _report()


def test_fixture_report_has_every_kind_of_row(report: GateReport) -> None:
    verdicts = {c.nodeid: c.verdict for c in report.comparisons}
    assert verdicts == {
        "reg": GateVerdict.REGRESSION,
        EVIL: GateVerdict.REGRESSION,
        "warn": GateVerdict.WARNING,
        "better": GateVerdict.IMPROVEMENT,
        "same": GateVerdict.UNCHANGED,
        "noisy": GateVerdict.UNSTABLE,
        "gone": GateVerdict.MISSING,
        "new": GateVerdict.NEW,
    }


def _tables(html_tokens):  # type: ignore[no-untyped-def]
    """Each table as a list of rows of cell texts (inline content, unescaped by the renderer)."""
    tables, rows, row, in_cell = [], None, None, False
    for tok in html_tokens:
        if tok.type == "table_open":
            rows = []
        elif tok.type == "table_close":
            tables.append(rows)
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close":
            rows.append(row)
        elif tok.type in ("th_open", "td_open"):
            in_cell = True
            row.append("")
        elif tok.type in ("th_close", "td_close"):
            in_cell = False
        elif tok.type == "inline" and in_cell:
            row[-1] = "".join(child.content for child in tok.children if child.type in ("text", "code_inline"))
    return tables


def test_markdown_renders_tables_with_the_right_rows(report: GateReport) -> None:
    text = format_markdown(report)
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    tables = _tables(tokens)
    changed, budgets, flagged, unchanged = tables
    assert changed[0] == ["Test", "Metric", "Baseline", "Current", "Change (95% CI)", "p (adjusted)", "Verdict"]
    # regressions first (worst first), then warnings, then improvements; the evil name is one cell
    assert [r[0] for r in changed[1:]] == [EVIL.replace("\n", " "), "reg", "warn", "better"]
    assert [r[-1] for r in changed[1:]] == ["regression", "regression", "warning", "improvement"]
    assert all(len(r) == 7 for r in changed)
    assert changed[2][2:4] == ["1s", "1.3s"] and re.fullmatch(
        r"\+(29\.\d|30\.\d)% \[\+\d+\.\d%, \+\d+\.\d%\]", changed[2][4]
    )
    assert budgets[1][:2] == [EVIL.replace("\n", " "), "p95"] and budgets[1][-1] == "critical"
    assert [r[0] for r in flagged[1:]] == ["noisy"]
    assert [r[0] for r in unchanged[1:]] == ["same"]
    html = md.render(text)
    assert "<script>" not in html and "<a href" not in html and "<em>" not in html and "<strong>x" not in html
    assert "&lt;script&gt;" in html
    assert "<details><summary>1 unchanged</summary>" in html  # the fold survives (GitLab renders it)
    assert text.splitlines()[0].startswith("### :x: perfgate: FAILED: 2 regressions")
    assert "#### New (1)" in text and "#### Missing (1)" in text


def test_markdown_is_deterministic() -> None:
    assert format_markdown(_report()) == format_markdown(_report())


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_escaped_text_renders_back_to_itself_in_one_cell(name: str) -> None:
    md = MarkdownIt("commonmark").enable("table")
    doc = f"| a | b |\n| --- | --- |\n| {escape(name)} | x |\n"
    tables = _tables(md.parse(doc))
    assert len(tables) == 1 and len(tables[0]) == 2
    expected = " ".join(name.splitlines())
    expected = "".join(c if c.isprintable() or c == " " else " " for c in expected)
    assert tables[0][1] == [expected.strip(" \t"), "x"] or tables[0][1][0].strip() == expected.strip()
    assert "<" not in md.render(doc).split("<td>")[1].split("</td>")[0].replace("&lt;", "")


def test_junit_is_valid_and_has_one_case_per_metric_and_a_failure_per_regression(report: GateReport) -> None:
    xml = format_junit(report)
    schema = xmlschema.XMLSchema(str(XSD))
    schema.validate(xml)
    data = schema.to_dict(xml)
    suite = data["testsuite"][0]
    cases = suite["testcase"]
    assert len(cases) == len(report.comparisons) + 1  # + the critical budget breach
    failed = sorted(c["@name"] for c in cases if "failure" in c)
    assert failed == sorted([f"{EVIL} [time]", "reg [time]", f"{EVIL} [budget p95]"])
    skipped = sorted(c["@name"] for c in cases if "skipped" in c)
    assert skipped == ["gone [time]", "new [time]", "noisy [time]"]
    assert suite["@failures"] == 3 and suite["@tests"] == 9 and suite["@skipped"] == 3


def test_junit_rejects_nothing_valid_when_names_hold_control_characters() -> None:
    base = [make_run({"t\x01\x1b[31m": [v] * 3}) for v in (1.0, 1.01, 0.99)]
    report = compare(base, make_run({"t\x01\x1b[31m": [3.0] * 3}))
    xmlschema.XMLSchema(str(XSD)).validate(format_junit(report))


def test_openmetrics_parses_and_carries_the_figures(report: GateReport) -> None:
    families = {f.name: f for f in text_string_to_metric_families(format_openmetrics(report))}
    assert families["perfgate_gate_failed"].samples[0].value == 1.0
    by_verdict = {s.labels["verdict"]: s.value for s in families["perfgate_gate_comparisons"].samples}
    assert by_verdict["regression"] == 2 and by_verdict["unchanged"] == 1
    change = {s.labels["test"]: s.value for s in families["perfgate_change_ratio"].samples}
    assert change["reg"] == pytest.approx(0.3, rel=0.01)
    assert change[EVIL] == pytest.approx(0.5, rel=0.01)  # the label survives escaping intact
    assert "new" not in change and "gone" not in change
    units = {s.labels["unit"] for s in families["perfgate_current"].samples}
    assert units == {"s"}


def test_json_report_round_trips_every_comparison(report: GateReport) -> None:
    data = json.loads(json.dumps(gate_to_dict(report), allow_nan=False))
    assert data["schema"] == "perfgate-gate" and data["exit_code"] == 1 and data["failed"] is True
    assert len(data["comparisons"]) == len(report.comparisons)
    reg = next(c for c in data["comparisons"] if c["nodeid"] == "reg")
    assert reg["verdict"] == "regression" and reg["change"] == pytest.approx(0.3, rel=0.01)
    assert len(reg["ci"]) == 2 and reg["p_adjusted"] < 0.01
    assert data["budget_breaches"][0]["level"] == "critical"
    assert data["settings"]["correction"] == "holm"


def test_terminal_shows_changes_first_and_folds_unchanged(report: GateReport) -> None:
    lines = format_terminal(report)
    assert lines[0].startswith("perfgate: FAILED: 2 regressions and 1 critical budget breach")
    rows = [ln for ln in lines if ln.startswith(("reg ", "warn ", "better ", "same ", "tests/t.py"))]
    assert rows[0].startswith("tests/t.py") and rows[1].startswith("reg ")
    assert not any(r.startswith("same ") for r in rows)
    assert "1 unchanged metric not shown" in lines
    assert any(ln.startswith("budget FAIL: ") for ln in lines)


def test_large_suites_cap_the_markdown() -> None:
    rng = random.Random(3)
    names = [f"t{i}" for i in range(500)]
    base = [make_run({n: [1.0 + rng.random() * 0.001] for n in names}) for _ in range(10)]
    text = format_markdown(compare(base, make_run({n: [1.0] for n in names})), max_rows=50)
    assert "<details><summary>500 unchanged</summary>" in text
    assert "and 450 more" in text and len(text) < 20_000


def test_terminal_folds_long_lists_of_new_tests() -> None:
    report = compare([], make_run({f"t{i:02d}": [1.0] for i in range(25)}))
    lines = format_terminal(report)
    assert sum(1 for ln in lines if ln.startswith("t") and " new " in ln) == 10
    assert "15 more new metrics not shown" in lines
    assert len(format_terminal(report, max_listed=100)) == len(lines) + 14


def test_markdown_shows_the_top_offenders_of_failing_tests(tmp_path: Path) -> None:
    from pytest_perfgate.budgets import evaluate, parse_marker
    from pytest_perfgate.gate import compare
    from pytest_perfgate.measure.cpuprofile import profile_cpu
    from pytest_perfgate.measure.memprofile import profile_memory
    from pytest_perfgate.model import RunResult, Series, TestResult
    from pytest_perfgate.units import Kind

    def hog() -> int:
        return len([bytes(100) for _ in range(3000)])

    series = {"mem_peak": Series("mem_peak", Kind.SIZE, (400_000.0,))}
    spec = parse_marker({"mem_peak": "100kB"})
    evidence = {
        "memory_profile": profile_memory(hog).to_json(),
        "cpu_profile": profile_cpu(hog, min_time=0.01).to_json(),
    }
    failing = TestResult("t.py::hog", series=series, spec=spec, verdicts=evaluate(spec, series), evidence=evidence)
    current = RunResult({}, (failing,))
    text = format_markdown(compare((), current), current=current)
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<details><summary>Evidence: t.py::hog</summary>" in html
    assert "Memory by function (one re-run, peak" in html and "Hot path (pyinstrument, " in html
    assert re.search(r"re-run call\(s\)\): hog \d+%", html)
    assert "test_markdown_shows_the_top_offenders_of_failing_tests.&lt;locals&gt;.hog" in html
    assert "Evidence" not in format_markdown(compare((), current))  # without the run, no evidence section


def test_the_timings_summary_shows_a_test_s_counts_per_call_readably() -> None:
    from pytest_perfgate.budgets import BudgetSpec
    from pytest_perfgate.model import Series, TestResult
    from pytest_perfgate.reports.terminal import format_timings
    from pytest_perfgate.units import Kind

    series = {
        "time": Series("time", Kind.TIME, (0.0123,) * 5, loops=10),
        "instructions": Series("instructions", Kind.COUNT, (40_210_000.0,), source="callgrind"),
        "alloc_blocks": Series("alloc_blocks", Kind.COUNT, (1200.0, 1210.0, 1190.0), source="allocations"),
        "alloc_bytes": Series("alloc_bytes", Kind.SIZE, (5_000_000.0,), source="allocations"),
    }
    counted = TestResult(nodeid="t::a", outcome="passed", mode="perf", series=series, spec=BudgetSpec())
    plain = TestResult(nodeid="t::b", outcome="passed", mode="perf", series={"time": series["time"]}, spec=BudgetSpec())
    lines = format_timings([counted, plain])
    assert lines[1].endswith("(5 rounds x 10 calls, perf)  40.2M instructions, 1200 allocations, 5MB allocated")
    assert lines[2].endswith("(5 rounds x 10 calls, perf)")
