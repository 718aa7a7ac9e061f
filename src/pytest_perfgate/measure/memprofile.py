"""Memory by function: which functions held the memory of one call, and what stayed allocated.

One diagnostic re-run of the measured call under a tracer, named in the profile (``tracer``):

* **memray** when it is installed (``tracer="auto"``, the default, or ``"memray"``): the call runs
  inside a ``memray.Tracker`` (every allocation of every thread, Python's small objects included;
  native frames with ``native=True``) and the capture is read by :mod:`.memray_profile`: memory by
  function at the high-water mark (inclusive and own), its stacks, leak candidates and memory over
  time by function.
* **tracemalloc** otherwise (or ``tracer="tracemalloc"``, or when another memray tracker is
  already active in the process): perfgate's own profiler, ``tracemalloc`` and a profile hook
  (``sys.setprofile``: Python calls and returns, and returns from C functions). At every event the
  traced memory is read, so that for each function we know:

  - **inclusive peak**: the highest traced memory, above its level on entry, reached while the
    function was on the stack (its own allocations and its callees');
  - **self (net)**: the net change of traced memory while the function itself was running (not
    its callees), summed over its calls: what it allocated and kept, minus what it freed;
  - **calls**;

  plus the **call stack at the overall peak** and the allocation sites traced at that moment, and
  **what was still allocated at the end** (compared with the start): the leak candidates, i.e.
  memory that stays until something frees it. The profiler's own memory (its frames, call tree,
  snapshots) is allocated while tracing too: whatever the traced total changes by while the hook
  itself runs is counted as its bookkeeping and taken out of every reading, so it is never
  charged to a user's function. Only the calling thread is profiled.

Slow under tracemalloc (a Python callback on every call; several times less under memray): only
run on a failing memory budget or when asked. ``mem_peak`` itself is always measured by
tracemalloc (``measure.memory``), never by this re-run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from ..errors import MeasurementError
from ..evidence import AllocationSite, FunctionMemory, MemoryNode, MemoryProfile
from .memory import _OWN_DIR, _format_stack, _top_sites
from .memray_profile import import_memray, memray_available, read_capture

#: ``profile_memory(tracer=...)``: memray when installed, else tracemalloc; or one of them
TRACERS = ("auto", "memray", "tracemalloc")

_STEP = 16_000  # take a new peak snapshot when memory grows by this much (and by 2%)


class _Node:
    """One call path (a function reached through a given chain of callers)."""

    __slots__ = ("calls", "children", "code", "peak", "self_net")

    def __init__(self, code: CodeType | None) -> None:
        self.code = code
        self.calls = 0
        self.peak = 0
        self.self_net = 0
        self.children: dict[CodeType, _Node] = {}


class _Frame:
    __slots__ = ("code", "entry", "high", "node")

    def __init__(self, code: CodeType, entry: int, node: _Node) -> None:
        self.code = code
        self.entry = entry
        self.high = entry
        self.node = node


def _describe(code: CodeType, module: str) -> tuple[str, str]:
    qualname = getattr(code, "co_qualname", code.co_name)
    return f"{module}.{qualname}" if module else qualname, f"{code.co_filename}:{code.co_firstlineno}"


def profile_memory(
    fn: Callable[[], Any], *, frames: int = 12, tracer: str = "auto", native: bool = False
) -> MemoryProfile:
    """Run ``fn`` once and account its memory to the functions it ran (see the module's doc).

    ``native`` adds native (C, C++, Rust) frames to memray's stacks (slower); ``frames`` is the
    depth of tracemalloc's tracebacks."""
    if tracer not in TRACERS:
        raise MeasurementError(f"unknown memory tracer {tracer!r}; accepted: {', '.join(TRACERS)}")
    if tracer == "memray" or (tracer == "auto" and memray_available()):
        profile = _with_memray(fn, native=native, required=tracer == "memray")
        if profile is not None:
            return profile
    return _with_tracemalloc(fn, frames)


class _TrackerBusy(Exception):
    """Another memray tracker is active in this process (``memray run``, pytest-memray)."""


def _with_memray(fn: Callable[[], Any], *, native: bool, required: bool) -> MemoryProfile | None:
    """The call under a memray Tracker; ``None`` when another tracker is already active and
    memray was not asked for by name (then the tracemalloc profiler runs)."""
    memray = import_memray()
    with tempfile.TemporaryDirectory(prefix="perfgate-memray-") as tmp:
        capture = os.path.join(tmp, "capture.bin")
        tracker = memray.Tracker(
            capture,
            native_traces=native,
            trace_python_allocators=True,  # Python's small objects one by one, not pymalloc's arenas
            memory_interval_ms=_SAMPLE_MS,
        )
        try:
            tracker.__enter__()
        except RuntimeError as exc:  # "No more than one Tracker instance can be active at the same time"
            if required:
                raise MeasurementError(f"memray cannot profile this call: {exc}") from None
            return None
        try:
            fn()
        finally:
            tracker.__exit__(None, None, None)
        return read_capture(capture)


_SAMPLE_MS = 5  # memray's memory samples: the timeline's resolution


def _with_tracemalloc(fn: Callable[[], Any], frames: int) -> MemoryProfile:
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(frames)
    get = tracemalloc.get_traced_memory
    start_snapshot = tracemalloc.take_snapshot()
    base = get()[0]
    stack: list[_Frame] = []
    root = _Node(None)
    modules: dict[CodeType, str] = {}
    own_prefix = _OWN_DIR
    last = high = snap_level = base
    overhead = 0  # traced bytes the profiler itself holds (taken out of every reading)
    peak_codes: tuple[CodeType, ...] = ()
    snapshot: tracemalloc.Snapshot | None = None

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        # the hot path: runs for every call and return; kept to local variables and slots
        nonlocal last, high, snap_level, peak_codes, snapshot, overhead
        if event == "c_call":
            return
        current = get()[0] - overhead  # the program's level: nothing of ours ran since the last reading
        if stack:
            top = stack[-1]
            top.node.self_net += current - last
            if current > top.high:
                top.high = current
            del top  # a popped frame must be freed inside the hook (below), not after it
        last = current
        if current > high:
            high = current
            if current - snap_level > max(_STEP, (snap_level - base) // 50):
                snap_level = current
                snapshot = tracemalloc.take_snapshot()
                peak_codes = tuple(f.code for f in stack)
        if event == "call":
            code = frame.f_code
            if code.co_filename.startswith(own_prefix):
                return
            parent = stack[-1].node if stack else root
            node = parent.children.get(code)
            if node is None:
                node = parent.children[code] = _Node(code)
                if code not in modules:
                    modules[code] = frame.f_globals.get("__name__", "")
            node.calls += 1
            stack.append(_Frame(code, current, node))
        elif event == "return" and stack and stack[-1].code is frame.f_code:
            done = stack.pop()
            if done.high - done.entry > done.node.peak:
                done.node.peak = done.high - done.entry
            if stack and done.high > stack[-1].high:
                stack[-1].high = done.high
            del done  # freed now, inside the hook: bookkeeping, not the program's
        # whatever the traced total changed by while this hook ran is the profiler's own
        overhead = get()[0] - current

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(previous)
        retained = get()[0] - overhead - base
        end_snapshot = tracemalloc.take_snapshot()
        if not was_tracing:
            tracemalloc.stop()
    # tracemalloc's own peak would include the profiler's bookkeeping: the highest program level seen
    total_peak = max(0, high - base)
    return MemoryProfile(
        tracer="tracemalloc",
        tree=_tree(root, modules, total_peak),
        peak=total_peak,
        functions=_by_function(root, modules),
        peak_stack=tuple("{} ({})".format(*_describe(code, modules.get(code, ""))) for code in peak_codes),
        peak_sites=_top_sites(snapshot, 10) if snapshot is not None else (),
        retained=max(0, retained),
        leaks=_leaks(start_snapshot, end_snapshot),
    )


def _by_function(root: _Node, modules: dict[CodeType, str]) -> tuple[FunctionMemory, ...]:
    """Fold the call paths per function: calls and self (net) add up, the inclusive peak is the
    largest of any path (peaks of different moments do not add)."""
    totals: dict[CodeType, list[int]] = {}
    pending = list(root.children.values())
    while pending:
        node = pending.pop()
        assert node.code is not None
        entry = totals.setdefault(node.code, [0, 0, 0])
        entry[0] += node.calls
        entry[1] = max(entry[1], node.peak)
        entry[2] += node.self_net
        pending.extend(node.children.values())
    functions = []
    for code, (calls, inclusive, self_net) in totals.items():
        name, location = _describe(code, modules.get(code, ""))
        functions.append(FunctionMemory(name, location, calls, max(0, inclusive), self_net))
    functions.sort(key=lambda f: (-f.inclusive_peak, -f.self_net, f.function))
    return tuple(functions)


def _tree(root: _Node, modules: dict[CodeType, str], total: int, *, max_nodes: int = 300) -> MemoryNode:
    """The call-path tree, bounded: paths under 0.5% of the peak are dropped."""
    budget = [max_nodes]

    def convert(node: _Node, depth: int) -> MemoryNode:
        budget[0] -= 1
        name, location = _describe(node.code, modules.get(node.code, "")) if node.code else ("<call>", "")
        children = []
        for child in sorted(node.children.values(), key=lambda n: -n.peak):
            if budget[0] <= 0 or depth >= 40 or child.peak < 0.005 * max(total, 1):
                break
            children.append(convert(child, depth + 1))
        return MemoryNode(
            function=name,
            location=location,
            calls=node.calls,
            peak=node.peak if node.code else total,
            self_net=node.self_net,
            children=tuple(children),
        )

    return convert(root, 0)


def _leaks(start: tracemalloc.Snapshot, end: tracemalloc.Snapshot, top: int = 10) -> tuple[AllocationSite, ...]:
    """Sites that hold more at the end than at the start (by traceback), largest first."""
    by_line: dict[str, list[Any]] = {}  # innermost user line -> [size, count, stack]
    for diff in end.compare_to(start, "traceback"):
        stack = _format_stack(diff.traceback)
        if diff.size_diff <= 0 or not stack:
            continue
        entry = by_line.setdefault(stack[-1], [0, 0, stack])
        entry[0] += diff.size_diff
        entry[1] += max(diff.count_diff, 0)
    ranked = sorted(by_line.values(), key=lambda e: -e[0])[:top]
    return tuple(AllocationSite(size=size, count=count, stack=stack) for size, count, stack in ranked)
