"""Self-contained SVG drawings for the HTML report: pure functions from figures to SVG markup, every
text escaped, no script, no external resource.

- :func:`distribution_svg`: histograms of the baseline and current samples with the budget levels;
- :func:`trend_svg`: a statistic over the stored runs;
- :func:`heatmap`: memory over time by function (a row per function, a column per time point, the
  colour what the function held then);
- :func:`flame`: a flame graph (icicle: callers above their callees) of a call tree, each frame's
  width its share of its caller's;
- :func:`history_svg`: a series over the default branch's runs, its spread band and change points
  (the trend site of ``perfgate history --html``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from .. import stats
from ..units import Kind, format_value

_LEVEL_COLOURS = {"target": "#d08c00", "critical": "#c0262d"}

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


# --------------------------------------------------------------------------- evidence drawings


def _number(value: object) -> float:
    """A finite figure, 0 for anything else (evidence from a tests' process is not shape-checked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _heat(share: float) -> str:
    """Pale yellow (nothing) to deep red (the most), as the memory icicle colours."""
    heat = min(1.0, max(0.0, share))
    return f"hsl({int(50 - 50 * heat)},85%,{int(88 - 33 * heat)}%)"


def _clip(text: str, pixels: float, *, char: float = 6.4) -> str:
    """``text`` cut to what fits in ``pixels`` at the report's 11px font ("" when nothing does)."""
    room = int(pixels / char)
    if room >= len(text):
        return text
    return text[: room - 1] + "\u2026" if room >= 3 else ""


def heatmap(
    times: Sequence[float],
    functions: Sequence[str],
    held: Sequence[Sequence[int]],
    *,
    width: int = 900,
    max_rows: int = 24,
    max_columns: int = 160,
) -> str:
    """Memory over time by function: a row per function (the most held first, at most ``max_rows``),
    a column per time point (neighbouring points merged, keeping their largest, past
    ``max_columns``); a cell's colour is what the function held then (``held[f][t]`` bytes),
    against the largest cell. ``""`` when there is nothing to draw (no time points, no function
    whose row has one value per time point)."""
    count = len(times)
    rows = [
        (str(name), [max(0.0, _number(v)) for v in values])
        for name, values in zip(functions, held, strict=False)
        if isinstance(values, Sequence) and not isinstance(values, (str, bytes)) and len(values) == count
    ]
    if not count or not rows:
        return ""
    rows.sort(key=lambda row: -max(row[1]))
    rows = rows[:max_rows]
    columns = min(count, max_columns)
    edges = [round(i * count / columns) for i in range(columns + 1)]
    cells = [[max(values[edges[c] : edges[c + 1]]) for c in range(columns)] for _, values in rows]
    peak = max(max(row) for row in cells) or 1.0
    seconds = [_number(t) for t in times]
    left, right, top, row_h = 320, width - 10, 8, 16  # labels: "function (file:line)"
    cell_w = (right - left) / columns
    bottom = top + row_h * len(rows)
    height = bottom + 40
    parts = [
        f'<svg class="heatmap" width="{width}" height="{height}" role="img" aria-label="memory over time by function">'
    ]
    parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="#f3f4f7"/>')
    for i, ((name, _), row) in enumerate(zip(rows, cells, strict=True)):
        y = top + i * row_h
        parts.append(
            f'<text x="4" y="{y + 12}">{escape(_clip(name, left - 10))}<title>{escape(name)}: up to '
            f"{escape(format_value(max(row), Kind.SIZE))}</title></text>"
        )
        for c, value in enumerate(row):
            if value <= 0:
                continue
            start, end = seconds[edges[c]], seconds[edges[c + 1] - 1]
            when = f"{start:.2f}s" if start == end else f"{start:.2f}-{end:.2f}s"
            parts.append(
                f'<rect x="{left + c * cell_w:.1f}" y="{y}" width="{cell_w + 0.2:.1f}" height="{row_h - 1}" '
                f'fill="{_heat(value / peak)}"><title>{escape(name)} at {when}: '
                f"{escape(format_value(value, Kind.SIZE))}</title></rect>"
            )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#8a94a6"/>')
    for tick in range(3):
        index = min(count - 1, round(tick * (count - 1) / 2))
        x = left + (right - left) * (tick / 2)
        anchor = ("start", "middle", "end")[tick]
        parts.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="{anchor}">{seconds[index]:.2f}s</text>')
    parts.append(
        f'<text x="{left}" y="{bottom + 32}">colour: bytes held, pale to dark red = 0 to '
        f"{escape(format_value(peak, Kind.SIZE))}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _field(node: object, name: str) -> Any:
    return node.get(name) if isinstance(node, Mapping) else getattr(node, name, None)


def _children(node: object) -> list[object]:
    children = _field(node, "children")
    if isinstance(children, (list, tuple)):
        return [c for c in children if isinstance(c, Mapping) or hasattr(c, "children")]
    return []


def _hue(name: str) -> int:
    """A warm hue of its own for each function name (stable from run to run)."""
    return 8 + int(hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:4], 16) % 42


def flame(
    tree: object,
    *,
    value: str = "cumulative",
    kind: Kind = Kind.TIME,
    unit: str = "",
    width: int = 720,
    row_h: int = 18,
    max_depth: int = 40,
) -> str:
    """A flame graph, drawn as an icicle (callers above their callees), of call-tree nodes
    (``{function, location, cumulative, own, children}`` mappings, or objects with those
    attributes): one root or a list of roots; ``value`` names the figure (``kind``, shown with
    ``unit``: ``"total"`` samples of a sampler's tree). A frame's width is its ``value``'s share of its
    caller's; callees that add up to more than their caller (a tree rebuilt from aggregated
    edges) share the caller's width in proportion. Frames narrower than a pixel are left out.
    ``""`` when the tree is empty or its figures are all 0."""
    if isinstance(tree, (list, tuple)):
        roots = [r for r in tree if isinstance(r, Mapping) or hasattr(r, "children")]
    else:
        roots = [tree] if isinstance(tree, Mapping) or hasattr(tree, "children") else []
    total = sum(max(0.0, _number(_field(r, value))) for r in roots)
    if not total > 0:
        return ""
    frames: list[tuple[float, int, float, object]] = []
    stack: list[tuple[list[object], float, float, float, int]] = [(roots, 0.0, float(width), total, 0)]
    while stack:
        nodes, x, room, parent, depth = stack.pop()
        if depth >= max_depth:
            continue
        values = [max(0.0, _number(_field(n, value))) for n in nodes]
        scale = room / max(parent, sum(values), 1e-300)
        for node, figure in zip(nodes, values, strict=True):
            w = figure * scale
            if w >= 1.0:
                frames.append((x, depth, w, node))
                kids = _children(node)
                if kids:
                    stack.append((kids, x, w, figure, depth + 1))
            x += w
    depth_max = max(depth for _, depth, _, _ in frames) + 1
    height = depth_max * row_h + 2
    parts = [f'<svg class="flame" width="{width}" height="{height}" role="img" aria-label="flame graph">']
    for x, depth, w, node in frames:
        name = str(_field(node, "function") or "?")
        figure = max(0.0, _number(_field(node, value)))
        tip = f"{name} ({_field(node, 'location') or '?'}): {format_value(figure, kind)}, {figure / total:.1%} of all"
        own = _field(node, "own")
        if own is not None:
            tip += f"; own {format_value(_number(own), kind)}{unit}"
        y = depth * row_h
        parts.append(
            f'<g><rect x="{x:.1f}" y="{y}" width="{max(w - 0.5, 0.5):.1f}" height="{row_h - 1}" rx="2" '
            f'fill="hsl({_hue(name)},80%,{62 + depth % 3 * 5}%)"/><title>{escape(tip)}</title>'
        )
        label = _clip(name, w - 6)
        if label:
            parts.append(f'<text x="{x + 3:.1f}" y="{y + 13}">{escape(label)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- the default branch's history


#: the runs of a history plot up to which each run is a point of its own, with its title
MAX_MARKED = 300


def history_svg(
    points: Sequence[tuple[str, float, float | None]],
    steps: Sequence[tuple[int, float, float, str, bool]],
    kind: Kind,
    *,
    unit: str = "",
    width: int = 900,
    height: int = 260,
) -> str:
    """A series over the default branch's runs (oldest first): each run's centre as a point with
    its title (``points``: label, centre, spread or None), the band centre +- spread, and the change
    points (``steps``: index of the first point at the new level, the levels before and after, a
    label, whether it is a regression) as a dashed line with the two levels drawn as segments.
    Up to :data:`MAX_MARKED` runs each is a point with its title; beyond, the line alone.
    ``""`` with fewer than two finite points."""
    finite = [(i, p) for i, p in enumerate(points) if math.isfinite(p[1])]
    if len(finite) < 2:
        return ""
    lows = [c - (s or 0.0) for _, (_, c, s) in finite if s is None or math.isfinite(s)]
    highs = [c + (s or 0.0) for _, (_, c, s) in finite if s is None or math.isfinite(s)]
    low, high = _axis(min(lows), max(highs), nonnegative=min(c for _, (_, c, _) in finite) >= 0)
    left, right, top, bottom = 80, width - 16, 14, height - 30
    count = len(points)

    def x(i: float) -> float:
        return left + (right - left) * (i / (count - 1) if count > 1 else 0.5)

    def y(v: float) -> float:
        return bottom - (bottom - top) * _fraction(v, low, high)

    label = "history of a series over the default branch's runs"
    parts = [f'<svg class="history" width="{width}" height="{height}" role="img" aria-label="{label}">']
    parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="#fbfcfd"/>')
    band = [(i, c, s) for i, (_, c, s) in finite if s is not None and math.isfinite(s)]
    if len(band) >= 2:
        upper = " ".join(f"{x(i):.1f},{y(c + s):.1f}" for i, c, s in band)
        lower = " ".join(f"{x(i):.1f},{y(c - s):.1f}" for i, c, s in reversed(band))
        parts.append(f'<polygon class="spread" points="{upper} {lower}" fill="#6c8ebf" opacity="0.18"/>')
    line = " ".join(f"{x(i):.1f},{y(c):.1f}" for i, (_, c, _) in finite)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#6c8ebf" stroke-width="1.5"/>')
    bounds = [0, *(s[0] for s in steps), count]
    for n, (index, before, after, text, regression) in enumerate(steps):
        colour = "#c0262d" if regression else "#1b6b35"
        cx = x(index - 0.5)
        parts.append(
            f'<line class="change-point" x1="{cx:.1f}" x2="{cx:.1f}" y1="{top}" y2="{bottom}" stroke="{colour}" '
            f'stroke-dasharray="5 3" stroke-width="2"><title>{escape(text)}</title></line>'
        )
        for level, start, end in ((before, bounds[n], index), (after, index, bounds[n + 2])):
            if math.isfinite(level):
                parts.append(
                    f'<line x1="{x(start):.1f}" x2="{x(max(start, end - 1)):.1f}" y1="{y(level):.1f}" '
                    f'y2="{y(level):.1f}" stroke="{colour}" stroke-width="1" opacity="0.6"/>'
                )
        parts.append(f'<text x="{cx + 3:.1f}" y="{top + 10 + 12 * (n % 3)}" fill="{colour}">{escape(text)}</text>')
    # a point of its own (with its title) per run up to MAX_MARKED runs; beyond, the line alone (a
    # page of a 1,000-run series stays small: the site has a page per series)
    for i, (name, centre, spread) in finite if count <= MAX_MARKED else ():
        tip = f"{name}: {format_value(centre, kind, unit)}"
        if spread is not None:
            tip += f" \u00b1 {format_value(spread, kind, unit)}"
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(centre):.1f}" r="3" fill="#3c5a8a"><title>{escape(tip)}</title></circle>'
        )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#8a94a6"/>')
    parts.append(f'<text x="4" y="{top + 8}">{escape(format_value(high, kind, unit))}</text>')
    parts.append(f'<text x="4" y="{bottom}">{escape(format_value(low, kind, unit))}</text>')
    for tick in (0, count - 1):
        anchor = "start" if tick == 0 else "end"
        parts.append(
            f'<text x="{x(tick):.1f}" y="{bottom + 14}" text-anchor="{anchor}">{escape(points[tick][0])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
