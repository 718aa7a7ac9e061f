"""The pytest plugin inside each ``perfgate ab`` worker (loaded with ``-p``): wiring only.

It reports what it collected and runs the tests its controller asks for, in its order. Every
timed call makes its first call, then times rounds only when the controller says so (the other
side runs its rounds in between), and records the kept rounds as the test's ``time`` series.
Three kinds of test are timed that way:

* a ``perf(fn, ...)`` call;
* pytest-benchmark's ``benchmark(fn, ...)`` and ``benchmark.pedantic(...)``: the fixture keeps its
  checks and return value, but its rounds are the controller's (``setup`` and ``teardown`` run
  around every round, untimed, one call per round);
* any other test: its body (``item.runtest()``, with the function-scoped fixtures set up once)
  is called again round after round, like a ``perf`` call.

A call that raises in a measured round is reported (``failed``) before the test fails with it.

In a profiling session (``PERFGATE_AB_PROFILE``: after the paired rounds, for the tests judged
slower) every timed call is instead run under the CPU profiler and its profile sent (``profile``).
pytest-timeout's limits are lifted in the workers: the controller's ``--test-timeout`` bounds a test.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .._procs import tail
from .._state import MEASURE, session_state
from .._tracking import TIMING_FIXTURES, recorder
from ..measure import timing
from ..measure.workload import Workload, intercept_benchmark, is_pytest_benchmark
from ..recorder import Measure, Mode
from ..reports.session_report import BUDGET_FAILURE
from .protocol import (
    ENV_FOREIGN,
    ENV_PROFILE,
    ENV_PROFILER,
    ENV_SIDE,
    ENV_WHOLE_CALLS,
    PROFILER_CPU,
    PROFILER_INSTRUCTIONS,
    PROTOCOL_VERSION,
    Channel,
    MessageType,
)
from .worktree import session_files

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


#: the calling thread's usage where the platform has it (Linux), else the process's
_RUSAGE = getattr(resource, "RUSAGE_THREAD", getattr(resource, "RUSAGE_SELF", 0))


def pytest_configure(config: pytest.Config) -> None:
    channel = Channel.from_environment()
    if channel is None:
        raise pytest.UsageError(
            "perfgate: pytest_perfgate.ab.worker is the paired A/B worker; it runs under `perfgate ab`, not alone"
        )
    profile_time = float(os.environ.get(ENV_PROFILE) or 0)

    def measure(nodeid: str) -> Measure:
        if profile_time:
            return _ProfiledMeasure(channel, nodeid, profile_time, os.environ.get(ENV_PROFILER) or PROFILER_CPU)
        return _remote_measure(channel, nodeid)

    config.stash[MEASURE] = measure
    config.pluginmanager.register(
        _Worker(channel, whole_calls=os.environ.get(ENV_WHOLE_CALLS) != "0"), "perfgate-ab-worker"
    )
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    channel.send(
        MessageType.HELLO,
        protocol=PROTOCOL_VERSION,
        side=os.environ.get(ENV_SIDE, "?"),
        pid=os.getpid(),
        affinity=affinity,
        hashseed=os.environ.get("PYTHONHASHSEED"),
        python=sys.version.split()[0],
        cwd=os.getcwd(),
    )


def _crash_line(report: pytest.TestReport) -> str:
    """One line saying why a test failed or skipped (the exception, or the skip reason)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else report.longreprtext
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "no details"


#: why a test using one of these fixtures is not timed in rounds
UNTIMED_FIXTURES = {
    "load_test": "a load test (locust in a subprocess, its own duration) cannot be timed in paired rounds",
}


