"""The gate as JUnit XML: one testcase per gated (test, metric), per critical budget breach and per
line of :attr:`~pytest_perfgate.gate.GateReport.incomplete`.

Regressions and critical budget breaches are failures; what was selected but not compared (a test,
or the whole run) is an error, so an incomplete gate never looks green; tests the gate could not
judge (new, missing, unstable, insufficient data) are skipped with the reason; the rest pass. The
suite's ``system-out`` holds the headline, the same as every other format's.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..gate import GateReport, GateVerdict, names_test
from .gate_terminal import fmt_change, fmt_p, runs_word
from .gate_text import headline, notice_texts

_SKIPPED = (GateVerdict.NEW, GateVerdict.MISSING, GateVerdict.UNSTABLE, GateVerdict.INSUFFICIENT)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _clean(text: str) -> str:
    """XML 1.0 cannot hold most control characters, even escaped."""
    return _NOT_XML.sub("?", text)


def format_junit(report: GateReport, *, suite_name: str = "perfgate") -> str:
    suite = ET.Element("testsuite", name=suite_name)
    failures = skipped = tests = errors = 0
    for line in report.incomplete:
        tests += 1
        errors += 1
        nodeid, _, why = line.partition(": ") if names_test(line) else ("the run", "", line)
        case = ET.SubElement(
            suite, "testcase", classname="perfgate.not_compared", name=_clean(f"{nodeid} [not compared]"), time="0"
        )
        error = ET.SubElement(case, "error", message=_clean(f"not compared: {why}"), type="not compared")
        error.text = _clean(line)
    for c in report.comparisons:
        tests += 1
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_clean(f"perfgate.{c.metric}"),
            name=_clean(f"{c.nodeid} [{c.metric}]"),
            time="0",
        )
        over = runs_word(report, c.baseline_runs)
        detail = (
            f"{c.metric} ({c.statistic}): baseline {c.fmt(c.baseline)} ({over}) -> current "
            f"{c.fmt(c.current)}, change {fmt_change(c)}, adjusted p {fmt_p(c.p_adjusted)}: {c.reason}"
        )
        if c.verdict is GateVerdict.REGRESSION:
            failures += 1
            failure = ET.SubElement(
                case, "failure", message=_clean(f"regression: {fmt_change(c, interval=False)}"), type="regression"
            )
            failure.text = _clean(detail)
        elif c.verdict in _SKIPPED:
            skipped += 1
            ET.SubElement(case, "skipped", message=_clean(f"{c.verdict.value}: {c.reason}"))
        else:
            out = ET.SubElement(case, "system-out")
            out.text = _clean(f"{c.verdict.value}: {detail}")
    for breach in report.critical_breaches:
        tests += 1
        failures += 1
        case = ET.SubElement(
            suite,
            "testcase",
            classname="perfgate.budget",
            name=_clean(f"{breach.nodeid} [budget {breach.result.metric}]"),
            time="0",
        )
        failure = ET.SubElement(case, "failure", message=_clean(breach.result.message()), type="budget")
        failure.text = _clean(breach.result.message())
    # the headline, then every notice (an environment change that kept counters from being compared
    # among them), one per line
    ET.SubElement(suite, "system-out").text = _clean(
        "\n".join([headline(report), *(f"notice: {n}" for n in notice_texts(report))])
    )
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", "0")
    root = ET.Element(
        "testsuites", name=suite_name, tests=str(tests), failures=str(failures), errors=str(errors), time="0"
    )
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
