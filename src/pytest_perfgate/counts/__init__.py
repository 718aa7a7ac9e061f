"""Counted, not timed (issue 18): instruction counts under callgrind and allocation counts.

Pytest-free. The native piece, :mod:`pytest_perfgate.counts._native`, is a small optional C
extension built on install (``setup.py``, ``optional=True``); :func:`native` loads it or raises a
:class:`~pytest_perfgate.errors.MeasurementError` naming what to install. No compilation happens at
run time: an install without a compiler gives the error, and installing one then reinstalling
pytest-perfgate fixes it.

* :mod:`.allocations`: ``count_allocations(fn)`` -> :class:`~.allocations.AllocCounts` (blocks and
  bytes requested from Python's allocators by one call), with or without valgrind.
* :mod:`.callgrind`: the command that re-runs a process under callgrind, ``count_call(fn)`` inside
  it -> :class:`~.callgrind.Counts`, and the pure parser of callgrind's dump files.
* :mod:`.fingerprint`: what must be equal for two runs' counts to be compared.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from pytest_perfgate.errors import MeasurementError, PlatformError

#: what to install, in every error that needs the extension
BUILD_HINT = (
    "it is built when pytest-perfgate is installed, if a C compiler and Python's headers exist "
    "(Debian: apt-get install gcc python3-dev; add valgrind for instruction counts: apt-get install valgrind), "
    "then reinstall pytest-perfgate "
    "(pip install --force-reinstall --no-deps --no-binary pytest-perfgate pytest-perfgate)"
)


def require_linux() -> None:
    """:class:`PlatformError` unless this is Linux (where perfgate supports callgrind)."""
    if not sys.platform.startswith("linux"):
        raise PlatformError(
            f"instruction counts need valgrind's callgrind, which perfgate supports on Linux only; "
            f"this is {sys.platform!r}"
        )


def native() -> ModuleType:
    """The extension module, or :class:`MeasurementError` saying that it was not built and how to
    build it (allocation counts need only this)."""
    try:
        _native = importlib.import_module("pytest_perfgate.counts._native")
    except ImportError as exc:
        raise MeasurementError(
            f"counting allocations and instructions needs perfgate's native extension "
            f"(pytest_perfgate.counts._native), which is not built ({exc}): {BUILD_HINT}"
        ) from None
    return _native


def native_with_client_requests() -> ModuleType:
    """The extension built with valgrind's client requests (instruction counts), or
    :class:`PlatformError` off Linux, or :class:`MeasurementError` naming what to install."""
    require_linux()
    module = native()
    if not module.have_client_requests():
        raise MeasurementError(
            "instruction counts need perfgate's native extension built with valgrind's headers "
            "(valgrind/callgrind.h), and it was built without them: install valgrind "
            "(Debian: apt-get install valgrind), then reinstall pytest-perfgate "
            "(pip install --force-reinstall --no-deps --no-binary pytest-perfgate pytest-perfgate)"
        )
    return module


__all__ = ["BUILD_HINT", "native", "native_with_client_requests", "require_linux"]