class _Worker:
    def __init__(self, channel: Channel, *, whole_calls: bool = True) -> None:
        self.channel = channel
        self.whole_calls = whole_calls
        self.collect_errors: list[dict[str, str]] = []
        self.outcomes: dict[str, dict[str, str]] = {}
        #: nodeid -> why the test is not timed in rounds, and whether that is the user's choice
        #: (sent with its ``end``: a choice does not make the run incomplete)
        self.untimed: dict[str, tuple[str, bool]] = {}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append({"nodeid": report.nodeid, "message": tail(report.longreprtext, 12)})

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        files = session_files(config, items)
        self.channel.send(
            MessageType.COLLECTED,
            nodeids=[item.nodeid for item in items],
            files=files,
            rootdir=str(config.rootpath),
            errors=self.collect_errors,
            lifted=_lifted_timeouts(config, items),
        )
        order = self.channel.receive()
        if order.get("type") != MessageType.RUN:
            raise pytest.UsageError(f"perfgate ab worker: expected the list of tests to run, got {order!r}")
        position = {nodeid: i for i, nodeid in enumerate(order["nodeids"])}
        dropped = [item for item in items if item.nodeid not in position]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = sorted((item for item in items if item.nodeid in position), key=lambda item: position[item.nodeid])

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool:
        """pytest-timeout would kill a test in the middle of its rounds: its timer is not set (the
        controller's --test-timeout bounds every test instead; the report says so)."""
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        value = yield
        if fixturedef.argname == "benchmark" and is_pytest_benchmark(value):
            _pair_benchmark(value, request.node)
        return value

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        fixtures = set(getattr(item, "fixturenames", ()))
        untimed = [why for name, why in UNTIMED_FIXTURES.items() if name in fixtures]
        if untimed:
            self.untimed[item.nodeid] = (untimed[0], False)
        elif not fixtures & TIMING_FIXTURES:
            if self.whole_calls:
                _time_whole_call(item)
            else:
                self.untimed[item.nodeid] = (
                    "a test without perf or benchmark (whole calls are off: --no-whole-calls)",
                    True,
                )
        try:
            return (yield)
        finally:
            item.__dict__.pop("runtest", None)  # the instance's own runtest (see _time_whole_call), if set

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.outcomes.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
        if report.failed and report.when == "call" and report.longreprtext.startswith(BUDGET_FAILURE):
            return  # the body passed and only a budget failed: its timing is sound (breaches are reported)
        if report.failed and entry["outcome"] != "failed":
            entry.update(outcome="failed", message=f"in {report.when}: {_crash_line(report)}")
        elif report.skipped and entry["outcome"] == "passed":
            entry.update(outcome="skipped", message=_crash_line(report))

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        entry = self.outcomes.pop(nodeid, {"outcome": "passed", "message": ""})
        untimed, by_choice = self.untimed.pop(nodeid, ("", False))
        self.channel.send(MessageType.END, nodeid=nodeid, untimed=untimed, by_choice=by_choice, **entry)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self) -> None:
        foreign = os.environ.get(ENV_FOREIGN)
        self.channel.send(MessageType.FINISHED, foreign=_foreign_modules(foreign) if foreign else [])
        self.channel.close()


