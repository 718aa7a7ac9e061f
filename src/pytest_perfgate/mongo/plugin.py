"""pytest wiring of the MongoDB subsystem: options, fixtures, the session header line, and the
per-test capture window. Registered with :mod:`pytest_perfgate.plugin` (its ``SUBSYSTEMS``). No logic:
decisions live in the pytest-free modules of this package.

It loads in every pytest session: the rest of the package is imported where it is used, the
backend is chosen when first needed (at start-up only when one is forced, so that an unavailable
one is a usage error then), and the capture window (a per-test hook) is registered only once a
MongoDB fixture is used or a test has a query budget."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from .. import _state as core
from ..errors import MongoBackendError, MongoQueryWarning
from ..options import OptionTable, boolean, choice, duration, text, whole_number

if TYPE_CHECKING:  # the rest of the package is imported where it is used: this module loads in every session
    from . import backends as backend_mod
    from .capture import CaptureHub, QueryLog, QueryRecord
    from .profile import Profile
    from .queries import Queries

LOG: pytest.StashKey[QueryLog] = pytest.StashKey()
MONGO_METRICS = ("queries", "docs_examined", "collscan")
REPEAT_MODES = ("warn", "fail", "off")
#: the backends :func:`pytest_perfgate.mongo.backends.choose` accepts (``backends.BACKENDS``; named
#: here too so that declaring the option does not import the backends)
BACKENDS = ("auto", "uri", "docker", "mongod", "mongomock")


#: (name, parser, default, metavar, help): flags --perfgate-<name> and ini keys perfgate_<name>
OPTIONS: OptionTable = (
    (
        "mongo",
        choice(*BACKENDS, what="backend"),
        "auto",
        "BACKEND",
        "MongoDB backend: auto (URI, else Docker, else local mongod, else mongomock), uri, docker, mongod, mongomock",
    ),
    ("mongo_uri", text, None, "URI", "MongoDB server to use (also PERFGATE_MONGO_URI)"),
    ("mongo_image", text, "mongo:7", "IMAGE", "Docker image for the docker backend (default mongo:7)"),
    ("mongod", text, None, "PATH", "mongod executable for the mongod backend (default: mongod on PATH)"),
    ("mongo_replset", boolean, False, "", "start docker/mongod backends as a single-node replica set (transactions)"),
    ("mongo_timeout", duration, 5.0, "DURATION", "connect/probe timeout, e.g. 5s (default 5s)"),
    ("mongo_start_timeout", duration, 60.0, "DURATION", "wait for a started mongod/container (default 60s)"),
    (
        "mongo_repeat_threshold",
        whole_number(0),
        5,
        "N",
        "same query shape N times in a test is reported as N+1 (0: off)",
    ),
    ("mongo_repeats", choice(*REPEAT_MODES), "warn", "MODE", "N+1 repeats: warn (default), fail, or off"),
    ("mongo_explain_limit", whole_number(0), 100, "N", "explain at most N commands per test (default 100)"),
    (
        "mongo_explain",
        choice("budgeted", "always"),
        "budgeted",
        "WHEN",
        "run explain on real servers: 'budgeted' (tests with docs_examined/collscan budgets; default) or "
        "'always' (also one command per query shape, so index advice is checked against the plan)",
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    core.add_option_table(parser, "perfgate-mongo", "MongoDB backends and query budgets (pytest-perfgate)", OPTIONS)


def read_settings(config: pytest.Config) -> tuple[backend_mod.MongoSettings, str]:
    from . import backends as backend_mod

    values = core.resolve_option_table(config, OPTIONS)
    uri, source = config.getoption("perfgate_mongo_uri"), "--perfgate-mongo-uri"
    if not uri and os.environ.get("PERFGATE_MONGO_URI", "").strip():
        uri, source = os.environ["PERFGATE_MONGO_URI"].strip(), "PERFGATE_MONGO_URI"
    elif not uri and values["mongo_uri"]:
        uri, source = values["mongo_uri"], "ini perfgate_mongo_uri"
    settings = backend_mod.MongoSettings(
        choice=values["mongo"],
        uri=uri or None,
        uri_source=source if uri else None,
        image=values["mongo_image"],
        mongod=values["mongod"],
        replset=values["mongo_replset"],
        timeout=values["mongo_timeout"],
        start_timeout=values["mongo_start_timeout"],
        repeat_threshold=values["mongo_repeat_threshold"],
        explain_limit=values["mongo_explain_limit"],
        explain_always=values["mongo_explain"] == "always",
    )
    return settings, values["mongo_repeats"]


@dataclass
class MongoState:
    settings: backend_mod.MongoSettings
    repeats: str
    selection: backend_mod.Selection
    rootdir: str
    worker: str | None
    backend: backend_mod.Backend | None = None
    error: MongoBackendError | None = None
    counter: int = 0
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _hub: CaptureHub | None = None
    _prefix: str | None = None

    @property
    def prefix(self) -> str:
        """``pg_<worker>_<random>_``, which every database of this session starts with."""
        if self._prefix is None:
            from .dbs import session_prefix

            self._prefix = session_prefix(self.worker)
        return self._prefix

    @property
    def hub(self) -> CaptureHub:
        """The command capture, made on first use (a session without MongoDB tests never loads it)."""
        if self._hub is None:
            from .capture import CaptureHub

            self._hub = CaptureHub(self.rootdir)
        return self._hub

    def get_backend(self) -> backend_mod.Backend:
        """Start the backend on first use; a failure is remembered (not retried per test)."""
        from . import backends as backend_mod

        with self.lock:
            if self.backend is None and self.error is None:
                try:
                    self.backend = backend_mod.start(self.selection, self.settings, self.hub)
                except MongoBackendError as exc:
                    self.error = exc
            if self.error is not None:
                raise self.error
            assert self.backend is not None
            return self.backend

    def paused(self) -> contextlib.AbstractContextManager[None]:
        return self.hub.paused()


STATE: pytest.StashKey[MongoState] = pytest.StashKey()
_WORKER_LINES: pytest.StashKey[str] = pytest.StashKey()


def pytest_configure(config: pytest.Config) -> None:
    values = core.resolve_option_table(config, OPTIONS)  # a bad value is a usage error now
    if values["mongo"] != "auto":
        _state(config)  # a forced backend that is not available is a usage error now


def _state(config: pytest.Config) -> MongoState:
    """The session's MongoDB state; the backend is chosen (nothing is started) on first use."""
    state = config.stash.get(STATE, None)
    if state is None:
        from . import backends as backend_mod

        settings, repeats = read_settings(config)
        try:
            selection = backend_mod.choose(settings)
        except MongoBackendError as exc:
            raise pytest.UsageError(f"perfgate: {exc}") from None
        worker = getattr(config, "workerinput", {}).get("workerid")
        state = MongoState(settings, repeats, selection, str(config.rootpath), worker)
        config.stash[STATE] = state
    return state


