"""The GitLab Code Quality report (``artifacts:reports:codequality``): perfgate's findings at the
file and line they are about, shown in merge requests on every GitLab tier.

The report is a JSON array of CodeClimate issues: ``description``, ``check_name``,
``fingerprint``, ``severity`` (info, minor, major, critical, blocker), ``location.path``
(relative to the repository) and ``location.lines.begin``. The findings:

- a budget breach (``perfgate-budget``) at the test's line: critical past its critical level,
  minor past its target;
- a gate regression or warning (``perfgate-regression``) at the test's line, naming the metric,
  the change and, when the test's evidence has one, the function whose time changed most (or
  the end of the CPU hot path) with its file:line;
- a MongoDB collection scan (``perfgate-mongo-collscan``: major when ``explain`` showed it, minor
  for the static estimate) and a repeated query shape (``perfgate-mongo-n-plus-1``: major) at the
  line of the test's code that issued the query.

A fingerprint hashes the check, the path, the test (or function) and the metric (or query shape),
never a line number or a figure: the same finding keeps its fingerprint from run to run, so
GitLab's merge-request widget tells new findings from fixed ones.

Pure: typed results in, JSON-ready dicts out (:func:`format_codequality` gives the text).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..budgets import BudgetResult, Verdict

if TYPE_CHECKING:
    from ..evidence import Evidence
    from ..gate import Comparison, GateReport
    from ..model import RunResult, TestResult

#: GitLab's severities, least severe first
SEVERITIES = ("info", "minor", "major", "critical", "blocker")

BUDGET = "perfgate-budget"
REGRESSION = "perfgate-regression"
COLLSCAN = "perfgate-mongo-collscan"
N_PLUS_1 = "perfgate-mongo-n-plus-1"

#: "path:line in function", as the MongoDB capture records where user code issued a query
_CALL_SITE = re.compile(r"^(?P<path>.+):(?P<line>\d+)(?: in (?P<function>.*))?$")


@dataclass(frozen=True)
class Finding:
    """One Code Quality issue. ``subject`` is what it is about besides its check and path (the
    test and metric, the query shape): with them it makes the fingerprint."""

    check_name: str
    severity: str
    description: str
    path: str
    line: int
    subject: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        key = "\x1f".join((self.check_name, self.path, *self.subject))
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "issue",
            "check_name": self.check_name,
            "description": self.description,
            "categories": ["Performance"],
            "severity": self.severity,
            "fingerprint": self.fingerprint,
            "location": {"path": self.path, "lines": {"begin": self.line}},
        }


# --------------------------------------------------------------------------- where


def where_defined(test: TestResult) -> tuple[str, int]:
    """The test's file and line as recorded; for results without it (an older perfgate, an
    imported file), the file of its node id, line 1."""
    if test.location is not None:
        return test.location
    return _nodeid_path(test.nodeid), 1


def _nodeid_path(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return path.split(":", 1)[1] if path.startswith("load:") else path


def _root_prefix(test: TestResult) -> str:
    """The rootdir's path in the repository: what the test's recorded (repository-relative) path
    has in front of its node id's (rootdir-relative) path; query call sites are rootdir-relative."""
    if test.location is None:
        return ""
    recorded, own = test.location[0], _nodeid_path(test.nodeid)
    if recorded != own and recorded.endswith("/" + own):
        return recorded[: -len(own) - 1]
    return ""


def _call_site(text: object, test: TestResult) -> tuple[str, int, str] | None:
    """``(path, line, function)`` of a recorded "path:line in function" inside the repository;
    None for a site outside it (an absolute path, ``..``) or not recorded."""
    match = _CALL_SITE.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    path = match["path"].replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:/", path):
        return None
    path = posixpath.normpath(posixpath.join(_root_prefix(test), path))
    if path.startswith("../") or path == "..":
        return None
    return path, max(1, int(match["line"])), match["function"] or ""


# --------------------------------------------------------------------------- findings


def budget_finding(test: TestResult, result: BudgetResult) -> Finding | None:
    """A budget past its target (minor) or critical level (critical), at the test's line."""
    if result.verdict not in (Verdict.FAIL, Verdict.WARN):
        return None
    path, line = where_defined(test)
    severity = "critical" if result.verdict is Verdict.FAIL else "minor"
    description = f"{test.nodeid}: perf budget {result.message()}"
    hot = _hot_function(test.evidence)
    if hot:
        description += f"; {hot}"
    return Finding(BUDGET, severity, description, path, line, (test.nodeid, result.metric))


def regression_finding(test: TestResult, comparison: Comparison, *, fails: bool = True) -> Finding | None:
    """A regression (critical when it fails the gate, major when another gate judges them) or a
    warning (minor), at the test's line, naming the function that changed most when known."""
    from ..gate import GateVerdict
    from .gate_terminal import fmt_change

    if comparison.verdict is GateVerdict.REGRESSION:
        severity = "critical" if fails else "major"
    elif comparison.verdict is GateVerdict.WARNING:
        severity = "minor"
    else:
        return None
    path, line = where_defined(test)
    c = comparison
    description = (
        f"{c.nodeid}: {c.metric} ({c.statistic}) {c.verdict.value}: {c.fmt(c.baseline)} -> {c.fmt(c.current)} "
        f"({fmt_change(c, interval=False)})"
    )
    why = _changed_function(test.evidence) or _hot_function(test.evidence)
    if why:
        description += f"; {why}"
    return Finding(REGRESSION, severity, description, path, line, (c.nodeid, c.metric))


