"""``perfgate load --serve CMD``: start the service under load, wait until it is ready, stop it.

The command is split with :func:`shlex.split` and run without a shell; ``{port}`` in it becomes a
free loopback port (the load's host then defaults to ``http://127.0.0.1:{port}``). The service
runs in its own process group (:func:`~pytest_perfgate._procs.spawn` with ``die_with_parent``:
a guard stops the group if perfgate itself is killed), is ready when its port accepts a
connection (or when ``--serve-ready URL`` answers), within a bound, and is stopped like Ctrl-C
in a terminal would (SIGINT to its group, so servers and profilers wrapping them shut down
cleanly), then SIGTERM and SIGKILL (:func:`~pytest_perfgate._procs.stop_group`). It is stopped
when the run ends and on every fault: an error, Ctrl-C, SIGTERM or SIGHUP of perfgate
(:func:`~pytest_perfgate.load.runner.stop_on_signals`).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .._procs import read_log, signal_group, spawn, stop_group, tail
from ..errors import LoadError, LoadRunError

PORT = "{port}"
#: seconds between two readiness probes
POLL = 0.1
#: seconds the service gets to leave after SIGINT (a profiler finishing its capture included)
#: before SIGTERM, and again before SIGKILL
STOP_GRACE = 15.0
KILL_GRACE = 5.0
LOG_NAME = "service.log"

SERVE_FORMS = 'a command line, e.g. "python -m uvicorn app:app --port {port}" ({port}: a free loopback port)'


@dataclass(frozen=True)
class ServeSettings:
    """The service perfgate starts: ``command`` (one string, split like a shell would, never run
    by one), ``ready_url`` (ready when it answers; default: the port accepts a connection),
    ``ready_timeout`` seconds to wait for it."""

    command: str
    port: int | None = None  # what {port} becomes
    ready_url: str | None = None
    ready_timeout: float = 30.0
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    stop_grace: float = STOP_GRACE

    @property
    def uses_port(self) -> bool:
        return PORT in self.command

    def argv(self) -> list[str]:
        """The command's words, ``{port}`` replaced; :class:`LoadError` when it does not split."""
        try:
            words = shlex.split(self.command)
        except ValueError as exc:
            raise LoadError(
                f"--serve {self.command!r} does not split into words ({exc}); accepted: {SERVE_FORMS}"
            ) from None
        if not words:
            raise LoadError(f"--serve is empty; accepted: {SERVE_FORMS}")
        return [word.replace(PORT, str(self.port)) for word in words] if self.port is not None else words

    def validate(self) -> None:
        self.argv()
        if self.uses_port and self.port is None:
            raise LoadError(f"--serve {self.command!r} has {PORT} but no port was chosen for it")
        if not self.ready_timeout > 0:
            raise LoadError(f"serve-timeout must be above 0 seconds, got {self.ready_timeout:g}")
        if self.ready_url is not None:
            parts = urlsplit(self.ready_url.replace(PORT, "1"))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise LoadError(
                    f"--serve-ready {self.ready_url!r} is not an http(s) URL, e.g. http://127.0.0.1:{{port}}/health"
                )


def default_host(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@dataclass
class Service:
    """A started service: its process (the group's leader), command and log."""

    proc: subprocess.Popen[bytes]
    argv: tuple[str, ...]
    log: Path
    started_at: float = field(default_factory=time.time)  # when it was started (epoch seconds)
    ready_after: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output_tail(self, lines: int = 25) -> str:
        text = read_log(self.log)
        if text is None:
            return "    (no output)"
        return tail(text, lines, prefix="    ", skip_blank=True) or "    (the service printed nothing)"


def _shown(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _answers(url: str) -> bool:
    """Any HTTP answer below 500 (a 503 "starting" is not ready)."""
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=2.0)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("GET", path, headers={"User-Agent": "perfgate-serve-ready"})
        return conn.getresponse().status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_ready(service: Service, *, host: str, ready_url: str | None, timeout: float) -> float:
    """Seconds until the service was ready; :class:`LoadRunError` (with its output tail) when it
    exits first or is not ready within ``timeout`` seconds."""
    parts = urlsplit(host)
    target = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    what = f"GET {ready_url} to answer" if ready_url else f"port {port} on {target} to accept connections"
    started = time.monotonic()
    while True:
        code = service.proc.poll()
        if code is not None:
            raise LoadRunError(
                f"the service exited with code {code} before it was ready ({_shown(service.argv)}). "
                f"Its last output:\n{service.output_tail()}"
            )
        if (_answers(ready_url) if ready_url else _port_open(target, port)) and service.proc.poll() is None:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise LoadRunError(
                f"the service was not ready within {timeout:g}s (waited for {what}); it was stopped "
                f"({_shown(service.argv)}). Its last output:\n{service.output_tail()}",
                hint="check the command and its port ({port}), or raise --serve-timeout for a slow start",
            )
        time.sleep(POLL)


def stop(service: Service, *, grace: float = STOP_GRACE) -> None:
    """Ctrl-C for the service's whole group (SIGINT), then SIGTERM and SIGKILL after the graces."""
    proc = service.proc
    if proc.poll() is None:
        signal_group(proc, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    stop_group(proc, KILL_GRACE)


@contextlib.contextmanager
def serving(settings: ServeSettings, argv: Sequence[str], *, host: str, folder: Path) -> Iterator[Service]:
    """Start ``argv`` (the settings' command, possibly wrapped by a profiler), wait until it is
    ready, yield it; stop its group however the block ends. Call inside
    :func:`~pytest_perfgate.load.runner.stop_on_signals` so SIGTERM ends the block too."""
    log_path = folder / LOG_NAME
    started_at = time.time()
    with open(log_path, "wb") as log:
        try:
            proc = spawn(
                argv,
                feature="perfgate load --serve",
                output=log,
                cwd=settings.cwd,
                env={**os.environ, **settings.env, "PYTHONUNBUFFERED": "1"},
                die_with_parent=True,
            )
        except OSError as exc:
            raise LoadError(f"cannot start the service {_shown(argv)}: {exc}; accepted: {SERVE_FORMS}") from None
    service = Service(proc=proc, argv=tuple(argv), log=log_path, started_at=started_at)
    ready_url = settings.ready_url.replace(PORT, str(settings.port)) if settings.ready_url else None
    try:
        service.ready_after = wait_ready(service, host=host, ready_url=ready_url, timeout=settings.ready_timeout)
        yield service
    finally:
        stop(service, grace=settings.stop_grace)


__all__ = ("ServeSettings", "Service", "default_host", "serving", "stop", "wait_ready")
