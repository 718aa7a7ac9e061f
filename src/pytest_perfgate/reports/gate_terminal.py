"""The gate's terminal report: the one-line verdict, changed metrics first, compact."""

from __future__ import annotations

import math

from ..gate import Comparison, GateMode, GateReport, GateVerdict, SessionGate
from .gate_text import counter_percent, headline, notice_texts
from .terminal import table


def fmt_change(c: Comparison, *, interval: bool = True) -> str:
    """``+12.3% [+4.1%, +20.9%]``; a counter's small changes with two decimals (``+0.05%``), its
    interval only when its values vary (an exact count has none)."""
    if c.change is None:
        return "-"
    digits = ".2%" if c.counter and abs(c.change) < 0.1 else ".1%"
    text = f"{c.change:+{digits}}" if math.isfinite(c.change) else "+inf%"
    if interval and c.ci is not None and not (c.counter and c.ci[0] == c.ci[1]):
        text += f" [{c.ci[0]:+{digits}}, {c.ci[1]:+{digits}}]"
    return text


def counter_line(c: Comparison) -> str:
    """A counter comparison in one phrase: ``instructions 40.2M -> 44.3M (+10.20%)``."""
    return f"{c.metric} {c.fmt(c.baseline)} -> {c.fmt(c.current)} ({fmt_change(c, interval=False)})"


def fmt_p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}" if value < 0.01 else f"{value:.2f}"


def runs_word(report: GateReport, n: int) -> str:
    """``n`` baseline runs, or in the paired mode ``n`` paired blocks (what ``baseline_runs`` counts there)."""
    word = "block" if report.mode is GateMode.PAIRED else "run"
    return f"{n} {word}{'s' if n != 1 else ''}"


def correction_label(report: GateReport) -> str:
    return {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}[report.settings.correction]


def gate_rule(report: GateReport) -> str:
    """One sentence saying how this report judged a change."""
    s = report.settings
    judged = sum(1 for c in report.comparisons if c.p_value is not None)
    thresholds = (
        f"a regression is worse by more than {s.max_regression:.0%} (warning {s.warn_regression:.0%}, "
        f"nothing below {s.min_effect:.0%}) with p < {s.alpha:g} after {correction_label(report)} correction "
        f"over {judged} comparison{'s' if judged != 1 else ''}"
    )
    counters = counter_rule(report)
    only_counters = bool(report.comparisons) and all(c.counter for c in report.comparisons)
    if report.mode is GateMode.PAIRED and only_counters:
        return (
            "Paired A/B on counts: the base and the current code each ran their tests once, counted "
            f"(one counted call per test and side; the base side is the one stored run).{counters}"
        )
    if only_counters:
        return f"Gate on counts.{counters}"
    if report.mode is GateMode.PAIRED:
        return (
            "Paired A/B: the base and the current code ran in alternating rounds (ABBA blocks) in two processes "
            "on one CPU; each change is the median of the per-block time ratios, tested with a sign test; "
            f"{thresholds}.{counters}"
        )
    return f"Gate on the {s.metric}: {thresholds}; intervals are {s.confidence:.0%}.{counters}"


def counter_rule(report: GateReport) -> str:
    """The counter rule's sentence (with a leading space), or "" for a report without counters."""
    if not any(c.counter for c in report.comparisons):
        return ""
    c = report.settings.counters
    return (
        " Counters (instructions, allocations) are exact: a regression is a count up by more than "
        f"{counter_percent(c.max_regression)} over the stored runs' median "
        f"(warning {counter_percent(c.warn_regression)}, "
        f"improvement down by {counter_percent(c.min_improvement)}), no p-value; a counter that varies by more "
        f"than {counter_percent(c.max_spread)} is judged against at least {c.SPREAD_FACTOR:g}x its spread."
    )


def format_terminal(report: GateReport, *, max_unchanged: int = 0, max_listed: int = 10) -> list[str]:
    """Lines for a terminal or CI log: verdict, then the rows that changed or need a look."""
    lines = [
        headline(report),
        gate_rule(report),
    ]
    lines += [f"not compared: {line}" for line in report.incomplete]
    listed = (GateVerdict.UNCHANGED, GateVerdict.NEW, GateVerdict.MISSING)
    shown = [c for c in report.comparisons if c.verdict not in listed]
    folded = []
    for verdict in (GateVerdict.NEW, GateVerdict.MISSING):
        group = report.by_verdict(verdict)
        shown += group[:max_listed]
        if len(group) > max_listed:
            folded.append(f"{len(group) - max_listed} more {verdict.value} metrics not shown")
    unchanged = report.by_verdict(GateVerdict.UNCHANGED)
    shown += unchanged[:max_unchanged]
    if shown:
        rows = [
            (
                c.nodeid,
                c.metric,
                c.fmt(c.baseline),
                c.fmt(c.current),
                fmt_change(c),
                fmt_p(c.p_adjusted),
                c.verdict.value.upper() if c.verdict is GateVerdict.REGRESSION else c.verdict.value,
                c.reason,
            )
            for c in shown
        ]
        lines += table(rows, ("test", "metric", "baseline", "current", "change [CI]", "p adj", "verdict", "why"))
    lines += folded
    hidden = len(unchanged) - min(len(unchanged), max_unchanged)
    if hidden:
        lines.append(f"{hidden} unchanged metric{'s' if hidden != 1 else ''} not shown")
    for breach in report.breaches:
        lines.append(f"budget {'FAIL' if breach.critical else 'warn'}: {breach.nodeid}: {breach.result.message()}")
    lines += [f"notice: {n}" for n in notice_texts(report)]
    return lines


def format_session_gate(gate: SessionGate) -> list[str]:
    """The gate's lines at the end of a pytest session (``--perfgate-compare``), then what changed
    in the profile of each test it judged slower."""
    if gate.report is None:
        return [f"error: {gate.error}"]
    lines = format_terminal(gate.report)
    if gate.diffs:
        from .evidence_text import format_profile_diffs

        lines += ["", *format_profile_diffs(gate.diffs).splitlines()]
    return lines
