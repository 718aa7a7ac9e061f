"""pytest wiring for race testing: options, the ``race`` marker's defaults, the ``race`` fixture
and its report. The only race module that imports pytest; every decision is made in ``race``.

It loads in every pytest session: its per-test hooks (the race reports, the summary lines) are
registered only once a ``race`` fixture is used (or, for the summary, when pytest-xdist workers
may send race reports)."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .. import _state as core
from ..errors import RaceError
from .options import RACE_OPTIONS, REPLAY_HELP, replay_token

if TYPE_CHECKING:
    from .api import Race

PROPERTY = "perfgate_race"
BASE = pytest.StashKey[dict[str, Any]]()
RACE = pytest.StashKey["Race"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    core.add_option_table(parser, "perfgate", "performance budgets and gate (pytest-perfgate)", RACE_OPTIONS)
    parser.getgroup("perfgate").addoption(
        "--perfgate-race-replay", dest="perfgate_race_replay", type=replay_token, default=None, metavar="TOKEN",
        help=REPLAY_HELP,
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    # only what was set (command line or ini); the race package itself is imported on first use
    values = core.resolve_option_table(config, RACE_OPTIONS)
    config.stash[BASE] = {name[len("race_") :]: value for name, value in values.items() if value is not None}


def pytest_sessionstart(session: pytest.Session) -> None:
    if core.xdist_controller(session.config):  # workers' race reports arrive here
        _summarise(session.config)


_SUMMARY = "perfgate-race-summary"


def _summarise(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        core.register_once(config, _SUMMARY, _RaceSummary)


def _replay_command(item: pytest.Item) -> Any:
    def command(token: str) -> str:
        return f"pytest {shlex.quote(item.nodeid)} --perfgate-race-replay={token}"

    return command


@pytest.fixture
def race(request: pytest.FixtureRequest) -> Iterator[Race]:
    """Run operations concurrently under a controlled, seeded scheduler:
    ``race.run(op1, op2, ..., invariant=..., setup=..., schedules=300)``. Defaults come from
    ``@pytest.mark.race(...)`` and ``--perfgate-race-*``; see docs/race.md."""
    from .api import Race
    from .runner import RaceConfig

    config = request.config
    item = request.node
    try:
        marker = item.stash.get(core.MARKER_ARGS, {}).get("race", {})  # validated at collection by the core
        defaults = Race(dataclasses.replace(RaceConfig(), **config.stash[BASE])).config(**marker)
    except RaceError as exc:
        raise pytest.UsageError(f"perfgate: {item.nodeid}: {exc}") from None
    fixture = Race(
        defaults,
        forced_seed=config.getoption("perfgate_race_seed"),
        replay=config.getoption("perfgate_race_replay"),
        replay_command=_replay_command(item),
    )
    item.stash[RACE] = fixture
    from .._tracking import track

    track(config)  # the core's per-test hooks ask for the race reports (pytest_perfgate_record)
    if core.register_once(config, _REPORTS, _RaceReports):  # per-test hooks only in sessions that race
        _summarise(config)
    yield fixture
    unused = fixture.unused_replay()
    if unused:
        pytest.fail(f"perfgate: --perfgate-race-replay: {unused}", pytrace=False)


_REPORTS = "perfgate-race-reports"


class _RaceReports:
    """A test's race reports: in its record, on its report (registered when a race fixture is
    first used)."""

    def pytest_perfgate_record(self, item: pytest.Item) -> None:
        fixture = item.stash.get(RACE, None)
        if fixture is None or not fixture.reports:
            return
        from .._tracking import recorder

        evidence = [report.evidence() for report in fixture.reports]
        recorder(item).evidence["race"] = evidence
        # also a user property: it reaches JUnit XML, and this plugin's summary across pytest-xdist
        item.user_properties.append((PROPERTY, json.dumps(evidence, sort_keys=True)))
        item.add_report_section("call", "perfgate race", "\n".join(r.summary() for r in fixture.reports))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        return (yield from _make_report(call))


def _make_report(call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    runner = sys.modules.get("pytest_perfgate.race.runner")  # loaded if any race ran at all
    excinfo = call.excinfo
    if excinfo is not None and report.failed and runner is not None and excinfo.errisinstance(runner.RaceFailure):
        report.longrepr = str(excinfo.value)
    return report


class _RaceSummary:
    """One line per race test in the terminal summary (from reports: works across xdist)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == PROPERTY:
                for entry in json.loads(str(value)):
                    self.lines.append(f"{report.nodeid}: {entry['summary']}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.section("perfgate race", sep="-")
            for line in self.lines:
                terminalreporter.write_line(line)
