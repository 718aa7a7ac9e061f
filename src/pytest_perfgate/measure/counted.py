"""Counted, not timed: a workload's allocations and instructions as series of the test's result
(``alloc_blocks``, ``alloc_bytes``, ``instructions``, ``est_cycles``). Pure; the counting itself is
:mod:`pytest_perfgate.counts` (allocations: the native extension; instructions: callgrind, in a
process started under it).

Every count is of one call after :data:`WARMUP_CALLS` warm-up calls (caches, interned strings,
and CPython's specialising interpreter, which rewrites a function's bytecode after it ran a few
times: the count is of the specialised code, as a timed loop runs it, and the same in every run),
the garbage collector collected before and disabled during it. Allocations are
counted in :data:`ALLOC_CALLS` separate calls (they are cheap): more than one value in a run that
differ show a nondeterministic workload. Instructions are counted in one call (a simulated call is
~50-100x slower than a native one). A workload with pytest-benchmark's ``setup`` runs it (and its
``teardown``) around every call, unmeasured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from ..evidence import CpuProfile
from ..model import Series
from ..options import Options
from ..units import Kind
from .workload import Workload

#: the series a counted test gets (their kinds: see :func:`count_workload`)
INSTRUCTIONS, EST_CYCLES, ALLOC_BLOCKS, ALLOC_BYTES = "instructions", "est_cycles", "alloc_blocks", "alloc_bytes"
COUNTED_SERIES = (INSTRUCTIONS, EST_CYCLES, ALLOC_BLOCKS, ALLOC_BYTES)
#: separate counted calls for allocation counts
ALLOC_CALLS = 3
#: uncounted calls before a counted one (CPython 3.11 specialises after 8 runs of a code object)
WARMUP_CALLS = 10
#: the valgrind version a counted session runs under (set for it by the process that started it)
ENV_VALGRIND_VERSION = "PERFGATE_VALGRIND_VERSION"

T = TypeVar("T")


@dataclass(frozen=True)
class CountSettings:
    """What to count: ``allocations`` (needs the native extension) and ``instructions`` (needs the
    process to run under callgrind; ``cache_sim``: it was started with the cache simulation, so
    estimated cycles are counted too)."""

    allocations: bool = False
    instructions: bool = False
    cache_sim: bool = False

    @classmethod
    def of(cls, options: Options) -> CountSettings:
        """What a session counts: allocations with either option, instructions (and estimated
        cycles) with ``--perfgate-instructions`` (``--perfgate-cache-sim``); nothing when disabled."""
        return cls(
            allocations=options.counting,
            instructions=options.counting and options.instructions,
            cache_sim=options.counting and options.instructions and options.cache_sim,
        )

    def uncounted(self) -> dict[str, str]:
        """The counters this session does not record, and why (a budget on one is "not checked")."""
        missing = {}
        if not self.allocations:
            for name in (ALLOC_BLOCKS, ALLOC_BYTES):
                missing[name] = "allocations are counted with --perfgate-allocations (or --perfgate-instructions)"
        if not self.instructions:
            missing[INSTRUCTIONS] = "instructions are counted under callgrind, with --perfgate-instructions"
        if not self.cache_sim:
            missing[EST_CYCLES] = "estimated cycles are counted with --perfgate-instructions --perfgate-cache-sim"
        return missing


@contextmanager
def _prepared(workload: Workload) -> Iterator[Callable[[], Any]]:
    """The workload's call, with its ``setup`` run before and ``teardown`` after (unmeasured)."""
    if workload.prepare is None:
        yield workload.call
        return
    call, after = workload.prepare()
    try:
        yield call
    finally:
        after()


def _counted(workload: Workload, count: Callable[[Callable[[], Any]], T]) -> T:
    """``count(call)`` of one call of ``workload`` after :data:`WARMUP_CALLS` warm-up calls."""
    for _ in range(WARMUP_CALLS):
        workload.first()
    with _prepared(workload) as call:
        return count(call)


def count_workload(workload: Workload, settings: CountSettings, *, name: str) -> tuple[Series, ...]:
    """The counted series of ``workload``: ``alloc_blocks`` (count) and ``alloc_bytes`` (size) of
    :data:`ALLOC_CALLS` calls, ``instructions`` (count) of one call, ``est_cycles`` (count) with
    the cache simulation. Raises :class:`~pytest_perfgate.errors.MeasurementError` (or
    ``PlatformError``) when what is asked cannot be counted here, with what to install."""
    series: list[Series] = []
    if settings.allocations:
        from ..counts.allocations import count_allocations

        allocations = [_counted(workload, lambda call: count_allocations(call, warmup=0)) for _ in range(ALLOC_CALLS)]
        blocks = tuple(float(a.blocks) for a in allocations)
        nbytes = tuple(float(a.bytes) for a in allocations)
        series.append(Series(ALLOC_BLOCKS, Kind.COUNT, blocks, source="allocations"))
        series.append(Series(ALLOC_BYTES, Kind.SIZE, nbytes, source="allocations"))
    if settings.instructions:
        from ..counts.callgrind import count_call

        counts = _counted(workload, lambda call: count_call(call, name=name, warmup=0))
        series.append(Series(INSTRUCTIONS, Kind.COUNT, (float(counts.instructions),), source="callgrind"))
        if counts.estimated_cycles is not None:
            series.append(Series(EST_CYCLES, Kind.COUNT, (float(counts.estimated_cycles),), source="callgrind"))
    return tuple(series)


def count_by_function(workload: Workload, *, name: str) -> CpuProfile:
    """One call of ``workload`` counted by Python function (after the warm-up calls), in a process
    started under callgrind with named functions skipped (:mod:`pytest_perfgate.counts.functions`)."""
    from ..counts.functions import count_functions

    return _counted(workload, lambda call: count_functions(call, name=name, warmup=1))


def fingerprint(settings: CountSettings) -> dict[str, str]:
    """This run's environment fingerprint for its results' metadata (``fingerprint``): what must
    be equal for two runs' counts to be compared; fields that are not known are left out."""
    import os

    from ..counts.fingerprint import current

    if settings.instructions:
        from ..counts.callgrind import ENV_FUNCTIONS, METHOD

        # counted by function too (--perfgate-evidence=instructions): the frame evaluator it
        # installs changes the interpreter's own path (measured: -2.1% to +1.4% on fastjsonschema's
        # benchmarks), so such counts are compared only with counts made the same way
        method = f"{METHOD}; by function" if os.environ.get(ENV_FUNCTIONS) == "1" else METHOD
        found = current(valgrind=os.environ.get(ENV_VALGRIND_VERSION), method=method)
    else:
        found = current()
    return {key: value for key, value in found.to_json().items() if value is not None}
