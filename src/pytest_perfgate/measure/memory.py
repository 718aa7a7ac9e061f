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

from ..evidence import AllocationSite

_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    sites: list[AllocationSite] = []
    for stat in snapshot.statistics("traceback"):
        if len(sites) >= top:
            break
        stack = _format_stack(stat.traceback)
        if stack:  # allocations made only by the harness (pytest, perfgate) are not the user's
            sites.append(AllocationSite(size=stat.size, count=stat.count, stack=stack))
    return tuple(sites)


def _format_stack(traceback: tracemalloc.Traceback) -> tuple[str, ...]:
    """``file:line: source`` for the user's frames of a traceback, oldest first."""
    stack: list[str] = []
    for frame in traceback:
        if _is_own(frame.filename):
            continue
        source = linecache.getline(frame.filename, frame.lineno).strip()
        text = f"{frame.filename}:{frame.lineno}: {source}" if source else f"{frame.filename}:{frame.lineno}"
        if not stack or stack[-1] != text:  # a comprehension repeats its enclosing line
            stack.append(text)
    return tuple(stack)
