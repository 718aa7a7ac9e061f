"""Recording, for every subsystem: a test's :class:`~pytest_perfgate.recorder.Recorder`, and the
per-test hooks that time a budgeted test's whole call, ask the subsystems for what they measured
(the ``pytest_perfgate_record`` hook), judge the budgets, put the result on the test's report and
collect the results. Wiring only, like :mod:`pytest_perfgate.plugin`.

It is imported (and with it the core) and its hooks registered only once a session needs them
(:func:`track`): a session without budgets, perfgate fixtures or results to write never loads it."""

from __future__ import annotations

import os
import posixpath
import time
import warnings
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest

from . import _state as core
from .budgets import BudgetSpec, Verdict
from .errors import BudgetError, MeasurementError, PerfBudgetWarning
from .measure import memory
from .measure.counted import CountSettings
from .measure.workload import is_pytest_benchmark
from .model import TestResult, test_from_json, test_to_dict
from .paths import repository_prefix
from .recorder import Recorder
from .reports.session_report import failure_text


class BenchmarkWatch:
    """Notes pytest-benchmark's fixture however it was requested (also getfixturevalue);
    registered with the per-test hooks where pytest-benchmark is loaded."""

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        value = yield
        if fixturedef.argname == "benchmark" and fixturedef.scope == "function":
            request.node.stash[core.BENCHMARK] = value
            options = core.session_state(request.config).options
            if options.counting and is_pytest_benchmark(value):
                from ._counting import watch_benchmark

                watch_benchmark(value, request.node, timed=not options.instructions)
        return value


@contextmanager
def whole_call(item: pytest.Item, spec: BudgetSpec) -> Iterator[None]:
    """Time (and, with a memory budget, trace) the whole test call as one sample."""
    state = core.session_state(item.config)
    if state.options.disable:
        yield
        return
    recorder_ = recorder(item)
    reading: list[memory.PeakReading] = []
    trace = bool(spec and spec.get("mem_peak")) or state.options.memory
    start = time.perf_counter_ns()
    try:
        if trace:
            with memory.traced_peak(frames=10, sites_above=state.memory_sites_above(spec)) as reading:
                yield
        else:
            yield
    finally:
        elapsed = (time.perf_counter_ns() - start) * 1e-9
        recorder_.add_whole_call(elapsed, reading[0] if reading else None)


class Tracker:
    """The per-test hooks, for every subsystem: time a budgeted test's whole call, judge its
    budgets, put its result on its report (registered by :func:`~pytest_perfgate.plugin.track`)."""

    # trylast: inside pytest's output and log capture (registered before this), as a plugin
    # registered at start-up would be
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        spec = item.stash.get(core.SPEC, None)
        try:
            if spec is not None and spec.budgets and not set(getattr(item, "fixturenames", ())) & TIMING_FIXTURES:
                with whole_call(item, spec):
                    outcome = yield
            else:
                # also the common case, kept cheap: no budget and no measuring fixture (one may still be
                # requested at run time with request.getfixturevalue, or perf.record'ed through another)
                outcome = yield
        finally:
            # the subsystems add what they measured (also of a failed body: its evidence is kept)
            item.ihook.pytest_perfgate_record(item=item)
        if spec is not None or core.RECORDER in item.stash or core.BENCHMARK in item.stash:
            judge_budgets(item, spec)  # reached only when the test body passed
        return outcome

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        stash = item.stash
        if core.SPEC not in stash and core.RECORDER not in stash and core.RESULT not in stash:
            return report  # nothing of perfgate's to attach
        if report.when == "call":
            item.stash[CALL_OUTCOME] = report.outcome
        # a teardown error comes after the call's result: a passed test's result is replaced as an error
        # (a failed one stays failed)
        teardown_error = report.when == "teardown" and report.failed and item.stash.get(CALL_OUTCOME, None) != "failed"
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed") or teardown_error:
            attach(item, report)
        return report


def track(config: pytest.Config) -> None:
    """Register the per-test hooks (judging budgets, carrying results on reports) for the rest of
    the session. Called as the session starts when results are to be saved, reported or gated;
    when a collected test has a budget; and when a perfgate fixture (also of the race, MongoDB or
    load subsystems) is first set up. Until then no test pays for them: a test that measures
    without a budget in a session that writes no results has nothing to judge or to show."""
    if core.TRACKING in config.stash:
        return
    config.stash[core.TRACKING] = True
    manager = config.pluginmanager
    manager.register(Tracker(), "perfgate-tracker")
    if any(getattr(plugin, "__name__", "") == "pytest_benchmark.plugin" for plugin in manager.get_plugins()):
        manager.register(BenchmarkWatch(), "perfgate-benchmark")
    if not core.is_worker(config):
        collect_results(config)


def collect_results(config: pytest.Config) -> None:
    """Collect the results from the reports (this process's, or those of xdist workers)."""
    core.register_once(config, "perfgate-results", lambda: Results(config))


def recorder(item: pytest.Item) -> Recorder:
    """The test's recorder of measured series, made on first use (which starts :func:`track`)."""
    made = item.stash.get(core.RECORDER, None)
    if made is None:
        state = core.session_state(item.config)
        options = state.options
        untimed = UNDER_CALLGRIND if options.instructions else None
        made = item.stash[core.RECORDER] = Recorder(
            dict(state.config.metrics),
            untimed=untimed,
            unrecorded=CountSettings.of(options).uncounted(),
        )
        track(item.config)
    return made


