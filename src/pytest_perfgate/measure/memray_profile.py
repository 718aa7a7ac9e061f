"""Memory by function from a memray capture: the high-water mark, what stayed, memory over time.

memray hooks the allocator itself (``malloc``, ``mmap``, ... and, when asked, Python's own
allocator), so it sees every thread and native code, at a fraction of a Python profile hook's
cost. A capture file (``memray.Tracker(path)`` around a call, or ``python -m memray run -o path``
of a whole process) is read here into perfgate's :class:`~pytest_perfgate.evidence.MemoryProfile`:

* **at the high-water mark** (the moment the most memory was allocated): for each function, the
  bytes it held **inclusive** (allocated with it anywhere on the stack) and **own** (allocated with
  it as the innermost Python frame), the largest allocation sites with their whole stacks, and the
  stack of the largest one;
* **leak candidates**: what was still allocated when tracking stopped, by allocating stack;
* **memory over time by function** (:class:`~pytest_perfgate.evidence.MemoryTimeline`): memray
  samples the process every few milliseconds; for each slice between two samples it knows the
  allocations live at that slice's own high-water mark. Up to ``times`` - 1 slices are kept (the
  highest of each group of neighbours), then what was allocated when tracking stopped; for the
  functions that held the most at any of them, the bytes each held itself (own) in each.

Functions are named ``qualname`` (``module.qualname`` when the module is imported here) at
``file:line`` of their ``def`` (found in the source; the lowest line seen when the source is not
at hand). Frames of perfgate, pytest, pluggy, memray and the import machinery are left out of the
stacks; their allocations count in the totals but are charged to no function.
"""

from __future__ import annotations

import ast
import bisect
import importlib
import linecache
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..errors import MeasurementError
from ..evidence import AllocationSite, FunctionMemory, MemoryNode, MemoryProfile, MemoryTimeline
from .memory import _is_own

INSTALL_HINT = "pip install 'pytest-perfgate[profile]'  (or: pip install memray; Linux and macOS only)"

Frame = tuple[str, str, int]  # memray's (function, file, line), as its stack traces give them
FunctionKey = tuple[str, str]  # (function name, file) until the def line is known


def import_memray() -> ModuleType:
    """memray, or a :class:`MeasurementError` with the install hint."""
    try:
        return importlib.import_module("memray")
    except ImportError:
        raise MeasurementError(f"memory profiles with memray need memray: {INSTALL_HINT}") from None


def memray_available() -> bool:
    try:
        import_memray()
    except MeasurementError:
        return False
    return True


# --------------------------------------------------------------------------- naming functions


@dataclass
class _Function:
    name: str  # "module.qualname" or "qualname"
    file: str
    line: int  # of the def (or the lowest line seen)
    own: int = 0
    inclusive: int = 0

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.location})"


class _Names:
    """Turns memray's frames (function, file, current line) into functions: the enclosing
    ``def`` found in the file's source gives the qualified name and the def line, so two
    methods called ``__init__`` in one file stay apart."""

    def __init__(self) -> None:
        self._defs: dict[str, list[tuple[int, int, str, str]]] = {}  # file -> (start, end, name, qualname)
        self._modules = {
            os.path.abspath(f): name
            for name, module in list(sys.modules.items())
            if (f := getattr(module, "__file__", None)) and name != "__main__"
        }
        self.functions: dict[tuple[str, str, int], _Function] = {}
        self._lowest: dict[FunctionKey, _Function] = {}  # functions whose def was not found
        self._seen: dict[Frame, _Function] = {}

    def _definitions(self, file: str) -> list[tuple[int, int, str, str]]:
        found = self._defs.get(file)
        if found is not None:
            return found
        found = []
        if file.endswith(".py"):
            source = "".join(linecache.getlines(file))
            try:
                tree = ast.parse(source) if source else None
            except (SyntaxError, ValueError):
                tree = None
            if tree is not None:
                _collect_defs(tree, "", found)
        self._defs[file] = found
        return found

    def function(self, frame: Frame) -> _Function:
        found = self._seen.get(frame)
        if found is None:
            found = self._seen[frame] = self._function(frame)
        return found

    def _function(self, frame: Frame) -> _Function:
        name, file, line = frame
        if name == "<module>":
            frame = (name, file, 1)  # a module's code starts at its first line
            name, file, line = frame
        best: tuple[int, int, str, str] | None = None
        for entry in self._definitions(file):
            start, end, short, _ = entry
            if short == name and start <= line <= end and (best is None or start > best[0]):
                best = entry
        module = self._modules.get(os.path.abspath(file), "")
        if best is not None:
            key = (name, file, best[0])
            found = self.functions.get(key)
            if found is None:
                qualname = f"{module}.{best[3]}" if module else best[3]
                found = self.functions[key] = _Function(qualname, file, best[0])
            return found
        lowest = self._lowest.get((name, file))
        if lowest is None:
            lowest = self._lowest[(name, file)] = _Function(f"{module}.{name}" if module else name, file, line)
            self.functions[(name, file, -len(self._lowest))] = lowest
        lowest.line = min(lowest.line, line) if line > 0 else lowest.line
        return lowest


