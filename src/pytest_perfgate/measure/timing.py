"""Calibrated, repeated timing of a callable.

1. **Calibrate**: double the loop count until one round (``loops`` calls) lasts at least
   ``min_round_time`` (and at least 1000x the timer's resolution), so that timer granularity
   is negligible. Functions slower than that run one call per round, so percentiles are
   per-call latencies.
2. **Warm up**: run rounds for ``warmup_time`` and discard them (caches, lazy imports,
   allocator pools, adaptive interpreter specialisation).
3. **Measure**: run rounds until both ``min_rounds`` rounds and ``max_time`` seconds are done,
   or ``max_rounds`` is reached. Each sample is the mean time of one call within one round.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..errors import MeasurementError

Timer = Callable[[], int]  # nanoseconds
_T = TypeVar("_T")


@dataclass(frozen=True)
class TimingSettings:
    min_rounds: int = 5
    max_rounds: int = 100_000
    max_time: float = 1.0
    min_round_time: float = 100e-6
    warmup_time: float = 0.05
    disable_gc: bool = False

    def __post_init__(self) -> None:
        if self.min_rounds < 1:
            raise MeasurementError(f"min_rounds must be at least 1, got {self.min_rounds}")
        if self.max_rounds < self.min_rounds:
            raise MeasurementError(f"max_rounds ({self.max_rounds}) is below min_rounds ({self.min_rounds})")
        if self.max_time < 0 or self.min_round_time <= 0 or self.warmup_time < 0:
            raise MeasurementError("max_time and warmup_time must be >= 0 and min_round_time > 0")


@dataclass(frozen=True)
class Timing:
    samples: tuple[float, ...]  # seconds per call, one per round
    loops: int
    warmup_rounds: int
    total_time: float  # seconds spent, calibration and warm-up included
    result: Any = None


def timer_resolution(timer: Timer = time.perf_counter_ns) -> float:
    """Smallest observable step of ``timer`` in seconds (measured, not the advertised value)."""
    best = None
    for _ in range(20):
        start = timer()
        now = timer()
        while now == start:
            now = timer()
        step = now - start
        best = step if best is None else min(best, step)
    return (best or 1) * 1e-9


def _round(fn: Callable[[], Any], loops: int, timer: Timer) -> int:
    loop_range = range(loops)
    start = timer()
    for _ in loop_range:
        fn()
    return timer() - start


#: a measurement's course, free of how a round runs: it yields the loop count of the next round
#: and is sent back that round's nanoseconds (:func:`drive` runs one; :mod:`.aio` awaits the rounds)
Plan = Generator[int, int, _T]


class Course(Generic[_T]):
    """Where a :data:`Plan` is: ``loops`` of the next round (None once it is over, then
    ``result``). A context manager: leaving it early (an error in a round) closes the plan, so its
    ``finally`` runs at once (the garbage collector is switched back on)."""

    def __init__(self, plan: Plan[_T]) -> None:
        self._plan = plan
        self.loops: int | None = None
        self._result: tuple[_T] | None = None
        self._advance(lambda: next(plan))

    def _advance(self, step: Callable[[], int]) -> None:
        try:
            self.loops = step()
        except StopIteration as stop:
            self.loops, self._result = None, (stop.value,)

    def send(self, elapsed_ns: int) -> None:
        """The last round lasted ``elapsed_ns``."""
        self._advance(lambda: self._plan.send(elapsed_ns))

    @property
    def result(self) -> _T:
        assert self._result is not None, "the plan is not over"
        return self._result[0]

    def __enter__(self) -> Course[_T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._plan.close()


def drive(plan: Plan[_T], run_round: Callable[[int], int]) -> _T:
    """Run ``plan``'s rounds with ``run_round(loops) -> ns``; what it returns."""
    with Course(plan) as course:
        while course.loops is not None:
            course.send(run_round(course.loops))
        return course.result


def calibration_plan(min_round_time: float, timer: Timer = time.perf_counter_ns) -> Plan[int]:
    """The smallest power-of-two loop count whose round lasts at least ``min_round_time``."""
    threshold_ns = calibration_threshold_ns(min_round_time, timer)
    loops: int | None = 1
    calibrated = 1
    while loops is not None:
        calibrated = loops
        loops = next_loops(loops, (yield loops), threshold_ns)
    return calibrated


def calibrate(fn: Callable[[], Any], min_round_time: float, timer: Timer = time.perf_counter_ns) -> int:
    """The smallest power-of-two loop count whose round lasts at least ``min_round_time``."""
    return drive(calibration_plan(min_round_time, timer), lambda loops: _round(fn, loops, timer))


def calibration_threshold_ns(min_round_time: float, timer: Timer = time.perf_counter_ns) -> float:
    """How long a calibrated round lasts at least, in nanoseconds."""
    return max(min_round_time, 1000 * timer_resolution(timer)) * 1e9


def next_loops(loops: int, elapsed_ns: int, threshold_ns: float) -> int | None:
    """The loop count to try after a round of ``loops`` calls lasted ``elapsed_ns``; None when
    ``loops`` is the calibrated count (shared by the plain and the awaited calibration)."""
    if elapsed_ns >= threshold_ns or loops >= 2**30:
        return None
    # jump close to the goal, then let the next round confirm it
    if elapsed_ns > 0:
        factor = max(2, min(1024, int(threshold_ns / elapsed_ns) + 1))
        return loops * (1 << (factor - 1).bit_length())
    return loops * 1024


def measure(
    fn: Callable[[], Any],
    settings: TimingSettings = TimingSettings(),
    *,
    timer: Timer = time.perf_counter_ns,
    loops: int | None = None,
) -> Timing:
    """Time ``fn`` (a callable taking no arguments). ``loops`` skips calibration (the paired
    A/B mode shares one calibration between both sides)."""
    started = timer()
    result = fn()  # the first call: its result is what the test gets back
    plan = measurement_plan(settings, timer, started, timer() - started, result, loops)
    return drive(plan, lambda loops: _round(fn, loops, timer))


def measurement_plan(
    settings: TimingSettings, timer: Timer, started: int, first_ns: int, result: Any, loops: int | None
) -> Plan[Timing]:
    """Calibration (unless ``loops`` is given), warm-up and the measured rounds, after a first call
    that started at ``started`` and lasted ``first_ns``."""
    if loops is None:
        # a call slower than the round time needs no calibration loop
        slow = first_ns >= settings.min_round_time * 1e9
        loops = 1 if slow else (yield from calibration_plan(settings.min_round_time, timer))
    gc_was_enabled = gc.isenabled()
    if settings.disable_gc:
        gc.disable()
    try:
        warmup_rounds = 0
        warm_start = timer()
        while (timer() - warm_start) < settings.warmup_time * 1e9:
            yield loops
            warmup_rounds += 1
        samples: list[float] = []
        measure_start = timer()
        budget_ns = settings.max_time * 1e9
        while len(samples) < settings.max_rounds:
            samples.append((yield loops) * 1e-9 / loops)
            if len(samples) >= settings.min_rounds and timer() - measure_start >= budget_ns:
                break
    finally:
        if settings.disable_gc and gc_was_enabled:
            gc.enable()
    return Timing(
        samples=tuple(samples),
        loops=loops,
        warmup_rounds=warmup_rounds,
        total_time=(timer() - started) * 1e-9,
        result=result,
    )
