"""A test's evidence as plain text, for its failure message in the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from ..evidence import AllocationSite, CpuProfile, MemoryProfile, MemoryTimeline
from ..units import Kind, format_value
from .terminal import table


def _size(value: float) -> str:
    return format_value(value, Kind.SIZE)


def _secs(value: float) -> str:
    return format_value(value, Kind.TIME)


def format_cpu_profile(profile: CpuProfile, *, limit: int = 8) -> str:
    """Where the time went: the hot path, then the functions by own time."""
    total = profile.total or 1e-12
    lines = [f"where the time went (cProfile, {profile.calls} re-run call(s), {_secs(profile.total)} profiled):"]
    path = profile.hot_path()
    if path:
        lines.append("hot path: " + " -> ".join(f"{n.function} {100 * n.cumulative / total:.0f}%" for n in path))
    rows = [
        (t.function, str(t.calls), _secs(t.own), f"{100 * t.own / total:.0f}%", t.location)
        for t in sorted(profile.top, key=lambda t: -t.own)[:limit]
    ]
    lines += ["  " + line for line in table(rows, ("function", "calls", "own time", "own %", "where"))]
    return "\n".join(lines)


#: what each tracer's figures are, said under the title (docs/evidence.md has the long form)
_TRACED_BY = {
    "memray": "memray: bytes held at the high-water mark, all threads; own = allocated in the function itself",
    "tracemalloc": (
        "tracemalloc profiler: Python allocations of this thread; self (net) = kept minus freed while the "
        "function itself ran; memray, more complete and faster: pip install 'pytest-perfgate[profile]'"
    ),
}


def format_memory_profile(profile: MemoryProfile, *, limit: int = 10) -> str:
    """Functions by inclusive peak, the stack at the peak, what stayed allocated, what each
    function held over time (memray)."""
    lines = [f"memory by function (one re-run; peak {_size(profile.peak)}):"]
    lines.append(f"  ({_TRACED_BY.get(profile.tracer, profile.tracer)})")
    rows: list[tuple[str, ...]]
    if profile.tracer == "memray":
        rows = [(f.function, _size(f.inclusive_peak), _size(f.self_net), f.location) for f in profile.functions[:limit]]
        header: tuple[str, ...] = ("function", "inclusive peak", "own", "where")
    else:
        rows = [
            (f.function, _size(f.inclusive_peak), _size(f.self_net), str(f.calls), f.location)
            for f in profile.functions[:limit]
        ]
        header = ("function", "inclusive peak", "self (net)", "calls", "where")
    lines += ["  " + line for line in table(rows, header)]
    if profile.peak_stack:
        lines.append("call stack at the peak (outermost first):")
        lines += [f"  {frame}" for frame in profile.peak_stack[-12:]]
    if profile.leaks:
        lines.append(f"still allocated at the end ({_size(profile.retained)} in all; largest sites):")
        for site in profile.leaks[:5]:
            where = site.stack[-1] if site.stack else "?"
            lines.append(f"  {_size(site.size)} in {site.count} blocks at {where}")
    if profile.timeline is not None and profile.timeline.functions:
        lines.append(format_timeline(profile.timeline))
    return "\n".join(lines)


def format_timeline(timeline: MemoryTimeline, *, limit: int = 5, columns: int = 8) -> str:
    """The functions that held the most over time (own bytes), at a few evenly spaced times and
    at the time the listed functions held the most together."""
    n = len(timeline.times)
    rows_shown = timeline.held[:limit]
    fullest = max(range(n), key=lambda t: sum(row[t] for row in rows_shown)) if n else 0
    picks = sorted({round(i * (n - 1) / max(1, columns - 2)) for i in range(min(columns - 1, n))} | {fullest})
    header = ("function", *(f"{timeline.times[t]:.2f}s" for t in picks))
    rows = [
        (name if name.startswith("<") else name.split(" (")[0], *(_size(row[t]) for t in picks))
        for name, row in zip(timeline.functions[:limit], rows_shown, strict=False)
    ]
    lines = ["memory over time by function (own bytes; the last column: when tracking stopped):"]
    return "\n".join(lines + ["  " + line for line in table(rows, header)])


def format_sites(sites: Sequence[AllocationSite], title: str, limit: int = 8) -> str:
    """Allocation sites, largest first as given, with their innermost frames."""
    lines = [title]
    for i, site in enumerate(sites[:limit], 1):
        lines.append(f"  #{i} {_size(site.size)} in {site.count} blocks")
        lines.extend(f"      {frame}" for frame in site.stack[-6:])
    return "\n".join(lines)
