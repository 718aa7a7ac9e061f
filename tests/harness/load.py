"""The example API service (examples/api_service) and the processes a load run leaves."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "api_service"


LOCUSTFILE = EXAMPLE / "locustfile.py"


def server_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("api_service_server", EXAMPLE / "server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment mentions ``marker`` (a run's unique work folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def serve_command(marker: str | None = None, python: str = sys.executable) -> str:
    """``--serve`` for the example API on uvicorn (``{port}`` left for perfgate to fill);
    ``marker`` goes in its command line (a response header), for :func:`processes_running`."""
    import shlex

    words = [python, "-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLE), "--no-access-log"]
    if marker:
        words += ["--header", f"x-test-run:{marker}"]
    return shlex.join(words) + " --port {port}"


def processes_running(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until(predicate: Callable[[], object], timeout: float) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` seconds (polled every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())
