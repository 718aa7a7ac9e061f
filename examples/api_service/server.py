"""Start the example API on uvicorn on a free loopback port, and stop it: for tests, the demo and
the benchmark.

    python examples/api_service/server.py                      # serve until Ctrl-C, print the URL
    python examples/api_service/server.py -- CMD ARGS {url}    # serve, run CMD ({url} replaced), stop

The second form exits with CMD's exit code and always stops the server (no stray process).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
_LISTENING = re.compile(r"Uvicorn running on (http://\S+)")


@dataclass(frozen=True)
class RunningServer:
    url: str
    pid: int
    log: str


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def serve(
    *, workers: int = 1, env: dict[str, str] | None = None, timeout: float = 30.0, python: str = sys.executable
) -> Iterator[RunningServer]:
    """uvicorn on 127.0.0.1, port chosen by the OS (no race for a "free" port), ready when
    ``/health`` answers; stopped (its whole process group) on exit."""
    with tempfile.TemporaryDirectory(prefix="api-service-") as tmp:
        log_path = Path(tmp) / "uvicorn.log"
        command = [
            python, "-m", "uvicorn", "app:app", "--app-dir", str(HERE),
            "--host", "127.0.0.1", "--port", "0", "--no-access-log", "--log-level", "info",
            "--workers", str(workers),
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        try:
            url = _wait_ready(proc, log_path, timeout)
            yield RunningServer(url=url, pid=proc.pid, log=str(log_path))
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited with code {proc.returncode}:\n{log_path.read_text()}")
        if url is None:
            found = _LISTENING.search(log_path.read_text(errors="replace"))
            url = found.group(1) if found else None
        if url is not None:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return url
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.05)
    raise RuntimeError(f"the API server was not ready within {timeout:g}s:\n{log_path.read_text(errors='replace')}")


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    command = args[args.index("--") + 1 :] if "--" in args else []
    with serve() as server:
        if not command:
            print(f"serving on {server.url} (Ctrl-C stops)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
            return 0
        print(f"api_service: serving on {server.url}", flush=True)
        return subprocess.call([part.replace("{url}", server.url) for part in command])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
