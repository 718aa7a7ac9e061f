"""A self-contained HTML report: one file, no network, no scripts needed to read it.

Per test: the budget verdicts and gate comparisons, the distribution of the current run's samples
against the baseline's (with the budget levels drawn on it), the trend of the statistic over the
stored runs, and the evidence: memory by function (an icicle coloured as a heatmap), the call
stack at the memory peak, what stayed allocated, and the CPU call tree.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from .. import stats
from ..budgets import Verdict, worst_first
from ..evidence import CallNode, Evidence, MemoryNode
from ..metrics import TIME_SERIES
from ..metrics import get as get_metric
from ..model import RunResult, TestResult
from ..units import Kind, format_value

if TYPE_CHECKING:
    from ..gate import Comparison, GateReport

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:16px 24px}header h1{margin:0 0 4px;font-size:20px}
header .meta{opacity:.8;font-size:12px}main{padding:16px 24px;max-width:1200px}
.verdict{font-weight:600;padding:2px 8px;border-radius:10px;font-size:12px;white-space:nowrap}
.v-fail,.v-regression{background:#fde2e1;color:#a4161a}.v-warn,.v-warning,.v-unstable{background:#fff1c2;color:#7a5200}
.v-pass,.v-unchanged,.v-improvement{background:#dff3e4;color:#1b6b35}.v-not-checked,.v-new,.v-missing,
.v-insufficient-data{background:#e7eaf0;color:#3c4656}
section.test{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:16px 0;padding:12px 16px}
section.test h2{font-size:15px;margin:0 0 8px;word-break:break-all}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}th,td{border-bottom:1px solid #e6e9ee;
padding:3px 10px 3px 0;text-align:left;vertical-align:top}th{color:#5a6578;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}h3{font-size:13px;margin:12px 0 4px;color:#3c4656}
.icicle{font-size:11px;border:1px solid #dde1e7}.icicle .row{display:flex}.icicle .cell{overflow:hidden;
white-space:nowrap;text-overflow:ellipsis;border-right:1px solid #fff;padding:2px 4px;box-sizing:border-box}
.tree details{margin-left:14px}.tree summary{cursor:pointer;white-space:nowrap}
.bar{display:inline-block;height:8px;background:#d9485f;margin-right:6px;vertical-align:middle}
.muted{color:#6b7688}ul.toc{columns:2;font-size:13px}svg text{font:11px system-ui,sans-serif}
"""

_LEVEL_COLOURS = {"target": "#d08c00", "critical": "#c0262d"}


def _css_class(verdict: str) -> str:
    return "v-" + verdict.replace(" ", "-")


def _badge(verdict: str) -> str:
    return f'<span class="verdict {escape(_css_class(verdict))}">{escape(verdict)}</span>'


def _fmt(value: float | None, kind: Kind, unit: str = "") -> str:
    return "-" if value is None else escape(format_value(value, kind, unit))


# --------------------------------------------------------------------------- SVG plots


_FLOAT_MAX = 1.7976931348623157e308


def _axis(low: float, high: float, *, nonnegative: bool) -> tuple[float, float]:
    """A plot axis around [low, high] with an 8% margin, valid for any finite figures: 0,
    negative, 5e-324 or 1.7e308 (its ends and width never pass the float range)."""
    if not high > low:
        spread = abs(low) * 0.1 or 1e-12
        low, high = low - spread, high + spread
    pad = high * 0.08 - low * 0.08  # (high - low) * 0.08 without the overflow of high - low
    low, high = max(-_FLOAT_MAX, low - pad), min(_FLOAT_MAX, high + pad)
    if nonnegative:
        low = max(0.0, low)
    return low, high


def _fraction(value: float, low: float, high: float) -> float:
    """Where ``value`` falls between ``low`` and ``high``, 0..1 (halved: no overflow near 1e308)."""
    span = high / 2 - low / 2
    if not span > 0:
        return 0.0
    return min(1.0, max(0.0, (value / 2 - low / 2) / span))