def _lifted_timeouts(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """The project's own time limits this worker lifts (said once in the report)."""
    lifted = []
    if config.pluginmanager.has_plugin("timeout"):
        where = []
        option = config.getoption("timeout", None)
        if option:
            where.append(f"{option:g}s from --timeout" if isinstance(option, (int, float)) else f"--timeout {option}")
        try:
            ini = config.getini("timeout")
        except ValueError:
            ini = None
        if ini and not option:
            overridden = any(arg.replace(" ", "").startswith("timeout=") for arg in _overrides(config))
            source = "-o" if overridden else config.inipath.name if config.inipath else "the ini file"
            where.append(f"timeout = {ini} from {source}" if overridden else f"timeout = {ini} in {source}")
        marked = sum(1 for item in items if item.get_closest_marker("timeout") is not None)
        if marked:
            where.append(f"@pytest.mark.timeout on {marked} test{'s' if marked != 1 else ''}")
        if where:
            lifted.append(f"pytest-timeout ({'; '.join(where)})")
    return lifted


def _overrides(config: pytest.Config) -> list[str]:
    """The ``-o NAME=VALUE`` / ``--override-ini`` values of the command line."""
    args = list(config.invocation_params.args)
    found = []
    for i, arg in enumerate(args):
        if arg in ("-o", "--override-ini") and i + 1 < len(args):
            found.append(str(args[i + 1]))
        elif arg.startswith("--override-ini="):
            found.append(arg.split("=", 1)[1])
        elif arg.startswith("-o") and len(arg) > 2:
            found.append(arg[2:])
    return found


def _crash_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.splitlines()[0][:300] if text.strip() else type(exc).__name__


def _measure(item: pytest.Item, workload: Workload, source: Mode) -> timing.Timing:
    """Time ``workload`` under the controller's rounds and record it as the test's ``time``."""
    config = item.config
    measure = config.stash[MEASURE](item.nodeid)
    result = measure(workload, session_state(config).timing_settings())  # type: ignore[arg-type]
    if result.samples:
        recorder(item).add_timing(result, source)
    return result


def _pair_benchmark(fixture: Any, item: pytest.Item) -> None:
    """pytest-benchmark's fixture keeps its own checks (used once, ``pedantic``'s arguments), but
    its rounds are the controller's (its own measurement is not run)."""
    intercept_benchmark(fixture, lambda workload, _own: _measure(item, workload, Mode.BENCHMARK).result)


def _time_whole_call(item: pytest.Item) -> None:
    """The test's body is its workload: ``item.runtest`` times it in the controller's rounds (the
    function-scoped fixtures are set up once, for all rounds)."""
    body = item.runtest

    def runtest() -> None:
        _measure(item, Workload(body), Mode.CALL_ROUNDS)

    item.runtest = runtest  # type: ignore[method-assign]


def _foreign_modules(directory: str) -> list[str]:
    """Modules loaded from ``directory`` (the other side's tree): a sign the import path is wrong."""
    root = Path(directory).resolve()
    # the interpreter, installed packages and perfgate itself may live anywhere: not code under test
    tools = [
        Path(p).resolve()
        for p in {sys.prefix, sys.base_prefix, *sys.path}
        if "-packages" in p or p in (sys.prefix, sys.base_prefix)
    ]
    tools.append(Path(__file__).resolve().parents[1])
    found = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        resolved = Path(path).resolve()
        if resolved.is_relative_to(root) and not any(resolved.is_relative_to(t) for t in tools):
            found.append(f"{name} ({path})")
    return sorted(found)[:20]


def _remote_measure(channel: Channel, nodeid: str) -> Measure:
    return _RemoteMeasure(channel, nodeid)


#: what the protocol asks of the call between two orders: ("round", loops) -> (ns, switches, cpu ns);
#: ("calibrate", min_round_time) -> loops
_Request = tuple[str, Any]
_Orders = Generator[_Request, Any, "tuple[tuple[float, ...], int, int]"]


class _RemoteMeasure:
    """The controller's rounds for one ``perf`` call. ``__call__`` times a plain call (or a
    :class:`Workload`); ``aio`` an awaited one, inside the loop that awaits it: in a sync test the
    one loop ``perf`` made, in an async test the test's own loop, whose thread then blocks on the
    controller's orders between rounds (nothing else should run in it then: the other side is
    measuring). Both speak the same protocol (:func:`_orders`)."""

    def __init__(self, channel: Channel, nodeid: str) -> None:
        self.channel = channel
        self.nodeid = nodeid

    def __call__(self, fn: Callable[[], Any] | Workload, settings: timing.TimingSettings) -> timing.Timing:
        workload = fn if isinstance(fn, Workload) else Workload(fn)
        started = time.perf_counter_ns()
        result = workload.first()
        orders = _orders(self.channel, self.nodeid, settings, time.perf_counter_ns() - started)
        reply: Any = None
        while True:
            try:
                kind, value = orders.send(reply)
            except StopIteration as stop:
                return _timing(stop.value, started, result)
            try:
                if kind == MessageType.ROUND:
                    reply = _round(workload, value, settings.disable_gc)
                else:
                    reply = workload.calibrate(value)
            except BaseException as exc:
                orders.throw(exc)  # the controller hears why; raises it again
                raise

    async def aio(self, call: Callable[[], Awaitable[Any]], settings: timing.TimingSettings) -> timing.Timing:
        from ..measure import aio

        started = time.perf_counter_ns()
        result = await call()
        orders = _orders(self.channel, self.nodeid, settings, time.perf_counter_ns() - started)
        reply: Any = None
        while True:
            try:
                kind, value = orders.send(reply)  # blocks this thread (and its loop) until the next order
            except StopIteration as stop:
                return _timing(stop.value, started, result)
            try:
                if kind == MessageType.ROUND:
                    reply = await _round_awaited(call, value, settings.disable_gc)
                else:
                    reply = await aio.calibrate(call, value)
            except BaseException as exc:
                orders.throw(exc)
                raise


class _ProfiledMeasure:
    """A profiling session's ``perf`` call: the call once (its result is the test's), then the
    call again under the profiler: its instructions counted by Python function (``profiler``
    "instructions", the worker runs under callgrind), or sampled CPU time for ``seconds``; the
    profile goes to the controller (``profile``) and nothing is timed. An awaited call is not
    profiled (the message says so)."""

    def __init__(self, channel: Channel, nodeid: str, seconds: float, profiler: str) -> None:
        self.channel = channel
        self.nodeid = nodeid
        self.seconds = seconds
        self.profiler = profiler

    def __call__(self, fn: Callable[[], Any] | Workload, settings: timing.TimingSettings) -> timing.Timing:
        from ..measure.cpuprofile import profile_cpu

        workload = fn if isinstance(fn, Workload) else Workload(fn)
        started = time.perf_counter_ns()
        result = workload.first()
        # with pytest-benchmark's setup, a profiled call is setup, call and teardown
        call = workload.call if workload.prepare is None else workload.first
        try:
            if self.profiler == PROFILER_INSTRUCTIONS:
                from ..counts.functions import count_functions

                # counted, not sampled: the same on a loaded machine, so the two sides differ only
                # where their code or data do
                profile = count_functions(call, name=self.nodeid)
            else:
                # CPU time: the workers share one CPU with whatever else the machine runs, and
                # waiting for it would blur which function's work grew
                profile = profile_cpu(call, min_time=self.seconds, clock="cpu")
        except Exception as exc:
            self.channel.send(MessageType.PROFILE, nodeid=self.nodeid, profile=None, why=_crash_text(exc))
            raise
        self.channel.send(MessageType.PROFILE, nodeid=self.nodeid, profile=profile.to_json(), why="")
        return _timing(((), 1, 0), started, result)

    async def aio(self, call: Callable[[], Awaitable[Any]], settings: timing.TimingSettings) -> timing.Timing:
        started = time.perf_counter_ns()
        result = await call()
        self.channel.send(MessageType.PROFILE, nodeid=self.nodeid, profile=None, why="an awaited call is not profiled")
        return _timing(((), 1, 0), started, result)


def _timing(kept: tuple[tuple[float, ...], int, int], started: int, result: Any) -> timing.Timing:
    samples, loops, warmup = kept
    return timing.Timing(
        samples=samples,
        loops=loops,
        warmup_rounds=warmup,
        total_time=(time.perf_counter_ns() - started) * 1e-9,
        result=result,
    )


def _orders(channel: Channel, nodeid: str, settings: timing.TimingSettings, first_ns: int) -> _Orders:
    """The worker's side of one timed call: says it is ready, then yields what each order asks of
    the call and receives its answer, until ``done`` (the kept rounds) or ``release`` (none).
    An exception thrown in is reported to the controller (``failed``) and raised again."""
    channel.send(
        MessageType.READY,
        nodeid=nodeid,
        first_ns=first_ns,
        settings={
            "max_time": settings.max_time,
            "warmup_time": settings.warmup_time,
            "min_round_time": settings.min_round_time,
            "min_rounds": settings.min_rounds,
        },
    )
    samples: list[float] = []
    warmup = 0
    rounds = 0
    while True:
        order = channel.receive()
        kind = order["type"]
        try:
            if kind == MessageType.ROUND:
                loops = int(order["loops"])
                rounds += 1
                elapsed, switches, cpu = yield ("round", loops)
                if order.get("keep"):
                    samples.append(elapsed * 1e-9 / loops)
                else:
                    warmup += 1
                channel.send(MessageType.ROUND, ns=elapsed, switches=switches, cpu_ns=cpu)
            elif kind == MessageType.CALIBRATE:
                calibrated = yield ("calibrate", float(order["min_round_time"]))
                channel.send(MessageType.CALIBRATED, loops=calibrated)
            elif kind in (MessageType.DONE, MessageType.RELEASE):
                return (tuple(samples) if kind == MessageType.DONE else ()), int(order.get("loops") or 1), warmup
            else:
                raise RuntimeError(f"perfgate ab worker: unexpected order {order!r}")
        except BaseException as exc:
            # the controller hears why before the test fails with it
            where = f"round {rounds}" if kind == MessageType.ROUND else "calibration"
            channel.send(MessageType.FAILED, nodeid=nodeid, message=_crash_text(exc), where=where)
            raise


def _involuntary_switches() -> int:
    """Involuntary context switches of this thread so far (another process took the CPU)."""
    return resource.getrusage(_RUSAGE).ru_nivcsw if resource is not None else 0


def _thread_cpu_ns() -> int:
    """This thread's CPU time in nanoseconds (-1 where the platform has no such clock)."""
    try:
        return time.thread_time_ns()
    except (AttributeError, OSError):
        return -1


@contextmanager
def _round_clock(disable_gc: bool) -> Iterator[list[int]]:
    """Measures the round run inside: the list it yields gets its wall nanoseconds, involuntary
    context switches and CPU nanoseconds (-1: unknown)."""
    enabled = gc.isenabled()
    if disable_gc:
        gc.disable()
    figures: list[int] = []
    try:
        switches = _involuntary_switches()
        cpu = _thread_cpu_ns()
        start = time.perf_counter_ns()
        yield figures
        elapsed = time.perf_counter_ns() - start
        cpu_after = _thread_cpu_ns()
        figures += [elapsed, _involuntary_switches() - switches, cpu_after - cpu if cpu >= 0 and cpu_after >= 0 else -1]
    finally:
        if disable_gc and enabled:
            gc.enable()


async def _round_awaited(call: Callable[[], Awaitable[Any]], loops: int, disable_gc: bool) -> tuple[int, int, int]:
    """:func:`_round` with every call awaited in the running loop."""
    with _round_clock(disable_gc) as figures:
        for _ in range(loops):
            await call()
    elapsed, switches, cpu = figures
    return elapsed, switches, cpu


def _round(workload: Workload, loops: int, disable_gc: bool) -> tuple[int, int, int]:
    """Wall nanoseconds, involuntary context switches and CPU nanoseconds (-1: unknown) of one round."""
    call, after = workload.prepare() if workload.prepare is not None else (workload.call, None)
    try:
        with _round_clock(disable_gc) as figures:
            for _ in range(loops):
                call()
    finally:
        if after is not None:
            after()
    elapsed, switches, cpu = figures
    return elapsed, switches, cpu
