"""pytest wiring: options, markers, fixtures and hooks. No logic lives here: every decision is
made by the pure modules (budgets, recorder, measure, model, reports)."""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest

from . import session as perf_session
from .budgets import BudgetSpec, Verdict
from .config import find_config, load_config
from .errors import BudgetError, MeasurementError, PerfBudgetWarning, PerfgateError
from .markers import MARKERS
from .measure import memory
from .model import TestResult, test_from_json, test_to_dict
from .options import OPTION_TABLE, Options, OptionTable, resolve
from .recorder import Measure, Perf, Recorder

#: area plugins (fixtures and hooks of the MongoDB, race and load subsystems), loaded with this one
pytest_plugins: list[str] = [
    "pytest_perfgate.race.plugin",
    "pytest_perfgate.mongo.plugin",
    "pytest_perfgate.load.plugin",
]

STATE = pytest.StashKey["perf_session.PerfgateSession"]()
SPEC = pytest.StashKey["BudgetSpec | None"]()
RECORDER = pytest.StashKey[Recorder]()
PERF = pytest.StashKey[Perf]()
RESULT = pytest.StashKey[TestResult]()
BENCHMARK = pytest.StashKey[Any]()
MARKER_ARGS = pytest.StashKey[dict[str, dict[str, Any]]]()
#: set by the paired A/B worker (``perfgate ab``): times ``perf`` calls as its controller says
MEASURE = pytest.StashKey[Callable[[str], Measure]]()


# --------------------------------------------------------------------------- options


def add_option_table(parser: pytest.Parser, group: str, description: str, table: OptionTable) -> None:
    """Register ``--perfgate-<name>`` flags and ``perfgate_<name>`` ini keys for a table's rows."""
    options = parser.getgroup(group, description)
    for name, parse, _default, metavar, text in table:
        flag = "--perfgate-" + name.replace("_", "-")
        if metavar:
            options.addoption(flag, dest=f"perfgate_{name}", type=parse, default=None, metavar=metavar, help=text)
        else:
            options.addoption(flag, dest=f"perfgate_{name}", action="store_const", const=True, default=None, help=text)
        parser.addini(f"perfgate_{name}", text, type="string", default=None)


def resolve_option_table(config: pytest.Config, table: OptionTable) -> dict[str, Any]:
    """Each row's value: command line, else ini, else default; a bad ini value is a usage error."""
    values = {}
    for name, parse, default, _metavar, _text in table:
        try:
            values[name] = resolve(
                f"perfgate_{name}",
                config.getoption(f"perfgate_{name}"),
                config.getini(f"perfgate_{name}"),
                parse,
                default,
            )
        except ValueError as exc:
            raise pytest.UsageError(f"perfgate: {exc}") from None
    return values


def pytest_addoption(parser: pytest.Parser) -> None:
    add_option_table(parser, "perfgate", "performance budgets and gate (pytest-perfgate)", OPTION_TABLE)


def _options(config: pytest.Config) -> Options:
    return Options(**resolve_option_table(config, OPTION_TABLE))


def pytest_configure(config: pytest.Config) -> None:
    for doc in MARKERS.values():
        config.addinivalue_line("markers", doc.ini_line)
    options = _options(config)
    path = options.config
    if path is not None and not os.path.isabs(path):
        path = os.path.join(str(config.invocation_params.dir), path)
    if path is None:
        found = find_config(config.invocation_params.dir, config.rootpath)
        path = str(found) if found else None
    try:
        perf_config = load_config(path)
    except PerfgateError as exc:
        raise pytest.UsageError(f"perfgate: {exc}") from None
    is_worker = hasattr(config, "workerinput")
    config.stash[STATE] = perf_session.PerfgateSession(
        options=options, config=perf_config, rootdir=str(config.rootpath), is_worker=is_worker
    )
    if not is_worker:
        config.pluginmanager.register(_Controller(config), "perfgate-controller")


def _state(config: pytest.Config) -> perf_session.PerfgateSession:
    return config.stash[STATE]


def pytest_report_header(config: pytest.Config) -> str | None:
    return _state(config).header()


# --------------------------------------------------------------------------- collection


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Generator[None, Any, Any]:
    """Validate perf_budget markers as items are made, so a bad one is a collection error for
    its module (like an unknown marker under --strict-markers), never an INTERNALERROR."""
    result = yield
    items = result if isinstance(result, list) else [result]
    state = _state(collector.config)
    for item in items:
        if isinstance(item, pytest.Function):
            _validate_markers(collector, item)
            if item.get_closest_marker("perf_budget") is None:  # the common case: nothing to resolve
                continue
            levels = [
                (node.nodeid, [(m.args, m.kwargs) for m in node.own_markers if m.name == "perf_budget"])
                for node in item.listchain()
            ]
            try:
                item.stash[SPEC] = state.resolve_spec(item.nodeid, levels, fixtures=item.fixturenames)
            except PerfgateError as exc:
                raise collector.CollectError(f"perf_budget: {exc}") from None
    return result


#: markers of the registry that carry a validator (e.g. race), checked as items are made
_VALIDATED = tuple(doc for doc in MARKERS.values() if doc.validator)


def _validate_markers(collector: pytest.Collector, item: pytest.Function) -> None:
    """Validate registered markers (farthest first, the closest winning per argument) and keep
    their merged arguments in ``item.stash[MARKER_ARGS][name]`` for the subsystem's fixture."""
    for doc in _VALIDATED:
        if item.get_closest_marker(doc.name) is None:
            continue
        validate = doc.load_validator()
        assert validate is not None
        merged: dict[str, Any] = {}
        for marker in reversed(list(item.iter_markers(doc.name))):
            try:
                merged.update(validate(marker.args, marker.kwargs))
            except PerfgateError as exc:
                raise collector.CollectError(f"{item.nodeid}: {exc}") from None
        item.stash.setdefault(MARKER_ARGS, {})[doc.name] = merged


