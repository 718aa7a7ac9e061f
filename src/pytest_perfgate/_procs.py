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
    ``output``. ``die_with_parent``: when this process dies without stopping it (SIGKILL
    included), a guard process stops the whole group (SIGTERM, SIGKILL after
    :data:`GUARD_GRACE` s); on Linux the leader also gets the parent-death signal.
    Raises ``OSError`` when it cannot start; ``PlatformError`` off POSIX."""
    require_posix(feature)
    proc = subprocess.Popen(
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
    if die_with_parent:
        try:
            _GUARDS[proc.pid] = _start_guard(proc.pid)
        except OSError:
            stop_group(proc, 0)
            raise
    return proc


#: seconds a guard waits after SIGTERM before it kills the group it watches
GUARD_GRACE = 5.0

# The guard blocks reading its stdin, whose only writer is this process. Anything written means
# "the group was stopped, leave"; end of file without a word means this process died: stop the
# group. PR_SET_PDEATHSIG alone reaches only the group's leader, and the processes a leader forks
# (locust --processes workers) can outlive it by the minute their heartbeat needs.
_GUARD = """
import os, signal, sys, time
pgid, grace = int(sys.argv[1]), float(sys.argv[2])
if sys.stdin.buffer.read(1):
    sys.exit(0)
def alive():
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True
for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
    try:
        os.killpg(pgid, signum)
    except OSError:
        sys.exit(0)
    end = time.monotonic() + wait
    while time.monotonic() < end and alive():
        time.sleep(0.05)
"""

_GUARDS: dict[int, subprocess.Popen[bytes]] = {}


def _start_guard(pgid: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-S", "-c", _GUARD, str(pgid), str(GUARD_GRACE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal must not end the guard before the group
    )


def _release_guard(pgid: int) -> None:
    guard = _GUARDS.pop(pgid, None)
    if guard is None or guard.stdin is None:
        return
    with contextlib.suppress(OSError):
        guard.stdin.write(b"stopped")
        guard.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        guard.wait(timeout=REAP_TIMEOUT)


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still there (and ours to signal)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a recycled id owned by someone else: not ours any more
        return False
    return True


def signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` to the group of a child started by :func:`spawn` (its leader alone when the
    group id was recycled); nothing when it already left."""
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
        signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and running():
            time.sleep(0.05)
    if running():
        signal_group(proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=REAP_TIMEOUT)
    _release_guard(pgid)