_NAMELESS = {
    ast.Lambda: "<lambda>",
    ast.GeneratorExp: "<genexpr>",
    ast.ListComp: "<listcomp>",
    ast.SetComp: "<setcomp>",
    ast.DictComp: "<dictcomp>",
}


def _collect_defs(node: ast.AST, prefix: str, out: list[tuple[int, int, str, str]]) -> None:
    """Every function in a module's tree (comprehensions and lambdas too: each runs as a frame of
    its own) as (first line, last line, name, qualified name)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            _collect_defs(child, f"{prefix}{child.name}.", out)
            continue
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = child.name
        else:
            name = _NAMELESS.get(type(child), "")
        if not name:
            _collect_defs(child, prefix, out)
            continue
        qualname = f"{prefix}{name}"
        # where Python says a function starts (co_firstlineno): a decorated one at its first decorator
        first = min([getattr(child, "lineno", 0)] + [d.lineno for d in getattr(child, "decorator_list", ())])
        out.append((first, getattr(child, "end_lineno", None) or first, name, qualname))
        _collect_defs(child, f"{qualname}.<locals>.", out)


def _package_dir(module: ModuleType | None) -> str | None:
    file = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(file)) + os.sep if file else None


class _Stacks:
    """The program's frames of a record's stack, outermost first: without the frames of perfgate,
    pytest (``_pytest``, ``pytest``, pluggy), memray, runpy and the import system."""

    def __init__(self, memray: ModuleType, native: bool) -> None:
        dirs = (_package_dir(memray), _package_dir(sys.modules.get("pytest")))
        self._dirs = tuple(d for d in dirs if d)
        self._native = native

    def _skipped(self, file: str) -> bool:
        return _is_own(file) or file.startswith(self._dirs) or file.endswith(os.sep + "runpy.py")

    def __call__(self, record: Any) -> list[Frame]:
        stack = record.hybrid_stack_trace() if self._native else record.stack_trace()
        return [frame for frame in reversed(stack) if not self._skipped(frame[1])]


def _text(frame: Frame) -> str:
    function, file, line = frame
    source = linecache.getline(file, line).strip() if line > 0 else ""
    where = f"{file}:{line} in {function}"
    return f"{where}: {source}" if source else where


# --------------------------------------------------------------------------- reading a capture


@dataclass
class _Tree:
    function: _Function | None
    peak: int = 0
    own: int = 0
    children: dict[int, _Tree] = field(default_factory=dict)


def read_capture(
    path: str | os.PathLike[str], *, top: int = 25, times: int = 60, timeline_functions: int = 20
) -> MemoryProfile:
    """A memray capture file as a :class:`MemoryProfile` (``tracer="memray"``).

    ``top`` bounds the allocation sites and leak candidates kept (functions are all kept; the
    results file keeps the largest), ``times`` and ``timeline_functions`` the timeline. A capture
    of a whole process (``memray run``, every thread) and one of a ``Tracker`` block both work;
    an aggregated capture (``--aggregate``) has no history, so no timeline."""
    memray = import_memray()
    reader = memray.FileReader(os.fspath(path))
    try:
        stacks = _Stacks(memray, bool(reader.metadata.has_native_traces))
        names = _Names()
        records = list(reader.get_high_watermark_allocation_records(merge_threads=True))
        peak = sum(r.size for r in records)
        root = _Tree(None)
        sites: dict[tuple[str, ...], list[Any]] = {}  # stack text -> [size, count, frames]
        for record in records:
            frames = stacks(record)
            if not frames:
                continue
            functions = [names.function(f) for f in frames]
            functions[-1].own += record.size
            for function in {id(f): f for f in functions}.values():
                function.inclusive += record.size
            node = root
            for function in functions:
                node = node.children.setdefault(id(function), _Tree(function))
                node.peak += record.size
            node.own += record.size
            _add_site(sites, frames, record.size, record.n_allocations)
        ranked_sites = _ranked(sites, top)
        largest = max(sites.values(), key=lambda e: e[0], default=None)
        peak_stack = tuple(names.function(f).label for f in largest[2]) if largest else ()
        leaked: dict[tuple[str, ...], list[Any]] = {}
        retained = 0
        for record in reader.get_leaked_allocation_records(merge_threads=True):
            retained += record.size
            frames = stacks(record)
            if frames:
                _add_site(leaked, frames, record.size, record.n_allocations)
        timeline = _timeline(reader, names, stacks, times, timeline_functions)
    finally:
        reader.close()
    functions = sorted(
        (f for f in names.functions.values() if f.inclusive > 0),
        key=lambda f: (-f.inclusive, -f.own, f.name),
    )
    root.peak = peak
    return MemoryProfile(
        peak=peak,
        functions=tuple(FunctionMemory(f.name, f.location, 0, f.inclusive, f.own) for f in functions),
        peak_stack=peak_stack,
        peak_sites=ranked_sites,
        retained=retained,
        leaks=_ranked(leaked, top),
        tree=_memory_tree(root, peak),
        tracer="memray",
        timeline=timeline,
    )


def _add_site(sites: dict[tuple[str, ...], list[Any]], frames: list[Frame], size: int, count: int) -> None:
    stack = tuple(_text(f) for f in frames)
    entry = sites.setdefault(stack, [0, 0, frames])
    entry[0] += size
    entry[1] += count


def _ranked(sites: dict[tuple[str, ...], list[Any]], top: int) -> tuple[AllocationSite, ...]:
    ranked = sorted(sites.items(), key=lambda item: -item[1][0])[:top]
    return tuple(AllocationSite(size=size, count=count, stack=stack) for stack, (size, count, _) in ranked)


def _memory_tree(root: _Tree, total: int, *, max_nodes: int = 300) -> MemoryNode:
    """The call paths held at the high-water mark, bounded: paths under 0.5% of it are dropped."""
    budget = [max_nodes]

    def convert(node: _Tree, depth: int) -> MemoryNode:
        budget[0] -= 1
        children = []
        for child in sorted(node.children.values(), key=lambda n: -n.peak):
            if budget[0] <= 0 or depth >= 40 or child.peak < 0.005 * max(total, 1):
                break
            children.append(convert(child, depth + 1))
        function = node.function
        return MemoryNode(
            function=function.name if function else "<capture>",
            location=function.location if function else "",
            calls=0,
            peak=node.peak,
            self_net=node.own,
            children=tuple(children),
        )

    return convert(root, 0)


def _slices(high_water: Sequence[int], times: int) -> list[int]:
    """The slices kept: all of them when few, else the highest of each group of neighbours."""
    n = len(high_water)
    if n <= times:
        return list(range(n))
    picked = []
    for i in range(times):
        group = range(i * n // times, (i + 1) * n // times)
        picked.append(max(group, key=lambda t: high_water[t]))
    return picked


def _timeline(reader: Any, names: _Names, stacks: _Stacks, times: int, keep: int) -> MemoryTimeline | None:
    try:
        records, high_water = reader.get_temporal_high_water_mark_allocation_records(merge_threads=True)
    except NotImplementedError:  # an aggregated capture keeps no history
        return None
    # slice t ends at memray's t-th sample (the last at the end of tracking); one more column,
    # after them, is what was allocated when tracking stopped (where leaks show)
    slices = [*_slices(high_water, max(1, times - 1)), len(high_water)]
    held: dict[int, list[int]] = {}
    functions: dict[int, _Function] = {}
    for record in records:
        frames = stacks(record)
        if not frames:
            continue
        function = names.function(frames[-1])
        row = held.get(id(function))
        if row is None:
            row = held[id(function)] = [0] * len(slices)
            functions[id(function)] = function
        for interval in record.intervals:
            end = interval.deallocated_before_snapshot
            first = bisect.bisect_left(slices, interval.allocated_before_snapshot)
            last = len(slices) if end is None else bisect.bisect_left(slices, end)
            for t in range(first, last):
                row[t] += interval.n_bytes
    largest = sorted(held, key=lambda k: (-max(held[k]), functions[k].label))[:keep]
    largest = [k for k in largest if max(held[k]) > 0]
    return MemoryTimeline(
        times=_slice_times(reader, slices),
        functions=tuple(functions[k].label for k in largest),
        held=tuple(tuple(held[k]) for k in largest),
        tracer="memray",
    )


def _slice_times(reader: Any, slices: Iterable[int]) -> tuple[float, ...]:
    """Seconds from the start of tracking to the end of each slice (the last two: the end)."""
    start = reader.metadata.start_time.timestamp()
    end = reader.metadata.end_time.timestamp()
    samples = [s.time / 1000 for s in reader.get_memory_snapshots()]
    return tuple(round(max(0.0, (samples[t] if t < len(samples) else end) - start), 4) for t in slices)
