"""Per-test recording: the ``perf`` object a test calls, and what it collected.

Pure (no pytest): :mod:`pytest_perfgate._tracking` makes one :class:`Recorder` per test (the
subsystems add to it through the ``pytest_perfgate_record`` hook), the ``perf`` fixture hands
the test a :class:`Perf`, and the session turns the recorder into a
:class:`~pytest_perfgate.model.TestResult`.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any

from . import metrics as metric_registry
from .errors import MeasurementError, UnitError
from .measure import memory, timing
from .metrics import MEMORY_SERIES, TIME_SERIES, MetricDef
from .model import Series
from .units import Kind, record_unit

if TYPE_CHECKING:
    from .measure.aio import LoopBasis, OwnLoop

#: how ``perf`` times a callable: :func:`~pytest_perfgate.measure.timing.measure`, or the paired
#: A/B worker's rounds driven by its controller. A measure that also has an ``aio`` attribute (an
#: :data:`AsyncMeasure`) times awaited calls with it; otherwise :func:`~.measure.aio.measure` does
Measure = Callable[[Callable[[], Any], timing.TimingSettings], timing.Timing]
#: how ``perf`` times an awaited call, inside the loop that runs it
AsyncMeasure = Callable[[Callable[[], Awaitable[Any]], timing.TimingSettings], Awaitable[timing.Timing]]


class Mode(str, Enum):
    """How a test's time was measured (``TestResult.mode`` in results files holds the value)."""

    PERF = "perf"  # the perf fixture's calibrated rounds
    BENCHMARK = "benchmark"  # pytest-benchmark's rounds (or the paired worker's, for its fixture)
    LOAD = "load"  # a load test's response times
    CALL_ROUNDS = "call-rounds"  # the paired A/B worker timed the test's body in rounds
    WHOLE_CALL = "call"  # the whole test call, one sample


#: modes in which a fixture (or the paired worker) measured the test: the whole call is then not
#: timed over it
FIXTURE_MODES = frozenset({Mode.PERF, Mode.BENCHMARK, Mode.LOAD, Mode.CALL_ROUNDS})


