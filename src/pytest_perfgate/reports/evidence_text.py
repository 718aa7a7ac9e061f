"""A test's evidence as plain text, for its failure message in the terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..evidence import CPROFILE, INSTRUCTIONS_CLOCK, AllocationSite, CpuProfile, MemoryProfile, MemoryTimeline
from ..profdiff import FunctionChange, PathStep, ProfileDiff
from ..units import Kind, format_value
from .terminal import table


def _size(value: float) -> str:
    return format_value(value, Kind.SIZE)


def _secs(value: float) -> str:
    return format_value(value, Kind.TIME)


def amount(value: float, clock: str) -> str:
    """A profile's figure as text: instructions (``"12.3k instr"``) or seconds (``"1.2ms"``)."""
    return f"{format_value(value, Kind.COUNT)} instr" if clock == INSTRUCTIONS_CLOCK else _secs(value)


def own_what(clock: str) -> str:
    """What a profile's own figure is: ``"own instructions"`` or ``"own time"``."""
    return "own instructions" if clock == INSTRUCTIONS_CLOCK else "own time"


#: said where cProfile made a profile: its call tree is not made of real paths
MISSING_PROFILER = (
    "cProfile's call tree merges callers: a path shown may never have run "
    "(pytest-perfgate[profile] installs pyinstrument)"
)


def cpu_profile_source(profile: CpuProfile) -> str:
    """Which profiler made ``profile`` and how far its tree can be trusted, in a few words."""
    if profile.clock == INSTRUCTIONS_CLOCK:
        return f"{profile.profiler}, instructions counted by Python function over {profile.calls} call(s)"
    if profile.sampled:
        clock = ", CPU time" if profile.clock == "cpu" else ""
        return f"pyinstrument{clock}, {profile.samples} stack samples over {profile.calls} re-run call(s)"
    return f"cProfile fallback, {profile.calls} re-run call(s)"


def format_cpu_profile(profile: CpuProfile, *, limit: int = 8) -> str:
    """Where the time went: the hot path, then the functions by own time."""
    total = profile.total or 1e-12
    went = "the instructions" if profile.clock == INSTRUCTIONS_CLOCK else "the time"
    lines = [f"where {went} went ({cpu_profile_source(profile)}, {amount(profile.total, profile.clock)} profiled):"]
    if profile.note:
        lines.append(f"note: {profile.note}")
    elif not profile.sampled and profile.profiler == CPROFILE:
        lines.append(f"note: {MISSING_PROFILER}")
    path = profile.hot_path()
    if path:
        lines.append("hot path: " + " -> ".join(f"{n.function} {100 * n.cumulative / total:.0f}%" for n in path))
    rows = [
        (
            t.function,
            "-" if profile.sampled else str(t.calls),
            amount(t.own, profile.clock),
            f"{100 * t.own / total:.0f}%",
            t.location,
        )
        for t in sorted(profile.top, key=lambda t: -t.own)[:limit]
    ]
    lines += ["  " + line for line in table(rows, ("function", "calls", own_what(profile.clock), "own %", "where"))]
    return "\n".join(lines)


#: what each tracer's figures are, said under the title (docs/evidence.md has the long form)
_TRACED_BY = {
    "memray": "memray: bytes held at the high-water mark, all threads; own = allocated in the function itself",
    "tracemalloc": (
        "tracemalloc profiler: Python allocations of this thread; self (net) = kept minus freed while the "
        "function itself ran; memray, more complete and faster: pip install 'pytest-perfgate[profile]'"
    ),
}


def _per_call(value: float | None, clock: str = "wall") -> str:
    return "-" if value is None else amount(value, clock)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def profile_diff_rows(diff: ProfileDiff, limit: int, arrow: str = " -> ") -> list[tuple[str, str, str, str, str]]:
    """The changed functions as rows: function, own per call base -> current, change, own share
    base -> current, where."""
    clock = diff.clock
    return [
        (
            c.function,
            f"{_per_call(c.base_per_call, clock)}{arrow}{_per_call(c.current_per_call, clock)}",
            ("+" if c.per_call_change >= 0 else "-") + amount(abs(c.per_call_change), clock),
            f"{_share(c.base_share)}{arrow}{_share(c.current_share)}",
            c.location,
        )
        for c in diff.changes[:limit]
    ]


