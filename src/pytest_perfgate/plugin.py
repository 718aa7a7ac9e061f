"""pytest wiring: options, markers, fixtures and hooks. No logic lives here: every decision is
made by the pure modules (budgets, recorder, measure, model, reports).

This module loads in every pytest session, and most sessions use no perfgate feature: there it
costs next to nothing. The core (``session`` and with it budgets, model, config, recorder,
reports) is imported only when a test has a budget, a perfgate fixture is used, results are
saved or gated, or a ``perfgate.yml`` exists (it is validated at start-up). Markers are checked
once per collected module or class, not per test; and the per-test hooks that judge budgets and
carry results (:mod:`pytest_perfgate._tracking`) are registered only from the moment something
needs them (:func:`pytest_perfgate._tracking.track`).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

import pytest

from ._lazy import forget_unloaded
from ._state import (
    CONFIG,
    MARKER_ARGS,
    MEASURE,
    PERF,
    SETTINGS,
    SPEC,
    STATE,
    add_option_table,
    is_worker,
    resolve_option_table,
    session_state,
    tracking,
    xdist_controller,
)
from .errors import PerfgateError
from .markers import MARKERS
from .options import OPTION_TABLE, Options, find_config, header_line

if TYPE_CHECKING:
    from .recorder import Perf

#: area plugins (fixtures and hooks of the MongoDB, race and load subsystems), registered right after
#: this one (see :func:`pytest_plugin_registered`)
SUBSYSTEMS = ("pytest_perfgate.race.plugin", "pytest_perfgate.mongo.plugin", "pytest_perfgate.load.plugin")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    """Register the subsystems once this module is, as ``pytest_plugins`` would (same order, same
    names, ``-p no:<name>`` respected) but without making pytest read the entry points of every
    installed distribution once per name (~10 ms a session)."""
    if plugin is sys.modules[__name__]:
        for name in SUBSYSTEMS:
            if not manager.is_blocked(name) and manager.get_plugin(name) is None:
                manager.register(importlib.import_module(name), name)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--perfgate-instructions``: the session runs again under valgrind's callgrind (this
    process waits for it and exits with its code), unless it already runs under it."""
    if config.option.help or config.option.version:
        return None
    options = _options(config)
    if options.evidence and not options.instructions and not options.disable:
        from .budgets import BY_FUNCTION  # only when evidence is asked for: the core stays unloaded

        if BY_FUNCTION in options.evidence:
            raise pytest.UsageError(
                "perfgate: --perfgate-evidence=instructions counts each test's instructions by Python function under "
                "callgrind: add --perfgate-instructions"
            )
    if not options.instructions or options.disable:
        return None
    from ._counting import rerun_under_callgrind

    return rerun_under_callgrind(config, options)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_option_table(parser, "perfgate", "performance budgets and gate (pytest-perfgate)", OPTION_TABLE)


def _options(config: pytest.Config) -> Options:
    return Options(**resolve_option_table(config, OPTION_TABLE))


def pytest_configure(config: pytest.Config) -> None:
    forget_unloaded(__package__)  # after pytester's in-process runs: the core is imported lazily
    for doc in MARKERS.values():
        config.addinivalue_line("markers", doc.ini_line)
    options = config.stash[SETTINGS] = _options(config)
    path = options.config
    if path is not None and not os.path.isabs(path):
        path = os.path.join(str(config.invocation_params.dir), path)
    if path is None:
        found = find_config(config.invocation_params.dir, config.rootpath)
        path = str(found) if found else None
    _check_paths(config, options, path)  # before any test runs: a FIFO never blocks, no figure is lost at the end
    if path is not None:  # loaded (and validated) now: a bad one is a usage error before any test runs
        from .config import load_config

        try:
            config.stash[CONFIG] = load_config(path)
        except PerfgateError as exc:
            raise pytest.UsageError(f"perfgate: {exc}") from None
    if not is_worker(config):
        config.pluginmanager.register(_SessionEnd(config), "perfgate-session-end")
    if any(value is not None for value in (options.save, options.html, options.compare, options.pushgateway)):
        from ._tracking import track

        track(config)  # every measuring test's results are wanted, also those that measure late


def _check_paths(config: pytest.Config, options: Options, config_path: str | None) -> None:
    """The session's paths (pytest_perfgate.paths): the KPI file and the baseline can be read
    (a FIFO is refused, a symlink loop is not "no baseline yet"), the results and HTML files can
    be written (the results file overwrites only a perfgate file). A usage error otherwise."""
    from .paths import check_input, check_output

    try:
        if config_path is not None and os.path.exists(config_path):
            check_input(config_path, "a perfgate.yml (YAML file)")
        if is_worker(config):
            return
        if options.compare is not None:
            check_input(options.compare, "a results file or a directory of stored runs", directory_ok=True,
                        missing_ok=True)  # fmt: skip
        if options.save is not None:
            check_output(options.save, "the results file (--perfgate-save)", perfgate_only=True)
        if options.html is not None:
            check_output(options.html, "the HTML report (--perfgate-html)")
    except PerfgateError as exc:
        raise pytest.UsageError(f"perfgate: {exc}") from None


