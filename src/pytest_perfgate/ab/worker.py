"""The pytest plugin inside each ``perfgate ab`` worker (loaded with ``-p``): wiring only.

It reports what it collected and runs the tests its controller asks for, in its order; every
``perf`` call does its first call, then times rounds only when the controller says so (the other
side runs its rounds in between), and records the kept rounds as the test's ``time`` series.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..measure import timing
from ..plugin import MEASURE
from ..recorder import Measure
from ..session import BUDGET_FAILURE
from .protocol import ENV_FOREIGN, ENV_SIDE, PROTOCOL_VERSION, Channel

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
    config.stash[MEASURE] = lambda nodeid: _remote_measure(channel, nodeid)
    config.pluginmanager.register(_Worker(channel), "perfgate-ab-worker")
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    channel.send(
        "hello",
        protocol=PROTOCOL_VERSION,
        side=os.environ.get(ENV_SIDE, "?"),
        pid=os.getpid(),
        affinity=affinity,
        hashseed=os.environ.get("PYTHONHASHSEED"),
        python=sys.version.split()[0],
        cwd=os.getcwd(),
    )


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(str(text).rstrip().splitlines()[-lines:])


def _crash_line(report: pytest.TestReport) -> str:
    """One line saying why a test failed or skipped (the exception, or the skip reason)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else report.longreprtext
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "no details"


class _Worker:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.collect_errors: list[dict[str, str]] = []
        self.outcomes: dict[str, dict[str, str]] = {}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append({"nodeid": report.nodeid, "message": _tail(report.longreprtext)})

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        files = {str(item.path) for item in items}
        for plugin in config.pluginmanager.get_plugins():
            name = getattr(plugin, "__file__", None)
            if name and os.path.basename(name) == "conftest.py":
                files.add(str(name))
        if config.inipath is not None:
            files.add(str(config.inipath))
        self.channel.send(
            "collected",
            nodeids=[item.nodeid for item in items],
            files=sorted(files),
            rootdir=str(config.rootpath),
            errors=self.collect_errors,
        )
        order = self.channel.receive()
        if order.get("type") != "run":
            raise pytest.UsageError(f"perfgate ab worker: expected the list of tests to run, got {order!r}")
        position = {nodeid: i for i, nodeid in enumerate(order["nodeids"])}
        dropped = [item for item in items if item.nodeid not in position]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = sorted((item for item in items if item.nodeid in position), key=lambda item: position[item.nodeid])

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
        self.channel.send("end", nodeid=nodeid, **entry)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self) -> None:
        foreign = os.environ.get(ENV_FOREIGN)
        self.channel.send("finished", foreign=_foreign_modules(foreign) if foreign else [])
        self.channel.close()


def _foreign_modules(directory: str) -> list[str]:
    """Modules loaded from ``directory`` (the other side's tree): a sign the import path is wrong."""
    root = Path(directory).resolve()
    # the interpreter, installed packages and perfgate itself may live anywhere: not code under test
    tools = [Path(p).resolve() for p in {sys.prefix, sys.base_prefix, *sys.path} if "-packages" in p or p in (
        sys.prefix, sys.base_prefix)]
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
    def measure(fn: Callable[[], Any], settings: timing.TimingSettings) -> timing.Timing:
        started = time.perf_counter_ns()
        result = fn()
        first_ns = time.perf_counter_ns() - started
        channel.send(
            "ready",
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
        while True:
            order = channel.receive()
            kind = order["type"]
            if kind == "round":
                loops = int(order["loops"])
                elapsed, switches, cpu = _round(fn, loops, settings.disable_gc)
                if order.get("keep"):
                    samples.append(elapsed * 1e-9 / loops)
                else:
                    warmup += 1
                channel.send("round", ns=elapsed, switches=switches, cpu_ns=cpu)
            elif kind == "calibrate":
                channel.send("calibrated", loops=timing.calibrate(fn, float(order["min_round_time"])))
            elif kind in ("done", "release"):
                loops = int(order.get("loops") or 1)
                return timing.Timing(
                    samples=tuple(samples) if kind == "done" else (),
                    loops=loops,
                    warmup_rounds=warmup,
                    total_time=(time.perf_counter_ns() - started) * 1e-9,
                    result=result,
                )
            else:
                raise RuntimeError(f"perfgate ab worker: unexpected order {order!r}")

    return measure


def _involuntary_switches() -> int:
    """Involuntary context switches of this thread so far (another process took the CPU)."""
    return resource.getrusage(_RUSAGE).ru_nivcsw if resource is not None else 0


def _thread_cpu_ns() -> int:
    """This thread's CPU time in nanoseconds (-1 where the platform has no such clock)."""
    try:
        return time.thread_time_ns()
    except (AttributeError, OSError):
        return -1


def _round(fn: Callable[[], Any], loops: int, disable_gc: bool) -> tuple[int, int, int]:
    """Wall nanoseconds, involuntary context switches and CPU nanoseconds (-1: unknown) of one round."""
    enabled = gc.isenabled()
    if disable_gc:
        gc.disable()
    try:
        switches = _involuntary_switches()
        cpu = _thread_cpu_ns()
        start = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter_ns() - start
        cpu_after = _thread_cpu_ns()
        return elapsed, _involuntary_switches() - switches, cpu_after - cpu if cpu >= 0 and cpu_after >= 0 else -1
    finally:
        if disable_gc and enabled:
            gc.enable()