#: why a session counting instructions records no times (it runs under callgrind)
UNDER_CALLGRIND = (
    "not timed under callgrind (--perfgate-instructions counts instructions instead; times under valgrind "
    "are several times the real ones): time the tests in a run without it"
)

#: fixtures that measure the test themselves: its whole call is then not timed as one sample
TIMING_FIXTURES = frozenset({"perf", "benchmark", "load_test"})


def judge_budgets(item: pytest.Item, spec: BudgetSpec | None) -> None:
    """Judge the budgets of a test whose body passed; fail it on a critical breach."""
    state = core.session_state(item.config)
    measured = recorder(item)
    benchmark = item.stash.get(core.BENCHMARK, None)
    why = None
    if benchmark is not None and not state.options.disable:
        why = state.take_benchmark(measured, benchmark)
    perf_fixture = item.stash.get(core.PERF, None)
    if state.options.counting:
        from ._counting import count_test

        count_test(item, measured, state.options)
    # series that could not be measured here, and why (e.g. explain-based metrics on mongomock)
    unmeasured = dict(measured.not_checked)
    if why:
        unmeasured["time"] = why
    try:
        result = state.finish_test(
            item.nodeid,
            spec,
            measured,
            rerun=perf_fixture.measured_callable if perf_fixture else None,
            unmeasured=unmeasured,
        )
    except (BudgetError, MeasurementError) as exc:
        item.stash[core.RESULT] = state.partial_result(item.nodeid, spec, measured, error=str(exc))
        pytest.fail(f"perfgate: {exc}", pytrace=False)
    if result is None:
        return
    item.stash[core.RESULT] = result
    path, lineno, _ = item.location
    for verdict in result.verdicts:
        if verdict.verdict in (Verdict.WARN, Verdict.NOT_CHECKED):
            # attributed to the test itself, so pytest's warning summary points at it
            warnings.warn_explicit(
                PerfBudgetWarning(f"perf budget: {verdict.message()}"),
                PerfBudgetWarning,
                filename=str(item.config.rootpath / path),
                lineno=(lineno or 0) + 1,
            )
    failure = failure_text(result)
    if failure:
        pytest.fail(failure, pytrace=False)


def attach(item: pytest.Item, report: pytest.TestReport) -> None:
    """Put the test's result (judged, or partial: it failed, errored or was skipped) on its report."""
    state = core.session_state(item.config)
    result = item.stash.get(core.RESULT, None)
    spec = item.stash.get(core.SPEC, None)
    recorder = item.stash.get(core.RECORDER, None)
    measured = recorder is not None and bool(recorder.series or recorder.evidence)
    if result is None and (spec is not None or measured):
        result = state.partial_result(item.nodeid, spec, recorder or Recorder())
    if result is not None:
        # an error in setup or teardown is an error (as pytest counts it), not a failed or passed test
        outcome = "error" if report.when in ("setup", "teardown") and report.failed else report.outcome
        if report.when == "call":
            item.stash[CALL_DURATION] = report.duration
        duration = item.stash.get(CALL_DURATION, report.duration)
        if result.location is None:
            result = replace(result, location=test_location(item))
        # a plain attribute: serialised with the report, so results cross pytest-xdist
        report.perfgate = test_to_dict(state.with_outcome(result, outcome, duration))  # type: ignore[attr-defined]


def test_location(item: pytest.Item) -> tuple[str, int] | None:
    """Where the test is defined, as the Code Quality report points at it: its path relative to
    the repository (the git work tree holding the rootdir; the rootdir when there is none),
    "/"-separated, and its 1-based line. None when pytest knows no line."""
    path, lineno, _ = item.location
    if lineno is None:
        return None
    prefix = repository_prefix(str(item.config.rootpath))
    return posixpath.normpath(posixpath.join(prefix, path.replace(os.sep, "/"))), lineno + 1


#: the call's duration and outcome, kept for a result re-attached to a teardown error's report
CALL_DURATION = pytest.StashKey[float]()
CALL_OUTCOME = pytest.StashKey[str]()


def crashed(report: pytest.TestReport) -> bool:
    """Whether ``report`` is pytest-xdist's report of a test whose worker died running it
    ("worker 'gw0' crashed while running 'test_x.py::test_y'"): it carries no result of ours."""
    return report.failed and "crashed while running" in str(report.longrepr or "") and hasattr(report, "node")


class Results:
    """Collects results from reports (its own, or those of xdist workers): registered with the
    per-test hooks, or at session start when pytest-xdist distributes the tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "perfgate", None)
        if data is not None:
            core.session_state(self.config).add(test_from_json(data, report.nodeid))
        elif crashed(report):
            # the worker died: whatever it measured is lost, but the test is in the results, as crashed
            state = core.session_state(self.config)
            known = state.results.get(report.nodeid)
            evidence = {"crash": str(report.longrepr)}
            state.add(
                replace(known, outcome="crashed", evidence={**known.evidence, **evidence})
                if known is not None
                else TestResult(nodeid=report.nodeid, outcome="crashed", evidence=evidence)
            )
