"""Allocation counts: how many blocks, and how many bytes, one call requests from Python's
allocators. Needs the native extension (not valgrind); independent of the machine's load.

What is counted: every ``malloc``, ``calloc`` and ``realloc`` call through the RAW, MEM and OBJ
allocator domains (``PyMem_RawMalloc``, ``PyMem_Malloc``, ``PyObject_Malloc`` and friends), in every
thread, between start and stop; bytes are the sizes requested (``calloc``: count x size;
``realloc``: the new size). Frees are not subtracted: this is allocation *traffic*, not peak or
retained memory (for those, the traced-memory series). Not counted: memory that C libraries take
with ``malloc`` directly (numpy's data buffers, for instance), and arenas pymalloc takes from the
system (they are the cost of OBJ blocks, counted as blocks).

Treatment of the garbage collector: ``gc.collect()`` before the measured call and the collector
disabled during it (the same in every run; a collection in the middle would free, never allocate,
but its timing depends on the allocations that came before the call).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_perfgate.counts import native
from pytest_perfgate.errors import MeasurementError


@dataclass(frozen=True)
class AllocCounts:
    """Allocations requested by one call."""

    blocks: int
    bytes: int


def count_allocations(fn: Callable[[], Any], *, warmup: int = 1) -> AllocCounts:
    """Call ``fn`` ``warmup`` times uncounted (caches, interned strings, specialisation), then
    once counted, the collector collected before and disabled during it; return its counts.

    An exception from ``fn`` is raised after the allocators are restored. Raises
    :class:`MeasurementError` when the extension is missing or counting is already running
    (counts do not nest), or when an allocator was replaced during the call (``tracemalloc``
    started or stopped inside it).
    """
    module = native()
    for _ in range(warmup):
        fn()
    if module.alloc_running():
        raise MeasurementError("allocation counts do not nest: counting is already running around this call")
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        module.alloc_start()
        try:
            fn()
        finally:
            try:
                blocks, nbytes = module.alloc_stop()
            except RuntimeError as exc:
                raise MeasurementError(str(exc)) from None
    finally:
        if was_enabled:
            gc.enable()
    return AllocCounts(blocks=blocks, bytes=nbytes)
