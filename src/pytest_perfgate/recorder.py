"""Per-test recording: the ``perf`` object a test calls, and what it collected.

Pure (no pytest): :mod:`pytest_perfgate.plugin` creates one :class:`Recorder` per test, hands
the test a :class:`Perf`, and turns the recorder into a :class:`~pytest_perfgate.model.TestResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from . import metrics as metric_registry
from .errors import MeasurementError
from .measure import memory, timing
from .metrics import MEMORY_SERIES, TIME_SERIES, MetricDef
from .model import Series
from .units import Kind

# units a test may give perf.record(); anything else is kept as a free-form label
_RECORD_UNITS: dict[str, tuple[Kind, float]] = {
    "ns": (Kind.TIME, 1e-9),
    "us": (Kind.TIME, 1e-6),
    "ms": (Kind.TIME, 1e-3),
    "s": (Kind.TIME, 1.0),
    "B": (Kind.SIZE, 1),
    "kB": (Kind.SIZE, 1e3),
    "KB": (Kind.SIZE, 1e3),
    "MB": (Kind.SIZE, 1e6),
    "GB": (Kind.SIZE, 1e9),
    "KiB": (Kind.SIZE, 2**10),
    "MiB": (Kind.SIZE, 2**20),
    "GiB": (Kind.SIZE, 2**30),
    "/s": (Kind.RATE, 1.0),
    "rps": (Kind.RATE, 1.0),
    "%": (Kind.RATIO, 0.01),
    "ratio": (Kind.RATIO, 1.0),
    "count": (Kind.COUNT, 1.0),
}


#: how ``perf`` times a callable: :func:`~pytest_perfgate.measure.timing.measure`, or the paired
#: A/B worker's rounds driven by its controller
Measure = Callable[[Callable[[], Any], timing.TimingSettings], timing.Timing]

#: the paired A/B worker timed the test's body in rounds (no timing fixture)
CALL_ROUNDS = "call-rounds"
#: modes in which a fixture (or the paired worker) measured the test: the whole call is then not
#: timed over it
FIXTURE_MODES = ("perf", "benchmark", "load", CALL_ROUNDS)


class Recorder:
    """Mutable collector for one test; becomes frozen :class:`Series` at the end."""

    def __init__(self, declared: dict[str, MetricDef] | None = None) -> None:
        self.series: dict[str, Series] = {}
        self.mode: str | None = None
        self.evidence: dict[str, Any] = {}
        #: metric -> why it cannot be checked here (e.g. "not checked on mongomock: ..."); such
        #: budgets are judged NOT_CHECKED (never a pass) by session.finish_test
        self.not_checked: dict[str, str] = {}
        self._declared = declared or {}

    def set_series(self, series: Series) -> None:
        self.series[series.name] = series

    def add_timing(self, result: timing.Timing, source: str) -> None:
        self.mode = source
        self.set_series(Series(TIME_SERIES, Kind.TIME, result.samples, loops=result.loops, source=source))

    def add_memory(self, reading: memory.PeakReading, source: str) -> None:
        self.set_series(Series(MEMORY_SERIES, Kind.SIZE, (float(reading.peak),), source=source))
        self.evidence["mem_retained"] = reading.retained

    def add_whole_call(self, elapsed: float, reading: memory.PeakReading | None) -> None:
        """The whole test call as one sample (no ``perf``/``benchmark`` fixture). A series a
        fixture recorded (one requested at run time) is kept: it is the better measurement."""
        if self.mode in FIXTURE_MODES:
            return
        self.mode = "call"
        self.set_series(Series(TIME_SERIES, Kind.TIME, (elapsed,), source="call"))
        if reading is not None:
            self.add_memory(reading, "call")
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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MeasurementError(f"perf.record('{name}'): value must be a finite number, got {value!r}")
        declared = self._declared.get(name)
        kind, factor, label = Kind.NUMBER, 1.0, unit or ""
        if unit in _RECORD_UNITS:
            kind, factor = _RECORD_UNITS[unit]
            label = ""
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
        values = (previous.values if previous else ()) + (float(value) * factor,)
        self.set_series(Series(name, kind, values, higher_is_better=hib, unit=label, source="record"))


class Perf:
    """The object behind the ``perf`` fixture.

    ``perf(fn, *args, **kwargs)`` times ``fn`` (calibrated loop, warm-up, rounds) and returns
    the result of its first call. ``perf.record(name, value, unit=..., higher_is_better=...)``
    records a figure of the test's own (page weight, hit ratio, ...).
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
        self._settings = settings
        self._measure_memory = measure_memory
        self._enabled = enabled
        self._measure: Measure = measure or timing.measure
        self._fn: Callable[[], Any] | None = None

    def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not callable(fn):
            raise MeasurementError(f"perf(...) needs a callable as first argument, got {type(fn).__name__}")
        if self._fn is not None:
            raise MeasurementError(
                "perf(...) was already called in this test; time one operation per test "
                "(split the test, or record other figures with perf.record)"
            )
        call: Callable[[], Any] = (lambda: fn(*args, **kwargs)) if (args or kwargs) else fn
        self._fn = call
        if not self._enabled:
            return call()
        result = self._measure(call, self._settings)
        if result.samples:  # none: the paired mode released this call unmeasured
            self._recorder.add_timing(result, "perf")
        if self._measure_memory:
            self._recorder.add_memory(memory.measure_peak(call), "perf")
        return result.result

    def record(self, name: str, value: float, *, unit: str | None = None, higher_is_better: bool | None = None) -> None:
        self._recorder.record(name, value, unit=unit, higher_is_better=higher_is_better)

    @property
    def measured_callable(self) -> Callable[[], Any] | None:
        """What ``perf`` timed (for evidence collection on failure), or None."""
        return self._fn
