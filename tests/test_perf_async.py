"""perf on async code: coroutine functions and callables returning awaitables are awaited (one loop
in a sync test, the test's loop with ``await perf.aio(...)`` in an async one), under pytest-asyncio
and anyio's plugin; what was never awaited fails the test, never passes it."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import time

import pytest

from pytest_perfgate.measure import aio, timing

pytest.importorskip("pytest_asyncio")

HAS_TRIO = importlib.util.find_spec("trio") is not None

#: the issue's workload: 2 ms of awaiting plus some work (a median below 2 ms is impossible)
SLOW_IO = """
import asyncio
import pytest

async def slow_io():
    await asyncio.sleep(0.002)
    return sum(range(20000))
"""


def _test(result: dict, name: str) -> dict:
    return next(t for t in result["tests"] if t["nodeid"].endswith("::" + name))


def test_sync_test_awaits_a_coroutine_function_on_one_loop(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        SLOW_IO
        + """
@pytest.mark.perf_budget(median="1ms")
def test_slow(perf):
    assert perf(slow_io) == sum(range(20000))

loops = set()

async def which_loop():
    loops.add(id(asyncio.get_running_loop()))

def test_one_loop_for_every_call(perf):
    perf(which_loop)
    assert len(loops) == 1

def test_lambda_returning_a_coroutine(perf):
    assert perf(lambda: slow_io()) == sum(range(20000))
"""
    )
    result, data = run_json("-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*perf budget exceeded: median *ms exceeds critical 1ms (* rounds, awaited in one asyncio loop (+*/call))*"]
    )
    slow = _test(data, "test_slow")
    series = slow["series"]["time"]
    assert series["awaited"] == "one asyncio loop"
    assert min(series["values"]) >= 0.002  # every call awaited its 2 ms sleep
    assert 0 < series["await_overhead"] < min(series["values"])
    assert slow["evidence"]["awaited"]["library"] == "asyncio"
    assert slow["evidence"]["awaited"]["where"] == "own loop"
    assert slow["evidence"]["awaited"]["turn"] > 0
    assert _test(data, "test_lambda_returning_a_coroutine")["series"]["time"]["awaited"] == "one asyncio loop"
    result.stdout.fnmatch_lines(["*test_one_loop_for_every_call *median *awaited in one asyncio loop (+*/call), perf)"])


def test_pytest_asyncio_awaits_in_the_test_loop(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        SLOW_IO
        + """
@pytest.mark.asyncio
@pytest.mark.perf_budget(median="1ms")
async def test_perf_async(perf):
    assert await perf.aio(slow_io) == sum(range(20000))

seen = set()

async def record_loop(n):
    seen.add(asyncio.get_running_loop())
    return n * 2

@pytest.mark.asyncio
async def test_in_the_test_loop(perf):
    assert await perf.aio(record_loop, 21) == 42
    assert seen == {asyncio.get_running_loop()}
"""
    )
    result, data = run_json()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*median *ms exceeds critical 1ms (* rounds, awaited in the test's asyncio loop (+*/call))*"]
    )
    series = _test(data, "test_perf_async")["series"]["time"]
    assert min(series["values"]) >= 0.002
    assert _test(data, "test_in_the_test_loop")["evidence"]["awaited"]["where"] == "test loop"


@pytest.mark.parametrize("scope", ["module", "session"])
def test_pytest_asyncio_wider_loop_scopes(pytester: pytest.Pytester, run_json, scope: str) -> None:
    pytester.makepyfile(
        f"""
import asyncio
import pytest

loops = []

async def work():
    loops.append(asyncio.get_running_loop())

@pytest.mark.asyncio(loop_scope="{scope}")
async def test_first(perf):
    await perf.aio(work)

@pytest.mark.asyncio(loop_scope="{scope}")
async def test_second(perf):
    await perf.aio(work)
    assert len(set(loops)) == 1
"""
    )
    result, data = run_json()
    result.assert_outcomes(passed=2)
    assert all(t["series"]["time"]["awaited"] == "the test's asyncio loop" for t in data["tests"])


BACKENDS = ["asyncio", pytest.param("trio", marks=pytest.mark.skipif(not HAS_TRIO, reason="trio is not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_anyio_plugin(pytester: pytest.Pytester, run_json, backend: str) -> None:
    pytester.makepyfile(
        f"""
import anyio
import pytest

@pytest.fixture
def anyio_backend():
    return "{backend}"

async def slow_io():
    await anyio.sleep(0.002)
    return 7

@pytest.mark.anyio
@pytest.mark.perf_budget(median="1ms")
async def test_slow(perf):
    assert await perf.aio(slow_io) == 7

@pytest.mark.anyio
async def test_plain_perf_refused(perf):
    perf(slow_io)
