"""The race fixture through real pytest sessions (pytester): outcomes and exact messages."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from harness.sessions import run

COUNTER = """
import pytest

def counter_ops(race, atomic=False):
    state = {"n": 0}

    def reset():
        state["n"] = 0

    def increment():
        seen = state["n"]
        if not atomic:
            race.point("write n")
        state["n"] = seen + 1
        race.point("done")

    def check():
        assert state["n"] == 2, f"counter is {state['n']}, expected 2"

    return (increment, increment), reset, check
"""


def _token(output: str) -> str:
    match = re.search(r"--perfgate-race-replay=(\S+)", output)
    assert match, output
    return match.group(1)


#: a test of the lost-update counter with default race settings (several tests reuse it)
COUNTER_TEST = """
from helpers import counter_ops

def test_counter(race):
    ops, reset, check = counter_ops(race)
    race.run(*ops, setup=reset, invariant=check)
"""


def _block(output: str, start: str, end: str) -> str:
    return output[output.index(start) : output.index(end)]


def test_lost_update_is_found_with_evidence_and_replays_exactly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=COUNTER,
        test_counter=COUNTER_TEST,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "race: invariant violated: AssertionError: counter is 1, expected 2",
            "  found by random walk, seed 0 at schedule * of a budget of 300 (*",
            "interleaving (*1 preemption(s); minimal: no schedule with fewer preemptions fails this way):",
            "  step  thread*operation",
            " [*]   *  T? increment *",
            "history (invoke / result per operation; @ = step):",
            "  T0 increment() * returned None @*",
            "replay token (reproduced on re-run): v1-0-2-*",
            "replay: pytest test_counter.py::test_counter --perfgate-race-replay=v1-0-2-*",
        ]
    )
    output = result.stdout.str()
    token = _token(output)
    trace = _block(output, "  step  thread", "history (")
    for _ in range(3):
        again = run(pytester, "test_counter.py::test_counter", f"--perfgate-race-replay={token}")
        again.assert_outcomes(failed=1)
        replayed = again.stdout.str()
        assert f"  replayed from token {token}" in replayed
        assert "race: invariant violated: AssertionError: counter is 1, expected 2" in replayed
        assert _block(replayed, "  step  thread", "history (") == trace


@pytest.mark.parametrize(
    ("strategy", "found_by"),
    [
        ("random", "random walk, seed 0"),
        ("pct", "PCT depth 3, seed 0"),
        ("exhaustive", "exhaustive, preemption bound 2"),
    ],
)
def test_every_strategy_finds_the_lost_update(pytester: pytest.Pytester, strategy: str, found_by: str) -> None:
    pytester.makepyfile(
        helpers=COUNTER,
        test_counter=f"""
        import pytest
        from helpers import counter_ops

        @pytest.mark.race(strategy="{strategy}")
        def test_counter(race):
            ops, reset, check = counter_ops(race)
            race.run(*ops, setup=reset, invariant=check)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"  found by {found_by} at schedule *", "*counter is 1, expected 2*"])