def distribution_svg(
    current: Sequence[float],
    baseline: Sequence[float],
    levels: Sequence[tuple[str, float]],
    kind: Kind,
    *,
    width: int = 720,
) -> str:
    """Histograms of the baseline (top) and current (bottom) samples on one axis, with medians
    and the budget levels as vertical lines (levels off the axis get an arrow at the edge)."""
    values = [v for v in (*current, *baseline) if math.isfinite(v)]
    if not values:
        return ""
    low, high = _axis(stats.percentile(values, 0.5), stats.percentile(values, 99.5), nonnegative=min(values) >= 0)
    left, right, row_h = 70, width - 20, 46
    rows = [("baseline", baseline, "#6c8ebf"), ("current", current, "#d9485f")]
    rows = [r for r in rows if r[1]]
    height = 28 + row_h * len(rows) + 22

    def x(value: float) -> float:
        return left + (right - left) * _fraction(value, low, high)

    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="distribution of samples">']
    bins = 40
    for i, (label, data, colour) in enumerate(rows):
        top = 20 + i * row_h
        counts = [0] * bins
        for v in data:
            if math.isfinite(v):
                counts[min(bins - 1, int(_fraction(v, low, high) * bins))] += 1
        peak = max(counts) or 1
        bar_w = (right - left) / bins
        for b, count in enumerate(counts):
            if count:
                h = (row_h - 12) * count / peak
                parts.append(
                    f'<rect x="{left + b * bar_w:.1f}" y="{top + row_h - 8 - h:.1f}" width="{bar_w - 1:.1f}" '
                    f'height="{h:.1f}" fill="{colour}" opacity="0.75"/>'
                )
        median = stats.percentile([v for v in data if math.isfinite(v)], 50)
        parts.append(
            f'<line x1="{x(median):.1f}" x2="{x(median):.1f}" y1="{top + 2}" y2="{top + row_h - 8}" '
            f'stroke="#1d2430" stroke-width="2"/>'
        )
        parts.append(f'<text x="4" y="{top + row_h / 2:.0f}">{escape(label)}</text>')
        parts.append(
            f'<text x="{x(median) + 4:.1f}" y="{top + 10}">median {escape(format_value(median, kind))} '
            f"(n={len(data)})</text>"
        )
    bottom = 20 + row_h * len(rows)
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#8a94a6"/>')
    for tick in range(5):
        value = low * (1 - tick / 4) + high * (tick / 4)  # no high - low: it can pass the float range
        anchor = "start" if tick == 0 else "end" if tick == 4 else "middle"
        label = escape(format_value(value, kind))
        parts.append(f'<text x="{x(value):.1f}" y="{bottom + 14}" text-anchor="{anchor}">{label}</text>')
    for name, level in levels:
        colour = _LEVEL_COLOURS.get(name.split()[0], "#555")
        label = f"{escape(name)} {escape(format_value(level, kind))}"
        if level > high:
            parts.append(f'<text x="{right - 150}" y="14" fill="{colour}">{label} &#8594;</text>')
            continue
        parts.append(
            f'<line x1="{x(level):.1f}" x2="{x(level):.1f}" y1="14" y2="{bottom}" stroke="{colour}" '
            f'stroke-dasharray="5 3" stroke-width="2"/>'
        )
        parts.append(f'<text x="{x(level) + 3:.1f}" y="12" fill="{colour}">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def trend_svg(points: Sequence[tuple[str, float]], kind: Kind, *, width: int = 720, height: int = 120) -> str:
    """The statistic per stored run (oldest first), the last point being the current run."""
    if len(points) < 2:
        return ""
    values = [v for _, v in points]
    low, high = min(values), max(values)
    if not high > low:
        spread = abs(low) * 0.05 or 1e-12
        low, high = max(-_FLOAT_MAX, low - spread), min(_FLOAT_MAX, high + spread)
    left, right, top, bottom = 70, width - 20, 12, height - 22

    def xy(i: int, v: float) -> tuple[float, float]:
        return (
            left + (right - left) * i / (len(points) - 1),
            bottom - (bottom - top) * _fraction(v, low, high),
        )

    coords = [xy(i, v) for i, (_, v) in enumerate(points)]
    path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="trend over stored runs">',
        f'<polyline points="{path}" fill="none" stroke="#6c8ebf" stroke-width="2"/>',
        f'<text x="4" y="{top + 8}">{escape(format_value(high, kind))}</text>',
        f'<text x="4" y="{bottom}">{escape(format_value(low, kind))}</text>',
    ]
    for i, ((label, value), (cx, cy)) in enumerate(zip(points, coords, strict=True)):
        last = i == len(points) - 1
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{5 if last else 3}" fill="{"#d9485f" if last else "#6c8ebf"}">'
            f"<title>{escape(label)}: {escape(format_value(value, kind))}</title></circle>"
        )
    parts.append(f'<text x="{right - 40}" y="{height - 4}">current</text></svg>')
    return "".join(parts)