def pytest_collection_finish(session: pytest.Session) -> None:
    """With -v the summary shows every timed test's median: pytest-benchmark's tests too, which
    are recorded only while the per-test hooks are on."""
    config = session.config
    wanted = config.getoption("verbose") > 0 and not tracking(config) and config.pluginmanager.has_plugin("benchmark")
    if wanted and any("benchmark" in getattr(item, "fixturenames", ()) for item in session.items):
        from ._tracking import track

        track(config)


def pytest_report_header(config: pytest.Config) -> str | None:
    perf_config = config.stash.get(CONFIG, None)
    path = perf_config.path if perf_config is not None else None
    kpis = len(perf_config.kpis) if perf_config is not None else 0
    return header_line(config.stash[SETTINGS], path, kpis, str(config.rootpath))


# --------------------------------------------------------------------------- collection

#: the markers whose presence makes collection look closer at a test (most tests carry none)
_NAMES = frozenset(MARKERS)
#: markers of the registry that carry a validator (e.g. race), checked as items are made
_VALIDATED = tuple(doc for doc in MARKERS.values() if doc.validator)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Validate the perfgate markers of the tests a module or class collected, so a bad one is a
    collection error for it (like an unknown marker under --strict-markers), never an
    INTERNALERROR. Runs once per collector, not per test."""
    report = yield
    if report.passed and report.result:
        try:
            _check_collected(collector, report.result)
        except collector.CollectError as exc:
            return pytest.CollectReport(collector.nodeid, "failed", str(exc.args[0]), None)
    return report


def _check_collected(collector: pytest.Collector, nodes: Iterable[pytest.Item | pytest.Collector]) -> None:
    inherited: bool | None = None  # a perfgate marker on the module, a class, ...: computed once
    for item in nodes:
        if not isinstance(item, pytest.Function) or item.parent is not collector:
            continue
        if not any(mark.name in _NAMES for mark in item.own_markers):
            if inherited is None:
                inherited = any(mark.name in _NAMES for node in collector.listchain() for mark in node.own_markers)
            if not inherited:
                continue  # the common case: nothing of perfgate's on this test
        _validate_markers(collector, item)
        if item.get_closest_marker("perf_budget") is None:
            continue
        levels = [
            (node.nodeid, [(m.args, m.kwargs) for m in node.own_markers if m.name == "perf_budget"])
            for node in item.listchain()
        ]
        try:
            item.stash[SPEC] = session_state(item.config).resolve_spec(item.nodeid, levels, fixtures=item.fixturenames)
        except PerfgateError as exc:
            raise collector.CollectError(f"perf_budget: {exc}") from None
        from ._tracking import track

        track(item.config)


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


@pytest.fixture
def perf(request: pytest.FixtureRequest) -> Generator[Perf, None, None]:
    """Time a call: ``perf(fn, *args, **kwargs)`` (calibrated loop, warm-up, rounds; returns
    ``fn``'s result; a coroutine function is awaited, on one event loop), in an async test
    ``await perf.aio(fn, *args, **kwargs)`` (awaited in the test's loop). Record your own figures
    with ``perf.record(name, value, unit=...)``."""
    from ._tracking import recorder
    from .recorder import Perf

    state = session_state(request.config)
    spec = request.node.stash.get(SPEC, None)
    fixture = Perf(
        recorder(request.node),
        state.timing_settings(),
        measure_memory=state.options.memory or bool(spec and spec.get("mem_peak")),
        enabled=not state.options.disable,
        measure=request.config.stash[MEASURE](request.node.nodeid) if MEASURE in request.config.stash else None,
    )
    request.node.stash[PERF] = fixture
    yield fixture
    fixture.close()  # the loop of awaited calls; a perf.aio(...) never awaited is an error here


class _SessionEnd:
    """Saves, gates and reports the session's results at its end (not in xdist workers)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if xdist_controller(self.config):
            from ._tracking import collect_results

            collect_results(self.config)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        o = self.config.stash[SETTINGS]
        if STATE not in self.config.stash and all(v is None for v in (o.save, o.html, o.compare, o.pushgateway)):
            return  # nothing was measured, and nothing is to be written or gated
        state = session_state(self.config)
        try:
            from .reports.session_report import finish_session

            finish_session(state)
        except (OSError, PerfgateError) as exc:
            where = state.options.save or state.options.html
            state.save_error = f"could not write results to {where}: {exc}"
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        gate = state.gate
        if gate is not None and gate.code and session.exitstatus == 0:
            # the gate failed (1) or could not read its baseline (2): the session fails with it
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if gate.code == 1 else pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.config.stash.get(STATE, None)
        if state is None:
            return
        from .reports.session_report import summary_lines

        lines = summary_lines(state, verbose=self.config.getoption("verbose") > 0)
        if not lines:
            return
        terminalreporter.section("perfgate", sep="=")
        for line in lines:
            red = line.startswith(("error", "budgets:")) and "fail" in line
            terminalreporter.write_line(line, red=red, yellow=line.startswith("WARN"))