#: the MongoDB line was printed already (in the header, or after collection)
_SHOWN: pytest.StashKey[bool] = pytest.StashKey()
#: where an xdist worker tells the controller the line (its tests use MongoDB)
_WORKER_LINE = "perfgate_mongo_line"


def backend_line(config: pytest.Config) -> str:
    """``perfgate mongo: <backend> (<why>); <what it can do>``: chooses the backend (starts nothing)."""
    from .backends import expected_capabilities

    sel = _state(config).selection
    return f"perfgate mongo: {sel.kind} ({sel.reason}); {expected_capabilities(sel.kind)}" + (
        "" if sel.kind == "mongomock" else "; started on first use"
    )


def configured(config: pytest.Config) -> bool:
    """Whether the session sets a MongoDB option: a ``--perfgate-mongo*`` flag, a
    ``perfgate_mongo*`` ini key, or ``PERFGATE_MONGO_URI``."""
    if os.environ.get("PERFGATE_MONGO_URI", "").strip():
        return True
    return any(
        config.getoption(f"perfgate_{name}", None) is not None or config.getini(f"perfgate_{name}") not in (None, "")
        for name, *_ in OPTIONS
    )


def uses_mongo(item: pytest.Item) -> bool:
    """Whether a collected test uses a MongoDB fixture or has a query budget."""
    return "mongo_backend" in getattr(item, "fixturenames", ()) or _needs_capture(item)