# --------------------------------------------------------------------------- evidence


def icicle_html(tree: MemoryNode, *, max_depth: int = 12) -> str:
    """Memory by call path: each row a depth; a callee's width shares its caller's width in
    proportion to the callees' inclusive peaks; the colour is the inclusive peak relative to the
    whole call's peak (a heatmap)."""
    total = float(tree.peak or 0) or 1.0
    rows: list[list[tuple[float, MemoryNode | None]]] = []

    def place(node: MemoryNode, share: float, depth: int) -> None:
        if depth >= max_depth:
            return
        while len(rows) <= depth:
            rows.append([])
        weights = [max(float(c.peak or 0), 0.0) for c in node.children]
        weight_sum = sum(weights) or 1.0
        used = 0.0
        for child, weight in zip(node.children, weights, strict=True):
            part = share * weight / weight_sum
            rows[depth].append((part, child))
            used += part
            place(child, part, depth + 1)
        if share - used > 1e-9:  # space with no callee below: keep later rows aligned
            rows[depth].append((share - used, None))
            _pad(rows, depth + 1, share - used, max_depth)

    place(tree, 100.0, 0)
    out = ['<div class="icicle">']
    for row in rows:
        if all(node is None for _, node in row):
            continue
        out.append('<div class="row">')
        for share, node in row:
            if node is None:
                out.append(f'<div class="cell" style="width:{share:.3f}%"></div>')
                continue
            peak = float(node.peak or 0)
            heat = min(1.0, peak / total)
            colour = f"hsl({int(50 - 50 * heat)},85%,{int(88 - 33 * heat)}%)"
            label = f"{node.function} {format_value(peak, Kind.SIZE)}"
            title = (
                f"{node.function} ({node.location}): inclusive peak {format_value(peak, Kind.SIZE)}, self (net) "
                f"{format_value(float(node.self_net or 0), Kind.SIZE)}, {node.calls} calls"
            )
            out.append(
                f'<div class="cell" style="width:{share:.3f}%;background:{colour}" title="{escape(title)}">'
                f"{escape(label)}</div>"
            )
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def _pad(rows: list[list[tuple[float, MemoryNode | None]]], depth: int, share: float, max_depth: int) -> None:
    for d in range(depth, max_depth):
        while len(rows) <= d:
            rows.append([])
        rows[d].append((share, None))


def cpu_tree_html(nodes: Sequence[CallNode], total: float, *, open_depth: int = 3, depth: int = 0) -> str:
    out = []
    for node in nodes:
        share = float(node.cumulative or 0) / (total or 1e-12)
        summary = (
            f'<span class="bar" style="width:{max(1, int(200 * share))}px"></span>'
            f"{escape(str(node.function))} <b>{100 * share:.1f}%</b> "
            f'<span class="muted">{escape(format_value(float(node.cumulative or 0), Kind.TIME))} cumulative, '
            f"{escape(str(node.calls))} calls, {escape(str(node.location))}</span>"
        )
        inner = cpu_tree_html(node.children, total, open_depth=open_depth, depth=depth + 1) if node.children else ""
        out.append(f"<details{' open' if depth < open_depth else ''}><summary>{summary}</summary>{inner}</details>")
    return "".join(out)


