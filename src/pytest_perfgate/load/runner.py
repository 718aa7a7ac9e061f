"""Run locust headless in a subprocess and read back what perfgate's listener recorded.

Locust is never imported here: it monkey-patches the whole process with gevent, which must not
touch the caller (pytest, pymongo's threads). Everything that can be checked before starting
locust is checked first, so bad input is a :class:`~pytest_perfgate.errors.LoadError` (exit 2)
in well under a second, and a target that does not answer is a
:class:`~pytest_perfgate.errors.LoadRunError` (exit 3) within the connect timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._procs import read_log, spawn, stop_group, tail
from ..errors import LoadError, LoadRunError, UnitError
from ..units import parse_duration

LISTENER = Path(__file__).with_name("perfgate_listener.py")
INSTALL_HINT = "pip install 'pytest-perfgate[load]'  (or: pip install 'locust>=2.20')"
MIN_LOCUST = (2, 20)
RAW_FORMAT = "perfgate-load-raw"
RAW_VERSION = 1

#: seconds allowed, beyond run-time and stop-timeout, for locust to start, stop and write its files
STARTUP_GRACE = 60.0
#: seconds given to a process group to leave after SIGTERM before SIGKILL
KILL_GRACE = 5.0

RUN_TIME_FORMS = (
    "a duration such as '30s', '90', '2m', '1h30m' or '1.5min' (locust runs whole seconds: a fraction is rounded up)"
)


def parse_run_time(raw: object) -> int:
    """A load run's length (any duration :func:`~pytest_perfgate.units.parse_duration` reads) as
    the whole seconds locust runs, rounded up."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise LoadError(f"run-time {raw!r} is not a duration; accepted: {RUN_TIME_FORMS}")
    try:
        seconds = parse_duration(raw)
    except UnitError:
        raise LoadError(f"run-time {raw!r} does not parse; accepted: {RUN_TIME_FORMS}") from None
    if seconds <= 0:
        raise LoadError(f"run-time {raw!r} is not above 0; accepted: {RUN_TIME_FORMS}")
    return math.ceil(seconds)


@dataclass(frozen=True)
class LoadSettings:
    """One load run. ``processes``: 1 runs a single locust process; N > 1 forks N worker
    processes under a local master (locust ``--processes N``); -1 one per core.
    ``expect_workers`` > 0 runs locust as a master that waits for that many *external* workers
    (``locust --worker --master-host ...`` on other machines)."""

    locustfile: str
    host: str
    users: int = 10
    spawn_rate: float | None = None  # None: all users at once (spawn rate = users)
    run_time: int = 10
    processes: int = 1
    expect_workers: int = 0
    master_bind_port: int | None = None
    worker_wait: float = 60.0
    warmup: float = 0.0
    stop_timeout: float = 0.0
    connect_timeout: float = 5.0
    html: str | None = None
    user_classes: tuple[str, ...] = ()
    locust_args: tuple[str, ...] = ()
    python: str = sys.executable
    env: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        path = Path(self.locustfile)
        if not path.exists():
            raise LoadError(f"locustfile {self.locustfile}: no such file")
        if not path.is_file() or path.suffix != ".py":
            raise LoadError(f"locustfile {self.locustfile}: expected a Python file (.py)")
        if "," in self.locustfile:
            raise LoadError(
                f"locustfile {self.locustfile}: a comma in the path is not supported (locust splits -f on commas)"
            )
        _check_url(self.host)
        if self.users < 1:
            raise LoadError(f"users must be at least 1, got {self.users}")
        if self.spawn_rate is not None and not self.spawn_rate > 0:
            raise LoadError(f"spawn-rate must be above 0 users/s, got {self.spawn_rate}")
        if self.processes == 0 or self.processes < -1:
            raise LoadError(f"processes must be a whole number >= 1, or -1 for one per core; got {self.processes}")
        if self.processes != 1 and self.expect_workers:
            raise LoadError(
                "processes and expect-workers cannot be combined: choose local worker processes or external workers"
            )
        if self.expect_workers < 0:
            raise LoadError(f"expect-workers must be 0 or more, got {self.expect_workers}")
        if not 0 <= self.warmup < self.run_time:
            raise LoadError(
                f"warmup {self.warmup:g}s must be at least 0 and shorter than the run-time ({self.run_time}s)"
            )
        if self.connect_timeout <= 0:
            raise LoadError(f"connect-timeout must be above 0 seconds, got {self.connect_timeout:g}")

    @property
    def time_limit(self) -> float:
        """Wall-clock seconds after which the locust subprocess is killed as hung."""
        waiting = self.worker_wait if self.expect_workers else 0.0
        return self.run_time + self.stop_timeout + STARTUP_GRACE + waiting

    def command(self, local_master_port: int | None = None) -> list[str]:
        """locust's command line; ``local_master_port``: the loopback port the master of
        ``--processes`` and its forked workers meet on (locust's default, 5557, is shared by every
        run on the machine: two runs at once would swap workers)."""
        users = str(self.users)
        rate = f"{self.spawn_rate:g}" if self.spawn_rate is not None else users
        cmd = [
            self.python, "-m", "locust",
            "-f", f"{LISTENER},{os.path.abspath(self.locustfile)}",
            "--headless", "--only-summary",
            "--host", self.host,
            "--users", users, "--spawn-rate", rate,
            "--run-time", f"{self.run_time}s",
            "--stop-timeout", f"{self.stop_timeout:g}",
            # perfgate judges errors itself: locust's own exit code then means "locust failed"
            "--exit-code-on-error", "0",
        ]  # fmt: skip
        if self.processes != 1:
            cmd += ["--processes", str(self.processes)]
            if local_master_port is not None and not self.expect_workers:
                port = str(local_master_port)
                cmd += ["--master-bind-host", "127.0.0.1", "--master-bind-port", port]
                cmd += ["--master-host", "127.0.0.1", "--master-port", port]
        if self.expect_workers:
            cmd += ["--master", "--expect-workers", str(self.expect_workers)]
            cmd += ["--expect-workers-max-wait", f"{self.worker_wait:g}"]
            if self.master_bind_port is not None:
                cmd += ["--master-bind-port", str(self.master_bind_port)]
        if self.html:
            cmd += ["--html", os.path.abspath(self.html)]
        return [*cmd, *self.locust_args, *self.user_classes]