def pytest_report_header(config: pytest.Config) -> str | None:
    """The backend line, before collection, when the session sets a MongoDB option; otherwise it
    comes after collection, and only when a collected test uses MongoDB (a project that never does
    reads nothing about it)."""
    if not configured(config):
        return None
    config.stash[_SHOWN] = True
    return backend_line(config)


def pytest_report_collectionfinish(config: pytest.Config, items: Sequence[pytest.Item]) -> list[str]:
    if config.stash.get(_SHOWN, False) or not any(uses_mongo(item) for item in items):
        return []
    config.stash[_SHOWN] = True
    return [backend_line(config)]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller collects nothing: a worker whose tests use MongoDB sends the line."""
    line = getattr(node, "workeroutput", {}).get(_WORKER_LINE)
    if line:
        node.config.stash[_WORKER_LINES] = line


# --------------------------------------------------------------------------- fixtures


def _backend_or_fail(config: pytest.Config) -> backend_mod.Backend:
    try:
        return _state(config).get_backend()
    except MongoBackendError as exc:
        message = f"perfgate: {exc}"
    pytest.fail(message, pytrace=False)  # outside the except block: no chained traceback


@pytest.fixture(scope="session")
def mongo_backend(request: pytest.FixtureRequest) -> backend_mod.Backend:
    """The session's MongoDB backend: ``kind``, ``description``, ``capabilities``, ``client``,
    ``new_client(**options)`` (another client whose commands are captured too)."""
    _capture(request.config)
    return _backend_or_fail(request.config)


@pytest.fixture(scope="session")
def mongo_client(mongo_backend: backend_mod.Backend) -> Any:
    """A pymongo (or mongomock) client of the session's backend, with command capture."""
    return mongo_backend.client


@pytest.fixture
def _perfgate_mongo_log(request: pytest.FixtureRequest, mongo_backend: backend_mod.Backend) -> QueryLog:
    from .._tracking import track
    from .capture import QueryLog

    track(request.config)
    if LOG not in request.node.stash:
        request.node.stash[LOG] = QueryLog()
    log: QueryLog = request.node.stash[LOG]
    return log


@pytest.fixture
def mongo_db(
    request: pytest.FixtureRequest, mongo_backend: backend_mod.Backend, _perfgate_mongo_log: QueryLog
) -> Generator[Any, None, None]:
    """A fresh database with a unique name, dropped after the test (safe under pytest-xdist)."""
    from . import dbs

    state = _state(request.config)
    with state.lock:
        state.counter += 1
        name = dbs.database_name(state.prefix, state.counter, request.node.nodeid)
    client = mongo_backend.client
    tracker = dbs.SessionTracker(client, str(request.config.rootpath)) if mongo_backend.real else None
    with tracker or contextlib.nullcontext():
        yield client[name]
    problems = []
    if tracker is not None:
        left = tracker.end_open()
        if left:
            problems.append(
                f"the test left {len(left)} MongoDB session(s) open ({'; '.join(left)}); perfgate ended them "
                "(aborting any transaction) so its database could be dropped: use `with client.start_session():`"
            )
    try:
        dbs.drop_database(client, name, state.settings.timeout, real_server=mongo_backend.real)
    except Exception as exc:
        problems.append(
            f"could not drop database {name!r} within {state.settings.timeout:g}s: {exc} "
            "(it is dropped again at session end)"
        )
    if problems:
        pytest.fail("perfgate mongo: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def mongo_queries(
    request: pytest.FixtureRequest, mongo_backend: backend_mod.Backend, _perfgate_mongo_log: QueryLog
) -> Queries:
    """The commands the test body issued (see :class:`pytest_perfgate.mongo.queries.Queries`)."""
    from .queries import Queries

    state = _state(request.config)
    return Queries(_perfgate_mongo_log, state.hub, mongo_backend.kind, state.settings.repeat_threshold)


