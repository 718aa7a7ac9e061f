"""Traced memory (tracemalloc): the peak of one call, and where the memory was at that peak."""

from __future__ import annotations

import linecache
import os
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..units import Kind, format_value

_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class AllocationSite:
    size: int
    count: int
    stack: tuple[str, ...]  # "file:line in function: source", innermost last


@dataclass(frozen=True)
class PeakReading:
    peak: int  # bytes above what was traced when the measurement started
    retained: int  # bytes still traced at the end (above the start)
    sites: tuple[AllocationSite, ...] = ()  # what was still allocated at the end, when asked


@contextmanager
def traced_peak(frames: int = 1, *, sites_above: float | None = None) -> Iterator[list[PeakReading]]:
    """Trace the ``with`` block; yields a list that receives one :class:`PeakReading`.

    With ``sites_above``, a peak above that many bytes also records the allocation sites still
    traced at the end of the block (use ``frames`` > 1 for useful stacks). Cooperates with a
    tracemalloc already running (``PYTHONTRACEMALLOC``): it then only resets the peak and leaves
    tracing on.
    """
    out: list[PeakReading] = []
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(frames)
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    try:
        yield out
    finally:
        current, peak = tracemalloc.get_traced_memory()
        peak = max(0, peak - start)
        sites = snapshot_sites() if sites_above is not None and peak > sites_above else ()
        if not was_tracing:
            tracemalloc.stop()
        out.append(PeakReading(peak=peak, retained=max(0, current - start), sites=sites))


def measure_peak(fn: Callable[[], Any]) -> PeakReading:
    with traced_peak() as reading:
        fn()
    return reading[0]


@dataclass(frozen=True)
class PeakSnapshot:
    """Allocation sites at the largest observed point of a call."""

    observed: int  # bytes traced (above start) when the snapshot was taken
    peak: int  # the true peak (tracemalloc's counter), for comparison
    sites: tuple[AllocationSite, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "observed": self.observed,
            "peak": self.peak,
            "sites": [{"size": s.size, "count": s.count, "stack": list(s.stack)} for s in self.sites],
        }

    def format(self, limit: int = 10) -> str:
        lines = [
            f"memory at the largest observed point: {format_value(self.observed, Kind.SIZE)} "
            f"(peak {format_value(self.peak, Kind.SIZE)}); top allocation sites:"
        ]
        for i, site in enumerate(self.sites[:limit], 1):
            lines.append(f"  #{i} {format_value(site.size, Kind.SIZE)} in {site.count} blocks")
            lines.extend(f"      {frame}" for frame in site.stack)
        return "\n".join(lines)


_HARNESS = tuple(
    os.path.dirname(os.path.abspath(m.__file__ or ""))
    for m in (sys.modules.get(name) for name in ("_pytest", "pluggy"))
    if m is not None and m.__file__
)


def _is_own(filename: str) -> bool:
    """Frames of perfgate, tracemalloc, importlib, pytest and pluggy: noise in a user's stack."""
    return (
        filename.startswith(_OWN_DIR)
        or filename == tracemalloc.__file__
        or "<frozen" in filename
        or (bool(_HARNESS) and filename.startswith(_HARNESS))
    )


def capture_peak_sites(fn: Callable[[], Any], *, frames: int = 12, top: int = 10) -> PeakSnapshot:
    """Run ``fn`` once more under tracemalloc and a profile hook that snapshots the traced
    memory whenever it reaches a new high (by 5% or 64 kB) at a function call or return.

    Deterministic (no sampling thread); slow (a hook on every call), so only used to explain
    a memory failure.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(frames)
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    best: dict[str, Any] = {"level": 0, "snapshot": None}

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        current = tracemalloc.get_traced_memory()[0] - base
        if current > best["level"] + max(64_000, best["level"] // 20):
            best["level"] = current
            best["snapshot"] = tracemalloc.take_snapshot()

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(previous)
        _, peak = tracemalloc.get_traced_memory()
        end_snapshot = tracemalloc.take_snapshot()
        if not was_tracing:
            tracemalloc.stop()
    snapshot = best["snapshot"] or end_snapshot
    observed = best["level"] if best["snapshot"] is not None else 0
    return PeakSnapshot(observed=observed, peak=max(0, peak - base), sites=_top_sites(snapshot, top))


def snapshot_sites(top: int = 10) -> tuple[AllocationSite, ...]:
    """Allocation sites of what is traced right now (tracemalloc must be running)."""
    return _top_sites(tracemalloc.take_snapshot(), top)


def _top_sites(snapshot: tracemalloc.Snapshot, top: int) -> tuple[AllocationSite, ...]:
    snapshot = snapshot.filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
            tracemalloc.Filter(False, os.path.join(_OWN_DIR, "*")),
        )
    )
    sites = []
    for stat in snapshot.statistics("traceback")[:top]:
        stack = []
        for frame in stat.traceback:
            if _is_own(frame.filename):
                continue
            source = linecache.getline(frame.filename, frame.lineno).strip()
            text = f"{frame.filename}:{frame.lineno}: {source}" if source else f"{frame.filename}:{frame.lineno}"
            if not stack or stack[-1] != text:  # a comprehension repeats its enclosing line
                stack.append(text)
        sites.append(AllocationSite(size=stat.size, count=stat.count, stack=tuple(stack)))
    return tuple(sites)
