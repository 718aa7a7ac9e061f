"""Awaited timing: ``perf`` on coroutine functions and on callables that return awaitables.

The rounds are those of :mod:`~pytest_perfgate.measure.timing` (calibration, warm-up, rounds),
but each call is awaited inside one coroutine that runs the whole measurement: in an async test
that coroutine is awaited in the test's own running loop (``await perf.aio(fn)``); in a sync test
it runs on **one** asyncio loop made for the call and closed with the test (never a loop per
call: ``loop.run_until_complete`` per call would add a task and a loop turn, ~20-40 us, to every
call). A call that never suspends costs its own work plus one ``await``; a call that suspends
(I/O, ``asyncio.sleep``) also pays the loop's turns, which are part of its latency.

What the awaited rounds add is measured and reported with the samples (:class:`LoopBasis`):
the cost of awaiting an empty coroutine in the same round loop, and one turn of the loop.

Nothing here imports asyncio or trio until it is used (a session that does not time async code
pays nothing); the module itself is imported only by ``perf``.
"""

from __future__ import annotations

import inspect
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import MeasurementError
from . import timing

AsyncCall = Callable[[], Awaitable[Any]]
_T = TypeVar("_T")

_DEFAULTS = timing.TimingSettings()
#: the words of CPython's warning for a coroutine object destroyed without being awaited
_NEVER_AWAITED = "was never awaited"


@dataclass(frozen=True)
class LoopBasis:
    """What awaiting a call in the measured rounds costs by itself (not subtracted from the samples)."""

    library: str  # "asyncio" or "trio": what ran the awaits
    where: str  # "test loop" (the async test's running loop) or "own loop" (one loop for every round)
    overhead: float  # seconds per call: awaiting an empty coroutine in the same round loop
    turn: float | None  # seconds: one turn of the loop (``await asyncio.sleep(0)``), None if unknown

    @property
    def label(self) -> str:
        """How the calls were awaited, for the basis column (``the test's asyncio loop``)."""
        return f"the test's {self.library} loop" if self.where == "test loop" else f"one {self.library} loop"

    def to_dict(self) -> dict[str, Any]:
        return {"library": self.library, "where": self.where, "overhead": self.overhead, "turn": self.turn}


def name_of(fn: Any) -> str:
    """The name an error gives for ``fn`` (``slow_io``, ``Client.get``, ``partial(fetch)``)."""
    inner = fn
    while hasattr(inner, "func"):  # functools.partial
        inner = inner.func
    name = getattr(inner, "__qualname__", None) or getattr(type(inner), "__qualname__", None) or repr(inner)
    name = str(name).rpartition("<locals>.")[2]  # a function defined in a test: its own name
    return f"partial({name})" if inner is not fn else name


def is_async_callable(fn: Any) -> bool:
    """A coroutine function (also behind ``functools.partial``, or an object with ``async def __call__``)."""
    if inspect.iscoroutinefunction(fn):
        return True
    dunder = type(fn).__dict__.get("__call__") or next(
        (klass.__dict__["__call__"] for klass in type(fn).__mro__ if "__call__" in klass.__dict__), None
    )
    return not inspect.isfunction(fn) and dunder is not None and inspect.iscoroutinefunction(dunder)


def running_library() -> str | None:
    """The async library whose loop runs in this thread right now ("asyncio", "trio"), or None."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
            return "asyncio"
        except RuntimeError:
            pass
    trio = sys.modules.get("trio")
    if trio is not None:
        in_run = getattr(getattr(trio, "lowlevel", None), "in_trio_run", None)
        if in_run is not None and in_run():
            return "trio"
    return None


def never_awaited(caught: list[warnings.WarningMessage]) -> str | None:
    """The first "coroutine '...' was never awaited" among ``caught``, or None; the other warnings
    are shown again as they would have been."""
    found = None
    for message in caught:
        text = str(message.message)
        if found is None and issubclass(message.category, RuntimeWarning) and _NEVER_AWAITED in text:
            found = text
            continue
        warnings.warn_explicit(message.message, message.category, message.filename, message.lineno)
    return found


def unawaited_error(form: str, coroutine: str) -> MeasurementError:
    """``form``: how perf was called (``perf(handler)``); ``coroutine``: CPython's warning text."""
    return MeasurementError(
        f"{form}: {coroutine} inside the measured call; perf would time a call that skips that "
        "work. Await it in the code under test (perf awaits a coroutine function it is given)"
    )


def close(value: Any) -> None:
    """Close a coroutine that will not be awaited (no 'never awaited' warning for it)."""
    closer = getattr(value, "close", None)
    if inspect.iscoroutine(value) and closer is not None:
        closer()


async def _round(call: AsyncCall, loops: int, timer: timing.Timer) -> int:
    loop_range = range(loops)
    start = timer()
    for _ in loop_range:
        await call()
    return timer() - start


async def _drive(plan: timing.Plan[_T], call: AsyncCall, timer: timing.Timer) -> _T:
    """:func:`~pytest_perfgate.measure.timing.drive`, with every round awaited."""
    with timing.Course(plan) as course:
        while course.loops is not None:
            course.send(await _round(call, course.loops, timer))
        return course.result


async def calibrate(call: AsyncCall, min_round_time: float, timer: timing.Timer = time.perf_counter_ns) -> int:
    """:func:`~pytest_perfgate.measure.timing.calibrate`, with every call awaited."""
    return await _drive(timing.calibration_plan(min_round_time, timer), call, timer)


async def measure(
    call: AsyncCall,
    settings: timing.TimingSettings = _DEFAULTS,
    *,
    timer: timing.Timer = time.perf_counter_ns,
    loops: int | None = None,
) -> timing.Timing:
    """:func:`~pytest_perfgate.measure.timing.measure` with every call awaited, in the running loop."""
    started = timer()
    result = await call()  # the first call: its result is what the test gets back
    plan = timing.measurement_plan(settings, timer, started, timer() - started, result, loops)
    return await _drive(plan, call, timer)


async def _empty() -> None:
    return None


async def basis(library: str, where: str, *, timer: timing.Timer = time.perf_counter_ns) -> LoopBasis:
    """Measure the awaited rounds' own cost in the running loop: an empty coroutine awaited 1000
    times a round, and one loop turn (200 a round), each the median of 7 rounds (~10 ms in all)."""
    empty = [await _round(_empty, 1000, timer) / 1000 for _ in range(7)]
    turn: float | None = None
    checkpoint: AsyncCall | None = None
    if library == "asyncio":
        import asyncio

        def checkpoint() -> Awaitable[None]:
            return asyncio.sleep(0)
    elif library == "trio":
        import trio

        checkpoint = trio.lowlevel.checkpoint
    if checkpoint is not None:
        turn = statistics.median([await _round(checkpoint, 200, timer) / 200 for _ in range(7)]) * 1e-9
    return LoopBasis(library=library, where=where, overhead=statistics.median(empty) * 1e-9, turn=turn)


class OwnLoop:
    """One asyncio event loop for every awaited call of a sync test's ``perf`` (made once, closed
    with the test): the first call, the rounds, the memory run and the evidence re-runs."""

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    def call(self, call: AsyncCall) -> Any:
        async def once() -> Any:
            return await call()

        return self.loop.run_until_complete(once())

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
