"""The gate's Markdown report, for a merge-request note (GitLab-flavoured Markdown).

Deterministic: the same report gives the same text. Every name that comes from the tests is
escaped (:func:`escape`) so that it can neither break a table nor inject markup or HTML.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..evidence import CPROFILE, Evidence
from ..gate import Comparison, GateReport, GateStatus, GateVerdict
from ..model import RunResult
from ..profdiff import ProfileDiff
from ..units import Kind, format_value
from .evidence_text import (
    MISSING_PROFILER,
    cpu_profile_source,
    hot_path_text,
    memory_table,
    own_what,
    profile_diff_rows,
    profile_diff_source,
    top_change_text,
)
from .gate_terminal import fmt_change, fmt_p, gate_rule
from .gate_text import counter_percent, headline, notice_texts

#: a green check only for a gate that passed with everything judged; a warning sign for one that
#: passed without judging everything (or anything: no baseline yet, exit 0) or judged nothing (exit 3)
_ICON = {
    GateStatus.FAILED: ":x:",
    GateStatus.INCOMPLETE: ":x:",
    GateStatus.NOT_JUDGED: ":warning:",
    GateStatus.NOTHING_COMPARED: ":warning:",
    GateStatus.PARTLY_JUDGED: ":warning:",
    GateStatus.PASSED: ":white_check_mark:",
}


#: characters that can start or end Markdown (GFM) syntax inside a table cell
_SYNTAX = set("\\`*_[]!#|~@")


def escape(text: str) -> str:
    """Plain text safe in a Markdown table cell, still readable as raw text: HTML characters as
    entities, Markdown syntax characters backslash-escaped, autolinks (``http://``, ``www.``)
    broken, line breaks as spaces. Ordinary punctuation (``. , : ( ) % -``) is left alone."""
    out = []
    for ch in " ".join(str(text).splitlines()):
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch in _SYNTAX:
            out.append("\\" + ch)
        elif not ch.isprintable():
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out).replace("://", ":\\/\\/").replace("www.", "www\\.")


def _table(header: Sequence[str], align: str, rows: Sequence[Sequence[str]]) -> list[str]:
    seps = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(seps) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _row(c: Comparison, *extra: str) -> list[str]:
    return [
        escape(c.nodeid),
        escape(c.metric),
        escape(c.fmt(c.baseline)),
        escape(c.fmt(c.current)),
        escape(fmt_change(c)),
        *extra,
    ]


def format_markdown(report: GateReport, *, max_rows: int = 200, current: RunResult | None = None) -> str:
    """The merge-request comment. With ``current`` (the run's results), tests that regressed or
    breached a critical budget also show the top offenders from their evidence."""
    s = report.settings
    lines = [f"### {_ICON[report.status]} {escape(headline(report))}", ""]
    lines.append(gate_rule(report))  # our own words: nothing to escape
    if report.incomplete:
        lines += ["", f"#### Not compared ({len(report.incomplete)}): the gate is incomplete", ""]
        lines += [f"- {escape(line)}" for line in report.incomplete[:max_rows]]
        lines += _more(len(report.incomplete), max_rows)
    for notice in notice_texts(report):
        lines += ["", f"> **Notice:** {escape(notice)}"]
    changed = report.by_verdict(GateVerdict.REGRESSION, GateVerdict.WARNING, GateVerdict.IMPROVEMENT)
    if changed:
        lines += ["", "#### Regressions, warnings and improvements", ""]
        lines += _table(
            ("Test", "Metric", "Baseline", "Current", f"Change ({s.confidence:.0%} CI)", "p (adjusted)", "Verdict"),
            "llrrrrl",
            [_row(c, fmt_p(c.p_adjusted), f"**{escape(c.verdict.value)}**") for c in changed[:max_rows]],
        )
        lines += _more(len(changed), max_rows)
    if report.breaches:
        lines += ["", "#### Budget breaches", ""]
        lines += _table(
            ("Test", "Budget", "Measured", "Target", "Critical", "Verdict"),
            "llrrrl",
            [
                [
                    escape(b.nodeid),
                    escape(b.result.metric),
                    escape(b.result.fmt(b.result.measured)),
                    escape(b.result.fmt(b.result.target)),
                    escape(b.result.fmt(b.result.critical)),
                    "**critical**" if b.critical else "warning",
                ]
                for b in report.breaches[:max_rows]
            ],
        )
        lines += _more(len(report.breaches), max_rows)
    unjudged = report.by_verdict(GateVerdict.UNSTABLE, GateVerdict.INSUFFICIENT)
    if unjudged:
        lines += ["", f"#### Not judged ({len(unjudged)}): too noisy or too little data", ""]
        lines += _table(
            ("Test", "Metric", "Baseline", "Current", "Change", "Verdict", "Why"),
            "llrrrll",
            [_row(c, escape(c.verdict.value), escape(c.reason)) for c in unjudged[:max_rows]],
        )
        lines += _more(len(unjudged), max_rows)
    for verdict, title in ((GateVerdict.NEW, "New"), (GateVerdict.MISSING, "Missing")):
        group = report.by_verdict(verdict)
        if group:
            lines += ["", f"#### {title} ({len(group)})", ""]
            lines += [f"- {escape(c.nodeid)} ({escape(c.metric)})" for c in group[:max_rows]]
            lines += _more(len(group), max_rows)
    lines += _counted(report, max_rows)
    if current is not None:
        lines += _evidence(report, current)
    unchanged = report.by_verdict(GateVerdict.UNCHANGED)
    if unchanged:
        lines += ["", f"<details><summary>{len(unchanged)} unchanged</summary>", ""]
        lines += _table(
            ("Test", "Metric", "Baseline", "Current", "Change"), "llrrr", [_row(c) for c in unchanged[:max_rows]]
        )
        lines += _more(len(unchanged), max_rows)
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


#: the counter columns of the "Counted" table, in this order
_COUNTERS = ("instructions", "est_cycles", "alloc_blocks", "alloc_bytes")


def _counted(report: GateReport, max_rows: int) -> list[str]:
    """Per test with counters, its time's change next to each counter's (``40.2M -> 44.3M
    (+10.20%)``, the verdict in bold when it changed); every row, so that a change of time without
    a change of instructions (I/O, waiting, memory) is seen at a glance."""
    rows: dict[str, dict[str, Comparison]] = {}
    for c in report.comparisons:
        if c.counter or c.metric == "time":
            rows.setdefault(c.nodeid, {})[c.metric] = c
    rows = {nodeid: row for nodeid, row in rows.items() if any(c.counter for c in row.values())}
    if not rows:
        return []
    columns = [m for m in ("time", *_COUNTERS) if any(m in row for row in rows.values())]

    def cell(c: Comparison | None) -> str:
        if c is None:
            return "-"
        text = escape(f"{c.fmt(c.baseline)} → {c.fmt(c.current)}")
        if c.change is not None:
            text += escape(f" ({fmt_change(c, interval=False)})")
        if c.verdict.changed:
            text += f" **{escape(c.verdict.value)}**"
        elif c.verdict is GateVerdict.INSUFFICIENT:
            text += escape(f", not judged: {c.reason}")
        if c.nondeterministic:
            text += escape(f", nondeterministic (spread {counter_percent(c.spread or 0.0)})")
        return text

    shown = sorted(rows.items(), key=lambda item: (min(c.verdict.rank for c in item[1].values()), item[0]))
    lines = ["", f"#### Counted next to timed ({len(rows)} test{'s' if len(rows) != 1 else ''})", ""]
    lines += _table(
        ("Test", *(escape(m) for m in columns)),
        "l" + "r" * len(columns),
        [[escape(nodeid), *(cell(row.get(m)) for m in columns)] for nodeid, row in shown[:max_rows]],
    )
    return lines + _more(len(rows), max_rows)


def _more(total: int, shown: int) -> list[str]:
    return ["", f"... and {total - shown} more (all rows are in the JSON report)"] if total > shown else []


def _profile_diff(evidence: Evidence) -> ProfileDiff | None:
    """A test's profile diff (``perfgate ab`` puts it in the current run's evidence), if readable."""
    data = evidence.get("cpu_diff")
    if not isinstance(data, dict):
        return None
    try:
        return ProfileDiff.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None


def _diff_lines(diff: ProfileDiff, limit: int) -> list[str]:
    """What changed between the base's and the current profile: the functions whose own time
    changed most, each side's hot path."""
    lines = [f"What changed ({escape(profile_diff_source(diff, ' → '))}):", ""]
    lines += _table(
        ("Function", own_what(diff.clock).capitalize() + " per call", "Change", "Own share", "Where"),
        "lrrrl",
        [[escape(cell) for cell in row] for row in profile_diff_rows(diff, limit, " → ")],
    )
    if diff.base_hot_path or diff.current_hot_path:
        lines += [
            "",
            f"Hot path, base: {escape(hot_path_text(diff.base_hot_path, ' → '))}",
            "",
            f"Hot path, current: {escape(hot_path_text(diff.current_hot_path, ' → '))}",
        ]
    if CPROFILE in (diff.base_profiler, diff.current_profiler):
        lines += ["", escape(MISSING_PROFILER)]
    return lines


def _evidence(report: GateReport, current: RunResult, *, limit: int = 5) -> list[str]:
    """Folded blocks with the top offenders of each failing test that carries evidence, and what
    changed in the profile of each test judged slower (``perfgate ab``)."""
    failing = dict.fromkeys([c.nodeid for c in report.regressions] + [b.nodeid for b in report.critical_breaches])
    warned = dict.fromkeys(c.nodeid for c in report.by_verdict(GateVerdict.WARNING) if c.nodeid not in failing)
    tests = current.by_nodeid()
    lines: list[str] = []
    for nodeid in [*failing, *warned]:
        if nodeid not in tests:
            continue
        diff = _profile_diff(tests[nodeid].evidence)
        memory, cpu = tests[nodeid].evidence.memory_profile, tests[nodeid].evidence.cpu_profile
        if nodeid in warned:  # a warning shows what changed, not the failure evidence
            memory = cpu = None
        if not memory and not cpu and not diff:
            continue
        lines += ["", f"<details><summary>Evidence: {escape(nodeid)}</summary>", ""]
        if diff:
            top = diff.top
            if top is not None:
                grew = own_what(diff.clock).capitalize()
                lines += [f"{grew} grew most in {escape(top_change_text(top, ' → ', diff.clock))}", ""]
            lines += [*_diff_lines(diff, limit), ""]
        if memory:
            lines += [f"Memory by function (one re-run, peak {format_value(memory.peak, Kind.SIZE)}):", ""]
            header, rows = memory_table(memory, limit=limit)
            lines += _table(
                tuple(h[:1].upper() + h[1:] for h in header[:-1]),
                "l" + "r" * (len(header) - 2),
                [[escape(cell) for cell in row[:-1]] for row in rows],
            )
        if cpu:
            total = cpu.total or 1e-12
            path = " → ".join(f"{escape(n.function)} {100 * n.cumulative / total:.0f}%" for n in cpu.hot_path())
            lines += ["", f"Hot path ({escape(cpu_profile_source(cpu))}): {path}", ""]
            lines += _table(
                ("Function", "Own time", "Own %", "Calls"),
                "lrrr",
                [
                    [
                        escape(t.function),
                        format_value(t.own, Kind.TIME),
                        f"{100 * t.own / total:.0f}%",
                        escape(str(t.calls)),
                    ]
                    for t in sorted(cpu.top, key=lambda t: -t.own)[:limit]
                ],
            )
        lines += ["", "</details>"]
    return lines
