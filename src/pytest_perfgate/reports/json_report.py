"""The whole comparison as JSON, for other tools (``schema: perfgate-gate``, versioned)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from ..gate import Comparison, GateReport, NoticeKind
from ..model import verdict_to_dict
from ..profdiff import ProfileDiff
from .gate_text import headline, notice_texts

SCHEMA = "perfgate-gate"
SCHEMA_VERSION = 1


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


_FIELDS = tuple(f.name for f in fields(Comparison))


def comparison_to_dict(c: Comparison) -> dict[str, Any]:
    data = {name: _finite(getattr(c, name)) for name in _FIELDS}
    data["verdict"] = c.verdict.value
    data["kind"] = c.kind.value
    return data


def gate_to_dict(report: GateReport, *, cpu_diffs: Mapping[str, ProfileDiff] | None = None) -> dict[str, Any]:
    """The report as JSON data; with ``cpu_diffs`` (what changed in the profile of each test
    judged slower: ``perfgate ab``, ``perfgate compare``) a ``cpu_diffs`` key, node id -> diff."""
    settings = asdict(report.settings)
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "headline": headline(report),
        "failed": report.failed,
        "exit_code": report.exit_code,
        "status": report.status.value,
        "incomplete": list(report.incomplete),
        "judged": {
            "compared": len(report.compared),
            "not_judged": len(report.unjudged) if report.regressions_fail else 0,
        },
        "counts": {v.value: n for v, n in report.counts().items()},
        "baseline": {"runs": report.baseline_runs, "sources": list(report.baseline_sources)},
        "settings": settings,
        "notices": notice_texts(report),
        # the notices' kinds in the same order, and the environment fingerprint fields that kept
        # counters from being compared: {"field", "baseline", "current"}
        "notice_kinds": [n.kind.value for n in report.notices],
        "environment_changes": [
            {"field": name, "baseline": stored, "current": current}
            for n in report.notices
            if n.kind is NoticeKind.ENVIRONMENT_CHANGED
            for name, stored, current in n.differences
        ],
        "comparisons": [comparison_to_dict(c) for c in report.comparisons],
        "budget_breaches": [
            {"nodeid": b.nodeid, "level": "critical" if b.critical else "target", **verdict_to_dict(b.result)}
            for b in report.breaches
        ],
    }
    if cpu_diffs:
        data["cpu_diffs"] = {nodeid: diff.to_json() for nodeid, diff in cpu_diffs.items()}
    return data
