"""The object behind the ``race`` fixture (pytest-free: usable from any test runner)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import RaceError, RaceFailure
from .faults import Fault
from .history import OpCall
from .intercept import intercepting
from .runner import Problem, RaceConfig, RaceReport, explore, format_failure
from .scheduler import current
from .token import MAX_THREADS, ReplayToken
from .trace import PointInfo

#: race.run keyword arguments that override the configuration, and the RaceConfig/Timing field each sets
CONFIG_KEYS = ("strategy", "schedules", "seconds", "seed", "depth", "preemption_bound", "shrink")
TIMING_KEYS = ("hang_timeout", "schedule_timeout", "in_flight_after")


def _name_of(fn: Callable[..., object], index: int) -> str:
    name = getattr(fn, "__name__", "")
    if name and name != "<lambda>":
        return name
    code = getattr(fn, "__code__", None)
    names = getattr(code, "co_names", ())
    return names[-1] if names else f"op{index}"


def as_call(operation: object, index: int) -> OpCall:
    if isinstance(operation, OpCall):
        return operation
    if not callable(operation):
        raise RaceError(
            f"race.run operation {index} is {operation!r}; accepted: a callable taking no arguments, "
            "or race.op(name, fn, *args)"
        )
    return OpCall(_name_of(operation, index), operation)


def _check_expected(expected: object) -> tuple[type[BaseException], ...]:
    items = expected if isinstance(expected, tuple) else (expected,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise RaceError(f"race.run expected={expected!r}: accepted an exception class or a tuple of them")
    return items  # type: ignore[return-value]


class Race:
    """Run operations concurrently under a controlled, seeded scheduler.

    ``defaults`` come from the ``race`` marker and the command line; ``replay`` (a decoded token)
    makes the matching ``run`` call replay exactly that schedule; ``replay_command`` turns a token
    into a one-line command for failure messages.
    """

    def __init__(
        self,
        defaults: RaceConfig | None = None,
        *,
        replay: ReplayToken | None = None,
        replay_command: Callable[[str], str] | None = None,
        forced_seed: int | None = None,
    ) -> None:
        self.defaults = defaults or RaceConfig()
        self.forced_seed = forced_seed  # a seed from the command line wins over markers and arguments
        self.replay = replay
        self.replay_command = replay_command
        self.reports: list[RaceReport] = []
        self._setup: Callable[[], object] | None = None
        self.replay_used = False

    def unused_replay(self) -> str:
        """Why the replay token given was never used by this test ("" when it was, or none was given)."""
        if self.replay is None or self.replay_used:
            return ""
        made = len(self.reports)
        return (
            f"the replay token {self.replay.encode()} is for race.run call #{self.replay.run + 1} of its test, "
            f"but this test made {made} race.run call{'s' if made != 1 else ''}: was it printed by another test "
            "(run the replay command with its node id), or did the test change?"
        )

    # ------------------------------------------------------------------ helpers for operations

    @staticmethod
    def op(
        name: str,
        fn: Callable[..., object],
        *args: object,
        expected: type[BaseException] | tuple[type[BaseException], ...] = (),
        atomic: bool = False,
        **kwargs: object,
    ) -> OpCall:
        """An operation with a name and arguments (needed for a sequential ``model``);
        ``expected`` exceptions are a legitimate result of this operation, not a failure;
        ``atomic``: it is meant to make no scheduling point (otherwise an operation that never
        reaches one fails the run: its database calls were not seen)."""
        if not isinstance(name, str) or not name:
            raise RaceError(f"race.op name {name!r}: accepted a non-empty string (the operation's name)")
        if not callable(fn):
            raise RaceError(f"race.op({name!r}, {fn!r}): accepted a callable as the second argument")
        return OpCall(name, fn, tuple(args), dict(kwargs), _check_expected(expected), atomic=bool(atomic))

    @staticmethod
    def point(label: str) -> None:
        """An explicit scheduling point (shared state that is not MongoDB: a cache, an HTTP call).
        Outside a race run it does nothing."""
        active = current()
        if active is not None:
            active[0].point(active[1], PointInfo(str(label)))

    @staticmethod
    @contextmanager
    def blocking(label: str = "blocking wait") -> Iterator[None]:
        """Mark a wait that depends on another operation (a lock, a queue): if it does not return
        at once, the scheduler lets other operations run meanwhile."""
        active = current()
        if active is None:
            yield
            return
        with active[0].blocking(active[1], PointInfo(str(label))):
            yield

    def reset(self, setup: Callable[[], object]) -> None:
        """The default ``setup`` for this test's ``run`` calls (a fixture-level reset)."""
        if not callable(setup):
            raise RaceError(f"race.reset({setup!r}): accepted a callable that restores the initial state")
        self._setup = setup

    # ------------------------------------------------------------------ running

    def config(self, **overrides: Any) -> RaceConfig:
        if self.forced_seed is not None:
            overrides["seed"] = self.forced_seed
        unknown = sorted(set(overrides) - set(CONFIG_KEYS) - set(TIMING_KEYS))
        if unknown:
            raise RaceError(
                f"race.run got unknown argument(s) {', '.join(unknown)}; accepted: "
                f"invariant, setup, model, expected, faults, {', '.join(CONFIG_KEYS + TIMING_KEYS)}"
            )
        given = dict(overrides)
        timing_values: dict[str, Any] = {}
        for key in TIMING_KEYS:
            if key in given:
                value = given.pop(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise RaceError(f"race.run {key}={value!r}: accepted a positive number of seconds")
                timing_values[key] = float(value)
        timing = dataclasses.replace(self.defaults.timing, **timing_values)
        return dataclasses.replace(self.defaults, timing=timing, **given)

    def run(
        self,
        *operations: object,
        invariant: Callable[[], object] | None = None,
        setup: Callable[[], object] | None = None,
        model: Callable[[], object] | None = None,
        expected: type[BaseException] | tuple[type[BaseException], ...] = (),
        faults: Iterable[Fault] = (),
        **options: Any,
    ) -> RaceReport:
        """Explore interleavings of ``operations``; raise :class:`RaceFailure` with the evidence
        when one fails (an unexpected exception, ``invariant`` raising or returning False, or a
        history that ``model`` cannot explain). Returns the report when none does."""
        if len(operations) > MAX_THREADS:
            raise RaceError(f"race.run got {len(operations)} operations; accepted at most {MAX_THREADS}")
        calls = tuple(as_call(op, i) for i, op in enumerate(operations))
        for name, value in (("invariant", invariant), ("setup", setup), ("model", model)):
            if value is not None and not callable(value):
                raise RaceError(f"race.run {name}={value!r}: accepted a callable")
        fault_list = tuple(faults)
        for fault in fault_list:
            if not isinstance(fault, Fault):
                raise RaceError(
                    f"race.run faults: {fault!r} is not a Fault; accepted: pytest_perfgate.race.Fault(...), "
                    "auto_reconnect(...) or transient_transaction_error(...)"
                )
        config = self.config(**options)
        problem = Problem(calls, invariant, setup or self._setup, model, _check_expected(expected), fault_list)
        index = len(self.reports)
        replay = self.replay if self.replay is not None and self.replay.run == index else None
        if replay is not None:
            self.replay_used = True
        with intercepting():
            report = explore(problem, config, run=index, replay=replay)
        self.reports.append(report)
        if report.failure is not None:
            command = self.replay_command(report.failure.token) if self.replay_command else None
            raise RaceFailure(format_failure(report, command), report)
        return report
