"""MongoDB backends: which one a session uses, starting it, and stopping it.

Four backends, chosen in this order unless one is forced:

1. ``uri``: a server the user runs (``--perfgate-mongo-uri``, ``PERFGATE_MONGO_URI``, ini);
2. ``docker``: a testcontainers ``MongoDbContainer`` when a Docker engine answers;
3. ``mongod``: a local ``mongod`` (on PATH or ``--perfgate-mongod``) on a free loopback port in a
   temporary directory;
4. ``mongomock``: embedded, always available.

Forcing a backend that is not available raises :class:`MongoBackendError` saying why; there is
never a silent fallback. Pure: no pytest. pymongo, mongomock, testcontainers and docker are
imported lazily, with install hints.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._procs import read_log, spawn, stop_group, tail
from ..errors import MongoBackendError, PerfgateError

if TYPE_CHECKING:  # imported where a backend starts: choosing one (the session header) needs none of it
    from .capture import CaptureHub

BACKENDS = ("auto", "uri", "docker", "mongod", "mongomock")
INSTALL_HINT = "pip install 'pytest-perfgate[mongo]'"
REPLSET_NAME = "rs0"
#: seconds mongod has to shut down cleanly after SIGTERM before SIGKILL
MONGOD_GRACE = 10.0


@dataclass(frozen=True)
class MongoSettings:
    """Resolved MongoDB options of a session."""

    choice: str = "auto"
    uri: str | None = None
    uri_source: str | None = None  # where the URI came from, for messages
    image: str = "mongo:7"
    mongod: str | None = None  # explicit mongod executable
    replset: bool = False
    timeout: float = 5.0  # connecting and probing (seconds)
    start_timeout: float = 60.0  # waiting for a started mongod / container (seconds)
    repeat_threshold: int = 5  # N+1: the same shape this many times is reported
    explain_limit: int = 100  # explains per test at most
    explain_always: bool = False  # explain one command per shape even without explain budgets


@dataclass(frozen=True)
class Capabilities:
    transactions: bool
    explain: bool
    command_monitoring: bool
    profiler: bool

    def describe(self) -> str:
        def word(flag: bool, name: str) -> str:
            return name if flag else f"no {name}"

        return ", ".join(
            (
                word(self.transactions, "transactions"),
                word(self.explain, "explain"),
                word(self.command_monitoring, "command monitoring"),
                word(self.profiler, "profiler"),
            )
        )


MONGOMOCK_CAPABILITIES = Capabilities(transactions=False, explain=False, command_monitoring=False, profiler=False)


@dataclass(frozen=True)
class Selection:
    """Which backend a session will use, and why."""

    kind: str
    reason: str
    mongod_path: str | None = None


def mask_uri(uri: str) -> str:
    """The URI with its password replaced by ``***`` (never print a credential)."""
    return re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", uri)


# --------------------------------------------------------------------------- selection


DOCKER_SOCKETS = ("/var/run/docker.sock", os.path.expanduser("~/.docker/run/docker.sock"))


def probe_docker(timeout: float) -> str | None:
    """None when a Docker engine answers a ping within ``timeout``; else why not."""
    if not os.environ.get("DOCKER_HOST") and not any(os.path.exists(p) for p in DOCKER_SOCKETS):
        # the common "no Docker here" case, without importing docker (about a second)
        return f"no Docker engine: DOCKER_HOST is unset and there is no {DOCKER_SOCKETS[0]}"
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return f"the docker/testcontainers packages are not installed ({INSTALL_HINT})"
    try:
        client = docker.from_env(timeout=max(1, round(timeout)))
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"no Docker engine answered ({text})"
    return None


def find_mongod(explicit: str | None, which: Callable[[str], str | None] = shutil.which) -> tuple[str | None, str]:
    """The mongod executable and, when there is none, why."""
    if explicit:
        path = explicit if os.path.sep in explicit else (which(explicit) or explicit)
        if not os.path.isfile(path):
            return None, f"--perfgate-mongod={explicit}: no such file"
        if not os.access(path, os.X_OK):
            return None, f"--perfgate-mongod={explicit}: not executable"
        return path, ""
    found = which("mongod")
    return (found, "") if found else (None, "no mongod on PATH")


def choose(
    settings: MongoSettings,
    *,
    docker_probe: Callable[[float], str | None] = probe_docker,
    which: Callable[[str], str | None] = shutil.which,
) -> Selection:
    """Pick the backend (nothing is started). A forced backend that is unavailable raises."""
    choice = settings.choice
    if choice not in BACKENDS:
        raise MongoBackendError(choice, f"unknown backend; accepted: {', '.join(BACKENDS)}")
    if choice == "uri":
        if not settings.uri:
            raise MongoBackendError(
                "uri",
                "forced, but no URI is set",
                hint="give --perfgate-mongo-uri=mongodb://host:27017, set PERFGATE_MONGO_URI, or the "
                "perfgate_mongo_uri ini option",
            )
        return Selection("uri", f"forced; URI from {settings.uri_source}")
    if choice == "docker":
        why = docker_probe(settings.timeout)
        if why:
            raise MongoBackendError(
                "docker",
                f"forced, but {why}",
                hint="start Docker (or set DOCKER_HOST), or choose --perfgate-mongo=uri|mongod|mongomock",
            )
        return Selection("docker", f"forced; image {settings.image}")
    if choice == "mongod":
        path, why = find_mongod(settings.mongod, which)
        if path is None:
            raise MongoBackendError(
                "mongod",
                f"forced, but {why}",
                hint="install MongoDB server binaries, or give --perfgate-mongod=/path/to/mongod",
            )
        return Selection("mongod", f"forced; {path}", mongod_path=path)
    if choice == "mongomock":
        return Selection("mongomock", "forced")
    # auto
    if settings.uri:
        return Selection("uri", f"URI from {settings.uri_source}")
    reasons = ["no URI set"]
    why = docker_probe(settings.timeout)
    if why is None:
        return Selection("docker", f"no URI set; Docker engine answered; image {settings.image}")
    reasons.append(why)
    path, why_mongod = find_mongod(settings.mongod, which)
    if path is not None:
        return Selection("mongod", "; ".join([*reasons, f"found {path}"]), mongod_path=path)
    reasons.append(why_mongod)
    return Selection("mongomock", "; ".join(reasons))


def expected_capabilities(kind: str) -> str:
    """What a backend can do, before it is started (for the session header)."""
    if kind == "mongomock":
        return MONGOMOCK_CAPABILITIES.describe()
    return "explain, command monitoring, profiler; transactions if it is a replica set"


# --------------------------------------------------------------------------- running backends


@dataclass
class Backend:
    """A started backend: its client (with command capture attached) and how to stop it."""

    kind: str
    description: str
    capabilities: Capabilities
    client: Any
    uri: str | None = None
    version: str | None = None
    new_client: Callable[..., Any] | None = None
    _stops: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def real(self) -> bool:
        return self.kind != "mongomock"

    def close(self) -> list[str]:
        """Stop everything this backend started (last first); return problems, never raise."""
        problems = []
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:
                problems.append(f"{self.kind}: stopping failed: {exc}")
        return problems


def _pymongo() -> Any:
    try:
        import pymongo
    except ImportError:
        raise MongoBackendError("uri", f"pymongo is not installed ({INSTALL_HINT})") from None
    return pymongo


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # pymongo appends its timeout settings and the whole topology description: keep the cause
    text = re.split(r" \(configured timeouts|, Timeout: ", text, maxsplit=1)[0]
    return text if len(text) <= limit else text[:limit] + "..."


def connect(kind: str, uri: str, hub: CaptureHub, timeout: float, *, hint: str | None = None) -> Backend:
    """A client on ``uri`` with command monitoring, checked with ``hello`` within ``timeout``."""
    from .capture import command_listener

    pymongo = _pymongo()
    listener = command_listener(hub)
    ms = max(1, int(timeout * 1000))

    def new_client(**kwargs: Any) -> Any:
        options: dict[str, Any] = {"serverSelectionTimeoutMS": ms, "connectTimeoutMS": ms, "appname": "pytest-perfgate"}
        options.update(kwargs)
        options["event_listeners"] = [listener, *options.get("event_listeners", [])]
        return pymongo.MongoClient(uri, **options)

    try:
        client = new_client()
    except pymongo.errors.PyMongoError as exc:
        raise MongoBackendError(
            kind,
            f"invalid URI {mask_uri(uri)}: {_first_line(exc)}",
            hint="the form is mongodb://[user:password@]host[:port][/?options]",
        ) from None
    try:
        hello = client.admin.command("hello")
        build = client.admin.command("buildInfo")
    except pymongo.errors.PyMongoError as exc:
        client.close()
        raise MongoBackendError(
            kind,
            f"cannot reach {mask_uri(uri)} within {timeout:g}s: {_first_line(exc)}",
            hint=hint
            or "is the server running and reachable from here? In GitLab CI add `services: [mongo:7]` "
            "and use mongodb://mongo:27017; or raise --perfgate-mongo-timeout, or choose another backend with "
            "--perfgate-mongo=docker|mongod|mongomock",
        ) from None
    version = str(build.get("version", "?"))
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    replset = hello.get("setName")
    sharded = hello.get("msg") == "isdbgrid"
    caps = Capabilities(
        transactions=bool(replset or sharded) and major >= 4,
        explain=True,
        command_monitoring=True,
        profiler=not sharded,
    )
    topology = f"replica set {replset}" if replset else ("sharded (mongos)" if sharded else "standalone")
    backend = Backend(
        kind,
        f"MongoDB {version} at {mask_uri(uri)} ({topology})",
        caps,
        client,
        uri=uri,
        version=version,
        new_client=new_client,
    )
    backend._stops.append(client.close)
    return backend


def _initiate_replset(client: Any, host: str, deadline: float) -> None:
    """``replSetInitiate`` a single-node set and wait until it is writable primary."""
    pymongo = _pymongo()
    try:
        client.admin.command("replSetInitiate", {"_id": REPLSET_NAME, "members": [{"_id": 0, "host": host}]})
    except pymongo.errors.OperationFailure as exc:
        if "already initialized" not in str(exc):
            raise
    while time.monotonic() < deadline:
        if client.admin.command("hello").get("isWritablePrimary"):
            return
        time.sleep(0.2)
    raise TimeoutError("the replica set did not elect a primary in time")


# -- docker --------------------------------------------------------------------------------


def start_docker(settings: MongoSettings, hub: CaptureHub) -> Backend:
    try:
        try:
            from testcontainers.community.mongodb import MongoDbContainer
        except ImportError:
            from testcontainers.mongodb import MongoDbContainer  # testcontainers < 4.13
        from testcontainers.core.container import DockerContainer
    except ImportError:
        raise MongoBackendError("docker", f"testcontainers is not installed ({INSTALL_HINT})") from None
    container: Any = None
    try:
        if settings.replset:
            # MongoDbContainer enables auth, and auth with a replica set needs a keyfile: run plain mongod
            container = (
                DockerContainer(settings.image)
                .with_command(f"--replSet {REPLSET_NAME} --bind_ip_all")
                .with_exposed_ports(27017)
            )
        else:
            container = MongoDbContainer(settings.image)  # its DockerClient asks the engine's version
    except Exception as exc:  # docker.errors.DockerException: no engine
        raise MongoBackendError(
            "docker", f"no Docker engine answered ({_first_line(exc)})", hint="start Docker (or set DOCKER_HOST)"
        ) from None
    try:
        container.start()
    except Exception as exc:  # docker.errors.ImageNotFound / APIError, requests errors, timeouts
        with contextlib.suppress(Exception):
            container.stop()
        raise MongoBackendError(
            "docker",
            f"could not start image {settings.image!r}: {_first_line(exc)}",
            hint="check the image name and tag (--perfgate-mongo-image), or pull it first: "
            f"docker pull {settings.image}",
        ) from None
    try:
        host, port = container.get_container_host_ip(), container.get_exposed_port(27017)
        uri = f"mongodb://{host}:{port}/?directConnection=true" if settings.replset else container.get_connection_url()
        backend = _wait_connect(
            "docker",
            uri,
            hub,
            settings,
            alive=lambda: None,
            logs=lambda: _container_logs(container),
            replset_host="localhost:27017" if settings.replset else None,
        )
    except BaseException:
        container.stop()
        raise
    backend.description = f"{backend.description} in container {settings.image}"
    backend._stops.insert(0, container.stop)
    return backend


def _container_logs(container: Any) -> str:
    try:
        out, err = container.get_logs()
        return str((out + err).decode("utf-8", "replace"))
    except Exception:
        return ""


# -- mongod --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(text: str) -> str:
    return tail(text, 15, prefix="  | ", width=400)


def _read(path: str) -> str:
    return read_log(path) or ""


def start_mongod(path: str, settings: MongoSettings, hub: CaptureHub) -> Backend:
    """Run ``mongod`` on a free loopback port in a temporary directory until the backend closes."""
    workdir = tempfile.mkdtemp(prefix="perfgate-mongod-")
    dbpath = os.path.join(workdir, "db")
    os.mkdir(dbpath)
    logpath = os.path.join(workdir, "mongod.log")
    outpath = os.path.join(workdir, "stdout.log")
    port = free_port()
    args = [
        path,
        "--dbpath",
        dbpath,
        "--port",
        str(port),
        "--bind_ip",
        "127.0.0.1",
        "--logpath",
        logpath,
        "--nounixsocket",
        "--setParameter",
        "diagnosticDataCollectionEnabled=false",
    ]
    if settings.replset:
        args += ["--replSet", REPLSET_NAME]
    with open(outpath, "wb") as out:
        try:
            proc = spawn(args, feature="the mongod backend", output=out)
        except (OSError, PerfgateError) as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise MongoBackendError("mongod", f"could not run {path}: {exc}") from None

    def cleanup() -> None:
        stop_group(proc, MONGOD_GRACE)  # SIGTERM: mongod shuts down cleanly
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(cleanup)  # a crashed session must not leave mongod running

    def logs() -> str:
        return _read(logpath) + _read(outpath)

    def alive() -> str | None:
        code = proc.poll()
        return None if code is None else f"mongod exited with code {code} during start-up"

    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        backend = _wait_connect(
            "mongod",
            uri,
            hub,
            settings,
            alive=alive,
            logs=logs,
            port=port,
            replset_host=f"127.0.0.1:{port}" if settings.replset else None,
        )
    except BaseException:
        cleanup()
        atexit.unregister(cleanup)
        raise
    backend.description = f"{backend.description}, started from {path} (pid {proc.pid})"

    def stop() -> None:
        cleanup()
        atexit.unregister(cleanup)

    backend._stops.insert(0, stop)
    return backend


def _wait_connect(
    kind: str,
    uri: str,
    hub: CaptureHub,
    settings: MongoSettings,
    *,
    alive: Callable[[], str | None],
    logs: Callable[[], str],
    port: int | None = None,
    replset_host: str | None = None,
) -> Backend:
    """Wait until the server at ``uri`` answers (``settings.start_timeout`` at most), failing early
    (with its log tail) if it died."""
    deadline = time.monotonic() + settings.start_timeout
    last = "no answer yet"
    while True:
        died = alive()
        if died:
            raise MongoBackendError(
                kind,
                f"{died}; last lines of its log:\n{_tail(logs())}",
                hint="the log above says why (port in use, bad dbpath, wrong binary, ...)",
            )
        if time.monotonic() >= deadline:
            raise MongoBackendError(
                kind,
                f"not ready within {settings.start_timeout:g}s ({last}); last lines of its log:\n{_tail(logs())}",
                hint="raise --perfgate-mongo-start-timeout, or look at the log above",
            )
        if port is not None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError as exc:
                last = f"port {port}: {exc.strerror or exc}"
                time.sleep(0.1)
                continue
        try:
            backend = connect(kind, uri, hub, min(settings.timeout, 2.0))
        except MongoBackendError as exc:
            last = str(exc).splitlines()[0]
            time.sleep(0.2)
            continue
        if replset_host:
            try:
                _initiate_replset(backend.client, replset_host, deadline)
            except Exception as exc:
                backend.close()
                raise MongoBackendError(
                    kind, f"replica set initiation failed: {_first_line(exc)}; log tail:\n{_tail(logs())}"
                ) from None
            backend.close()
            backend = connect(kind, uri, hub, settings.timeout)
        return backend


# -- mongomock -----------------------------------------------------------------------------


def start_mongomock(hub: CaptureHub) -> Backend:
    try:
        import mongomock
    except ImportError:
        raise MongoBackendError("mongomock", f"mongomock is not installed ({INSTALL_HINT})") from None
    from .capture import MongomockCapture

    capture = MongomockCapture(hub)
    capture.install()
    client: Any = mongomock.MongoClient()

    def new_client(**kwargs: Any) -> Any:
        return mongomock.MongoClient(**kwargs)

    backend = Backend(
        "mongomock",
        f"mongomock {getattr(mongomock, '__version__', '?')} (embedded)",
        MONGOMOCK_CAPABILITIES,
        client,
        new_client=new_client,
    )
    backend._stops.append(capture.uninstall)
    backend._stops.append(client.close)
    return backend


def start(selection: Selection, settings: MongoSettings, hub: CaptureHub) -> Backend:
    """Start (or connect to) the selected backend."""
    if selection.kind == "uri":
        assert settings.uri is not None
        return connect("uri", settings.uri, hub, settings.timeout)
    if selection.kind == "docker":
        return start_docker(settings, hub)
    if selection.kind == "mongod":
        assert selection.mongod_path is not None
        return start_mongod(selection.mongod_path, settings, hub)
    return start_mongomock(hub)