def test_exhaustive_pass_is_reported_as_a_proof(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=COUNTER,
        test_counter="""
        import pytest
        from helpers import counter_ops

        @pytest.mark.race(strategy="exhaustive", preemption_bound=None)
        def test_atomic_counter(race):
            ops, reset, check = counter_ops(race, atomic=True)
            report = race.run(*ops, setup=reset, invariant=check)
            assert report.complete
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*- perfgate race -*",
            "test_counter.py::test_atomic_counter: all 6 interleavings explored; the invariant holds in every one "
            "(exhaustive, no preemption bound)",
        ]
    )


MONGO_COUNTER = """
import mongomock
import pytest

@pytest.fixture
def counters():
    return mongomock.MongoClient().app.counters

def reset(counters):
    counters.delete_many({})
    counters.insert_one({"_id": "hits", "n": 0})

def naive_hit(counters):
    doc = counters.find_one({"_id": "hits"})
    counters.update_one({"_id": "hits"}, {"$set": {"n": doc["n"] + 1}})

def atomic_hit(counters):
    counters.update_one({"_id": "hits"}, {"$inc": {"n": 1}})

def check(counters):
    n = counters.find_one({"_id": "hits"})["n"]
    assert n == 2, f"hits is {n}, expected 2"
"""


def test_mongomock_calls_are_the_scheduling_points(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_hits=MONGO_COUNTER
        + """
def test_naive(race, counters):
    race.run(lambda: naive_hit(counters), lambda: naive_hit(counters),
             setup=lambda: reset(counters), invariant=lambda: check(counters))

@pytest.mark.race(strategy="exhaustive", preemption_bound=None)
def test_atomic(race, counters):
    race.run(lambda: atomic_hit(counters), lambda: atomic_hit(counters),
             setup=lambda: reset(counters), invariant=lambda: check(counters))
"""
    )
    result = run(pytester)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "race: invariant violated: AssertionError: hits is 1, expected 2",
            "*T? naive_hit*counters.find_one {_id: ?}",
            "*T? naive_hit*counters.update_one {_id: ?}",
        ]
    )
    result.stdout.fnmatch_lines(
        ["test_hits.py::test_atomic: all 6 interleavings explored; the invariant holds in every one (exhaustive, *"]
    )


def test_shrinking_removes_irrelevant_preemptions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=COUNTER,
        test_shrink="""
        import pytest
        from helpers import counter_ops
        from pytest_perfgate.race import RaceFailure

        def test_shrink(race):
            (inc, _), reset, check = counter_ops(race)
            noise = {"n": 0}

            def busy():
                for i in range(6):
                    noise["n"] += 1
                    race.point(f"noise {i}")

            with pytest.raises(RaceFailure) as raised:
                race.run(inc, busy, inc, busy, setup=reset, invariant=check, seed=3)
            failure = raised.value.report.failure
            assert failure.found_preemptions > failure.preemptions == 1, failure.found_preemptions
            assert failure.minimal and failure.replay_verified
            rows = [line for line in failure.execution.trace.format().splitlines() if line.startswith(" *")]
            assert len(rows) == 1, rows
        """,
    )
    run(pytester).assert_outcomes(passed=1)


def test_history_without_a_serial_explanation_fails_with_the_history(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_history="""
        import pytest

        class Pair:
            def __init__(self):
                self.a = self.b = 0

            def write(self, value):
                self.a = value
                race_point("between a and b")
                self.b = value

            def read(self):
                return (self.a, self.b)

        class PairModel:
            def __init__(self):
                self.value = 0

            def write(self, value):
                self.value = value

            def read(self):
                return (self.value, self.value)

        def test_torn_write(race):
            global race_point
            race_point = race.point
            pair = Pair()

            def reset():
                pair.a = pair.b = 0

            race.run(race.op("write", pair.write, 1), race.op("read", pair.read), setup=reset, model=PairModel,
                     strategy="exhaustive")

        @pytest.mark.race(strategy="exhaustive")
        def test_atomic_write(race):
            pair = PairModel()
            report = race.run(race.op("write", pair.write, 1, atomic=True), race.op("read", pair.read, atomic=True),
                              setup=lambda: pair.write(0), model=PairModel)
            assert report.complete
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "race: no serial order of the operations explains their results (not linearizable)",
            "  T0 write(1) * invoke@* returned None @*",
            "  T1 read() * invoke@* returned (1, 0) @*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "test_history.py::test_atomic_write: all 2 interleavings explored; a serial order explains every history "
            "(exhaustive, preemption bound 2)"
        ]
    )


def test_deadlock_fails_with_every_threads_stack_and_release_lets_waits_finish(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_locks="""
        import threading
        import pytest

        @pytest.mark.race(hang_timeout=0.3, schedules=1)
        def test_deadlock(race):
            first, second = threading.Event(), threading.Event()

            def take_first():
                with race.blocking("wait for second"):
                    second.wait(5)
                first.set()

            def take_second():
                with race.blocking("wait for first"):
                    first.wait(5)
                second.set()

            try:
                race.run(take_first, take_second)
            finally:
                first.set(); second.set()

        @pytest.mark.race(hang_timeout=2, schedules=20)
        def test_handoff(race):
            ready = threading.Event()

            def consumer():
                with race.blocking("wait for producer"):
                    assert ready.wait(5)

            report = race.run(consumer, race.op("set", ready.set, atomic=True), setup=ready.clear)
            assert report.failure is None
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "race: deadlock: every unfinished thread has been blocked outside the scheduler's control (in flight) for 0.3s",
            "interleaving (until the hang):",
            "--- T0 take_first (in flight)",
            "*in take_first*",
            "--- T1 take_second (in flight)",
            "*in take_second*",
            "replay token (a hang is not re-run): v1-0-2-*",
        ]
    )


def test_an_operation_that_never_reaches_a_point_is_a_hang(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_spin="""
        import threading
        import time
        import pytest

        @pytest.mark.race(hang_timeout=0.3)
        def test_spin(race):
            stop = threading.Event()

            def spin():
                while not stop.is_set():
                    time.sleep(0.01)

            try:
                race.run(spin, lambda: None)
            finally:
                stop.set()
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "race: T0 spin has run for 0.3s without reaching a scheduling point: it is blocked outside the "
            "scheduler's control (waiting for another operation? wrap that wait in race.blocking()) or it loops",
            "--- T0 spin (running)",
            "*in spin*",
        ]
    )


