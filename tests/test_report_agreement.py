"""Every report format tells the same story: the headline, the status and the exit code agree, for
a gate that passed, failed, was incomplete, both, judged nothing, judged part, or had no baseline."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import xmlschema
from markdown_it import MarkdownIt
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from harness.results import make_run
from pytest_perfgate.budgets import BudgetSpec
from pytest_perfgate.gate import GateReport, GateStatus, NoticeKind, compare
from pytest_perfgate.model import RunResult, Series, TestResult
from pytest_perfgate.reports.gate_terminal import format_terminal
from pytest_perfgate.reports.gate_text import headline as gate_headline
from pytest_perfgate.reports.gate_text import notice_texts
from pytest_perfgate.reports.html import render_html
from pytest_perfgate.reports.json_report import gate_to_dict
from pytest_perfgate.reports.junit import format_junit
from pytest_perfgate.reports.markdown import format_markdown
from pytest_perfgate.reports.openmetrics import format_openmetrics
from pytest_perfgate.units import Kind

XSD = Path(__file__).parent / "data" / "junit.xsd"
QUIET = (0.999, 1.0, 1.001, 1.0, 1.0005)  # five stored runs that agree to 0.1%
NOISY = (0.7, 1.0, 1.3, 0.8, 1.2)  # five stored runs 30% apart
BASE_SIDE = "tests/test_b.py::test_x: failed on the base side: AssertionError: boom"
TIMEOUT = "tests/test_b.py::test_y: killed by pytest-timeout (timeout = 10) on the current side"
RUN_LEVEL = "the paired run did not finish: the current worker exited with code -9"
PAIRED = {"mode": "paired", "subject": "origin/main (abc1234)", "baseline_runs": 1}


def _stored(levels: tuple[float, ...], current: dict[str, float]) -> GateReport:
    base = [make_run({"t::a": [f] * 5, "t::b": [f] * 5}) for f in levels]
    return compare(base, make_run({name: [value] * 5 for name, value in current.items()}))


FINGERPRINT = {"python": "3.11.7 (main) [GCC 12.2.0]", "valgrind": "valgrind-3.19.0", "distributions": "a1"}


def _counted(instructions: float, *, time: float = 1.0, fingerprint: dict[str, str] | None = None) -> RunResult:
    """A run of one test with a time and an instruction count (the counting core's series)."""
    series = {
        "time": Series("time", Kind.TIME, (time,) * 5),
        "instructions": Series("instructions", Kind.COUNT, (instructions,), source="callgrind"),
    }
    test = TestResult(nodeid="t::a", outcome="passed", mode="perf", series=series, spec=BudgetSpec())
    return RunResult(metadata={"fingerprint": fingerprint or FINGERPRINT}, tests=(test,))


def _counters(current: float, fingerprint: dict[str, str] | None = None) -> GateReport:
    base = [_counted(40_200_000, time=f) for f in QUIET]
    return compare(base, _counted(current, fingerprint=fingerprint))


MOVED = {**FINGERPRINT, "python": "3.11.8 (main) [GCC 12.2.0]", "distributions": "b2"}


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], GateReport]
    headline: str
    status: GateStatus
    exit_code: int


CASES = [
    Case(
        "passed",
        lambda: _stored(QUIET, {"t::a": 1.0, "t::b": 1.0}),
        "perfgate: PASSED (2 unchanged); baseline of 5 runs",
        GateStatus.PASSED,
        0,
    ),
    Case(
        "regression",
        lambda: _stored(QUIET, {"t::a": 1.3, "t::b": 1.0}),
        "perfgate: FAILED: 1 regression (1 unchanged); baseline of 5 runs",
        GateStatus.FAILED,
        1,
    ),
    Case(
        "incomplete",
        lambda: replace(_stored(QUIET, {"t::a": 1.0, "t::b": 1.0}), incomplete=(BASE_SIDE, TIMEOUT), **PAIRED),  # type: ignore[arg-type]
        "perfgate: INCOMPLETE: 2 tests not compared (2 unchanged); paired A/B against origin/main (abc1234)",
        GateStatus.INCOMPLETE,
        2,
    ),
    Case(
        "regression and incomplete",
        lambda: replace(_stored(QUIET, {"t::a": 1.3, "t::b": 1.0}), incomplete=(RUN_LEVEL, BASE_SIDE), **PAIRED),  # type: ignore[arg-type]
        "perfgate: FAILED: 1 regression; INCOMPLETE: the paired run did not finish, 1 test not compared "
        "(1 unchanged); paired A/B against origin/main (abc1234)",
        GateStatus.FAILED,
        1,
    ),
    Case(
        "nothing judged",
        lambda: _stored(NOISY, {"t::a": 1.4, "t::b": 1.0}),
        "perfgate: NOT JUDGED: none of the 2 time comparisons could be judged (2 too noisy to judge on this runner: "
        "run-to-run spread 30%); the paired gate (perfgate ab) would judge them (more stored runs would not: the "
        "spread is too large); baseline of 5 runs",
        GateStatus.NOT_JUDGED,
        3,
    ),
    Case(
        "partly judged",
        lambda: compare(
            [make_run({"t::a": [f] * 5, "t::b": [n] * 5}) for f, n in zip(QUIET, NOISY, strict=True)],
            make_run({"t::a": [1.0] * 5, "t::b": [1.4] * 5}),
        ),
        "perfgate: PASSED (1 of 2 judged: 1 unchanged; 1 too noisy to judge on this runner: run-to-run spread 30%); "
        "baseline of 5 runs",
        GateStatus.PARTLY_JUDGED,
        0,
    ),
    Case(
        "counter regression",
        lambda: _counters(44_300_000),
        "perfgate: FAILED: 1 regression (1 unchanged); baseline of 5 runs",
        GateStatus.FAILED,
        1,
    ),
    Case(
        "environment changed",
        lambda: _counters(44_300_000, MOVED),
        "perfgate: PASSED (1 of 2 judged: 1 unchanged; 1 counter not compared: environment changed); "
        "baseline of 5 runs",
        GateStatus.PARTLY_JUDGED,
        0,
    ),
    Case(
        "no baseline yet",
        lambda: compare([], make_run({"t::a": [1.0] * 5})),
        "perfgate: PASSED without a comparison (1 new); no baseline yet",
        GateStatus.NOTHING_COMPARED,
        0,
    ),
]