class Recorder:
    """Mutable collector for one test; becomes frozen :class:`Series` at the end."""

    def __init__(
        self,
        declared: dict[str, MetricDef] | None = None,
        *,
        untimed: str | None = None,
        unrecorded: Mapping[str, str] | None = None,
    ) -> None:
        """``untimed``: why this session records no times (budgets on time are not checked);
        ``unrecorded``: series this session does not record, and why (budgets on them are not
        checked, unless the test records them after all)."""
        self.series: dict[str, Series] = {}
        #: why times are not recorded in this session (under callgrind they would mean nothing)
        self.untimed = untimed
        self.mode: Mode | None = None
        self.evidence: dict[str, Any] = {}
        #: metric -> why it cannot be checked here (e.g. "not checked on mongomock: ..."); such
        #: budgets are judged NOT_CHECKED (never a pass) by session.finish_test
        self.not_checked: dict[str, str] = dict(unrecorded or {})
        if untimed is not None:
            self.not_checked[TIME_SERIES] = untimed  # budgets on time are "not checked", never failed or passed
        self._declared = declared or {}

    def set_series(self, series: Series) -> None:
        if self.untimed is not None and series.name == TIME_SERIES:
            self.not_checked[TIME_SERIES] = self.untimed
            return
        self.not_checked.pop(series.name, None)
        self.series[series.name] = series

    def add_timing(self, result: timing.Timing, source: Mode, basis: LoopBasis | None = None) -> None:
        """The time series of ``result``; ``basis``: the calls were awaited, in that loop."""
        self.mode = source
        self.set_series(
            Series(
                TIME_SERIES,
                Kind.TIME,
                result.samples,
                loops=result.loops,
                source=source.value,  # plain values in results: they cross pytest-xdist
                awaited=basis.label if basis is not None else "",
                await_overhead=basis.overhead if basis is not None else 0.0,
            )
        )
        if basis is not None:
            self.evidence["awaited"] = basis.to_dict()

    def add_memory(self, reading: memory.PeakReading, source: Mode) -> None:
        self.set_series(Series(MEMORY_SERIES, Kind.SIZE, (float(reading.peak),), source=source.value))
        self.evidence["mem_retained"] = reading.retained

    def add_whole_call(self, elapsed: float, reading: memory.PeakReading | None) -> None:
        """The whole test call as one sample (no ``perf``/``benchmark`` fixture). A series a
        fixture recorded (one requested at run time) is kept: it is the better measurement."""
        if self.mode in FIXTURE_MODES:
            return
        self.mode = Mode.WHOLE_CALL
        self.set_series(Series(TIME_SERIES, Kind.TIME, (elapsed,), source=Mode.WHOLE_CALL.value))
        if reading is not None:
            self.add_memory(reading, Mode.WHOLE_CALL)
            # the time sample was taken under tracemalloc, which slows allocation-heavy code
            self.evidence["timed_under_tracemalloc"] = True
            if reading.sites:
                self.evidence["memory_sites_at_end"] = [
                    {"size": s.size, "count": s.count, "stack": list(s.stack)} for s in reading.sites
                ]

    def record(self, name: str, value: float, *, unit: str | None = None, higher_is_better: bool | None = None) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise MeasurementError(f"perf.record: metric name must be an identifier, got {name!r}")
        if metric_registry.get(name) is not None:
            raise MeasurementError(
                f"perf.record: '{name}' is a built-in metric measured by perfgate; choose another name"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MeasurementError(f"perf.record('{name}'): value must be a finite number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an int past the float range
            number = math.inf
        if not math.isfinite(number):
            shown = f"an integer of {value.bit_length()} bits" if isinstance(value, int) else repr(value)
            raise MeasurementError(
                f"perf.record('{name}'): value must be a finite number (within +-1.8e308), got {shown}"
            )
        declared = self._declared.get(name)
        kind, factor, label = Kind.NUMBER, 1.0, unit or ""
        try:
            known = record_unit(unit) if unit else None
        except UnitError as exc:
            raise MeasurementError(f"perf.record('{name}'): {exc}") from None
        if known is not None:
            (kind, factor), label = known, ""
        elif declared is not None and unit is None:
            kind, label = declared.kind, declared.unit
        if declared is not None and declared.kind is not Kind.NUMBER and kind not in (declared.kind, Kind.NUMBER):
            raise MeasurementError(
                f"perf.record('{name}'): declared in perfgate.yml as {declared.kind.value}, recorded with unit {unit!r}"
            )
        hib = higher_is_better
        if hib is None:
            hib = declared.higher_is_better if declared is not None else False
        previous = self.series.get(name)
        if previous is not None and previous.higher_is_better != hib:
            raise MeasurementError(f"perf.record('{name}'): higher_is_better changed between calls")
        scaled = number * factor
        if not math.isfinite(scaled):
            raise MeasurementError(
                f"perf.record('{name}'): {number!r} {unit} is past the float range in base units; "
                "record it in a larger unit"
            )
        if scaled < 0 and kind in _NON_NEGATIVE:
            raise MeasurementError(
                f"perf.record('{name}'): {value!r}{' ' + unit if unit else ''} is negative; a {kind.value} "
                "is 0 or above (record a signed figure without a unit, or with a custom unit)"
            )
        values = (previous.values if previous else ()) + (scaled,)
        self.set_series(Series(name, kind, values, higher_is_better=hib, unit=label, source="record"))


#: kinds that cannot be below 0: a negative figure is a bug in the test, not a measurement
_NON_NEGATIVE = (Kind.TIME, Kind.SIZE, Kind.RATE, Kind.COUNT)


class Perf:
    """The object behind the ``perf`` fixture.

    ``perf(fn, *args, **kwargs)`` times ``fn`` (calibrated loop, warm-up, rounds) and returns
    the result of its first call. A coroutine function, or a callable that returns an awaitable,
    is awaited: in a sync test on one event loop made for it; in an async test (a loop is running)
    with ``await perf.aio(fn, *args, **kwargs)``, in the test's loop.
    ``perf.record(name, value, unit=..., higher_is_better=...)`` records a figure of the test's own
    (page weight, hit ratio, ...).
    """

    def __init__(
        self,
        recorder: Recorder,
        settings: timing.TimingSettings,
        *,
        measure_memory: bool = False,
        enabled: bool = True,
        measure: Measure | None = None,
    ) -> None:
        self._recorder = recorder
        #: times the call (a session under callgrind does not: it calls it once, and counts it)
        self._timed = recorder.untimed is None
        self._settings = settings
        self._measure_memory = measure_memory
        self._enabled = enabled
        self._measure: Measure = measure or timing.measure
        self._measure_async: AsyncMeasure | None = getattr(measure, "aio", None)
        self._fn: Callable[[], Any] | None = None
        self._loop: OwnLoop | None = None
        #: ``perf.aio(fn)`` was called and its measurement has not finished (see :meth:`close`)
        self._pending: str | None = None
        #: the timed calls were awaited in the test's own loop (``perf.aio``)
        self._in_test_loop = False

    def _start(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], form: str) -> Callable[[], Any]:
        if not callable(fn):
            raise MeasurementError(f"{form}(...) needs a callable as first argument, got {type(fn).__name__}")
        if self._fn is not None:
            raise MeasurementError(
                f"{form}(...) was already called in this test; time one operation per test "
                "(split the test, or record other figures with perf.record)"
            )
        call: Callable[[], Any] = (lambda: fn(*args, **kwargs)) if (args or kwargs) else fn
        self._fn = call
        return call

    def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        call = self._start(fn, args, kwargs, "perf")
        from .measure import aio

        what = aio.name_of(fn)
        library = aio.running_library()
        if aio.is_async_callable(fn):
            if library is not None:
                raise MeasurementError(
                    f"perf({what}): {what} is a coroutine function and this test's {library} loop is running, "
                    f"so perf cannot await it from a plain call; write `await perf.aio({what}, ...)`"
                )
            return self._on_own_loop(call, what, None)
        # a callable may return an awaitable: its first call says (and is checked for coroutines it
        # created and dropped)
        first = _checked(call, what)
        if inspect.isawaitable(first):
            if library is not None:
                aio.close(first)
                raise MeasurementError(
                    f"perf({what}): {what} returned {type(first).__name__} '{aio.name_of(first)}', an awaitable "
                    f"perf was not told to await, and this test's {library} loop is running; write "
                    f"`await perf.aio({what}, ...)`"
                )
            return self._on_own_loop(call, what, first)
        if not self._enabled or not self._timed:
            return first
        result = self._measure(call, self._settings)
        if result.samples:  # none: the paired mode released this call unmeasured
            self._recorder.add_timing(result, Mode.PERF)
        if self._measure_memory:
            self._recorder.add_memory(memory.measure_peak(call), Mode.PERF)
        return result.result

    def _on_own_loop(self, call: Callable[[], Any], what: str, first: Awaitable[Any] | None) -> Any:
        """A sync test's awaited call: every call runs on one asyncio loop, closed with the test."""
        from .measure import aio

        loop = self._loop = aio.OwnLoop()
        self._fn = lambda: loop.call(call)  # what an evidence re-run runs
        if first is not None:
            result = _checked(lambda: loop.run(first), what)
        else:
            result = _checked(lambda: loop.call(call), what)
        if not self._enabled or not self._timed:
            return result
        measure = self._measure_async or aio.measure
        timed = loop.run(measure(call, self._settings))
        basis = loop.run(aio.basis("asyncio", "own loop"))
        if timed.samples:
            self._recorder.add_timing(timed, Mode.PERF, basis)
        if self._measure_memory:
            self._recorder.add_memory(memory.measure_peak(lambda: loop.call(call)), Mode.PERF)
        return timed.result

    def aio(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """``await perf.aio(fn, *args, **kwargs)`` in an async test: ``perf`` with every call of
        ``fn`` awaited in the test's running loop (asyncio, or trio under anyio). Returns what the
        first awaited call returned."""
        call = self._start(fn, args, kwargs, "perf.aio")
        from .measure import aio

        what = aio.name_of(fn)
        self._pending = what
        self._in_test_loop = True
        return self._aio(call, what)

    async def _aio(self, call: Callable[[], Any], what: str) -> Any:
        from .measure import aio

        library = aio.running_library() or "unknown"
        measured = self._measure_async or aio.measure

        async def first_call() -> Any:
            value = call()
            if not inspect.isawaitable(value):
                raise MeasurementError(
                    f"perf.aio({what}): {what} returned {type(value).__name__}, not an awaitable; "
                    f"time a plain call with perf({what}, ...)"
                )
            return await value

        try:
            with _watch() as caught:
                result = await first_call()
            coroutine = aio.never_awaited(caught)
            if coroutine:
                raise aio.unawaited_error(f"perf.aio({what})", coroutine)
            self._fn = _rerun_in(library, call)
            if not self._enabled:
                return result
            timed = await measured(call, self._settings)
            basis = await aio.basis(library, "test loop")
            if timed.samples:
                self._recorder.add_timing(timed, Mode.PERF, basis)
            if self._measure_memory:
                with memory.traced_peak() as reading:
                    await call()
                self._recorder.add_memory(reading[0], Mode.PERF)
            return timed.result
        finally:
            self._pending = None  # awaited to its end (or it raised: the test fails with that)

    def close(self) -> None:
        """The end of the test: close the loop of awaited calls; a ``perf.aio(...)`` never awaited
        (or interrupted) is an error (its call was not measured)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()
        pending, self._pending = self._pending, None
        if pending is not None:
            raise MeasurementError(
                f"perf.aio({pending}) was not awaited to its end, so {pending} was not measured; "
                f"write `await perf.aio({pending}, ...)`"
            )

    def record(self, name: str, value: float, *, unit: str | None = None, higher_is_better: bool | None = None) -> None:
        self._recorder.record(name, value, unit=unit, higher_is_better=higher_is_better)

    @property
    def awaited_in_test_loop(self) -> bool:
        """Whether the timed calls were awaited in the test's own loop (``perf.aio``): the
        measured callable then re-runs them on a loop of its own."""
        return self._in_test_loop

    @property
    def measured_callable(self) -> Callable[[], Any] | None:
        """What ``perf`` timed (for evidence collection on failure), or None."""
        return self._fn


@contextmanager
def _watch() -> Iterator[list[warnings.WarningMessage]]:
    """Record warnings, with "coroutine ... was never awaited" always recorded (also under
    ``-W error``, where it would only be printed as unraisable)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=".*was never awaited", category=RuntimeWarning)
        assert caught is not None
        yield caught


def _checked(call: Callable[[], Any], what: str) -> Any:
    """``call()``, failing when a coroutine was created in it and dropped without being awaited."""
    from .measure import aio

    with _watch() as caught:
        result = call()
    coroutine = aio.never_awaited(caught)
    if coroutine:
        aio.close(result)
        raise aio.unawaited_error(f"perf({what})", coroutine)
    return result


def _rerun_in(library: str, call: Callable[[], Any]) -> Callable[[], Any] | None:
    """One more awaited call for an evidence re-run after an async test's body: on the test's
    asyncio loop while it is open and idle, else on a fresh one; None under trio (no re-run)."""
    if library != "asyncio":
        return None
    import asyncio

    test_loop = asyncio.get_running_loop()

    async def once() -> Any:
        return await call()

    def rerun() -> Any:
        if not test_loop.is_closed() and not test_loop.is_running():
            return test_loop.run_until_complete(once())
        from .measure.aio import OwnLoop

        loop = OwnLoop()
        try:
            return loop.run(once())
        finally:
            loop.close()

    return rerun