def free_port() -> int:
    """A TCP port free on the loopback interface now (the OS picks it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _check_url(host: str) -> tuple[str, str, int, str]:
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError(f"host {host!r} is not an http(s) URL; accepted: e.g. http://127.0.0.1:8000")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise LoadError(f"host {host!r} has an invalid port") from None
    return parts.scheme, parts.hostname, port, parts.path or "/"


def check_locust(python: str = sys.executable) -> str:
    """Locust's version, without importing it; :class:`LoadError` with an install hint when it
    is missing or too old. Another interpreter (``python``) is asked in a subprocess."""
    if python == sys.executable:
        if importlib.util.find_spec("locust") is None:
            raise LoadError(f"locust is not installed in {sys.executable}", hint=INSTALL_HINT)
        version = importlib.metadata.version("locust")
    else:
        probe = "import importlib.metadata as m; print(m.version('locust'))"
        try:
            done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=30, check=False)
        except OSError as exc:
            raise LoadError(f"cannot run {python}: {exc}") from None
        if done.returncode != 0:
            raise LoadError(f"locust is not installed in {python}", hint=INSTALL_HINT)
        version = done.stdout.strip()
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if numbers < MIN_LOCUST:
        raise LoadError(
            f"locust {version} is too old (perfgate needs >= {'.'.join(map(str, MIN_LOCUST))})", hint=INSTALL_HINT
        )
    return version


def check_target(host: str, timeout: float) -> str:
    """One ``GET`` of the host's path; any HTTP answer (even 404 or 500) counts. Returns the
    status line; :class:`LoadRunError` when nothing answers within ``timeout`` seconds per step."""
    scheme, hostname, port, path = _check_url(host)
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(hostname, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(hostname, port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("GET", path, headers={"User-Agent": "perfgate-load-check"})
        response = conn.getresponse()
        response.read(65536)
        return f"HTTP {response.status} {response.reason}"
    except TimeoutError:
        why = f"no answer within {timeout:g}s"
    except ConnectionRefusedError:
        why = "connection refused (is the service running on that port?)"
    except (OSError, http.client.HTTPException) as exc:
        why = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    raise LoadRunError(
        f"target {host} does not answer: {why} (checked with GET {path} in {time.monotonic() - started:.1f}s)",
        hint="start the service first, check --host, or raise --connect-timeout for a slow start",
    )


# --------------------------------------------------------------------------- raw results


class LocustRole(str, Enum):
    """How locust ran: one process (``local``), or a master with workers (``--processes``, external)."""

    LOCAL = "local"
    MASTER = "master"


@dataclass(frozen=True)
class RawRun:
    """What the listener wrote: every request, plus the run's window and locust's own counts."""

    start: float
    stop: float
    rows: tuple[tuple[str, str, float, float, str | None], ...]
    locust_version: str = ""
    runner: LocustRole = LocustRole.LOCAL
    workers_reporting: int = 0
    max_users: int = 0
    locust_requests: int | None = None
    locust_failures: int | None = None


def read_raw(path: str | os.PathLike[str]) -> RawRun:
    name = os.fspath(path)
    try:
        data = json.loads(Path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoadRunError(f"{name}: the listener's results cannot be read ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != RAW_FORMAT or data.get("version") != RAW_VERSION:
        raise LoadRunError(f"{name}: not a perfgate listener file of version {RAW_VERSION}")
    try:
        rows = tuple(
            (str(r[0]), str(r[1]), float(r[2]), float(r[3]), None if r[4] is None else str(r[4])) for r in data["rows"]
        )
        return RawRun(
            start=float(data["start"]),
            stop=float(data["stop"]),
            rows=rows,
            locust_version=str(data.get("locust_version", "")),
            runner=LocustRole(data.get("runner", "local")),
            workers_reporting=int(data.get("workers_reporting") or 0),
            max_users=int(data.get("max_users") or 0),
            locust_requests=_opt_int(data.get("locust_requests")),
            locust_failures=_opt_int(data.get("locust_failures")),
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise LoadRunError(f"{name}: malformed listener file ({type(exc).__name__}: {exc})") from None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


# --------------------------------------------------------------------------- the subprocess


Progress = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class LocustOutcome:
    raw: RawRun
    workdir: str
    command: tuple[str, ...]
    wall_time: float


class Terminated(KeyboardInterrupt):
    """perfgate itself was told to stop (SIGTERM, SIGHUP) during a load run: raised in the main
    thread, so the run's ``finally`` stops locust's process group, like Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While locust (or a service perfgate started) runs: SIGTERM and SIGHUP raise
    :class:`Terminated` (SIGINT already raises KeyboardInterrupt), so locust's group (and the
    service's) is stopped before perfgate exits. Main thread only
    (Python delivers signals there); elsewhere nothing changes."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    stops = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]  # no SIGHUP on Windows
    previous = {sig: signal.signal(sig, handler) for sig in stops}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _tail(path: Path) -> str:
    text = read_log(path)
    if text is None:
        return "(no locust output)"
    return tail(text, 25, prefix="    ", skip_blank=True) or "    (locust printed nothing)"


