"""Skip conditions of the counting tests: perfgate's native extension, and valgrind with it."""

from __future__ import annotations

import shutil
import sys

import pytest

try:
    from pytest_perfgate.counts import _native
except ImportError:  # pragma: no cover - depends on the install
    _native = None  # type: ignore[assignment]

needs_native = pytest.mark.skipif(
    _native is None,
    reason="pytest_perfgate.counts._native is not built (a C compiler and Python's headers; then reinstall)",
)
needs_callgrind = pytest.mark.skipif(
    _native is None
    or not sys.platform.startswith("linux")
    or shutil.which("valgrind") is None
    or not _native.have_client_requests(),
    reason="instruction counts need Linux, valgrind (apt-get install valgrind) and the native extension built "
    "with valgrind's headers",
)


def _functions_unavailable() -> str | None:
    from pytest_perfgate.counts.functions import unavailable

    return unavailable()


#: the one test of whether instructions can be counted by Python function here (what perfgate ab's
#: --profiler auto asks too)
needs_functions = pytest.mark.skipif(
    _functions_unavailable() is not None,
    reason=f"instructions by Python function cannot be counted here: {_functions_unavailable()}",
)