# --------------------------------------------------------------------------- fixtures


def _recorder(item: pytest.Item) -> Recorder:
    if RECORDER not in item.stash:
        item.stash[RECORDER] = Recorder(dict(_state(item.config).config.metrics))
    return item.stash[RECORDER]


@pytest.fixture
def perf(request: pytest.FixtureRequest) -> Perf:
    """Time a call: ``perf(fn, *args, **kwargs)`` (calibrated loop, warm-up, rounds; returns
    ``fn``'s result). Record your own figures with ``perf.record(name, value, unit=...)``."""
    state = _state(request.config)
    spec = request.node.stash.get(SPEC, None)
    fixture = Perf(
        _recorder(request.node),
        state.timing_settings(),
        measure_memory=state.options.memory or bool(spec and spec.get("mem_peak")),
        enabled=not state.options.disable,
        measure=request.config.stash[MEASURE](request.node.nodeid) if MEASURE in request.config.stash else None,
    )
    request.node.stash[PERF] = fixture
    return fixture


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Note pytest-benchmark's fixture however it was requested (also getfixturevalue)."""
    value = yield
    if fixturedef.argname == "benchmark" and fixturedef.scope == "function":
        request.node.stash[BENCHMARK] = value
    return value


# --------------------------------------------------------------------------- running


@contextmanager
def _whole_call(item: pytest.Item, spec: BudgetSpec) -> Iterator[None]:
    """Time (and, with a memory budget, trace) the whole test call as one sample."""
    state = _state(item.config)
    if state.options.disable:
        yield
        return
    recorder = _recorder(item)
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
        recorder.add_whole_call(elapsed, reading[0] if reading else None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    spec = item.stash.get(SPEC, None)
    fixtures = set(getattr(item, "fixturenames", ()))
    if spec is None and not fixtures & {"perf", "benchmark"}:
        # the common case, kept cheap: no budget and no measuring fixture (one may still be
        # requested at run time with request.getfixturevalue, or perf.record'ed through another)
        outcome = yield
        if RECORDER not in item.stash and BENCHMARK not in item.stash:
            return outcome
    elif spec is not None and spec.budgets and not fixtures & {"perf", "benchmark", "load_test"}:
        with _whole_call(item, spec):
            outcome = yield
    else:
        outcome = yield
    _judge(item, spec)  # reached only when the test body passed
    return outcome


def _judge(item: pytest.Item, spec: BudgetSpec | None) -> None:
    """Judge the budgets of a test whose body passed; fail it on a critical breach."""
    state = _state(item.config)
    recorder = item.stash.get(RECORDER, None) or Recorder()
    # series that could not be measured here, and why (e.g. explain-based metrics on mongomock)
    unmeasured = dict(recorder.not_checked)
    benchmark = item.stash.get(BENCHMARK, None)
    if benchmark is not None and not state.options.disable:
        why = state.take_benchmark(recorder, benchmark)
        if why:
            unmeasured["time"] = why
    perf_fixture = item.stash.get(PERF, None)
    try:
        result = state.finish_test(
            item.nodeid,
            spec,
            recorder,
            rerun=perf_fixture.measured_callable if perf_fixture else None,
            unmeasured=unmeasured,
        )
    except (BudgetError, MeasurementError) as exc:
        item.stash[RESULT] = state.partial_result(item.nodeid, spec, recorder, error=str(exc))
        pytest.fail(f"perfgate: {exc}", pytrace=False)
    if result is None:
        return
    item.stash[RESULT] = result
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
    failure = perf_session.failure_text(result)
    if failure:
        pytest.fail(failure, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if SPEC not in item.stash and RECORDER not in item.stash and RESULT not in item.stash and not item.user_properties:
        return report  # nothing of perfgate's to attach (the common case)
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        state = _state(item.config)
        result = item.stash.get(RESULT, None)
        spec = item.stash.get(SPEC, None)
        recorder = item.stash.get(RECORDER, None)
        # subsystems (race, ...) attach their report as a JSON user property "perfgate_<name>"
        attached = {
            key[len("perfgate_") :]: json.loads(value)
            for key, value in item.user_properties
            if isinstance(key, str) and key.startswith("perfgate_") and isinstance(value, str)
        }
        if result is None and (spec is not None or attached or (recorder is not None and recorder.series)):
            result = state.partial_result(item.nodeid, spec, recorder or Recorder())
        if result is not None and attached:
            result = replace(result, evidence={**result.evidence, **attached})
        if result is not None:
            # a plain attribute: serialised with the report, so results cross pytest-xdist
            report.perfgate = test_to_dict(state.with_outcome(result, report.outcome, report.duration))
    return report


class _Controller:
    """Collects results from reports (its own, or those of xdist workers) and reports them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.state = _state(config)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "perfgate", None)
        if data is not None:
            self.state.add(test_from_json(data, report.nodeid))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        try:
            self.state.finish()
        except (OSError, PerfgateError) as exc:
            where = self.state.options.save or self.state.options.html
            self.state.save_error = f"could not write results to {where}: {exc}"
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        gate = self.state.gate
        if gate is not None and gate.code and session.exitstatus == 0:
            # the gate failed (1) or could not read its baseline (2): the session fails with it
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if gate.code == 1 else pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        lines = self.state.summary_lines(verbose=self.config.getoption("verbose") > 0)
        if not lines:
            return
        terminalreporter.section("perfgate", sep="=")
        for line in lines:
            red = line.startswith(("error", "budgets:")) and "fail" in line
            terminalreporter.write_line(line, red=red, yellow=line.startswith("WARN"))
