"""``perfgate load --serve ... --profile cpu``: the service's CPU sampled by py-spy during the
measured window, turned into a call tree, a table of functions and a flame graph.

py-spy attaches to the running service (``py-spy record --pid PID --subprocesses``: uvicorn's
workers too) when the warm-up is over and is stopped (SIGINT, it then writes its file) when
locust stops, so the profile covers the measured window only. Its speedscope file holds, per
thread, the sampled stacks (outermost first, a synthetic "process PID: command" frame on top);
:func:`read_speedscope` merges them into one tree of call paths with each node's own and total
samples. Only stacks that were sampled appear, and a node's total is never above its parent's.

Attaching needs ptrace permission over the service (perfgate started it, but py-spy is its
sibling, not its parent): root or ``CAP_SYS_PTRACE`` (``--cap-add SYS_PTRACE`` in Docker),
or ``kernel.yama.ptrace_scope`` 0. perfgate checks it (``py-spy dump``) before any load is
generated; a refusal is a :class:`~pytest_perfgate.errors.LoadError` naming the cause.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._procs import read_log, spawn, stop_group, tail
from ..errors import LoadError, LoadRunError
from ..evidence import heaviest_path

INSTALL_HINT = "pip install 'pytest-perfgate[profile]'  (or: pip install py-spy; a binary wheel)"
PTRACE_HINT = (
    "py-spy reads the service's memory with ptrace: run perfgate as root, give its container "
    "CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE; in GitLab CI a runner with that capability), "
    "or allow it with sysctl kernel.yama.ptrace_scope=0"
)
#: py-spy's default: samples per second and process thread
DEFAULT_RATE = 100
#: nodes whose total is below this share of all samples are left out of the stored tree
TREE_MIN_SHARE = 0.005
#: functions kept in the table
TOP = 25
#: seconds for py-spy to attach (``dump``) and to write its file once stopped
ATTACH_TIMEOUT = 30.0
WRITE_TIMEOUT = 30.0


# --------------------------------------------------------------------------- the profile


@dataclass(frozen=True)
class SampledNode:
    """One call path: ``function`` reached through its ancestors; ``own`` samples with it on top
    of the stack, ``total`` samples with it anywhere below (the path's inclusive count)."""

    function: str
    location: str  # "file:line" of the function's first line; "" for a process
    own: int
    total: int
    children: tuple[SampledNode, ...] = ()

    def to_json(self, min_total: int = 0) -> dict[str, Any]:
        return {
            "function": self.function,
            "location": self.location,
            "own": self.own,
            "total": self.total,
            "children": [c.to_json(min_total) for c in self.children if c.total >= min_total],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SampledNode:
        return cls(
            str(data.get("function") or ""),
            str(data.get("location") or ""),
            int(data.get("own") or 0),
            int(data.get("total") or 0),
            tuple(cls.from_json(c) for c in data.get("children") or ()),
        )


@dataclass(frozen=True)
class SampledFunction:
    """A function over all its call paths: samples on top of the stack (own) and anywhere in it
    (total, a recursive function counted once per sample)."""

    function: str
    location: str
    own: int
    total: int

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "location": self.location, "own": self.own, "total": self.total}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SampledFunction:
        return cls(str(data["function"]), str(data["location"]), int(data["own"]), int(data["total"]))


@dataclass(frozen=True)
class ServiceCpuProfile:
    """Where the service's CPU went during the measured window (``evidence["service"]["cpu"]``)."""

    profiler: str  # "py-spy 0.4.3", "py-spy 0.4.3 --nonblocking"
    rate: int  # samples per second asked for
    samples: int  # stacks recorded, all processes and threads
    seconds: float  # how long it sampled
    processes: int
    top: tuple[SampledFunction, ...]  # by own samples, most first
    tree: tuple[SampledNode, ...]  # one root per process
    files: tuple[tuple[str, str], ...] = ()  # ("flamegraph", path), ("speedscope", path)

    def share(self, samples: int) -> float:
        return samples / self.samples if self.samples else 0.0

    def hot_path(self) -> list[SampledNode]:
        """From the busiest process down, the child with the most samples at each level."""
        return heaviest_path(self.tree, weight=lambda n: n.total, children=lambda n: n.children)

    def to_json(self) -> dict[str, Any]:
        min_total = max(1, math.ceil(self.samples * TREE_MIN_SHARE))
        return {
            "profiler": self.profiler,
            "rate": self.rate,
            "samples": self.samples,
            "seconds": self.seconds,
            "processes": self.processes,
            "top": [f.to_json() for f in self.top],
            "hot_path": [f"{n.function} ({n.location})" if n.location else n.function for n in self.hot_path()],
            "tree_min_samples": min_total,
            "tree": [n.to_json(min_total) for n in self.tree],
            "files": dict(self.files),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceCpuProfile:
        return cls(
            profiler=str(data.get("profiler") or ""),
            rate=int(data.get("rate") or 0),
            samples=int(data.get("samples") or 0),
            seconds=float(data.get("seconds") or 0.0),
            processes=int(data.get("processes") or 0),
            top=tuple(SampledFunction.from_json(f) for f in data.get("top") or ()),
            tree=tuple(SampledNode.from_json(n) for n in data.get("tree") or ()),
            files=tuple((str(k), str(v)) for k, v in (data.get("files") or {}).items()),
        )


# --------------------------------------------------------------------------- speedscope -> tree


@dataclass
class _Building:
    function: str
    location: str
    own: int = 0
    total: int = 0
    children: dict[tuple[str, str], _Building] = field(default_factory=dict)

    def freeze(self) -> SampledNode:
        kids = sorted(self.children.values(), key=lambda c: (-c.total, c.function))
        return SampledNode(self.function, self.location, self.own, self.total, tuple(k.freeze() for k in kids))


def _frame_key(frame: Mapping[str, Any]) -> tuple[str, str]:
    name = str(frame.get("name") or "?")
    path = str(frame.get("file") or "")
    line = frame.get("line")
    return name, (f"{path}:{line}" if path and line else path)


def build_tree(
    stacks: Iterable[Sequence[tuple[str, str]]],
) -> tuple[tuple[SampledNode, ...], tuple[SampledFunction, ...], int]:
    """The call tree (one root per outermost frame), the functions by own samples, and the
    number of samples, from stacks of ``(function, location)`` outermost first. Frames without a
    location (a process) are tree roots but not functions of the table."""
    roots: dict[tuple[str, str], _Building] = {}
    own: dict[tuple[str, str], int] = {}
    total: dict[tuple[str, str], int] = {}
    count = 0
    for stack in stacks:
        if not stack:
            continue
        count += 1
        level = roots
        node: _Building | None = None
        for key in stack:
            node = level.get(key)
            if node is None:
                node = level[key] = _Building(*key)
            node.total += 1
            level = node.children
        assert node is not None
        node.own += 1
        leaf = stack[-1]
        if leaf[1]:
            own[leaf] = own.get(leaf, 0) + 1
        for key in set(stack):
            if key[1]:
                total[key] = total.get(key, 0) + 1
    functions = sorted(
        (SampledFunction(k[0], k[1], own.get(k, 0), t) for k, t in total.items()),
        key=lambda f: (-f.own, -f.total, f.function),
    )
    tree = tuple(r.freeze() for r in sorted(roots.values(), key=lambda r: (-r.total, r.function)))
    return tree, tuple(functions), count


def read_speedscope(path: str | os.PathLike[str]) -> tuple[tuple[tuple[tuple[str, str], ...], ...], int]:
    """Every sampled stack of a py-spy speedscope file (``(function, location)`` outermost
    first) and the number of processes sampled; :class:`LoadRunError` when it cannot be read."""
    name = os.fspath(path)
    try:
        data = json.loads(Path(name).read_text(encoding="utf-8"))
        frames = [_frame_key(f) for f in data["shared"]["frames"]]
        stacks = tuple(
            tuple(frames[i] for i in sample) for profile in data["profiles"] for sample in profile.get("samples") or ()
        )
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise LoadRunError(f"{name}: py-spy's profile cannot be read ({type(exc).__name__}: {exc})") from None
    # py-spy puts a frame "process PID:command" on top of each process's stacks, and a child's
    # (--subprocesses: uvicorn's workers) under its parent's
    processes = {frame for stack in stacks for frame in stack if not frame[1] and frame[0].startswith("process ")}
    return stacks, len(processes)


# --------------------------------------------------------------------------- py-spy


def find_py_spy() -> str:
    """py-spy next to this Python (its virtualenv) or on PATH; :class:`LoadError` with an
    install hint when it is not there."""
    here = os.path.dirname(sys.executable)
    found = shutil.which("py-spy", path=os.pathsep.join([here, os.environ.get("PATH", "")]))
    if found is None:
        raise LoadError("--profile cpu needs py-spy, which is not installed", hint=INSTALL_HINT)
    return found


def _version(py_spy: str) -> str:
    try:
        done = subprocess.run([py_spy, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "py-spy"
    return done.stdout.strip() or "py-spy"


def _refusal(pid: int, output: str) -> LoadError:
    lowered = output.lower()
    if "permission" in lowered or "not permitted" in lowered or "os error 1)" in lowered:
        return LoadError(
            f"--profile cpu: py-spy may not attach to the service (pid {pid}): ptrace is not permitted here. "
            f"py-spy said:\n{tail(output, 5, prefix='    ')}",
            hint=PTRACE_HINT,
        )
    return LoadError(
        f"--profile cpu: py-spy cannot sample the service (pid {pid}). py-spy said:\n{tail(output, 10, prefix='    ')}"
    )


def check_attach(py_spy: str, pid: int) -> None:
    """One ``py-spy dump`` of the service before any load: :class:`LoadError` naming ptrace
    when attaching is refused."""
    try:
        done = subprocess.run(
            [py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=ATTACH_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise LoadError(
            f"--profile cpu: py-spy did not attach to the service (pid {pid}) within {ATTACH_TIMEOUT:g}s"
        ) from None
    except OSError as exc:
        raise LoadError(f"--profile cpu: cannot run {py_spy}: {exc}", hint=INSTALL_HINT) from None
    if done.returncode != 0:
        raise _refusal(pid, (done.stdout or "") + (done.stderr or ""))


@dataclass(frozen=True)
class CpuSettings:
    rate: int = DEFAULT_RATE
    py_spy: str | None = None  # default: find_py_spy()
    nonblocking: bool = False  # py-spy --nonblocking: read the stacks without pausing the service


class CpuSampler:
    """py-spy on the service for the measured window: :meth:`progress` learns when locust's run
    started (the listener's progress lines), :meth:`tick` starts py-spy once the warm-up is over,
    :meth:`finish` stops it and reads its file. :meth:`close` (always called) leaves nothing."""

    def __init__(self, settings: CpuSettings, pid: int, *, warmup: float, run_time: float, folder: Path) -> None:
        self.settings = settings
        self.pid = pid
        self.warmup = warmup
        self.run_time = run_time
        self.folder = folder
        self.py_spy = settings.py_spy or find_py_spy()
        self.out = folder / "service-cpu.speedscope.json"
        self.log = folder / "py-spy.log"
        self.run_started: float | None = None  # monotonic time of locust's test start
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = self.stopped = 0.0

    def check(self) -> None:
        check_attach(self.py_spy, self.pid)

    def progress(self, point: Mapping[str, Any]) -> None:
        if self.run_started is None:
            with contextlib.suppress(TypeError, ValueError):
                self.run_started = time.monotonic() - float(point.get("elapsed", 0.0))

    def tick(self) -> None:
        if self.proc is not None or self.run_started is None:
            return
        now = time.monotonic()
        if now < self.run_started + self.warmup:
            return
        # py-spy ends by itself at the end of the window, should perfgate not stop it first
        duration = max(1, math.ceil(self.run_started + self.run_time - now) + 1)
        command = [
            self.py_spy, "record", "--pid", str(self.pid), "--subprocesses", "--function",
            "--rate", str(self.settings.rate), "--format", "speedscope", "--output", str(self.out),
            "--duration", str(duration),
        ]  # fmt: skip
        if self.settings.nonblocking:
            command.append("--nonblocking")
        self.out.unlink(missing_ok=True)
        with open(self.log, "wb") as log:
            self.proc = spawn(command, feature="perfgate load --profile cpu", output=log, die_with_parent=True)
        self.started = now

    def finish(self) -> ServiceCpuProfile:
        """Stop py-spy (it writes its file on SIGINT) and read the profile."""
        if self.proc is None:
            raise LoadRunError(
                "--profile cpu: py-spy was never started: the run ended before its warm-up "
                f"({self.warmup:g}s) was over, or locust reported no progress"
            )
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=WRITE_TIMEOUT)
        self.stopped = time.monotonic()
        stop_group(proc, 5.0)
        output = read_log(self.log) or ""
        if not self.out.exists():
            if proc.returncode not in (0, None, -signal.SIGINT):
                raise _refusal(self.pid, output)
            raise LoadRunError(
                f"--profile cpu: py-spy wrote no profile. py-spy said:\n{tail(output, 10, prefix='    ')}"
            )
        stacks, processes = read_speedscope(self.out)
        tree, functions, samples = build_tree(stacks)
        return ServiceCpuProfile(
            profiler=_version(self.py_spy) + (" --nonblocking" if self.settings.nonblocking else ""),
            rate=self.settings.rate,
            samples=samples,
            seconds=self.stopped - self.started,
            processes=processes,
            top=functions[:TOP],
            tree=tree,
            files=(("speedscope", str(self.out)),),
        )

    def close(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, 0)


__all__ = (
    "CpuSampler",
    "CpuSettings",
    "SampledFunction",
    "SampledNode",
    "ServiceCpuProfile",
    "build_tree",
    "check_attach",
    "find_py_spy",
    "read_speedscope",
)
