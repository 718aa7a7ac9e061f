"""Run one schedule: each operation in its own thread, exactly one operation running at a time.

An operation is known by a context variable, not by its thread: a database call made on its
behalf in another thread or task (a web framework's thread pool or event loop, which copy the
caller's context) is a scheduling point of that operation. A call the interception sees while a
schedule runs, from a context that carries no operation, *escaped* the scheduler: the schedule
records it (and the race fails with it) instead of letting an uncontrolled call pass silently.

Threads stop at *scheduling points* (an intercepted database call, ``race.point``, the start
of an operation); the chooser decides which waiting thread continues. A thread inside a
*releasable* call (a real server round trip, ``race.blocking()``) that has not returned after
``in_flight_after`` seconds is left in flight and another thread gets control, so a server-side
lock cannot deadlock the scheduler; when the call returns, the thread waits for its turn again.
When no thread can make progress within ``hang_timeout``, or the schedule outlives
``schedule_timeout``, the schedule ends as a hang with every thread's stack.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from .faults import Fault
from .strategies import Chooser
from .token import Choice
from .trace import START, PointInfo, Step, StepKind, Trace

T = TypeVar("T")


class _Aborted(BaseException):
    """Unwinds an operation thread whose schedule was abandoned (after a hang)."""


class _State(Enum):
    NEW = "new"
    WAITING = "waiting"
    RUNNING = "running"
    IN_FLIGHT = "in flight"
    DONE = "done"


@dataclass(frozen=True)
class Timing:
    hang_timeout: float = 5.0
    schedule_timeout: float = 30.0
    in_flight_after: float = 0.02
    max_steps: int = 20_000


@dataclass(frozen=True)
class Outcome:
    """One operation's invoke and result (the history entry)."""

    thread: int
    name: str
    invoke: int | None  # step at which it first ran
    response: int | None  # steps taken when it finished (None: it never finished)
    value: object = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.response is not None and self.error is None


@dataclass(frozen=True)
class Hang:
    reason: str
    stacks: tuple[tuple[str, str], ...]

    def format(self) -> str:
        parts = [self.reason]
        for name, stack in self.stacks:
            parts.append(f"--- {name}\n{stack.rstrip()}")
        return "\n".join(parts)


@dataclass(frozen=True)
class Execution:
    trace: Trace
    choices: tuple[Choice, ...]
    outcomes: tuple[Outcome, ...]
    hang: Hang | None
    #: database calls no operation made while the schedule ran (they were not scheduled)
    escapes: tuple[Escape, ...] = ()


@dataclass(frozen=True)
class Escape:
    """A database call made while a schedule ran, in a context that carries no race operation."""

    point: PointInfo
    thread: str  # the name of the thread that made it
    during: str  # the operation that had control then ("T1 delete_node"), or "" between operations

    def describe(self) -> str:
        during = f" while {self.during} ran" if self.during else ""
        return f"{self.point.describe()} in thread {self.thread!r}{during}"


class _Worker:
    def __init__(self, index: int, name: str, fn: Callable[[], object]) -> None:
        self.index = index
        self.name = name
        self.fn = fn
        self.state = _State.NEW
        self.pending: PointInfo = START
        self.returning = False
        self.fault: Fault | None = None
        self.releasable_since: float | None = None
        self.depth = 0
        self.value: object = None
        self.error: BaseException | None = None
        self.invoke: int | None = None
        self.response: int | None = None
        self.thread: threading.Thread | None = None
        #: the thread that last waited at a point for this operation (a web server's worker thread,
        #: an event loop's): shown in a hang's stacks next to the operation's own thread
        self.last_thread: threading.Thread | None = None
        self.wake: threading.Condition | None = None  # shares the schedule's lock
        #: set while the operation waits for its turn in a coroutine (an async driver's call): the
        #: future its event loop awaits, so the loop runs other operations' coroutines meanwhile
        self.async_wake: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    def notify(self) -> None:
        """Wake the operation wherever it waits (called with the schedule's lock held)."""
        assert self.wake is not None
        self.wake.notify()
        if self.async_wake is not None:
            loop, future = self.async_wake
            with suppress(RuntimeError):  # its loop closed: nothing waits there any more
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