def test_fault_injection_tests_retry_logic(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_retry=MONGO_COUNTER
        + """
from pymongo.errors import AutoReconnect, OperationFailure
from pytest_perfgate.race import auto_reconnect, transient_transaction_error

def hit_with_retry(counters, attempts=3):
    for attempt in range(attempts):
        try:
            return atomic_hit(counters)
        except AutoReconnect:
            continue
        except OperationFailure as exc:
            if exc.has_error_label("TransientTransactionError"):
                continue
            raise

@pytest.mark.race(strategy="exhaustive")
def test_without_retry(race, counters):
    race.run(lambda: atomic_hit(counters), lambda: atomic_hit(counters), setup=lambda: reset(counters),
             invariant=lambda: check(counters), faults=[auto_reconnect("counters.update_one")])

@pytest.mark.race(strategy="exhaustive")
def test_with_retry(race, counters):
    report = race.run(lambda: hit_with_retry(counters), lambda: hit_with_retry(counters),
                      setup=lambda: reset(counters), invariant=lambda: check(counters),
                      faults=[auto_reconnect("counters.update_one"),
                              transient_transaction_error("counters.update_one")])
    assert report.complete

@pytest.mark.race(strategy="exhaustive")
def test_lost_reply_makes_a_blind_retry_double_count(race, counters):
    race.run(lambda: hit_with_retry(counters), lambda: hit_with_retry(counters), setup=lambda: reset(counters),
             invariant=lambda: check(counters), faults=[auto_reconnect("counters.update_one", after=True)])
"""
    )
    result = run(pytester)
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "race: T? atomic_hit raised AutoReconnect: connection reset (injected by perfgate race)",
            "*counters.update_one {_id: ?}  <- injected AutoReconnect",
        ]
    )
    result.stdout.fnmatch_lines(["race: invariant violated: AssertionError: hits is 3, expected 2"])


