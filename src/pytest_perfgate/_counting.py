"""Counted, not timed: the pytest wiring of ``--perfgate-allocations`` and
``--perfgate-instructions`` (docs/instructions.md). Imported only in sessions that count.

* :func:`rerun_under_callgrind`: the session runs again under valgrind's callgrind, with
  instrumentation off except in measured calls (:mod:`pytest_perfgate.counts.callgrind`);
* :func:`watch_benchmark`: pytest-benchmark's fixture keeps measuring as it does, and its workload
  is kept to be counted;
* :func:`count_test`: after a timed test's body passed, one call of what it timed is counted
  (:func:`pytest_perfgate.measure.counted.count_workload`) into its series.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

import pytest

from . import _state as core
from .budgets import BY_FUNCTION
from .errors import PerfgateError
from .measure.counted import COUNTED_SERIES, ENV_VALGRIND_VERSION, CountSettings, count_by_function, count_workload
from .measure.workload import Workload, intercept_benchmark
from .options import Options
from .recorder import Mode, Recorder

#: the workload a test's pytest-benchmark fixture measured (see :func:`watch_benchmark`)
BENCHMARK_WORKLOAD: pytest.StashKey[Workload] = pytest.StashKey()


def rerun_under_callgrind(config: pytest.Config, options: Options) -> int | None:
    """Run this session again under callgrind and return its exit code; None when this process
    already is that run. A usage error when it cannot be (no valgrind, a launcher script, xdist)."""
    import shutil
    import subprocess
    import tempfile

    from .counts.callgrind import running_on_valgrind, running_under_callgrind, valgrind_command

    if running_under_callgrind():
        return None
    if running_on_valgrind():
        raise pytest.UsageError(
            "perfgate: --perfgate-instructions: this pytest already runs under valgrind, but not under the command "
            "perfgate starts (instrumentation off until a measured call, its output folder): run pytest itself; "
            "perfgate starts valgrind"
        )
    if config.getoption("numprocesses", None):
        raise pytest.UsageError(
            "perfgate: --perfgate-instructions counts in one process under callgrind and cannot run with "
            "pytest-xdist (-n): drop -n (one call per test is counted: the suite does not need parallel workers)"
        )
    if BY_FUNCTION in options.evidence:
        from .counts.functions import unavailable

        why = unavailable(options.valgrind)
        if why is not None:
            raise pytest.UsageError(f"perfgate: --perfgate-evidence=instructions: {why}")
    out_dir = tempfile.mkdtemp(prefix="perfgate-callgrind-")
    try:
        try:
            command = valgrind_command(
                [sys.executable, "-m", "pytest", *config.invocation_params.args],
                out_dir=out_dir,
                valgrind=options.valgrind,
                cache_sim=options.cache_sim,
                functions=BY_FUNCTION in options.evidence,
            )
        except PerfgateError as exc:
            raise pytest.UsageError(f"perfgate: --perfgate-instructions: {exc}") from None
        print(
            f"perfgate: running the session under callgrind (valgrind {command.valgrind.version}, "
            f"PYTHONHASHSEED={command.hash_seed}); only the measured calls are counted",
            flush=True,
        )
        env = {**os.environ, **command.env, ENV_VALGRIND_VERSION: command.valgrind.version}
        return subprocess.run(command.argv, env=env, cwd=config.invocation_params.dir, check=False).returncode
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def watch_benchmark(fixture: Any, item: pytest.Item, *, timed: bool) -> None:
    """What pytest-benchmark's fixture measures is kept for :func:`count_test`; it times it as it
    does when ``timed``, else (a session under callgrind: times mean nothing there) the workload is
    called once."""

    def run(workload: Workload, own: Any) -> Any:
        item.stash[BENCHMARK_WORKLOAD] = workload
        return own() if timed else workload.first()

    intercept_benchmark(fixture, run)


def _workload(item: pytest.Item, recorder: Recorder) -> Workload | str | None:
    """What the test timed, as a workload to count; a reason when it cannot be counted; None
    when it timed nothing."""
    workload = item.stash.get(BENCHMARK_WORKLOAD, None)
    if workload is not None:
        return workload
    perf = item.stash.get(core.PERF, None)
    if perf is not None and perf.measured_callable is not None:
        if perf.awaited_in_test_loop:
            return "calls awaited in the test's event loop (perf.aio) are not counted; perf(async_fn) in a sync test is"
        return Workload(perf.measured_callable)
    if recorder.mode is Mode.WHOLE_CALL:
        return Workload(_body(item))  # the body again: its first run was the warm-up
    return None


def _body(item: pytest.Item) -> Any:
    """The test function called with its fixtures' values: the body alone, without pytest's hook
    calls around it (``item.runtest``, whose count depends on the plugins and their state); the
    whole ``runtest`` for anything that is not a plain function test."""
    function = getattr(item, "obj", None)
    funcargs = getattr(item, "funcargs", None)
    info = getattr(item, "_fixtureinfo", None)
    if function is None or funcargs is None or info is None or inspect.iscoroutinefunction(function):
        return item.runtest
    kwargs = {name: funcargs[name] for name in info.argnames if name in funcargs}
    return lambda: function(**kwargs)


def count_test(item: pytest.Item, recorder: Recorder, options: Options) -> None:
    """Count one call of what the test timed into its series (its body passed). What cannot be
    counted here is recorded as not checked (a budget on it is never passed); an error counting it
    fails the test."""
    workload = _workload(item, recorder)
    if workload is None:
        return
    if isinstance(workload, str):
        for name in COUNTED_SERIES:
            recorder.not_checked.setdefault(name, workload)
        return
    settings = CountSettings.of(options)
    try:
        series = count_workload(workload, settings, name=item.nodeid)
        if settings.instructions and BY_FUNCTION in options.evidence:
            from .profdiff import relative_to

            profile = count_by_function(workload, name=item.nodeid)
            recorder.evidence["cpu_profile"] = relative_to(profile, str(item.config.rootpath)).to_json()
    except PerfgateError as exc:
        pytest.fail(f"perfgate: counting {item.nodeid}: {exc}", pytrace=False)
    for one in series:
        recorder.set_series(one)
