"""Unit tests of the pure race core: tokens, shapes, strategies, scheduler, histories, patching."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import mongomock
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_perfgate.errors import RaceError
from pytest_perfgate.race import Race, RaceFailure, Timing, decode
from pytest_perfgate.race.history import OpCall, serial_order
from pytest_perfgate.race.intercept import INTERCEPTOR, intercepting
from pytest_perfgate.race.scheduler import Outcome, Schedule
from pytest_perfgate.race.strategies import Guided, Replay
from pytest_perfgate.race.token import Choice, ReplayToken
from pytest_perfgate.race.trace import StepKind, shape_of

# --------------------------------------------------------------------------- tokens and shapes


def test_token_round_trip_keeps_threads_and_faults() -> None:
    token = ReplayToken(1, 3, (Choice(0), Choice(2, True), Choice(1)), "ab12")
    assert token.encode() == "v1-1-3-02_1-ab12"
    assert decode(token.encode()) == token


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage", "replay token 'garbage' does not parse; expected a token printed by a failing race test"),
        ("v1-0-2-0121-ab12", "replay token 'v1-0-2-0121-ab12': '2' is not a thread of 2"),
        ("v1-0-2-_01-ab12", "replay token 'v1-0-2-_01-ab12': misplaced '_'"),
        ("v1-0-0--ab12", "0 threads; accepted 1 to 36"),
    ],
)
def test_bad_tokens_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(RaceError) as raised:
        decode(text)
    assert message in str(raised.value)


def test_filter_shape_keeps_keys_and_operators_only() -> None:
    assert shape_of({"_id": "n2", "refs": {"$gt": 0}}) == "{_id: ?, refs: {$gt: ?}}"
    assert shape_of({"$or": [{"src": "n2"}, {"dst": "n2"}]}) == "{$or: [{src: ?}, {dst: ?}]}"
    assert shape_of({"_id": {"$in": ["a", "b"]}}) == "{_id: {$in: [?]}}"


# --------------------------------------------------------------------------- strategies


def _two_steppers(log: list[str]) -> tuple[Callable[[], None], Callable[[], None]]:
    def op(name: str) -> Callable[[], None]:
        def run() -> None:
            log.append(name + "1")
            Race.point(f"{name} middle")
            log.append(name + "2")

        run.__name__ = name
        return run

    return op("a"), op("b")


def test_exhaustive_enumerates_every_interleaving_exactly_once() -> None:
    log: list[str] = []
    orders: set[str] = set()

    def record() -> None:
        orders.add("".join(log))
        log.clear()

    report = Race().run(*_two_steppers(log), strategy="exhaustive", preemption_bound=None, invariant=record)
    # two threads of two steps each (start, one point): C(4, 2) = 6 interleavings
    assert report.complete and not report.bounded and report.distinct == 6 and report.schedules == 6
    # the log sees the 4 orders of the four half-operations that the points allow
    assert orders == {"a1a2b1b2", "a1b1a2b2", "a1b1b2a2", "b1a1a2b2", "b1a1b2a2", "b1b2a1a2"}
    assert (
        report.summary()
        == "all 6 interleavings explored; the invariant holds in every one (exhaustive, no preemption bound)"
    )


def test_exhaustive_preemption_bound_zero_runs_threads_to_completion() -> None:
    log: list[str] = []
    report = Race().run(*_two_steppers(log), strategy="exhaustive", preemption_bound=0)
    assert report.complete and report.bounded and report.distinct == 2
    assert "all 2 interleavings with at most 0 preemption(s) explored" in report.summary()


def test_pct_depth_one_never_preempts_and_random_walk_does() -> None:
    log: list[str] = []
    pct = Race().run(*_two_steppers(log), strategy="pct", depth=1, schedules=40, seed=7)
    walk = Race().run(*_two_steppers(log), strategy="random", schedules=40, seed=7)
    assert pct.distinct == 2  # only "a then b" and "b then a": priorities never change
    assert walk.distinct == 6


def test_time_budget_stops_exploration_and_says_so() -> None:
    def slow() -> None:
        time.sleep(0.02)
        Race.point("after sleep")

    report = Race().run(slow, slow, schedules=1000, seconds=0.2)
    assert report.stopped == "time budget" and 1 <= report.schedules < 1000
    assert report.summary().endswith("(random walk, seed 0; stopped: time budget); no failure")


def test_fixture_level_reset_is_the_default_setup() -> None:
    state = {"n": 0, "resets": 0}

    def reset() -> None:
        state["n"] = 0
        state["resets"] += 1

    def bump() -> None:
        state["n"] += 1
        Race.point("bumped")

    race = Race()
    race.reset(reset)
    report = race.run(bump, bump, invariant=lambda: state["n"] == 2, schedules=10)
    assert report.failure is None and state["resets"] == 10


def test_same_seed_same_schedules_other_seed_other_schedules() -> None:
    def choices(seed: int) -> list[str]:
        seen: list[str] = []
        log: list[str] = []

        def record() -> None:
            seen.append("".join(log))
            log.clear()

        Race().run(*_two_steppers(log), seed=seed, schedules=12, invariant=record)
        return seen

    assert choices(5) == choices(5)
    assert choices(5) != choices(6)


def test_config_rejects_unknown_arguments_and_bad_values() -> None:
    with pytest.raises(RaceError, match=r"unknown argument\(s\) schedule; accepted: invariant, setup"):
        Race().run(lambda: None, schedule=3)
    with pytest.raises(RaceError, match="strategy 'dfs' is not known; accepted: random, pct, exhaustive"):
        Race().run(lambda: None, strategy="dfs")
    with pytest.raises(RaceError, match=r"race\.run hang_timeout=0: accepted a positive number of seconds"):
        Race().run(lambda: None, hang_timeout=0)
    with pytest.raises(RaceError, match=r"race\.run operation 1 is 3; accepted: a callable"):
        Race().run(lambda: None, 3)


# --------------------------------------------------------------------------- scheduler


def _first(thread: int) -> Guided:
    return Guided([Choice(thread)])


def test_only_one_operation_thread_runs_at_a_time() -> None:
    inside = {"now": 0, "max": 0}
    lock = threading.Lock()

    def op() -> None:
        for i in range(5):
            with lock:
                inside["now"] += 1
                inside["max"] = max(inside["max"], inside["now"])
            time.sleep(0.001)
            with lock:
                inside["now"] -= 1
            Race.point(f"p{i}")

    report = Race().run(op, op, op, schedules=20)
    assert report.failure is None and inside["max"] == 1


def test_in_flight_call_releases_control_so_a_server_lock_cannot_deadlock() -> None:
    """T0's call blocks (a server-side lock) until T1's call releases it: the scheduler must let
    T1 run while T0 is in flight, then give T0 its turn back."""
    server_lock = threading.Event()

    def blocked_update() -> object:
        assert server_lock.wait(timeout=5), "never released"
        return "updated"

    def t0() -> object:
        schedule, worker = _current()
        return schedule.call(worker, _point("update"), blocked_update, releasable=True)

    def t1() -> None:
        schedule, worker = _current()
        schedule.call(worker, _point("commit"), server_lock.set, releasable=True)

    started = time.monotonic()
    execution = Schedule(
        [("t0", t0), ("t1", t1)],
        Replay([Choice(0), Choice(0), Choice(1), Choice(1), Choice(0)]),
        # t1's quick call must return before in_flight_after, or it too is left in flight and the
        # steps differ: 0.5 s outlasts a busy runner's scheduling delays and a full garbage collection
        timing=Timing(hang_timeout=3, in_flight_after=0.5),
    ).run()
    assert execution.hang is None
    assert time.monotonic() - started < 2  # released after in_flight_after, not left to the hang timeout
    kinds = [(s.thread, s.kind) for s in execution.trace.steps]
    assert kinds == [
        (0, StepKind.RUN),
        (0, StepKind.RUN),
        (0, StepKind.RELEASE),
        (1, StepKind.RUN),
        (1, StepKind.RUN),
        (0, StepKind.RETURN),
    ]
    assert execution.outcomes[0].value == "updated"


def test_every_thread_blocked_in_flight_is_a_deadlock_with_stacks() -> None:
    never = threading.Event()

    def wait_forever() -> None:
        schedule, worker = _current()
        schedule.call(worker, _point("update"), lambda: never.wait(3), releasable=True)

    execution = Schedule(
        [("a", wait_forever), ("b", wait_forever)], _first(0), timing=Timing(hang_timeout=0.3, in_flight_after=0.01)
    ).run()
    assert execution.hang is not None
    assert execution.hang.reason.startswith("deadlock: every unfinished thread has been blocked outside")
    assert all("wait_forever" in stack for _name, stack in execution.hang.stacks)
    never.set()


def test_a_thread_blocked_outside_a_releasable_call_is_reported_not_waited_for() -> None:
    lock = threading.Lock()
    lock.acquire()

    def stuck() -> None:
        lock.acquire(timeout=3)

    execution = Schedule([("stuck", stuck)], _first(0), timing=Timing(hang_timeout=0.2)).run()
    assert execution.hang is not None
    assert "T0 stuck has run for 0.2s without reaching a scheduling point" in execution.hang.reason
    assert "race.blocking()" in execution.hang.reason
    lock.release()


def _current():  # type: ignore[no-untyped-def]
    from pytest_perfgate.race.scheduler import current

    active = current()
    assert active is not None
    return active


def _point(label: str):  # type: ignore[no-untyped-def]
    from pytest_perfgate.race.trace import PointInfo

    return PointInfo(label)


# --------------------------------------------------------------------------- histories


class Register:
    def __init__(self) -> None:
        self.value = 0

    def write(self, value: int) -> None:
        self.value = value

    def read(self) -> int:
        return self.value


def _outcome(thread: int, name: str, invoke: int, response: int, value: object = None) -> Outcome:
    return Outcome(thread, name, invoke, response, value)


def test_serial_order_found_when_results_are_explainable() -> None:
    calls = (OpCall("write", Register.write, (1,)), OpCall("read", Register.read))
    # overlapping: read saw the write
    outcomes = (_outcome(0, "write", 0, 3), _outcome(1, "read", 1, 2, 1))
    calls = tuple(OpCall(c.name, c.fn, c.args) for c in calls)
    assert serial_order(calls, outcomes, Register) == (0, 1)


def test_no_serial_order_when_real_time_forbids_it() -> None:
    calls = (OpCall("write", Register.write, (1,)), OpCall("read", Register.read))
    # the write finished (response 2) before the read began (invoke 2), yet the read saw 0
    outcomes = (_outcome(0, "write", 0, 2), _outcome(1, "read", 2, 4, 0))
    assert serial_order(calls, outcomes, Register) is None
    overlapping = (_outcome(0, "write", 0, 3), _outcome(1, "read", 1, 4, 0))
    assert serial_order(calls, overlapping, Register) == (1, 0)


# --------------------------------------------------------------------------- patching


def test_patching_is_active_only_during_a_run_and_restored_after() -> None:
    original = mongomock.collection.Collection.find_one
    seen: list[bool] = []
    check = Race.op("check", lambda: seen.append(mongomock.collection.Collection.find_one is not original), atomic=True)
    Race().run(check, schedules=1)
    assert seen == [True]
    assert mongomock.collection.Collection.find_one is original
    assert not INTERCEPTOR.installed


def test_a_wrapper_stacked_on_ours_is_kept_and_ours_calls_through() -> None:
    cls = mongomock.collection.Collection
    original = cls.count_documents
    captured: list[dict[str, object]] = []
    with intercepting():
        ours = cls.count_documents

        def capture(self, filter, **kwargs):  # type: ignore[no-untyped-def]  # another plugin's capture
            captured.append(filter)
            return ours(self, filter, **kwargs)

        cls.count_documents = capture
    try:
        assert cls.count_documents is capture  # not pulled out from under the other plugin
        assert mongomock.MongoClient().db.c.count_documents({"x": 1}) == 0 and captured == [{"x": 1}]
    finally:
        cls.count_documents = original


def test_a_mongomock_call_is_one_atomic_scheduling_point() -> None:
    coll = mongomock.MongoClient().db.items
    coll.insert_one({"_id": 1, "n": 0})
    labels: list[str] = []

    def op() -> None:
        coll.find_one({"_id": 1})  # calls find() and a cursor inside: still one point
        coll.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}})
        list(coll.find({"n": {"$gt": 0}}))

    with pytest.raises(RaceFailure) as raised:
        Race().run(op, invariant=lambda: labels.append("x") or False)
    steps = raised.value.report.failure.execution.trace.steps  # type: ignore[union-attr]
    assert [s.point.describe() for s in steps] == [
        "start",
        "items.find_one {_id: ?}",
        "items.find_one_and_update {_id: ?}",
        "items.find {n: {$gt: ?}}",
    ]


def test_a_pymongo_call_in_flight_releases_control_to_other_operations() -> None:
    """No server here: pymongo's server selection blocks inside the intercepted call, just as a
    call waiting on a server-side lock would; the other operation runs meanwhile."""
    import pymongo
    from pymongo.errors import ServerSelectionTimeoutError

    client = pymongo.MongoClient("mongodb://127.0.0.1:9", serverSelectionTimeoutMS=300, connect=False)
    coll = client.db.items
    ran: list[str] = []

    def slow() -> None:
        coll.find_one({"_id": 1})

    def quick() -> None:
        ran.append("quick")

    with pytest.raises(RaceFailure) as raised:
        Race().run(slow, quick, schedules=1, strategy="exhaustive", in_flight_after=0.02)
    failure = raised.value.report.failure
    assert failure is not None and "T0 slow raised ServerSelectionTimeoutError" in failure.summary
    steps = [(s.thread, s.kind, s.point.describe()) for s in failure.execution.trace.steps]
    assert steps[:4] == [
        (0, StepKind.RUN, "start"),
        (0, StepKind.RUN, "items.find_one {_id: ?}"),
        (0, StepKind.RELEASE, "items.find_one {_id: ?}"),
        (1, StepKind.RUN, "start"),
    ]
    assert ran == ["quick", "quick"]  # the schedule, then its replay check
    assert isinstance(failure.execution.outcomes[0].error, ServerSelectionTimeoutError)
    assert pymongo.collection.Collection.find_one.__name__ == "find_one"
    assert not hasattr(pymongo.collection.Collection.find_one, "__perfgate_race__")
    client.close()


# --------------------------------------------------------------------------- properties


@given(st.lists(st.tuples(st.integers(0, 35), st.booleans()), max_size=60), st.integers(0, 99))
def test_any_token_round_trips(choices: list[tuple[int, bool]], run: int) -> None:
    token = ReplayToken(run, 36, tuple(Choice(t, f) for t, f in choices), "0f0f")
    assert decode(token.encode()) == token


def _steppers(points: tuple[int, ...], log: list[str]) -> list[OpCall]:
    """Operations making ``points[i]`` scheduling points each (one with none is atomic, said so)."""

    def make(index: int, count: int) -> Callable[[], None]:
        def op() -> None:
            for i in range(count):
                log.append(f"{index}.{i}")
                Race.point(f"p{i}")
            log.append(f"{index}.end")

        return op

    return [Race.op(f"op{i}", make(i, n), atomic=not n) for i, n in enumerate(points)]


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=3).filter(lambda p: sum(p) + len(p) <= 6))
def test_exhaustive_count_is_the_multinomial_of_the_steps(points: list[int]) -> None:
    import math

    steps = [n + 1 for n in points]  # the start, then one step per point
    expected = math.factorial(sum(steps)) // math.prod(math.factorial(s) for s in steps)
    report = Race().run(*_steppers(tuple(points), []), strategy="exhaustive", preemption_bound=None, schedules=10_000)
    assert report.complete and report.distinct == report.schedules == expected


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["random", "pct"]))
def test_a_token_replays_the_exact_interleaving(seed: int, strategy: str) -> None:
    log: list[str] = []
    seen: list[list[str]] = []
    ops = _steppers((2, 1, 2), log)

    def fail() -> None:
        seen.append(list(log))
        raise AssertionError("record this schedule")

    with pytest.raises(RaceFailure) as raised:
        Race().run(*ops, setup=log.clear, invariant=fail, seed=seed, strategy=strategy, shrink=False)
    token = raised.value.report.failure.token  # type: ignore[union-attr]
    with pytest.raises(RaceFailure):
        Race(replay=decode(token)).run(*ops, setup=log.clear, invariant=fail)
    assert len(seen) == 3  # explored, verified, replayed
    assert seen[0] == seen[1] == seen[2]


def test_every_interception_target_exists_in_the_installed_drivers() -> None:
    """A renamed driver method would silently stop being a scheduling point: fail here instead."""
    import importlib

    from pytest_perfgate.race.intercept import TARGETS

    for target in TARGETS:
        owner = getattr(importlib.import_module(target.module), target.owner)
        missing = [name for name in target.methods if not callable(getattr(owner, name, None))]
        assert not missing, f"{target.module}.{target.owner} has no {missing}"


# --------------------------------------------------------------------------- option parsers


def test_option_parsers_accept_good_values_and_explain_bad_ones() -> None:
    import argparse

    from pytest_perfgate.race import options

    parsers = {name: parse for name, parse, *_ in options.RACE_OPTIONS}
    strategy, seed = parsers["race_strategy"], parsers["race_seed"]
    assert strategy(" PCT ") == "pct"
    assert seed("12") == 12
    assert options.replay_token("v1-0-2-01-abcd").choices == (Choice(0), Choice(1))
    for parse, text, message in (
        (strategy, "dfs", "'dfs' is not a race strategy; accepted: random, pct, exhaustive"),
        (seed, "-1", "'-1' must be at least 0"),
        (seed, "x", "'x' is not a whole number; expected e.g. 5"),
        (options.replay_token, "v2-0", "replay token 'v2-0' does not parse"),
    ):
        with pytest.raises(argparse.ArgumentTypeError) as raised:
            parse(text)
        assert message in str(raised.value)


def test_marker_arguments_are_validated_with_the_accepted_forms() -> None:
    from pytest_perfgate.race.options import marker_kwargs

    assert marker_kwargs((), {"schedules": 5, "preemption_bound": None}) == {"schedules": 5, "preemption_bound": None}
    for args, kwargs, message in (
        ((3,), {}, "race marker takes keyword arguments only"),
        ((), {"schedules": True}, "race marker: schedules=True is not accepted; expected a whole number >= 1"),
        ((), {"seconds": 0}, "race marker: seconds=0 is not accepted; expected a positive number of seconds or None"),
        ((), {"strategy": "bfs"}, "expected 'random' or 'pct' or 'exhaustive'"),
        ((), {"seeds": 1}, "race marker: unknown argument seeds=1; accepted: strategy, schedules, seed"),
    ):
        with pytest.raises(RaceError) as raised:
            marker_kwargs(args, kwargs)
        assert message in str(raised.value)