def _terminal(report: GateReport) -> tuple[str, str]:
    lines = format_terminal(report)
    listed = [line.removeprefix("not compared: ") for line in lines if line.startswith("not compared: ")]
    assert listed == list(report.incomplete)
    return lines[0], ""


def _markdown(report: GateReport) -> tuple[str, str]:
    text = format_markdown(report)
    tokens = MarkdownIt("commonmark").parse(text)
    assert tokens[0].type == "heading_open" and tokens[0].tag == "h3"
    icon, _, headline = tokens[1].content.partition(" ")
    headline = MarkdownIt("commonmark").renderInline(headline)  # unescaped, as a reader sees it
    if report.incomplete:
        assert f"#### Not compared ({len(report.incomplete)}): the gate is incomplete" in text
        for line in report.incomplete:
            assert f"- {line}" in text.replace("\\_", "_").replace("\\:", ":")
    else:
        assert "Not compared" not in text
    return headline.replace("&gt;", ">"), icon


def _junit(report: GateReport) -> tuple[str, str]:
    xml = format_junit(report)
    xmlschema.XMLSchema(str(XSD)).validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    errors = [case.find("error") for case in suite.iter("testcase") if case.find("error") is not None]
    assert len(errors) == int(suite.get("errors", "-1")) == len(report.incomplete)
    assert [e.text for e in errors] == list(report.incomplete)  # type: ignore[union-attr]
    green = suite.get("failures") == suite.get("errors") == suite.get("skipped") == "0"
    out = suite.find("system-out")
    assert out is not None and out.text is not None
    first, *notices = out.text.split("\n")
    assert notices == [f"notice: {n}" for n in notice_texts(report)]
    return first, "green" if green else "not green"


def _json(report: GateReport) -> tuple[str, str]:
    data = json.loads(json.dumps(gate_to_dict(report), allow_nan=False))
    assert data["exit_code"] == report.exit_code and data["incomplete"] == list(report.incomplete)
    assert data["failed"] is (report.status is GateStatus.FAILED)
    return data["headline"], data["status"]


def _openmetrics(report: GateReport) -> tuple[str, str]:
    families = {f.name: f for f in text_string_to_metric_families(format_openmetrics(report))}
    assert families["perfgate_gate_exit_code"].samples[0].value == report.exit_code
    assert families["perfgate_gate_failed"].samples[0].value == (1.0 if report.exit_code == 1 else 0.0)
    assert families["perfgate_gate_not_compared"].samples[0].value == len(report.incomplete)
    (status,) = [s.labels["status"] for s in families["perfgate_gate_status"].samples if s.value == 1.0]
    return gate_headline(report), status  # OpenMetrics carries no text: the status it sets is checked


def _html(report: GateReport) -> tuple[str, str]:
    import html

    page = render_html(make_run({"t::a": [1.0]}), gate=report)
    start = page.index('<p id="gate-headline"')
    tag, _, rest = page[start:].partition("><b>")
    assert f'data-exit-code="{report.exit_code}"' in tag
    if report.incomplete:
        assert '<ul id="not-compared">' in page
    return html.unescape(rest.split("</b>", 1)[0]), tag.split('class="', 1)[1].split('"', 1)[0]


