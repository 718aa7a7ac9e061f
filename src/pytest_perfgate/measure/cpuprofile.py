"""Where the time went: the measured call run again under a profiler, as a tree of call paths.

**pyinstrument** (the ``profile`` extra) samples the call stack every ``interval`` seconds; each
sample is one real path from the measured call down to the function running, so the tree holds
only paths that ran, a node's time is the time sampled with its path on the stack (never more
than its parent's) and its own time the time sampled with it on top. A sampling profiler does
not count calls (``calls`` is 0) and does not see C functions: their time is the calling Python
function's own time.

**cProfile** is the fallback when pyinstrument is not installed (or cannot start): it counts
every call, but records caller -> callee edges merged over all callers, so the tree rebuilt
from them may show a path that never ran. The profile says which profiler made it.

Either way the call is repeated until ``min_time`` has passed (at least once), so that a call of
a few milliseconds gets enough samples.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import random
import time
from collections.abc import Callable
from typing import Any, Literal

from ..evidence import CPROFILE, PYINSTRUMENT, TOP_FUNCTIONS, CallNode, CpuProfile, FunctionTime

FuncKey = tuple[str, int, str]  # (file, line, name) as pstats keys functions
Profiler = Literal["auto", "pyinstrument", "cProfile"]
Clock = Literal["wall", "cpu"]

_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_THIS_FILE = os.path.abspath(__file__)

#: the install hint stated when the fallback is used because pyinstrument is missing
MISSING_PYINSTRUMENT = (
    "pyinstrument is not installed (pip install 'pytest-perfgate[profile]'): cProfile's call tree is rebuilt "
    "from caller -> callee edges merged over all callers, so a path shown may never have run"
)

#: seconds between two samples: fine enough for calls of a millisecond
DEFAULT_INTERVAL = 0.0002

#: the C functions the profiled loop calls itself (not the measured call's)
_LOOP_CALLS = frozenset({"perf_counter", "random", "max", "min", "int"})

#: bounds of the tree kept in the results file
_MAX_NODES = 200
_MAX_CHILDREN = 8
_MAX_DEPTH = 40
_MIN_SHARE = 0.005  # of the total: smaller paths are left out of the tree (never out of the table)


def profile_cpu(
    fn: Callable[[], Any],
    *,
    min_time: float = 0.2,
    max_calls: int = 1_000_000,
    interval: float = DEFAULT_INTERVAL,
    profiler: Profiler = "auto",
    clock: Clock = "wall",
) -> CpuProfile:
    """Run ``fn`` under a profiler until ``min_time`` has passed (at least once, at most
    ``max_calls`` times). ``profiler``: "auto" is pyinstrument when installed, else cProfile
    (the profile's ``note`` says so). ``clock`` (pyinstrument only): what a sample's time is, the
    wall clock (waits included: sleeping, I/O, and the time other processes took the CPU) or this
    thread's CPU time (what the code computed: robust on a busy machine, blind to waits)."""
    if profiler == CPROFILE:
        return _profile_cprofile(fn, min_time=min_time, max_calls=max_calls)
    try:
        import pyinstrument
    except ImportError:
        if profiler == PYINSTRUMENT:
            raise
        return _profile_cprofile(fn, min_time=min_time, max_calls=max_calls, note=MISSING_PYINSTRUMENT)
    from pyinstrument.stack_sampler import get_stack_sampler

    sampler = pyinstrument.Profiler(interval=interval, async_mode="disabled")
    stacks = get_stack_sampler()
    timer = stacks.timer_func
    try:
        if clock == "cpu":
            stacks.timer_func = time.thread_time  # pyinstrument's own hook for another clock
        sampler.start()
    except (RuntimeError, ValueError) as exc:  # another pyinstrument profiler runs in this thread
        stacks.timer_func = timer
        if profiler == PYINSTRUMENT:
            raise
        note = f"pyinstrument could not start: {exc}"
        return _profile_cprofile(fn, min_time=min_time, max_calls=max_calls, note=note)
    try:
        calls, total = _profiled_calls(fn, min_time, max_calls, jitter=interval)
    finally:
        session = sampler.stop()
        stacks.timer_func = timer
    return _from_samples(session.frame_records, calls, total, clock)


def _profiled_calls(
    fn: Callable[[], Any], min_time: float, max_calls: int, *, jitter: float = 0.0
) -> tuple[int, float]:
    """The profiled loop: its frame marks where the measured call's stacks begin. ``jitter``:
    before each batch of calls (about ``jitter`` long) the loop waits a random time up to that (a
    sampler's interval), so that a call repeated at a fixed period does not keep meeting the
    sampler at the same point of its course (sampling in phase with the call would charge one
    function time that is another's). Returns the calls made and the time spent in them; it
    stops when that reaches ``min_time``, or twice that has passed in all."""
    calls = 0
    spent = 0.0
    batch = 1
    draw = random.Random(0x5EED).random
    deadline = time.perf_counter() + 2 * min_time
    while True:
        if jitter:
            wait_until = time.perf_counter() + jitter * draw()
            while time.perf_counter() < wait_until:
                pass
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        end = time.perf_counter()
        spent += end - start
        calls += batch
        if spent >= min_time or end >= deadline or calls >= max_calls:
            break
        if jitter:  # calls much shorter than the interval: batches of about one interval
            wanted = batch * jitter / max(end - start, 1e-9)
            batch = max(1, min(int((batch + wanted) / 2), max_calls - calls, 100_000))
    return calls, spent


# --------------------------------------------------------------------------- sampled stacks


class _Frame:
    """One frame of a sampled stack: pyinstrument's ``"function\\0file\\0line\\1attributes"``."""

    __slots__ = ("file", "function", "location")

    def __init__(self, info: str) -> None:
        identifier, *attributes = info.split("\x01")
        parts = identifier.split("\x00")
        name = parts[0]
        self.file = parts[1] if len(parts) > 1 else ""
        line = parts[2] if len(parts) > 2 else ""
        cls = next((a[1:] for a in attributes if a.startswith("c")), "")
        self.function = f"{cls}.{name}" if cls and "." not in name else name
        if self.file == "<built-in>":  # a C function, as cProfile names its place
            self.location = "built-in"
        else:
            self.location = f"{self.file}:{line}" if line else self.file


class _Path:
    """A node of the sampled tree while it is being built."""

    __slots__ = ("children", "frame", "own", "time")

    def __init__(self, frame: _Frame) -> None:
        self.frame = frame
        self.time = 0.0
        self.own = 0.0
        self.children: dict[tuple[str, str], _Path] = {}


def _user_stack(stack: list[str], frames: dict[str, _Frame]) -> list[_Frame] | None:
    """The frames below the profiled loop, perfgate's own wrappers at the top left out; None for
    a sample taken outside the loop."""
    parsed = []
    for info in stack:
        frame = frames.get(info)
        if frame is None:
            frame = frames[info] = _Frame(info)
        parsed.append(frame)
    for i in range(len(parsed) - 1, -1, -1):
        if parsed[i].function == _profiled_calls.__name__ and parsed[i].file == _THIS_FILE:
            below = parsed[i + 1 :]
            while below and below[0].file.startswith(_OWN_DIR):
                below = below[1:]
            if len(below) == 1 and below[0].location == "built-in" and below[0].function.split(".")[-1] in _LOOP_CALLS:
                return None  # the loop's own clock and jitter
            return below
    return None


def _from_samples(records: list[tuple[list[str], float]], calls: int, total: float, clock: Clock) -> CpuProfile:
    frames: dict[str, _Frame] = {}
    roots: dict[tuple[str, str], _Path] = {}
    own: dict[tuple[str, str], float] = {}
    cumulative: dict[tuple[str, str], float] = {}
    samples = 0
    for stack, elapsed in records:
        path = _user_stack(stack, frames)
        if not path:
            continue  # outside the measured call (the loop itself, the profiler starting)
        samples += 1
        level = roots
        node = None
        for frame in path:
            key = (frame.function, frame.location)
            node = level.get(key)
            if node is None:
                node = level[key] = _Path(frame)
            node.time += elapsed
            level = node.children
        assert node is not None
        node.own += elapsed
        leaf = (path[-1].function, path[-1].location)
        own[leaf] = own.get(leaf, 0.0) + elapsed
        for key in {(f.function, f.location) for f in path}:  # once per sample: recursion is not counted twice
            cumulative[key] = cumulative.get(key, 0.0) + elapsed
    # the time sampled inside the calls: the shares' denominator (a sample straddling the loop and a
    # call is the call's; the loop's own samples are left out)
    total = sum(node.time for node in roots.values()) or total
    budget = [_MAX_NODES]
    tree = tuple(_sampled_node(node, total, 0, budget) for node in _largest(roots.values(), total, budget))
    rows = (FunctionTime(name, where, 0, own.get((name, where), 0.0), cum) for (name, where), cum in cumulative.items())
    top = sorted(rows, key=lambda row: (-row.own, -row.cumulative))[:TOP_FUNCTIONS]
    return CpuProfile(
        calls=calls, total=total, tree=tree, top=tuple(top), profiler=PYINSTRUMENT, samples=samples, clock=clock
    )


def _largest(nodes: Any, total: float, budget: list[int]) -> list[_Path]:
    kept = [n for n in sorted(nodes, key=lambda n: -n.time) if n.time >= _MIN_SHARE * total]
    return kept[: min(_MAX_CHILDREN, max(budget[0], 0))]


def _sampled_node(node: _Path, total: float, depth: int, budget: list[int]) -> CallNode:
    budget[0] -= 1
    children: list[CallNode] = []
    if depth < _MAX_DEPTH:
        for child in _largest(node.children.values(), total, budget):
            if budget[0] <= 0:
                break
            children.append(_sampled_node(child, total, depth + 1, budget))
    return CallNode(node.frame.function, node.frame.location, 0, node.time, node.own, tuple(children))


# --------------------------------------------------------------------------- cProfile (the fallback)


def _name(key: FuncKey) -> tuple[str, str]:
    filename, line, name = key
    if filename == "~":  # a built-in: "<built-in method builtins.sorted>"
        return name.strip("<>").replace("built-in method ", ""), "built-in"
    return name, f"{filename}:{line}"


def _profile_cprofile(fn: Callable[[], Any], *, min_time: float, max_calls: int, note: str = "") -> CpuProfile:
    """cProfile's edges rebuilt into a tree: each node is a function with its cumulative time
    *through that edge*, its own time over the whole run and its calls; recursion is cut where a
    function reappears on its own path."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        calls, total = _profiled_calls(fn, min_time, max_calls)
    finally:
        profiler.disable()
    stats = pstats.Stats(profiler)
    table: dict[FuncKey, Any] = stats.stats  # type: ignore[attr-defined]
    callees: dict[FuncKey, dict[FuncKey, tuple[int, float]]] = {}
    for callee, (_cc, _nc, _tt, _ct, callers) in table.items():
        for caller, edge in callers.items():
            callees.setdefault(caller, {})[callee] = (edge[1], edge[3])
    budget = [_MAX_NODES]
    tree = tuple(_build(root, table, callees, total, path=(), depth=0, budget=budget) for root in _roots(table)[:5])
    rows = (
        FunctionTime(*_name(key), nc, tt, ct) for key, (_cc, nc, tt, ct, _) in table.items() if not _is_harness(key)
    )
    top = sorted(rows, key=lambda row: -row.own)[:TOP_FUNCTIONS]
    return CpuProfile(calls=calls, total=total, tree=tree, top=tuple(top), profiler=CPROFILE, note=note)


def _is_harness(key: FuncKey) -> bool:
    return key[0].startswith(_OWN_DIR) or key[2] == "<method 'disable' of '_lsprof.Profiler' objects>"


def _roots(table: dict[FuncKey, Any]) -> list[FuncKey]:
    """The user's outermost functions: called from perfgate itself (the profiling loop)."""
    roots = []
    for key, (*_, callers) in table.items():
        if _is_harness(key):
            continue
        if not callers or all(_is_harness(caller) for caller in callers):
            roots.append(key)
    return sorted(roots, key=lambda k: -table[k][3])


def _build(
    key: FuncKey,
    table: dict[FuncKey, Any],
    callees: dict[FuncKey, dict[FuncKey, tuple[int, float]]],
    total: float,
    *,
    path: tuple[FuncKey, ...],
    depth: int,
    budget: list[int],
    calls: int | None = None,
    cumulative: float | None = None,
) -> CallNode:
    _cc, nc, tt, ct, _callers = table[key]
    children: list[CallNode] = []
    budget[0] -= 1
    if depth < 12 and budget[0] > 0:
        for child, (edge_calls, edge_ct) in sorted(callees.get(key, {}).items(), key=lambda kv: -kv[1][1]):
            if child in path or child == key or edge_ct < 0.01 * total or _is_harness(child):
                continue
            if budget[0] <= 0:
                break
            children.append(
                _build(
                    child,
                    table,
                    callees,
                    total,
                    path=(*path, key),
                    depth=depth + 1,
                    budget=budget,
                    calls=edge_calls,
                    cumulative=edge_ct,
                )
            )
            if len(children) >= _MAX_CHILDREN:
                break
    function, location = _name(key)
    return CallNode(
        function,
        location,
        calls if calls is not None else nc,
        cumulative if cumulative is not None else ct,
        tt,
        tuple(children),
    )