"""
    )
    result, data = run_json("-p", "no:asyncio")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            f"*median *ms exceeds critical 1ms (* rounds, awaited in the test's {backend} loop (+*/call))*",
            f"E * perf(slow_io): slow_io is a coroutine function and this test's {backend} loop is running, "
            "so perf cannot await it from a plain call; write `await perf.aio(slow_io, ...)`",
        ]
    )
    evidence = _test(data, "test_slow")["evidence"]["awaited"]
    assert evidence["library"] == backend and evidence["turn"] > 0


def test_fails_closed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import asyncio
import pytest

async def audit(n):
    return n

def handler():
    audit(1)  # the bug: never awaited
    return "ok"

async def fetch():
    return 1

def test_dropped_coroutine(perf):
    perf(handler)

@pytest.mark.asyncio
async def test_dropped_coroutine_async(perf):
    await perf.aio(lambda: asyncio.sleep(0, handler()))

@pytest.mark.asyncio
async def test_sync_perf_on_a_coroutine_function(perf):
    perf(fetch)

@pytest.mark.asyncio
async def test_sync_perf_on_a_lambda_returning_a_coroutine(perf):
    perf(lambda: fetch())

@pytest.mark.asyncio
async def test_aio_not_awaited(perf):
    perf.aio(fetch)

@pytest.mark.asyncio
async def test_aio_on_a_plain_function(perf):
    await perf.aio(len, "abc")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfgate-max-time=10ms", "-W", "error::RuntimeWarning")
    # test_aio_not_awaited fails twice: its call (the dropped coroutine, an error under -W) and its teardown
    result.assert_outcomes(failed=6, errors=1)
    result.stdout.fnmatch_lines_random(
        [
            "E * perf(handler): coroutine 'audit' was never awaited inside the measured call; perf would time a "
            "call that skips that work. Await it in the code under test (perf awaits a coroutine function it is given)",
            "E * perf.aio(<lambda>): coroutine 'audit' was never awaited inside the measured call;*",
            "E * perf(fetch): fetch is a coroutine function and this test's asyncio loop is running, so perf cannot "
            "await it from a plain call; write `await perf.aio(fetch, ...)`",
            "E * perf(<lambda>): <lambda> returned coroutine 'fetch', an awaitable perf was not told to await, and "
            "this test's asyncio loop is running; write `await perf.aio(<lambda>, ...)`",
            "E * perf.aio(fetch) was not awaited to its end, so fetch was not measured; "
            "write `await perf.aio(fetch, ...)`",
            "E * perf.aio(len): len returned int, not an awaitable; time a plain call with perf(len, ...)",
        ]
    )
    result.stdout.fnmatch_lines(["ERROR *::test_aio_not_awaited - *"])


def test_memory_of_an_awaited_call(pytester: pytest.Pytester, run_json) -> None:
    pytester.makepyfile(
        """
import pytest

async def allocate():
    return bytearray(4_000_000)

@pytest.mark.perf_budget(mem_peak="1MB")
def test_sync(perf):
    perf(allocate)

@pytest.mark.asyncio
@pytest.mark.perf_budget(mem_peak="1MB")
async def test_async(perf):
    await perf.aio(allocate)
"""
    )
    result, data = run_json()
    result.assert_outcomes(failed=2)
    for name in ("test_sync", "test_async"):
        assert _test(data, name)["series"]["mem_peak"]["values"][0] >= 4_000_000


def test_disabled_still_awaits(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

async def answer():
    return 42

def test_sync(perf):
    assert perf(answer) == 42

@pytest.mark.asyncio
async def test_async(perf):
    assert await perf.aio(answer) == 42
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfgate-disable")
    result.assert_outcomes(passed=2)


# --------------------------------------------------------------------------- units


class _AsyncCallable:
    async def __call__(self) -> int:
        return 1


async def _coro(n: int) -> int:
    return n


def test_is_async_callable() -> None:
    assert aio.is_async_callable(_coro)
    assert aio.is_async_callable(functools.partial(_coro, 1))
    assert aio.is_async_callable(_AsyncCallable())
    assert not aio.is_async_callable(len)
    assert not aio.is_async_callable(lambda: _coro(1))
    assert aio.name_of(functools.partial(_coro, 1)) == "partial(_coro)"


def test_awaited_measure_counts_every_awaited_call() -> None:
    calls = []

    async def work() -> str:
        calls.append(1)
        await asyncio.sleep(0)
        return "done"

    clock = iter(range(0, 10**12, 1000))  # every reading 1 us later: deterministic rounds
    settings = timing.TimingSettings(min_rounds=3, max_rounds=3, max_time=0, warmup_time=0, min_round_time=1e-6)
    result = asyncio.run(aio.measure(work, settings, timer=lambda: next(clock), loops=4))
    assert result.result == "done"
    assert result.loops == 4 and len(result.samples) == 3
    assert len(calls) == 1 + 3 * 4  # the first call, then 3 rounds of 4 awaited calls


def test_awaited_calibration_reaches_the_round_time() -> None:
    async def spin() -> None:
        end = time.perf_counter() + 20e-6
        while time.perf_counter() < end:
            pass

    loops = asyncio.run(aio.calibrate(spin, 1e-3))
    assert loops >= 2  # 20 us calls, 1 ms rounds: looped (the exact count depends on the machine)


def test_own_loop_closes_once() -> None:
    loop = aio.OwnLoop()
    assert loop.call(lambda: _coro(3)) == 3
    loop.close()
    assert loop.loop.is_closed()
    loop.close()  # twice: nothing happens