def hot_path_text(steps: Sequence[PathStep], arrow: str = " -> ") -> str:
    return arrow.join(f"{s.function} {100 * s.share:.0f}%" for s in steps) or "(no samples)"


def top_change_text(change: FunctionChange, arrow: str = " -> ", clock: str = "wall") -> str:
    """The function whose own time (or instructions) grew most, in one phrase."""
    return (
        f"{change.function} ({change.location}): {own_what(clock)} per call "
        f"{_per_call(change.base_per_call, clock)}{arrow}{_per_call(change.current_per_call, clock)}"
    )


def profile_diff_source(diff: ProfileDiff, arrow: str = " -> ") -> str:
    """The profilers and the profiled time per call of each side."""
    profilers = (
        diff.current_profiler
        if diff.base_profiler == diff.current_profiler
        else f"base {diff.base_profiler}, current {diff.current_profiler}"
    )
    if diff.clock == INSTRUCTIONS_CLOCK:
        return (
            f"{profilers}; counted instructions per call {amount(diff.base_per_call, diff.clock)}{arrow}"
            f"{amount(diff.current_per_call, diff.clock)}, exact: a function that did not change counts the same"
        )
    clock = {"cpu": "CPU time", "mixed": "mixed clocks"}.get(diff.clock, "time")
    return (
        f"{profilers}; profiled {clock} per call {_secs(diff.base_per_call)}{arrow}{_secs(diff.current_per_call)}, "
        "profiler overhead included"
    )


def format_profile_diff(diff: ProfileDiff, *, limit: int = 5) -> str:
    """What changed between the base's and the current profile of a call: the functions whose own
    time changed most, then each side's hot path."""
    lines = [f"what changed ({profile_diff_source(diff)}):"]
    if CPROFILE in (diff.base_profiler, diff.current_profiler):
        lines.append(f"note: {MISSING_PROFILER}")
    rows = profile_diff_rows(diff, limit)
    header = ("function", f"{own_what(diff.clock)} per call", "change", "own share", "where")
    lines += ["  " + line for line in table(rows, header)]
    if diff.base_hot_path or diff.current_hot_path:
        lines.append("hot path, base:    " + hot_path_text(diff.base_hot_path))
        lines.append("hot path, current: " + hot_path_text(diff.current_hot_path))
    return "\n".join(lines)


def format_profile_diffs(diffs: Mapping[str, ProfileDiff], *, limit: int = 5) -> str:
    """Each profiled test's diff under its name (``perfgate ab``'s terminal)."""
    blocks = [f"\n{nodeid}: {format_profile_diff(diff, limit=limit)}" for nodeid, diff in diffs.items()]
    return "\n".join(blocks).lstrip("\n")


def memory_table(profile: MemoryProfile, *, limit: int) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Memory by function as a header and rows of text, in the columns its tracer has: memray's
    own bytes (no call counts), or the tracemalloc profiler's self (net) and calls; where last.
    The one table behind the terminal, Markdown and HTML reports."""
    if profile.tracer == "memray":
        header: tuple[str, ...] = ("function", "inclusive peak", "own", "where")
        rows: list[tuple[str, ...]] = [
            (f.function, _size(f.inclusive_peak), _size(f.self_net), f.location) for f in profile.functions[:limit]
        ]
        return header, rows
    header = ("function", "inclusive peak", "self (net)", "calls", "where")
    return header, [
        (f.function, _size(f.inclusive_peak), _size(f.self_net), str(f.calls), f.location)
        for f in profile.functions[:limit]
    ]


def format_memory_profile(profile: MemoryProfile, *, limit: int = 10) -> str:
    """Functions by inclusive peak, the stack at the peak, what stayed allocated, what each
    function held over time (memray)."""
    lines = [f"memory by function (one re-run; peak {_size(profile.peak)}):"]
    lines.append(f"  ({_TRACED_BY.get(profile.tracer, profile.tracer)})")
    header, rows = memory_table(profile, limit=limit)
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
