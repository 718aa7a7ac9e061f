"""The gate as OpenMetrics text (GitLab's ``metrics`` report, ``metrics.txt``).

Values are in base units (seconds, bytes, per second); the ``unit`` label says which.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..gate import Comparison, GateReport, GateStatus, GateVerdict, NoticeKind


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(c: Comparison) -> str:
    return f'test="{_label(c.nodeid)}",metric="{_label(c.metric)}",unit="{_label(c.kind.base_unit or c.unit)}"'


def _family(name: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    rows = [f"{name}{{{labels}}} {_number(v)}" if labels else f"{name} {_number(v)}" for labels, v in samples]
    return [f"# TYPE {name} gauge", f"# HELP {name} {help_text}", *rows] if rows else []


def format_openmetrics(report: GateReport) -> str:
    counts = report.counts()
    lines = _family(
        "perfgate_gate_failed",
        "1 when the gate failed (regression or critical budget breach)",
        [("", float(report.failed))],
    )
    lines += _family(
        "perfgate_gate_exit_code",
        "the gate's exit code: 0 passed, 1 failed, 2 incomplete, 3 nothing judged",
        [("", float(report.exit_code))],
    )
    lines += _family(
        "perfgate_gate_status",
        "1 for the gate's status (the headline's word), 0 for the others",
        [(f'status="{_label(s.value)}"', float(s is report.status)) for s in GateStatus],
    )
    lines += _family(
        "perfgate_gate_not_compared",
        "tests (or the run) selected but not compared",
        [("", float(len(report.incomplete)))],
    )
    lines += _family(
        "perfgate_gate_comparisons",
        "comparisons by verdict",
        [(f'verdict="{_label(v.value)}"', float(n)) for v, n in counts.items()],
    )
    lines += _family(
        "perfgate_gate_budget_breaches",
        "budget breaches of the current run",
        [
            ('level="critical"', float(len(report.critical_breaches))),
            ('level="target"', float(len(report.breaches) - len(report.critical_breaches))),
        ],
    )
    notices = [n.kind for n in report.notices]
    lines += _family(
        "perfgate_gate_notices",
        "notices of the report by kind (the words are in the other formats)",
        [(f'kind="{_label(kind.value)}"', float(notices.count(kind))) for kind in dict.fromkeys(notices)],
    )
    changed = [n for n in report.notices if n.kind is NoticeKind.ENVIRONMENT_CHANGED]
    lines += _family(
        "perfgate_environment_changed",
        "1 per environment fingerprint field that differs from the stored runs' (counters not compared with them)",
        [(f'field="{_label(name)}"', 1.0) for n in changed[:1] for name, _, _ in n.differences],
    )
    lines += _family(
        "perfgate_counters_not_compared",
        "counter comparisons not made because the environment changed",
        [("", float(sum(n.count for n in changed)))] if changed else [],
    )
    judged = [c for c in report.comparisons if c.verdict not in (GateVerdict.NEW, GateVerdict.MISSING)]
    lines += _family(
        "perfgate_current",
        "current value of the gated statistic",
        [(_labels(c), c.current) for c in judged if c.current is not None],
    )
    lines += _family(
        "perfgate_baseline",
        "baseline value of the gated statistic",
        [(_labels(c), c.baseline) for c in judged if c.baseline is not None],
    )
    lines += _family(
        "perfgate_change_ratio",
        "relative change current / baseline - 1",
        [(_labels(c), c.change) for c in judged if c.change is not None],
    )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
