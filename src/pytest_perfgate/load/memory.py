"""``perfgate load --serve ... --profile memory``: the service runs under memray from its start
(``python -m memray run --output FILE --follow-fork ...``: memray cannot attach to a running
process), is stopped with Ctrl-C (SIGINT) so that memray completes its capture, and the capture
is summarised by :func:`pytest_perfgate.measure.memray_profile.read_capture` (memory by
function at the high-water mark, over time, leak candidates).

The service's command must run a Python program: ``python[3[.x]] [-m module | script.py] ...``
(a path to an interpreter counts: ``/venv/bin/python -m uvicorn app:app --port {port}``);
perfgate inserts ``-m memray run ...`` after the interpreter. Anything else (a launcher
script, ``uvicorn ...``, options of the interpreter such as ``-X``) is refused with the form
that is accepted.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import LoadError
from ..evidence import FunctionMemory, MemoryProfile

INSTALL_HINT = (
    "pip install 'pytest-perfgate[profile]'  (or: pip install memray; in the Python that runs the service; "
    "Linux and macOS only)"
)
ACCEPTED = (
    'a Python interpreter followed by "-m module" or a script, e.g. '
    '--serve "python -m uvicorn app:app --port {port}" (not "uvicorn ...": name the interpreter)'
)
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?(\.exe)?")
CAPTURE_NAME = "service-memory.bin"
#: seconds memray gets to complete its capture after SIGINT
STOP_GRACE = 120.0


def is_python(word: str) -> bool:
    return bool(_PYTHON.fullmatch(os.path.basename(word)))


def memray_argv(argv: Sequence[str], capture: Path) -> list[str]:
    """``argv`` run under memray, writing ``capture``; :class:`LoadError` naming the accepted
    form when ``argv`` does not start a Python program."""
    words = list(argv)
    if not words or not is_python(words[0]):
        raise LoadError(
            f"--profile memory runs the service under memray; its command must be {ACCEPTED}; got {words[:3]}"
        )
    rest = words[1:]
    if not rest or (rest[0].startswith("-") and rest[0] not in ("-m", "-c")):
        raise LoadError(
            f"--profile memory: after the interpreter memray accepts -m module, -c code or a script, not {rest[:1]}; "
            f"the command must be {ACCEPTED}"
        )
    return [words[0], "-m", "memray", "run", "--output", str(capture), "--force", "--follow-fork", "--quiet", *rest]


def check_memray(python: str) -> None:
    """:class:`LoadError` with an install hint when ``python`` cannot import memray."""
    try:
        done = subprocess.run([python, "-c", "import memray"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LoadError(f"--profile memory: cannot run {python}: {exc}") from None
    if done.returncode != 0:
        raise LoadError(f"--profile memory needs memray in {python}, which cannot import it", hint=INSTALL_HINT)


#: functions kept in the results file: the largest by own bytes at the high-water mark, and the
#: largest by inclusive bytes (the outer frames, which hold everything)
KEEP_OWN = 15
KEEP_INCLUSIVE = 10


def summarise(capture: Path) -> MemoryProfile:
    """The capture summarised by :func:`~pytest_perfgate.measure.memray_profile.read_capture`;
    its functions cut to those the results file keeps (by inclusive bytes, as the profile orders
    them): the :data:`KEEP_OWN` largest by own bytes (where memory was allocated: a service's
    outer frames would otherwise fill the list) and the :data:`KEEP_INCLUSIVE` largest by inclusive."""
    from ..errors import MeasurementError
    from ..measure.memray_profile import read_capture

    if not capture.exists():
        raise MeasurementError(f"memray wrote no capture at {capture}: see the service's output above")
    try:
        profile = read_capture(capture)
    except (OSError, RuntimeError, ValueError) as exc:  # memray's reader on a truncated capture
        raise MeasurementError(f"memray's capture {capture} cannot be read: {exc}") from None
    keep = {id(f) for f in by_own(profile)[:KEEP_OWN]} | {id(f) for f in profile.functions[:KEEP_INCLUSIVE]}
    return dataclasses.replace(profile, functions=tuple(f for f in profile.functions if id(f) in keep))


def tracking_started(capture: Path) -> float | None:
    """When memray started tracking (epoch seconds): the time base of the memory timeline."""
    try:
        import memray

        reader = memray.FileReader(os.fspath(capture))
        try:
            return float(reader.metadata.start_time.timestamp())
        finally:
            reader.close()
    except (ImportError, OSError, RuntimeError, ValueError):
        return None


def by_own(profile: MemoryProfile) -> list[FunctionMemory]:
    """Functions that allocated what was held at the high-water mark, most first."""
    return sorted((f for f in profile.functions if f.self_net > 0), key=lambda f: (-f.self_net, f.function))


__all__ = ("CAPTURE_NAME", "by_own", "check_memray", "is_python", "memray_argv", "summarise")