@pytest.fixture
def mongo_profile(
    request: pytest.FixtureRequest, mongo_backend: backend_mod.Backend, mongo_db: Any
) -> Generator[Profile, None, None]:
    """The database profiler on for this test's database (real servers; skips on mongomock).
    The slowest operations are attached to the test's report and results."""
    from .profile import SKIP_REASON, Profile

    if not mongo_backend.capabilities.profiler:
        pytest.skip(SKIP_REASON.format(backend=mongo_backend.description))
    state = _state(request.config)
    profile = Profile(mongo_db, state.paused)
    with state.paused():
        profile.start()
    try:
        yield profile
    finally:
        with state.paused():
            profile.entries = tuple(profile.slowest(10))
            profile.stop()
        request.node.add_report_section("teardown", "perfgate mongo profile", profile.report())
        from .._tracking import recorder

        recorder(request.node).evidence["mongo_profile"] = [op.to_dict() for op in profile.entries]


# --------------------------------------------------------------------------- the capture window


def _needs_capture(item: pytest.Item) -> bool:
    if LOG in item.stash or "mongo_backend" in getattr(item, "fixturenames", ()):
        return True
    spec = item.stash.get(core.SPEC, None)
    return spec is not None and any(spec.get(m) for m in MONGO_METRICS)


_CAPTURE = "perfgate-mongo-capture"


def _capture(config: pytest.Config) -> None:
    """Register the capture window for the rest of the session (with the core's per-test hooks,
    which ask it for the test's query series: ``pytest_perfgate_record``)."""
    from .._tracking import track

    track(config)
    core.register_once(config, _CAPTURE, _Capture)


def pytest_collection_finish(session: pytest.Session) -> None:
    """A query budget on a test that uses no MongoDB fixture still opens the capture window; an
    xdist worker whose tests use MongoDB tells the controller the backend line."""
    config = session.config
    output = getattr(config, "workeroutput", None)
    if output is not None and not configured(config) and any(uses_mongo(item) for item in session.items):
        output[_WORKER_LINE] = backend_line(config)
    if core.tracking(config) and not config.pluginmanager.has_plugin(_CAPTURE):
        for item in session.items:
            spec = item.stash.get(core.SPEC, None)
            if spec is not None and any(spec.get(m) for m in MONGO_METRICS):
                _capture(config)
                return


class _Capture:
    """The capture window around each test's call, and the query series it records (registered
    by :func:`_capture`)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """Capture the test body's commands (the window closes when the body ends)."""
        if not _needs_capture(item):
            return (yield)
        state = _state(item.config)
        backend = _backend_or_fail(item.config)
        if LOG not in item.stash:
            from .capture import QueryLog

            item.stash[LOG] = QueryLog()
        item.stash[_WINDOW] = backend
        state.hub.arm(item.stash[LOG])
        try:
            return (yield)
        finally:
            state.hub.disarm()

    def pytest_perfgate_record(self, item: pytest.Item) -> None:
        """The test's query series, evidence and report section, before its budgets are judged
        (the core calls this once the body has run, inside or outside the window's wrapper)."""
        backend = item.stash.get(_WINDOW, None)
        if backend is None:
            return
        del item.stash[_WINDOW]
        state = _state(item.config)
        state.hub.disarm()  # explain and index reads are not the test's commands
        _after_body(item, state, backend, item.stash[LOG].records)


#: the backend of a test whose capture window opened (its series are recorded once)
_WINDOW: pytest.StashKey[backend_mod.Backend] = pytest.StashKey()