#: the schedule and operation on whose behalf the code running in this context works; copied into
#: the threads and tasks the operation's code hands work to (anyio / starlette thread pools,
#: ``asyncio`` tasks, ``contextvars.copy_context().run``)
_ACTIVE: contextvars.ContextVar[tuple[Schedule, _Worker] | None] = contextvars.ContextVar(
    "perfgate_race_operation", default=None
)
#: the schedules running now (one per race.run in progress): where an escaped call is recorded
_RUNNING: list[Schedule] = []
_RUNNING_LOCK = threading.Lock()


class _PoolThread:
    """A reusable operation thread (starting an OS thread per operation per schedule costs more
    than the schedule itself). A thread left blocked by a hang never comes back to the pool."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="perfgate-race-worker", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            job()
            self.pool.give_back(self)


class _Pool:
    def __init__(self, keep: int = 32) -> None:
        self.keep = keep
        self.lock = threading.Lock()
        self.idle: list[_PoolThread] = []

    def take(self) -> _PoolThread:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return _PoolThread(self)

    def give_back(self, thread: _PoolThread) -> None:
        with self.lock:
            if len(self.idle) < self.keep:
                self.idle.append(thread)
                return
        # more than we keep: let this one end  # pragma: no cover
        thread.jobs.put(_stop)


def _stop() -> None:
    raise SystemExit  # ends a surplus pool thread quietly


POOL = _Pool()


def current() -> tuple[Schedule, _Worker] | None:
    """The schedule and operation the calling code works for, when a race operation runs it
    (in the operation's own thread, or in a thread or task that copied its context)."""
    active = _ACTIVE.get()
    if active is None or active[0].aborted or active[1].state is _State.DONE:
        return None
    return active


def escaped(point: PointInfo) -> None:
    """Record a database call that no race operation made while a schedule runs (see :class:`Escape`)."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    thread = threading.current_thread().name
    for schedule in running:
        schedule.escape(point, thread)


class Schedule:
    def __init__(
        self,
        operations: Sequence[tuple[str, Callable[[], object]]],
        chooser: Chooser,
        *,
        faults: Sequence[Fault] = (),
        timing: Timing = Timing(),
    ) -> None:
        self.workers = [_Worker(i, name, fn) for i, (name, fn) in enumerate(operations)]
        self.chooser = chooser
        self.faults = tuple(faults)
        self.faults_left = [fault.times for fault in faults]
        self.timing = timing
        self.cond = threading.Condition()  # the scheduler waits on it; workers on their own `wake`
        for worker in self.workers:
            worker.wake = threading.Condition(self.cond._lock)  # type: ignore[attr-defined]
        self.aborted = False
        self.steps: list[Step] = []
        self.choices: list[Choice] = []
        self.escapes: list[Escape] = []
        self._running: _Worker | None = None

    # ------------------------------------------------------------------ operation threads

    def escape(self, point: PointInfo, thread: str) -> None:
        running = self._running
        during = f"T{running.index} {running.name}" if running is not None else ""
        with self.cond:
            self.escapes.append(Escape(point, thread, during))

    def _body(self, worker: _Worker) -> None:
        token = _ACTIVE.set((self, worker))
        try:
            self._wait_turn(worker, START)
            worker.value = worker.fn()
        except _Aborted:
            return
        except BaseException as exc:  # recorded: the history and the failure show it
            worker.error = exc
        finally:
            _ACTIVE.reset(token)
            with self.cond:
                if not self.aborted:
                    worker.state = _State.DONE
                    worker.response = len(self.steps)
                    self.cond.notify()

    def _wait_turn(self, worker: _Worker, point: PointInfo, *, returning: bool = False) -> Fault | None:
        with self.cond:
            worker.last_thread = threading.current_thread()
            worker.pending = point
            worker.returning = returning
            worker.state = _State.WAITING
            self.cond.notify()
            assert worker.wake is not None
            while worker.state is not _State.RUNNING and not self.aborted:
                worker.wake.wait()
            if self.aborted:
                raise _Aborted
            fault, worker.fault = worker.fault, None
            return fault

    def point(self, worker: _Worker, point: PointInfo) -> None:
        """An explicit scheduling point (``race.point``); a fault may be injected here."""
        if worker.depth:
            return
        fault = self._wait_turn(worker, point)
        if fault is not None:
            raise fault.error()

    def call(self, worker: _Worker, point: PointInfo, fn: Callable[[], T], *, releasable: bool) -> T:
        """An intercepted call: a scheduling point, then the call, atomic unless released."""
        if worker.depth:
            return fn()  # nested inside another intercepted call: that call is the one point
        fault = self._wait_turn(worker, point)
        if fault is not None and not fault.after:
            raise fault.error()
        worker.depth += 1
        try:
            if releasable:
                with self._releasable(worker, point):
                    result = fn()
            else:
                result = fn()
        finally:
            worker.depth -= 1
        if fault is not None:
            raise fault.error()
        return result

    async def _await_turn(self, worker: _Worker, point: PointInfo, *, returning: bool = False) -> Fault | None:
        """:meth:`_wait_turn` for a coroutine: its event loop is not blocked meanwhile (other
        operations' coroutines on the same loop reach their own points)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self.cond:
            worker.last_thread = threading.current_thread()
            worker.pending = point
            worker.returning = returning
            worker.state = _State.WAITING
            worker.async_wake = (loop, future)
            self.cond.notify()
        try:
            while True:
                await future
                with self.cond:
                    if worker.state is _State.RUNNING or self.aborted:
                        break
                    future = loop.create_future()
                    worker.async_wake = (loop, future)
        finally:
            with self.cond:
                worker.async_wake = None
        if self.aborted:
            raise _Aborted
        fault, worker.fault = worker.fault, None
        return fault

    async def acall(
        self, worker: _Worker, point: PointInfo, make: Callable[[], Awaitable[T]], *, releasable: bool
    ) -> T:
        """:meth:`call` for an awaited call (an async driver's): the same point, fault and release."""
        if worker.depth:
            return await make()
        fault = await self._await_turn(worker, point)
        if fault is not None and not fault.after:
            raise fault.error()
        worker.depth += 1
        released = False
        try:
            if releasable:
                with self.cond:
                    worker.releasable_since = time.monotonic()
                    self.cond.notify()
                try:
                    result = await make()
                finally:
                    with self.cond:
                        worker.releasable_since = None
                        released = worker.state is _State.IN_FLIGHT
                        self.cond.notify()
            else:
                result = await make()
        finally:
            worker.depth -= 1
        if released:
            await self._await_turn(worker, point, returning=True)
        if fault is not None:
            raise fault.error()
        return result

    @contextmanager
    def _releasable(self, worker: _Worker, point: PointInfo) -> Iterator[None]:
        with self.cond:
            worker.releasable_since = time.monotonic()
            self.cond.notify()  # the scheduler must start timing this call now
        try:
            yield
        finally:
            with self.cond:
                worker.releasable_since = None
                released = worker.state is _State.IN_FLIGHT
                self.cond.notify()
            if released:
                self._wait_turn(worker, point, returning=True)

    @contextmanager
    def blocking(self, worker: _Worker, point: PointInfo) -> Iterator[None]:
        """A region where the thread may wait for another operation (a lock, a queue)."""
        worker.depth += 1
        try:
            with self._releasable(worker, point):
                yield
        finally:
            worker.depth -= 1

    # ------------------------------------------------------------------ the scheduler

    def run(self) -> Execution:
        with _RUNNING_LOCK:
            _RUNNING.append(self)
        try:
            return self._run()
        finally:
            with _RUNNING_LOCK:
                _RUNNING.remove(self)

    def _run(self) -> Execution:
        timing = self.timing
        start = time.monotonic()
        deadline = start + timing.schedule_timeout
        hang: Hang | None = None
        with self.cond:
            for worker in self.workers:
                pooled = POOL.take()
                worker.thread = pooled.thread
                pooled.jobs.put(functools.partial(self._body, worker))
            running: _Worker | None = None
            last = None  # the thread that ran last (for preemption accounting)
            progress = time.monotonic()
            while hang is None:
                now = time.monotonic()
                if now >= deadline:
                    hang = self._hang(f"the schedule exceeded its time limit ({timing.schedule_timeout:g}s)")
                    break
                if running is not None and running.state is _State.RUNNING:
                    since = running.releasable_since
                    if since is not None and now - since >= timing.in_flight_after:
                        running.state = _State.IN_FLIGHT
                        self.steps.append(Step(len(self.steps), running.index, running.pending, StepKind.RELEASE))
                        running = None
                        progress = now
                        continue
                    if since is None and now - progress >= timing.hang_timeout:
                        hang = self._hang(
                            f"T{running.index} {running.name} has run for {timing.hang_timeout:g}s without reaching a "
                            "scheduling point: it is blocked outside the scheduler's control (waiting for another "
                            "operation? wrap that wait in race.blocking()) or it loops"
                        )
                        break
                    wake = min(deadline, progress + timing.hang_timeout)
                    if since is not None:
                        wake = min(wake, since + timing.in_flight_after)
                    self.cond.wait(max(wake - now, 0.0005))
                    continue
                if any(w.state is _State.NEW for w in self.workers):
                    self.cond.wait(0.05)
                    continue
                enabled = [w.index for w in self.workers if w.state is _State.WAITING]
                if not enabled:
                    if all(w.state is _State.DONE for w in self.workers):
                        break
                    if now - progress >= timing.hang_timeout:
                        hang = self._hang(
                            f"deadlock: every unfinished thread has been blocked outside the scheduler's control "
                            f"(in flight) for {timing.hang_timeout:g}s"
                        )
                        break
                    self.cond.wait(max(min(deadline, progress + timing.hang_timeout) - now, 0.0005))
                    continue
                if len(self.steps) >= timing.max_steps:
                    limit = timing.max_steps
                    hang = self._hang(f"the schedule exceeded {limit} steps (a livelock or an endless loop?)")
                    break
                step = len(self.choices)
                current = last if last is not None and self.workers[last].state is _State.WAITING else None
                chosen = self.chooser.choose(step, enabled, current)
                worker = self.workers[chosen]
                fault = None if worker.returning else self._fault_for(worker.pending, step)
                worker.fault = fault
                self.choices.append(Choice(chosen, fault is not None))
                kind = StepKind.RETURN if worker.returning else StepKind.RUN
                self.steps.append(
                    Step(
                        len(self.steps),
                        chosen,
                        worker.pending,
                        kind,
                        preemption=current is not None and chosen != current,
                        fault=fault.label if fault else None,
                    )
                )
                if worker.invoke is None:
                    worker.invoke = len(self.steps) - 1
                worker.state = _State.RUNNING
                running = self._running = worker
                last = chosen
                progress = time.monotonic()
                worker.notify()
            if hang is not None:
                self.aborted = True
                for worker in self.workers:
                    worker.notify()
        trace = Trace(tuple(w.name for w in self.workers), tuple(self.steps))
        outcomes = tuple(
            Outcome(w.index, w.name, w.invoke, w.response if hang is None else None, w.value, w.error)
            for w in self.workers
        )
        return Execution(trace, tuple(self.choices), outcomes, hang, tuple(self.escapes))

    def _fault_for(self, point: PointInfo, step: int) -> Fault | None:
        """One decision per point (fire or not), so a token's flag replays it: the first matching
        fault with uses left fires."""
        matching = [i for i, fault in enumerate(self.faults) if self.faults_left[i] > 0 and fault.matches(point)]
        if not matching or not self.chooser.inject(step, max(self.faults[i].probability for i in matching)):
            return None
        self.faults_left[matching[0]] -= 1
        return self.faults[matching[0]]

    def _hang(self, reason: str) -> Hang:
        frames = sys._current_frames()
        stacks = []
        for worker in self.workers:
            title = f"T{worker.index} {worker.name} ({worker.state.value})"
            threads = [worker.thread]
            if worker.last_thread is not None and worker.last_thread is not worker.thread:
                threads.append(worker.last_thread)  # where its last point was (a server's worker thread)
            for n, thread in enumerate(threads):
                frame = frames.get(thread.ident) if thread is not None and thread.ident is not None else None
                text = "".join(traceback.format_stack(frame)) if frame is not None else "(finished)\n"
                name = title if n == 0 else f"{title}, in thread {thread.name!r}"  # type: ignore[union-attr]
                stacks.append((name, text))
        return Hang(reason, tuple(stacks))