def mongo_findings(test: TestResult) -> list[Finding]:
    """Collection scans (explain's, then the static estimate's) and repeated query shapes of a
    test's ``evidence["mongo"]``, at the line that issued the query (the test's own line when the
    call site is unknown or outside the repository)."""
    mongo = test.evidence.get("mongo")
    if not isinstance(mongo, Mapping):
        return []
    out: list[Finding] = []
    for entry in _records(mongo.get("explain")):
        if _count(entry.get("collscans")) > 0:
            query = str(entry.get("query") or "?")
            docs = _count(entry.get("docs_examined"))
            returned = _count(entry.get("n_returned"))
            what = f"COLLSCAN (explain): {query} examined {docs} documents for {returned} returned"
            out.append(_query_finding(COLLSCAN, "major", what, test, entry.get("location"), query))
    for advice in _records(mongo.get("index_advice")):
        if advice.get("status") == "unsupported" and advice.get("basis") == "static":
            query = str(advice.get("query") or "?")
            what = f"COLLSCAN expected (static estimate: no index serves it): {query}"
            suggestion = advice.get("suggestion")
            if isinstance(suggestion, list) and suggestion:
                what += "; suggested index " + ", ".join(_key_part(k) for k in suggestion)
            out.append(_query_finding(COLLSCAN, "minor", what, test, advice.get("location"), query))
    for repeat in _records(mongo.get("repeats")):
        shape = str(repeat.get("shape") or "?")
        sites = _records(repeat.get("locations"))
        where = ", ".join(f"{s.get('location')} (x{_count(s.get('count'))})" for s in sites[:3])
        what = f"N+1: the same query shape issued {_count(repeat.get('count'))} times: {shape}"
        if where:
            what += f"; issued at {where}"
        out.append(_query_finding(N_PLUS_1, "major", what, test, sites[0].get("location") if sites else None, shape))
    return out


def _query_finding(check: str, severity: str, what: str, test: TestResult, site: object, query: str) -> Finding:
    found = _call_site(site, test)
    if found is None:
        path, line = where_defined(test)
        function = ""
    else:
        path, line, function = found
    return Finding(check, severity, f"{test.nodeid}: {what}", path, line, (test.nodeid, function, query))


def _key_part(part: object) -> str:
    if isinstance(part, list) and len(part) == 2:
        return f"{part[0]}: {part[1]}"
    return str(part)


def _records(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --------------------------------------------------------------------------- the "why" from evidence


def _hot_function(evidence: Evidence) -> str:
    """The end of the CPU hot path: ``"hot path ends in f (file:line)"``, or ``""``."""
    cpu = evidence.cpu_profile
    path = cpu.hot_path() if cpu is not None else []
    if not path:
        return ""
    last = path[-1]
    return f"hot path ends in {last.function} ({last.location})"


def _changed_function(evidence: Evidence) -> str:
    """The function whose own time per call grew most, from the differential profile of the
    base and the current side (``evidence["cpu_diff"]``: ``changes``, each with ``function``,
    ``location``, ``base_per_call`` and ``current_per_call`` in seconds, or instructions when its
    ``clock`` is "instructions"), or ``""``."""
    diff = evidence.get("cpu_diff")
    changes = _records(diff.get("changes")) if isinstance(diff, Mapping) else []

    def grown(change: Mapping[str, Any]) -> float:
        return _seconds(change.get("current_per_call")) - _seconds(change.get("base_per_call"))

    top = max(changes, key=grown, default=None)
    if top is None or not grown(top) > 0 or not top.get("function"):
        return ""
    from .evidence_text import amount, own_what

    clock = str(diff.get("clock") or "wall") if isinstance(diff, Mapping) else "wall"
    where = f" ({top['location']})" if top.get("location") else ""
    return f"{own_what(clock)} grew most in {top['function']}{where}: +{amount(grown(top), clock)} per call"


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


# --------------------------------------------------------------------------- the report


def run_findings(run: RunResult) -> list[Finding]:
    """A run's findings without a gate: its budget breaches and MongoDB findings (``perfgate
    load``, ``perfgate report``)."""
    out: list[Finding] = []
    for test in run.tests:
        out.extend(f for v in test.verdicts if (f := budget_finding(test, v)) is not None)
        out.extend(mongo_findings(test))
    return out


def gate_findings(report: GateReport, current: RunResult | None) -> list[Finding]:
    """A gate's findings: its budget breaches and regressions (and warnings), with the current
    run's MongoDB findings. Tests missing from ``current`` are placed by their node id."""
    from ..model import TestResult

    tests = current.by_nodeid() if current is not None else {}

    def test(nodeid: str) -> TestResult:
        return tests.get(nodeid) or TestResult(nodeid)

    out: list[Finding] = []
    out.extend(f for b in report.breaches if (f := budget_finding(test(b.nodeid), b.result)) is not None)
    fails = report.regressions_fail
    out.extend(f for c in report.comparisons if (f := regression_finding(test(c.nodeid), c, fails=fails)) is not None)
    for t in current.tests if current is not None else ():
        out.extend(mongo_findings(t))
    return out


def unique(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per fingerprint (GitLab keys them by it), in the order first found; of two
    with one fingerprint, the more severe."""
    kept: dict[str, tuple[int, Finding]] = {}
    for i, finding in enumerate(findings):
        known = kept.get(finding.fingerprint)
        if known is None:
            kept[finding.fingerprint] = (i, finding)
        elif SEVERITIES.index(finding.severity) > SEVERITIES.index(known[1].severity):
            kept[finding.fingerprint] = (known[0], finding)
    return [finding for _, finding in sorted(kept.values(), key=lambda k: k[0])]


def format_codequality(findings: Iterable[Finding]) -> str:
    """The report file's text: a JSON array, ``[]`` when nothing was found."""
    return json.dumps([f.to_json() for f in unique(findings)], indent=1, ensure_ascii=False) + "\n"
