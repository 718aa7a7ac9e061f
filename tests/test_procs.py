"""The one process-group helper: spawn, stop, tail, and the POSIX guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_perfgate import _procs, errors
from pytest_perfgate.ab.controller import start_worker
from pytest_perfgate.ab.schedule import Side
from pytest_perfgate.errors import AbError, MongoBackendError, PlatformError
from pytest_perfgate.load.run import run_load
from pytest_perfgate.load.runner import LoadSettings
from pytest_perfgate.mongo.backends import MongoSettings, start_mongod
from pytest_perfgate.mongo.capture import CaptureHub


def test_tail_keeps_the_last_lines_with_prefix_and_width() -> None:
    text = "a\n\nbb\nccc\n\n"
    assert _procs.tail(text, 2) == "bb\nccc"
    assert _procs.tail(text, 2, prefix="  | ", width=2) == "  | bb\n  | cc"
    assert _procs.tail(text, 3) == "\nbb\nccc"
    assert _procs.tail(text, 3, skip_blank=True) == "a\nbb\nccc"
    assert _procs.tail("", 5) == ""


def test_read_log_is_none_when_unreadable(tmp_path: Path) -> None:
    assert _procs.read_log(tmp_path / "missing.log") is None
    (tmp_path / "x.log").write_bytes(b"ok \xff\n")
    assert _procs.read_log(tmp_path / "x.log") == "ok \ufffd\n"


def test_off_posix_the_error_names_the_feature(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(errors, "os", SimpleNamespace(name="nt"))  # what errors.require_posix sees
    with pytest.raises(PlatformError, match=r"^perfgate x needs a POSIX system \(Linux or macOS\)"):
        _procs.spawn(["true"], feature="perfgate x", output=subprocess.DEVNULL)  # type: ignore[arg-type]
    # each user of process groups says so
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("")
    settings = LoadSettings(locustfile=str(locustfile), host="http://127.0.0.1:9", run_time=1)
    with pytest.raises(PlatformError, match=r"^perfgate load needs a POSIX system"):
        run_load(settings, check_target=False)
    with pytest.raises(AbError, match=r"^cannot start the base worker: perfgate ab needs a POSIX system"):
        start_worker(Side.BASE, tmp_path, [], {}, None, tmp_path / "w.log", tmp_path / "w.json")
    with pytest.raises(MongoBackendError, match=r"could not run /x/mongod: the mongod backend needs a POSIX system"):
        start_mongod("/x/mongod", MongoSettings(), CaptureHub())


@pytest.mark.skipif(os.name != "posix", reason="process groups")
def test_spawn_runs_in_its_own_group_and_stop_kills_it_at_once(tmp_path: Path) -> None:
    with open(tmp_path / "out.log", "wb") as out:
        proc = _procs.spawn(
            [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
            feature="test",
            output=out,
            die_with_parent=True,
        )
    assert os.getpgid(proc.pid) == proc.pid
    assert _procs.group_alive(proc.pid)
    _procs.stop_group(proc, grace=0)
    assert proc.returncode == -9
    assert not _procs.group_alive(proc.pid)
    _procs.stop_group(proc, grace=0)  # a group that already left: nothing happens
    assert proc.pid not in _procs._GUARDS  # the guard was told the group is stopped and left


_PARENT = """
import subprocess, sys, time
from pytest_perfgate import _procs
# the leader forks a child that survives the leader (as locust's --processes workers can)
leader = ("import os, sys, time\\n"
          "if os.fork() == 0:\\n"
          "    print(os.getpid(), flush=True); time.sleep(120); sys.exit(0)\\n"
          "time.sleep(120)\\n")
with open(sys.argv[1], "wb") as out:
    proc = _procs.spawn([sys.executable, "-c", leader], feature="test", output=out, die_with_parent=True)
print(proc.pid, flush=True)
time.sleep(120)
"""


def _wait_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _procs.group_alive(pgid):
            return True
        time.sleep(0.05)
    return not _procs.group_alive(pgid)


@pytest.mark.skipif(os.name != "posix", reason="process groups")
def test_a_killed_parent_leaves_no_process_of_the_group_behind(tmp_path: Path) -> None:
    log = tmp_path / "group.log"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(log)], stdout=subprocess.PIPE)
    pgid = 0
    try:
        assert parent.stdout is not None
        pgid = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while not log.read_text().strip() and time.monotonic() < deadline:  # the forked child is up
            time.sleep(0.05)
        forked = int(log.read_text())
        assert os.getpgid(forked) == pgid
        parent.kill()  # no handler, no finally: only the guard can clean up
        parent.wait(timeout=30)
        assert _wait_gone(pgid, 20), f"group {pgid} still running after its parent was killed"
    finally:
        if parent.poll() is None:
            parent.kill()
        if pgid and _procs.group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