class _ProgressReader:
    """Follows the listener's progress file (one JSON object per line)."""

    def __init__(self, path: Path, sink: Progress | None) -> None:
        self.path, self.sink, self.offset, self.last = path, sink, 0, None

    def poll(self) -> None:
        if self.sink is None or not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        self.offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            with contextlib.suppress(ValueError):
                self.sink(json.loads(line))


@contextlib.contextmanager
def work_folder(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    tmp = tempfile.mkdtemp(prefix="perfgate-load-")
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_locust(
    settings: LoadSettings,
    *,
    progress: Progress | None = None,
    workdir: str | None = None,
    check: bool = True,
    tick: Callable[[], None] | None = None,
) -> LocustOutcome:
    """Check the inputs and the target, run locust, return what the listener recorded.

    ``workdir`` keeps ``locust.log``, ``raw.json`` and ``progress.jsonl`` there (default: a
    temporary folder, removed). ``tick`` is called about every 0.2 s while locust runs (after
    ``progress``), e.g. to start a profiler when the warm-up is over. Raises :class:`LoadError` (bad input, exit 2) or
    :class:`LoadRunError` (the run failed, exit 3). The locust process group is always gone when
    this returns or raises, including on KeyboardInterrupt."""
    settings.validate()
    check_locust(settings.python)
    if check:
        check_target(settings.host, settings.connect_timeout)
    with work_folder(workdir) as folder:
        raw_path, log_path, progress_path = folder / "raw.json", folder / "locust.log", folder / "progress.jsonl"
        for stale in (raw_path, progress_path):
            stale.unlink(missing_ok=True)
        env = {
            **os.environ,
            **settings.env,
            "PERFGATE_LOAD_OUT": str(raw_path),
            "PERFGATE_LOAD_PROGRESS": str(progress_path),
            "PYTHONUNBUFFERED": "1",
        }
        command = settings.command(local_master_port=free_port() if settings.processes != 1 else None)
        reader = _ProgressReader(progress_path, progress)
        started = time.monotonic()
        with open(log_path, "wb") as log, stop_on_signals():
            try:
                # its own process group (--processes children included), stopped by a guard process
                # when perfgate dies without stopping it (SIGKILL included)
                proc = spawn(
                    command,
                    feature="perfgate load",
                    output=log,
                    env=env,
                    cwd=os.path.dirname(os.path.abspath(settings.locustfile)),
                    die_with_parent=True,
                )
            except OSError as exc:
                raise LoadError(f"cannot start locust with {settings.python}: {exc}") from None
            try:
                while proc.poll() is None:
                    reader.poll()
                    if tick is not None:
                        tick()
                    if time.monotonic() - started > settings.time_limit:
                        raise LoadRunError(
                            f"locust did not finish within {settings.time_limit:g}s (run-time {settings.run_time}s); "
                            f"it was stopped. Its last output:\n{_tail(log_path)}"
                        )
                    time.sleep(0.2)
                reader.poll()
            finally:
                stop_group(proc, KILL_GRACE)
        wall = time.monotonic() - started
        if proc.returncode != 0 or not raw_path.exists():
            what = f"exited with code {proc.returncode}" if proc.returncode else "wrote no results"
            raise LoadRunError(f"locust {what}. Its last output:\n{_tail(log_path)}")
        raw = read_raw(raw_path)
        return LocustOutcome(raw=raw, workdir=str(folder), command=tuple(command), wall_time=wall)


def listener_path() -> str:
    """Where perfgate's locust listener is (copy it to worker machines, see docs/load.md)."""
    return str(LISTENER)


__all__: Sequence[str] = (
    "LoadSettings",
    "LocustOutcome",
    "RawRun",
    "Terminated",
    "check_locust",
    "check_target",
    "free_port",
    "listener_path",
    "parse_run_time",
    "read_raw",
    "run_locust",
    "stop_group",
    "stop_on_signals",
    "work_folder",
)
