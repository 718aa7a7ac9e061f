"""``perfgate history`` in words: the open change points first (the newest level of their series),
then the other series with change points, then what was not judged."""

from __future__ import annotations

import math

from ..history.model import ChangePoint, History, SeriesHistory, SeriesKey
from ..units import Kind, format_value

_KINDS = {"s": Kind.TIME, "B": Kind.SIZE, "/s": Kind.RATE, "": Kind.COUNT}


def value_text(key: SeriesKey, value: float) -> str:
    """A level of the series in its unit: ``12.3ms``, ``40.2M``."""
    kind = _KINDS.get(key.unit, Kind.NUMBER)
    return format_value(value, kind, "" if kind is not Kind.NUMBER else key.unit)


def change_text(change: float) -> str:
    """``+12.3%``, ``-2.01%``; ``new`` for a level that was 0."""
    if not math.isfinite(change):
        return "from 0"
    digits = 1 if abs(change) >= 0.1 else 2
    return f"{change:+.{digits}%}"


def confidence_text(cp: ChangePoint) -> str:
    """``99.99%``, ``>99.9999%``."""
    if cp.p_value < 1e-6:
        return ">99.9999%"
    return f"{cp.confidence * 100:.4f}".rstrip("0").rstrip(".") + "%"


def change_point_line(cp: ChangePoint) -> str:
    """One change point: direction, size, series, levels, where, confidence, environment."""
    where = f"runs {cp.commits.last_old_run}..{cp.commits.first_new_run}"
    if cp.commits.last_old or cp.commits.first_new:
        where += f" ({cp.commits.text})"
    env = ""
    if cp.environment_changed:
        names = ", ".join(f.field for f in cp.environment_fields)
        env = f"; ENVIRONMENT CHANGED ({names}): may be the runner, not the commits"
    levels = f"{value_text(cp.key, cp.before)} -> {value_text(cp.key, cp.after)}"
    return (
        f"{cp.direction.value.upper():<11} {change_text(cp.change):>8}  {cp.key.label}  {levels}  {where}  "
        f"confidence {confidence_text(cp)}{env}"
    )


def series_line(s: SeriesHistory) -> str:
    """One series: runs, noise, the smallest step it can show, its change points."""
    noise = "-" if s.noise is None else f"{s.noise:.2%}"
    step = "-" if s.min_detectable_step is None else f"{s.min_detectable_step:.2%}"
    changes = ", ".join(f"{change_text(cp.change)} at run {cp.run}" for cp in s.change_points) or "none"
    return f"{s.key.label}: {s.count} runs, noise {noise}, smallest detectable step {step}, changes: {changes}"


def format_history(history: History, *, every_series: bool = False) -> list[str]:
    """The lines ``perfgate history`` prints."""
    n = len(history.series)
    lines = [
        f"perfgate history: {history.runs} run{'s' if history.runs != 1 else ''}, {n} series judged "
        f"(alpha {history.alpha:g} per examined segment, at least {history.min_segment} runs per level)"
    ]
    ordered = history.ordered()
    opened = [s.open_change_point for s in ordered if s.open_change_point is not None]
    if opened:
        lines.append(f"open change points ({len(opened)}: the newest level of their series):")
        lines.extend(f"  {change_point_line(cp)}" for cp in opened if cp is not None)
    else:
        lines.append("no open change point: no series has moved to a new level")
    closed = [cp for s in ordered for cp in s.change_points if not cp.open]
    if closed:
        lines.append(f"earlier change points ({len(closed)}):")
        lines.extend(f"  {change_point_line(cp)}" for cp in sorted(closed, key=lambda c: (-c.run, c.key)))
    shown = ordered if every_series else [s for s in ordered if s.change_points]
    if shown:
        lines.append("series:" if every_series else "series with change points:")
        lines.extend(f"  {series_line(s)}" for s in shown)
    if not every_series and len(shown) < n:
        lines.append(f"{n - len(shown)} series without a change point (--all lists every series)")
    if history.not_judged:
        lines.append(f"not judged ({len(history.not_judged)}):")
        lines.extend(f"  {item.what}: {item.reason}" for item in history.not_judged)
    return lines