def _evidence_html(evidence: Evidence) -> str:
    parts = []
    memory = evidence.memory_profile
    if memory is not None:
        peak = format_value(float(memory.peak or 0), Kind.SIZE)
        parts.append(f"<h3>Memory by function (peak {escape(peak)})</h3>")
        if memory.tree is not None:
            parts.append(icicle_html(memory.tree))
        rows = "".join(
            f"<tr><td>{escape(str(f.function))}</td><td class=num>{_fmt(f.inclusive_peak, Kind.SIZE)}</td>"
            f"<td class=num>{_fmt(f.self_net, Kind.SIZE)}</td><td class=num>{escape(str(f.calls))}</td>"
            f"<td class=muted>{escape(str(f.location))}</td></tr>"
            for f in memory.functions[:15]
        )
        parts.append(
            "<table><tr><th>function</th><th>inclusive peak</th><th>self (net)</th><th>calls</th><th>where</th></tr>"
            f"{rows}</table>"
        )
        if memory.peak_stack:
            stack = "".join(f"<li>{escape(str(frame))}</li>" for frame in memory.peak_stack)
            parts.append(f"<h3>Call stack at the peak</h3><ol>{stack}</ol>")
        if memory.leaks:
            leaks = "".join(
                f"<li>{_fmt(site.size, Kind.SIZE)} in {escape(str(site.count))} blocks at "
                f"<code>{escape(str(site.stack[-1]) if site.stack else '?')}</code></li>"
                for site in memory.leaks
            )
            retained = _fmt(float(memory.retained or 0), Kind.SIZE)
            parts.append(f"<h3>Still allocated at the end ({retained})</h3><ul>{leaks}</ul>")
    cpu = evidence.cpu_profile
    if cpu is not None:
        total = float(cpu.total or 0)
        parts.append(
            f"<h3>Where the time went (cProfile, {escape(str(cpu.calls))} re-run calls, "
            f"{escape(format_value(total, Kind.TIME))})</h3>"
        )
        parts.append(f'<div class="tree">{cpu_tree_html(cpu.tree, total)}</div>')
    return "".join(parts)


# --------------------------------------------------------------------------- the page


def _levels(test: TestResult) -> list[tuple[str, float]]:
    levels = []
    for budget in test.spec.budgets:
        definition = get_metric(budget.metric)
        if definition is None or definition.series != TIME_SERIES:
            continue
        for name, value in (("target", budget.target), ("critical", budget.critical)):
            if value is not None:
                levels.append((f"{name} {budget.metric}", value))
    return levels


def _anchor(nodeid: str) -> str:
    return "t" + hashlib.sha1(nodeid.encode()).hexdigest()[:12]


def _test_rank(test: TestResult, comparisons: Sequence[Comparison]) -> tuple[int, str]:
    gate_rank = min((c.verdict.rank for c in comparisons), default=99)
    return (min(test.verdict.rank * 10, gate_rank * 10 + 5), test.nodeid)


def render_html(
    current: RunResult,
    *,
    baseline: Sequence[RunResult] = (),
    gate: GateReport | None = None,
    title: str = "perfgate report",
) -> str:
    """The whole page as a string."""
    comparisons: dict[str, list[Comparison]] = {}
    for comparison in gate.comparisons if gate else ():
        comparisons.setdefault(comparison.nodeid, []).append(comparison)
    tests = sorted(current.tests, key=lambda t: _test_rank(t, comparisons.get(t.nodeid, [])))
    meta = current.metadata
    git = meta.get("git") or {}
    head_meta = " · ".join(
        escape(str(part))
        for part in (
            meta.get("created"),
            f"{git.get('branch')} @ {str(git.get('commit'))[:10]}" if git else None,
            f"Python {meta.get('python')}" if meta.get("python") else None,
            meta.get("cpu"),
            f"baseline: {len(baseline)} stored run{'s' if len(baseline) != 1 else ''}" if baseline else "no baseline",
        )
        if part
    )
    verdicts = [v for t in tests for v in t.verdicts]
    budget_summary = ", ".join(
        f"{sum(1 for v in verdicts if v.verdict is k)} {k.value}"
        for k in Verdict
        if any(v.verdict is k for v in verdicts)
    )
    out = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><header><h1>{escape(title)}</h1>",
        f'<div class="meta">{head_meta}</div></header><main>',
    ]
    if gate is not None:
        from .gate_text import headline, notice_text

        status = gate.status
        out.append(
            f'<p id="gate-headline" class="{escape(status.value.replace(" ", "-"))}" data-exit-code="{gate.exit_code}">'
            f"<b>{escape(headline(gate))}</b></p>"
        )
        if gate.incomplete:
            items = "".join(f"<li>{escape(line)}</li>" for line in gate.incomplete)
            out.append(
                f'<h2>Not compared ({len(gate.incomplete)}): the gate is incomplete</h2><ul id="not-compared">'
                f"{items}</ul>"
            )
        out.extend(
            f'<p class="muted notice" data-kind="{escape(n.kind.value)}">{escape(notice_text(n))}</p>'
            for n in gate.notices
        )
    out.append(f'<p id="budget-summary">{len(tests)} tests; budgets: {escape(budget_summary or "none")}</p>')
    out.append('<ul class="toc">')
    for test in tests:
        out.append(f'<li><a href="#{_anchor(test.nodeid)}">{escape(test.nodeid)}</a> {_badge(test.verdict.value)}</li>')
    out.append("</ul>")
    history: dict[str, list[tuple[str, TestResult]]] = {test.nodeid: [] for test in tests}
    for run in baseline:
        label = str(run.metadata.get("created") or "run")
        for nodeid, result in run.by_nodeid().items():
            if nodeid in history:
                history[nodeid].append((label, result))
    for test in tests:
        out.append(_test_section(test, comparisons.get(test.nodeid, []), history[test.nodeid]))
    out.append("</main></body></html>")
    return "".join(out)


