"""``perfgate load`` leaves nothing behind: SIGTERM, SIGINT and SIGKILL of perfgate itself during a
run stop locust's whole process group (its --processes workers included). Real locust runs on
loopback only; every wait is bounded, and every process a test started is killed in teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.load import EXAMPLE, LOCUSTFILE, processes_with, server_module, wait_until

pytestmark = pytest.mark.skipif(
    any(__import__("importlib").util.find_spec(m) is None for m in ("locust", "uvicorn", "starlette", "mongomock")),
    reason="needs locust, uvicorn, starlette and mongomock (pip install 'pytest-perfgate[load,test]')",
)


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with server_module().serve() as server:
        yield server.url


@pytest.fixture
def start_load(api_url: str, tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    started: list[subprocess.Popen[bytes]] = []
    marker = str(tmp_path / "work")

    def start(*extra: str) -> tuple[subprocess.Popen[bytes], str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_perfgate.cli", "load", str(LOCUSTFILE), "--host", api_url, "-u", "2",
             "-t", "60s", "--workdir", marker, "--progress", "never", *extra],
            cwd=EXAMPLE.parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        started.append(proc)
        # locust is up once a process carries the work folder in its environment
        assert wait_until(lambda: processes_with(marker), 60), proc.communicate(timeout=30)
        return proc, marker

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    for pid in processes_with(marker):  # never leave a stray behind, whatever the test found
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_perfgate_load_stopped_by_a_signal_stops_locusts_group(start_load, signum: int, code: int) -> None:  # type: ignore[no-untyped-def]
    proc, marker = start_load()
    time.sleep(1.0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert b"error: interrupted; locust was stopped" in err
    assert wait_until(lambda: not processes_with(marker), 15), f"locust still running: {processes_with(marker)}"


@pytest.mark.parametrize("processes", ["1", "2"])
def test_perfgate_load_killed_leaves_no_locust_behind(start_load, processes: str) -> None:  # type: ignore[no-untyped-def]
    proc, marker = start_load("--processes", processes)
    if processes != "1":  # the master and its two workers
        assert wait_until(lambda: len(processes_with(marker)) >= 3, 60), processes_with(marker)
    time.sleep(1.0)
    proc.kill()
    proc.wait(timeout=30)
    assert wait_until(lambda: not processes_with(marker), 20), f"locust still running: {processes_with(marker)}"
