"""Child processes in their own process group (locust, mongod, the ``perfgate ab`` workers):
start one, stop it with everything it forked, and quote the end of its output in an error.

Process groups, ``setsid`` and the parent-death signal are POSIX: :func:`spawn` calls
:func:`~pytest_perfgate.errors.require_posix`, a :class:`~pytest_perfgate.errors.PlatformError`
naming the feature elsewhere."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from .errors import require_posix

#: seconds to wait for the child itself once its group was killed
REAP_TIMEOUT = 10.0


def tail(text: str, lines: int, *, prefix: str = "", width: int | None = None, skip_blank: bool = False) -> str:
    """The last ``lines`` lines of ``text`` (trailing whitespace dropped), each cut to ``width``
    characters and started with ``prefix``; ``skip_blank`` leaves blank lines out first."""
    rows = text.rstrip().splitlines()
    if skip_blank:
        rows = [row for row in rows if row.strip()]
    return "\n".join(prefix + (row if width is None else row[:width]) for row in rows[-lines:])


def read_log(path: str | Path) -> str | None:
    """A child's log file as text, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` (Linux): the child gets SIGTERM when its parent dies, however it dies
    (SIGKILL included): PR_SET_PDEATHSIG. ``None`` where prctl is not there."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above: do not start at all
            os._exit(1)

    return preexec


def spawn(
    command: Sequence[str],
    *,
    feature: str,
    output: IO[bytes],
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session and process group (Ctrl-C in the terminal does not
    reach it; :func:`stop_group` ends it with all it forked), stdin closed, stdout and stderr to
    ``output``. ``die_with_parent`` (Linux): it gets SIGTERM when this process dies.
    Raises ``OSError`` when it cannot start; ``PlatformError`` off POSIX."""
    require_posix(feature)
    return subprocess.Popen(
        list(command),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
        # prctl only: no locks taken after fork
        preexec_fn=_die_with_parent(os.getpid()) if die_with_parent else None,
    )


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still there (and ours to signal)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a recycled id owned by someone else: not ours any more
        return False
    return True


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:  # the group id was recycled: signal our child alone
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """End a child started by :func:`spawn` and every process it forked (its process group):
    SIGTERM, then SIGKILL after ``grace`` seconds (``grace`` 0: SIGKILL at once). Safe to call
    on a group that already left."""
    pgid = proc.pid

    def running() -> bool:
        return proc.poll() is None or group_alive(pgid)

    if running() and grace > 0:
        _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and running():
            time.sleep(0.05)
    if running():
        _signal_group(proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=REAP_TIMEOUT)