def _after_body(
    item: pytest.Item, state: MongoState, backend: backend_mod.Backend, records: tuple[QueryRecord, ...]
) -> None:
    from ..model import Series
    from ..units import Kind
    from . import analysis as analysis_mod
    from .advisor import index_keys
    from .explain import explain_command

    spec = item.stash.get(core.SPEC, None)
    explain_all = spec is not None and any(spec.get(m) for m in ("docs_examined", "collscan"))
    client = backend.client

    def explain(record: QueryRecord) -> Any:
        return client[record.database].command(explain_command(record.body))

    def indexes(database: str, collection: str) -> Any:
        return index_keys(client[database][collection].index_information())

    # explain costs a round trip per command, inside the test's whole-call time sample: only when
    # a budget needs it, or when asked to check the index advice against the plans
    explaining = backend.real and (explain_all or state.settings.explain_always)
    result = analysis_mod.analyse(
        records,
        real_server=backend.real,
        explain_all=explain_all,
        explain=explain if explaining else None,
        indexes=indexes,
        repeat_threshold=_repeat_threshold(item, state),
        explain_limit=state.settings.explain_limit,
    )
    from .._tracking import recorder as recorder_of

    recorder = recorder_of(item)
    recorder.set_series(Series("queries", Kind.COUNT, (float(result.queries),), source="mongo"))
    if result.docs_examined is not None:
        recorder.set_series(Series("docs_examined", Kind.COUNT, (float(result.docs_examined),), source="explain"))
    if result.collscans is not None:
        recorder.set_series(Series("collscan", Kind.COUNT, (float(result.collscans),), source="explain"))
    recorder.not_checked.update(result.not_checked)
    if spec is None or not any(spec.get(m) for m in analysis_mod.EXPLAIN_METRICS):
        result = analysis_mod.without_not_checked(result)  # nothing budgeted that needed explain
    recorder.evidence["mongo"] = analysis_mod.evidence(result, records, backend.kind)
    item.add_report_section("call", "perfgate mongo", analysis_mod.format_report(result, records, backend.description))
    if result.repeats and state.repeats == "warn":
        for repeat in result.repeats:
            # reported at the user code line that issued the repeated query
            filename, lineno = _file_line(repeat.locations[0][0])
            warnings.warn_explicit(
                MongoQueryWarning(f"perfgate mongo: {repeat.message()}"), MongoQueryWarning, filename, lineno
            )
    elif result.repeats and state.repeats == "fail":
        pytest.fail("perfgate mongo: " + "\n".join(r.message() for r in result.repeats), pytrace=False)


def _repeat_threshold(item: pytest.Item, state: MongoState) -> int:
    """0 (off) when asked, and in tests using the ``race`` fixture, which re-runs the same
    operations once per schedule by design (that is not an N+1)."""
    if state.repeats == "off" or "race" in getattr(item, "fixturenames", ()):
        return 0
    return state.settings.repeat_threshold


def _file_line(location: str) -> tuple[str, int]:
    """``"path:12 in fn"`` -> ``("path", 12)``."""
    where = location.split(" in ", 1)[0]
    path, _, line = where.rpartition(":")
    return (path, int(line)) if line.isdigit() else (location, 0)


# --------------------------------------------------------------------------- session end


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None or state.backend is None:
        return
    from . import dbs

    backend = state.backend
    try:
        stray = dbs.leftovers(backend.client, state.prefix)
        for name in stray:
            dbs.drop_database(backend.client, name, state.settings.timeout, real_server=backend.real)
        if stray:
            state.problems.append(f"dropped {len(stray)} leftover database(s): {', '.join(stray)}")
    except Exception as exc:
        state.problems.append(f"could not check for leftover databases: {exc}")
    state.problems.extend(backend.close())
    state.backend = None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = config.stash.get(_WORKER_LINES, None)
    if line and not config.stash.get(_SHOWN, False):
        terminalreporter.write_line(line)
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if state.error is not None:
        terminalreporter.write_line(f"perfgate mongo: {str(state.error).splitlines()[0]}", red=True)
    for problem in state.problems:
        terminalreporter.write_line(f"perfgate mongo: {problem}", yellow=True)


__all__ = ["MongoState", "read_settings"]
