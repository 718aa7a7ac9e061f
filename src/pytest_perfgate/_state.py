"""The internal API of the pytest side: what every subsystem's wiring (``mongo/plugin``,
``race/plugin``, ``load/plugin``, ``ab/worker``) and the core's per-test hooks share. Nothing
imports :mod:`pytest_perfgate.plugin` but pytest.

* the stash keys of a session and of a test;
* :func:`session_state`: the session's :class:`~pytest_perfgate.session.PerfgateSession`, made
  (and the core imported) on first use;
* option tables: ``--perfgate-<name>`` flags and ``perfgate_<name>`` ini keys from one table;
* :func:`register_once`, :func:`is_worker`, :func:`xdist_controller`.

Recording (a test's :class:`~pytest_perfgate.recorder.Recorder`, and the per-test hooks that
judge budgets and carry results) is :mod:`pytest_perfgate._tracking`, imported where a session
first needs it. What a subsystem adds to a test's record goes through the hooks declared in
:mod:`pytest_perfgate.hookspecs`.

This module loads in every pytest session: it imports nothing of the core at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .options import Options, OptionTable, resolve

if TYPE_CHECKING:
    from .budgets import BudgetSpec
    from .config import PerfgateConfig
    from .model import TestResult
    from .recorder import Measure, Perf, Recorder
    from .session import PerfgateSession

# --------------------------------------------------------------------------- the session's keys

#: the session's state (:class:`~pytest_perfgate.session.PerfgateSession`), made on first use
STATE: pytest.StashKey[PerfgateSession] = pytest.StashKey()
#: the resolved options, and the loaded ``perfgate.yml`` if there is one
SETTINGS: pytest.StashKey[Options] = pytest.StashKey()
CONFIG: pytest.StashKey[PerfgateConfig] = pytest.StashKey()
#: set by the paired A/B worker (``perfgate ab``): times ``perf`` calls as its controller says
MEASURE: pytest.StashKey[Callable[[str], Measure]] = pytest.StashKey()
#: the per-test hooks are registered (see :func:`pytest_perfgate._tracking.track`)
TRACKING: pytest.StashKey[bool] = pytest.StashKey()

# --------------------------------------------------------------------------- a test's keys

#: the test's resolved budgets (``perf_budget`` markers and KPIs), set at collection
SPEC: pytest.StashKey[BudgetSpec | None] = pytest.StashKey()
#: the merged, validated arguments of the registry's markers that carry a validator, by marker
MARKER_ARGS: pytest.StashKey[dict[str, dict[str, Any]]] = pytest.StashKey()
#: what the test measured (made on first use by :func:`pytest_perfgate._tracking.recorder`)
RECORDER: pytest.StashKey[Recorder] = pytest.StashKey()
#: the test's ``perf`` fixture, its judged result, and pytest-benchmark's fixture if it used one
PERF: pytest.StashKey[Perf] = pytest.StashKey()
RESULT: pytest.StashKey[TestResult] = pytest.StashKey()
BENCHMARK: pytest.StashKey[Any] = pytest.StashKey()


def session_state(config: pytest.Config) -> PerfgateSession:
    """The session's state, made (and the core imported) on first use."""
    state = config.stash.get(STATE, None)
    if state is None:
        from .config import PerfgateConfig
        from .session import PerfgateSession

        perf_config = config.stash.get(CONFIG, None)
        state = config.stash[STATE] = PerfgateSession(
            options=config.stash[SETTINGS],
            config=perf_config if perf_config is not None else PerfgateConfig(),
            rootdir=str(config.rootpath),
            is_worker=is_worker(config),
        )
    return state


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


# --------------------------------------------------------------------------- plugins and processes


def tracking(config: pytest.Config) -> bool:
    """Whether the per-test hooks are registered (see :func:`pytest_perfgate._tracking.track`)."""
    return TRACKING in config.stash


def register_once(config: pytest.Config, name: str, make: Callable[[], object]) -> bool:
    """Register ``make()`` as the plugin ``name`` for the rest of the session unless it is
    registered already (plugins of hooks that a session needs only once something uses them);
    whether it was registered now."""
    if config.pluginmanager.has_plugin(name):
        return False
    config.pluginmanager.register(make(), name)
    return True


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker (its results travel on its reports)."""
    return hasattr(config, "workerinput")


def xdist_controller(config: pytest.Config) -> bool:
    """Whether this process distributes the tests to pytest-xdist workers (their reports, with
    what perfgate attached, arrive here); known from ``pytest_sessionstart`` on."""
    return config.pluginmanager.has_plugin("dsession")