def test_bad_option_values_are_usage_errors_with_a_hint(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(race):\n    pass\n")
    result = run(pytester, "--perfgate-race-replay=garbage")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*argument --perfgate-race-replay: replay token 'garbage' does not parse; expected a token printed by a "
            "failing race test, e.g. v1-0-2-0101-3fa2"
        ]
    )
    result = run(pytester, "--perfgate-race-strategy=dfs")
    result.stderr.fnmatch_lines(["*'dfs' is not a race strategy; accepted: random, pct, exhaustive"])
    pytester.makeini("[pytest]\nperfgate_race_schedules = 0\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: perfgate: ini option perfgate_race_schedules: '0' must be at least 1"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_bad_marker_arguments_are_collection_errors_naming_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marks="""
        import pytest

        @pytest.mark.race(schedules=0)
        def test_zero(race):
            pass

        @pytest.mark.race(strategy="bfs", seeds=3)
        def test_unknown(race):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*test_marks.py::test_zero: race marker: schedules=0 is not accepted; expected a whole number >= 1*"]
    )
    assert "INTERNALERROR" not in result.stdout.str()


def test_report_carries_strategy_and_schedules_explored(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=COUNTER,
        test_counter="""
        import pytest
        from helpers import counter_ops

        @pytest.mark.race(strategy="pct", schedules=25, seed=4)
        def test_atomic_counter(race):
            ops, reset, check = counter_ops(race, atomic=True)
            race.run(*ops, setup=reset, invariant=check)
        """,
    )
    result = run(pytester, "--junitxml=out.xml", "-rP")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*Captured perfgate race call*", "* distinct schedules explored (PCT depth 3, seed 4; *"]
    )
    props = ET.parse(pytester.path / "out.xml").getroot().findall(".//property[@name='perfgate_race']")
    assert len(props) == 1
    (evidence,) = json.loads(props[0].attrib["value"])
    assert evidence["strategy"] == "PCT depth 3, seed 4"
    assert evidence["schedules"] == 25 and 1 <= evidence["distinct_schedules"] <= 25
    assert evidence["exhaustive_complete"] is False and "failure" not in evidence


def test_cli_seed_wins_and_xfail_strict_accepts_a_race_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=COUNTER,
        test_counter="""
        import pytest
        from helpers import counter_ops
        from pytest_perfgate.race import RaceFailure

        @pytest.mark.race(seed=1)
        @pytest.mark.xfail(strict=True, raises=RaceFailure, reason="lost update")
        def test_counter(race):
            ops, reset, check = counter_ops(race)
            race.run(*ops, setup=reset, invariant=check, seed=2)

        def test_seed_seen(race):
            ops, reset, check = counter_ops(race, atomic=True)
            assert race.run(*ops, setup=reset, invariant=check, schedules=2).seed == 11
        """,
    )
    run(pytester, "--perfgate-race-seed=11").assert_outcomes(xfailed=1, passed=1)


def test_a_token_from_another_test_is_refused_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=COUNTER,
        test_counter=COUNTER_TEST,
    )
    result = run(pytester, "--perfgate-race-replay=v1-0-3-012-abcd")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*RaceError: replay token is for 3 operations but this race.run has 2; was it printed by another test?"]
    )
    result = run(pytester, "--perfgate-race-replay=v1-0-2-0000000-abcd")
    result.stdout.fnmatch_lines(
        ["*RaceError: replay token does not fit: at step 3 it chooses T0, but only T1 can run*"]
    )


def test_a_token_for_a_race_run_the_test_never_makes_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(helpers=COUNTER, test_counter=COUNTER_TEST)
    result = run(pytester, "test_counter.py::test_counter", "--perfgate-race-replay=v1-4-2-0000000-abcd")
    result.assert_outcomes(failed=1, errors=1)  # the test's own race fails; the token was never used: an error
    result.stdout.fnmatch_lines(
        [
            "*perfgate: --perfgate-race-replay: the replay token v1-4-2-0000000-abcd is for race.run call #5 of its test, "
            "but this test made 1 race.run call: was it printed by another test*"
        ]
    )


@pytest.mark.parametrize(
    ("check", "summary"),
    [
        ("pytest.skip('not today')", "race: the invariant raised Skipped: not today (not an AssertionError*"),
        ("pytest.fail('counter broken')", "race: invariant violated: Failed: counter broken"),
        (
            "{}['n']",
            "race: the invariant raised KeyError: 'n' (not an AssertionError: an error in the check itself, "
            "or a state it did not expect)",
        ),
    ],
    ids=["skip", "fail", "key-error"],
)
def test_an_invariant_that_skips_fails_or_errs_keeps_the_interleaving_and_the_token(
    pytester: pytest.Pytester, check: str, summary: str
) -> None:
    pytester.makepyfile(
        helpers=COUNTER,
        test_checks=f"""
        import pytest
        from helpers import counter_ops

        def test_counter(race):
            ops, reset, _check = counter_ops(race)
            race.run(*ops, setup=reset, invariant=lambda: {check}, schedules=3)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)  # never a skip: a found interleaving is a failure with its evidence
    result.stdout.fnmatch_lines([summary, "interleaving*", "replay token (reproduced on re-run): v1-*"])


def test_a_race_time_budget_of_0_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = run(pytester, "--perfgate-race-seconds=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perfgate-race-seconds: '0' must be longer than 0 (a time budget, e.g. 30s)"])


def test_the_mongo_captures_own_bookkeeping_is_not_a_scheduling_point(pytester: pytest.Pytester) -> None:
    """A find that matches nothing, with the query capture on: one point (the capture counts the
    cursor's documents again on its own behalf), so two operations of two steps each: 6 interleavings."""
    pytest.importorskip("mongomock")
    pytester.makepyfile(
        test_capture="""
        def test_find(race, mongo_db):
            def reader():
                list(mongo_db.items.find({"_id": 99}))

            report = race.run(reader, lambda: mongo_db.items.insert_one({"_id": 2}),
                              setup=lambda: mongo_db.items.delete_many({}), strategy="exhaustive",
                              preemption_bound=None)
            assert report.distinct == 6, report.summary()
        """
    )
    run(pytester).assert_outcomes(passed=1)
