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

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import LoadError

INSTALL_HINT = "pip install memray  (in the Python that runs the service; Linux and macOS)"
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


def summarise(capture: Path) -> object:
    """The capture summarised by ``measure.memray_profile.read_capture``."""
    from ..errors import MeasurementError

    if not capture.exists():
        raise MeasurementError(f"memray wrote no capture at {capture}: see the service's output")
    try:
        from ..measure.memray_profile import read_capture  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise MeasurementError(
            f"the capture is at {capture}, but this perfgate cannot summarise it "
            "(no measure.memray_profile.read_capture); "
            f"read it with: python -m memray flamegraph {capture}"
        ) from None
    return read_capture(capture)


__all__ = ("CAPTURE_NAME", "check_memray", "is_python", "memray_argv", "summarise")