MARKS = {
    # what each format shows besides the headline: Markdown's icon, JUnit's suite colour, JSON's and
    # OpenMetrics' status, HTML's class
    GateStatus.PASSED: {"markdown": ":white_check_mark:", "junit": "green", "json": "passed", "html": "passed"},
    GateStatus.FAILED: {"markdown": ":x:", "junit": "not green", "json": "failed", "html": "failed"},
    GateStatus.INCOMPLETE: {"markdown": ":x:", "junit": "not green", "json": "incomplete", "html": "incomplete"},
    GateStatus.NOT_JUDGED: {"markdown": ":warning:", "junit": "not green", "json": "not judged", "html": "not-judged"},
    GateStatus.PARTLY_JUDGED: {
        "markdown": ":warning:",
        "junit": "not green",
        "json": "partly judged",
        "html": "partly-judged",
    },
    GateStatus.NOTHING_COMPARED: {
        "markdown": ":warning:",
        "junit": "not green",
        "json": "nothing compared",
        "html": "nothing-compared",
    },
}
FORMATS = {
    "terminal": _terminal,
    "markdown": _markdown,
    "junit": _junit,
    "json": _json,
    "openmetrics": _openmetrics,
    "html": _html,
}


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_format_shows_the_headline_and_a_mark_that_agree_with_the_exit_code(case: Case, fmt: str) -> None:
    report = case.build()
    assert (gate_headline(report), report.status, report.exit_code) == (case.headline, case.status, case.exit_code)
    headline, mark = FORMATS[fmt](report)
    assert headline == case.headline
    expected = MARKS[case.status].get(fmt, case.status.value if fmt == "openmetrics" else "")
    assert mark == expected


def test_junit_words_paired_blocks_as_blocks_and_stored_runs_as_runs() -> None:
    stored = _stored(QUIET, {"t::a": 1.0, "t::b": 1.0})
    assert "(5 runs) -&gt; current" in format_junit(stored)
    paired = replace(stored, mode="paired", subject="main (abc)")
    assert "(5 blocks) -&gt; current" in format_junit(paired) and " runs)" not in format_junit(paired)


def _notices_shown(fmt: str, report: GateReport) -> list[str]:
    """The notices' words as a reader of each format sees them."""
    import html

    if fmt == "terminal":
        return [line.removeprefix("notice: ") for line in format_terminal(report) if line.startswith("notice: ")]
    if fmt == "markdown":
        text = format_markdown(report)
        md = MarkdownIt("commonmark")
        return [
            md.renderInline(line.removeprefix("> **Notice:** ")).replace("&gt;", ">")
            for line in text.splitlines()
            if line.startswith("> **Notice:** ")
        ]
    if fmt == "junit":
        suite = ET.fromstring(format_junit(report)).find("testsuite")
        out = suite.find("system-out") if suite is not None else None
        assert out is not None and out.text is not None
        return [line.removeprefix("notice: ") for line in out.text.split("\n")[1:]]
    if fmt == "json":
        return list(gate_to_dict(report)["notices"])
    if fmt == "html":
        page = render_html(make_run({"t::a": [1.0]}), gate=report)
        return [
            html.unescape(part.split(">", 1)[1].split("</p>", 1)[0])
            for part in page.split('<p class="muted notice" ')[1:]
        ]
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["terminal", "markdown", "junit", "json", "html"])
def test_every_format_says_the_environment_changed_in_the_same_words(fmt: str) -> None:
    report = _counters(44_300_000, MOVED)
    (notice,) = [n for n in report.notices if n.kind is NoticeKind.ENVIRONMENT_CHANGED]
    assert [d[0] for d in notice.differences] == ["python", "distributions"]
    words = notice_texts(report)
    assert any(
        w.startswith("environment changed: counters not compared: python 3.11.7 -> 3.11.8, distributions changed")
        for w in words
    )
    assert _notices_shown(fmt, report) == words
    assert report.exit_code == 0 and not report.regressions


def test_openmetrics_names_the_environment_change_and_the_counters_not_compared() -> None:
    families = {f.name: f for f in text_string_to_metric_families(format_openmetrics(_counters(44_300_000, MOVED)))}
    fields = sorted(s.labels["field"] for s in families["perfgate_environment_changed"].samples)
    assert fields == ["distributions", "python"]
    assert families["perfgate_counters_not_compared"].samples[0].value == 1
    kinds = {s.labels["kind"]: s.value for s in families["perfgate_gate_notices"].samples}
    assert kinds == {"environment changed": 1.0}
    same = {f.name for f in text_string_to_metric_families(format_openmetrics(_counters(40_200_000)))}
    assert "perfgate_environment_changed" not in same and "perfgate_counters_not_compared" not in same


@pytest.mark.parametrize("fmt", ["terminal", "markdown", "junit", "json", "html"])
def test_every_format_shows_the_counter_change_next_to_the_timing(fmt: str) -> None:
    report = _counters(44_300_000)
    text = {
        "terminal": lambda: "\n".join(format_terminal(report, max_unchanged=5)),
        "markdown": lambda: format_markdown(report),
        "junit": lambda: format_junit(report),
        "json": lambda: json.dumps(gate_to_dict(report)),
        "html": lambda: render_html(make_run({"t::a": [1.0]}), gate=report),
    }[fmt]()
    if fmt == "json":
        rows = {c["metric"]: c for c in gate_to_dict(report)["comparisons"]}
        assert rows["instructions"]["counter"] is True and rows["instructions"]["p_value"] is None
        assert rows["instructions"]["baseline"] == 40_200_000 and rows["instructions"]["current"] == 44_300_000
        assert rows["time"]["counter"] is False
    else:
        assert "40.2M" in text and "44.3M" in text and "+10.2" in text, text
        assert "instructions" in text and "time" in text