#: the counters drawn per test, with their headings
_COUNTER_TITLES = (
    ("instructions", "Instructions per call"),
    ("est_cycles", "Estimated cycles per call"),
    ("alloc_blocks", "Allocations per call"),
    ("alloc_bytes", "Bytes allocated per call"),
)


def _counter_trends(test: TestResult, history: Sequence[tuple[str, TestResult]]) -> list[str]:
    """Each counter of the test over the stored runs and this run (the median of each run's values)."""
    out = []
    for name, title in _COUNTER_TITLES:
        series = test.series.get(name)
        if series is None or not series.values:
            continue
        points = [
            (label, stats.statistic(r.series[name].values, "median"))
            for label, r in history
            if name in r.series and r.series[name].values
        ]
        points.append(("current", stats.statistic(series.values, "median")))
        trend = trend_svg(points, series.kind)
        if trend:
            out.append(
                f'<h3 class="counter">{escape(title)}: the stored runs ({len(points) - 1}) and this run</h3>{trend}'
            )
    return out


def _test_section(
    test: TestResult, comparisons: Sequence[Comparison], history: Sequence[tuple[str, TestResult]]
) -> str:
    out = [f'<section class="test" id="{_anchor(test.nodeid)}" data-nodeid="{escape(test.nodeid)}">']
    out.append(
        f"<h2>{escape(test.nodeid)} {_badge(test.verdict.value)} <span class=muted>{escape(test.outcome)}</span></h2>"
    )
    if test.verdicts:
        rows = "".join(
            f"<tr><td>{escape(v.metric)}</td><td class=num>{escape(v.fmt(v.measured))}</td>"
            f"<td class=num>{escape(v.fmt(v.target))}</td><td class=num>{escape(v.fmt(v.critical))}</td>"
            f"<td>{_badge(v.verdict.value)}</td><td class=muted>{escape(v.detail)}</td></tr>"
            for v in worst_first(test.verdicts)
        )
        out.append(
            "<table class=budgets><tr><th>metric</th><th>measured</th><th>target</th><th>critical</th>"
            f"<th>verdict</th><th>basis</th></tr>{rows}</table>"
        )
    if comparisons:
        from .gate_terminal import fmt_change

        rows = "".join(
            f"<tr><td>{escape(c.metric)} ({escape(c.statistic)})</td><td class=num>{escape(c.fmt(c.baseline))}</td>"
            f"<td class=num>{escape(c.fmt(c.current))}</td><td class=num>"
            f"{escape(fmt_change(c, interval=False))}</td><td>{_badge(c.verdict.value)}</td>"
            f"<td class=muted>{escape(c.reason)}</td></tr>"
            for c in comparisons
        )
        out.append(
            "<table class=gate><tr><th>gate</th><th>baseline</th><th>current</th><th>change</th><th>verdict</th>"
            f"<th>why</th></tr>{rows}</table>"
        )
    series = test.series.get(TIME_SERIES)
    if series is not None and series.values:
        base_values = [
            v for _, r in history[-1:] for v in (r.series[TIME_SERIES].values if TIME_SERIES in r.series else ())
        ]
        plot = distribution_svg(series.values, base_values, _levels(test), Kind.TIME)
        if plot:
            out.append(f"<h3>Time per call: {'last baseline run vs ' if base_values else ''}this run</h3>{plot}")
        points = [
            (label, stats.statistic(r.series[TIME_SERIES].values, "median"))
            for label, r in history
            if TIME_SERIES in r.series and r.series[TIME_SERIES].values
        ]
        points.append(("current", stats.statistic(series.values, "median")))
        trend = trend_svg(points, Kind.TIME)
        if trend:
            out.append(f"<h3>Median over the stored runs ({len(points) - 1}) and this run</h3>{trend}")
    out.extend(_counter_trends(test, history))
    out.append(_evidence_html(test.evidence))
    out.append("</section>")
    return "".join(out)
