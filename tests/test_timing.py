from __future__ import annotations

import pytest

from pytest_perfgate.errors import MeasurementError
from pytest_perfgate.measure.cpuprofile import profile_cpu
from pytest_perfgate.measure.memory import measure_peak
from pytest_perfgate.measure.memprofile import profile_memory
from pytest_perfgate.measure.timing import TimingSettings, calibrate, measure


class FakeClock:
    """A timer in nanoseconds that advances by ``cost`` for every call of the timed function."""

    def __init__(self, cost_ns: int) -> None:
        self.now = 0
        self.cost = cost_ns
        self.calls = 0

    def timer(self) -> int:
        self.now += 1  # reading the clock takes 1 ns
        return self.now

    def fn(self) -> int:
        self.calls += 1
        self.now += self.cost
        return 42


def test_calibration_reaches_the_minimum_round_time() -> None:
    clock = FakeClock(cost_ns=100)
    loops = calibrate(clock.fn, min_round_time=100e-6, timer=clock.timer)
    assert loops * 100 >= 100_000
    assert loops & (loops - 1) == 0  # a power of two
    assert loops < 4 * 1000  # not wildly over


def test_slow_calls_are_not_looped() -> None:
    clock = FakeClock(cost_ns=5_000_000)  # 5 ms
    result = measure(clock.fn, TimingSettings(min_rounds=3, max_time=0.02, warmup_time=0), timer=clock.timer)
    assert result.loops == 1
    assert result.result == 42
    assert all(s == pytest.approx(5e-3, rel=1e-3) for s in result.samples)
    assert 3 <= len(result.samples) <= 5


def test_rounds_stop_at_max_time_but_not_before_min_rounds() -> None:
    clock = FakeClock(cost_ns=50_000_000)  # 50 ms, max_time 10 ms
    result = measure(clock.fn, TimingSettings(min_rounds=4, max_time=0.01, warmup_time=0), timer=clock.timer)
    assert len(result.samples) == 4


def test_max_rounds_caps_fast_functions() -> None:
    clock = FakeClock(cost_ns=10)
    settings = TimingSettings(min_rounds=2, max_rounds=7, max_time=10.0, warmup_time=0)
    assert len(measure(clock.fn, settings, timer=clock.timer).samples) == 7


def test_shared_loops_skip_calibration() -> None:
    clock = FakeClock(cost_ns=10)
    result = measure(clock.fn, TimingSettings(min_rounds=2, max_time=0, warmup_time=0), timer=clock.timer, loops=3)
    assert result.loops == 3 and clock.calls == 1 + 2 * 3


def test_warmup_rounds_are_discarded() -> None:
    clock = FakeClock(cost_ns=1_000_000)
    result = measure(clock.fn, TimingSettings(min_rounds=2, max_time=0, warmup_time=0.005), timer=clock.timer)
    assert result.warmup_rounds >= 4 and len(result.samples) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"min_rounds": 0}, "min_rounds must be at least 1"), ({"min_rounds": 5, "max_rounds": 2}, "below min_rounds")],
)
def test_bad_settings(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(MeasurementError, match=message):
        TimingSettings(**kwargs)


def test_memory_peak_of_a_call_is_what_it_allocated() -> None:
    reading = measure_peak(lambda: bytearray(3_000_000))
    assert 3_000_000 <= reading.peak < 3_100_000
    assert reading.retained < 10_000  # freed on return


KEEP: list[bytearray] = []


def test_memory_profile_accounts_functions_peak_stack_and_leaks() -> None:
    def build() -> int:
        held = [bytes(1000) for _ in range(2000)]  # ~2 MB held while helper() runs
        return helper(held)

    def helper(held: list[bytes]) -> int:
        KEEP.append(bytearray(300_000))  # stays after the call: a leak
        return len(held)

    try:
        profile = profile_memory(build, tracer="tracemalloc")  # calls and net: the hook profiler's figures
    finally:
        KEEP.clear()
    by_name = {f.function.rsplit(".", 1)[-1]: f for f in profile.functions}
    assert by_name["build"].calls == 1 and by_name["helper"].calls == 1
    assert by_name["build"].inclusive_peak >= 2_300_000  # its list plus helper's buffer
    assert 300_000 <= by_name["helper"].inclusive_peak < 400_000
    assert by_name["helper"].self_net >= 300_000
    assert [frame.split(" (")[0].rsplit(".", 1)[-1] for frame in profile.peak_stack] == ["build", "helper"]
    assert profile.peak_sites and any("held = [bytes(1000)" in f for f in profile.peak_sites[0].stack)
    assert profile.leaks[0].size >= 300_000 and "KEEP.append(bytearray(300_000))" in profile.leaks[0].stack[-1]
    assert profile.to_json(functions=1)["functions"][0]["function"].endswith("build")
    assert profile.tree is not None
    (build_node,) = profile.tree.children
    assert build_node.function.endswith("build")
    # (3.11 runs the comprehension as a function of its own; 3.12 inlines it)
    (helper_node,) = [c for c in build_node.children if c.function.endswith("helper")]
    assert build_node.peak >= helper_node.peak >= 300_000


def test_cpu_profile_finds_the_hot_path() -> None:
    def cheap() -> int:
        return 1

    def expensive() -> int:
        return sum(i * i for i in range(20_000))

    def handler() -> int:
        return cheap() + expensive()

    profile = profile_cpu(handler, min_time=0.05)
    assert profile.calls >= 1
    names = [n.function for n in profile.hot_path()]
    assert names[:2] == ["handler", "expensive"]
    assert any(row[0] == "<genexpr>" for row in profile.top)


def test_a_round_that_raises_switches_the_garbage_collector_back_on() -> None:
    import gc

    calls = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")

    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"):
        measure(flaky, TimingSettings(min_rounds=5, max_time=0, warmup_time=0, disable_gc=True), loops=1)
    assert gc.isenabled()
