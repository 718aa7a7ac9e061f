"""A test's evidence, typed: what the profilers and subsystems found, next to its measurements.

A results file keeps it per test as a JSON object (``"evidence": {...}``, schema unchanged).
:meth:`Evidence.from_json` turns that object into typed values once: at the results-file
boundary (after :mod:`~pytest_perfgate.model` checked its shape) and where a test's recorder
becomes a :class:`~pytest_perfgate.model.TestResult`. Typed: ``memory_profile``,
``cpu_profile``, ``memory_sites_at_end``, ``summary`` (imported statistics) and ``load``; strings
(``error``, ``crash``, ``imported_from``) are read with :meth:`Evidence.text`. Every other key
(MongoDB queries, race reports, a key a newer perfgate wrote) is kept as written, so that
:meth:`Evidence.to_json` gives back what was read.

:class:`Evidence` is also a read-only mapping of key to JSON value, for code that still reads
the JSON form (``evidence["mongo"]``); formatters read the typed attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, NamedTuple, TypeVar, overload

#: a JSON object as ``json.loads`` gives it: the boundary where typed values begin
JsonObject = Mapping[str, Any]


def _record_json(record: Any) -> dict[str, Any]:
    """A record's fields in order, nested records (``children``) as JSON too."""
    return {f.name: _to_json(getattr(record, f.name)) for f in fields(record)}


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class AllocationSite:
    size: int
    count: int
    stack: tuple[str, ...]  # "file:line in function: source", innermost last

    def to_json(self, *, frames: int | None = None) -> dict[str, Any]:
        return {"size": self.size, "count": self.count, "stack": list(self.stack[-frames:] if frames else self.stack)}

    @classmethod
    def from_json(cls, data: JsonObject) -> AllocationSite:
        return cls(data["size"], data["count"], tuple(data["stack"]))


@dataclass(frozen=True)
class FunctionMemory:
    function: str  # "module.qualname"
    location: str  # "file:line"
    calls: int
    inclusive_peak: int
    self_net: int

    def to_json(self) -> dict[str, Any]:
        return _record_json(self)

    @classmethod
    def from_json(cls, data: JsonObject) -> FunctionMemory:
        return cls(data["function"], data["location"], data["calls"], data["inclusive_peak"], data["self_net"])


@dataclass(frozen=True)
class MemoryNode:
    """One call path of the memory tree: a function reached through a chain of callers. A file
    may leave fields out (the icicle tolerates gaps); they read as empty or 0."""

    function: str = ""
    location: str = ""
    calls: int = 0
    peak: float = 0.0  # inclusive peak above the level on entry, bytes
    self_net: float = 0.0
    children: tuple[MemoryNode, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return _record_json(self)

    @classmethod
    def from_json(cls, data: JsonObject) -> MemoryNode:
        return cls(
            function=str(data.get("function") or ""),
            location=str(data.get("location") or ""),
            calls=data.get("calls") or 0,
            peak=data.get("peak") or 0,
            self_net=data.get("self_net") or 0,
            children=tuple(cls.from_json(c) for c in data.get("children") or ()),
        )


#: the tracers a memory profile comes from: memray (a native allocator hook, whole process) or
#: perfgate's own profiler on tracemalloc (Python allocations of the calling thread)
MEMORY_TRACERS = ("memray", "tracemalloc")


@dataclass(frozen=True)
class MemoryTimeline:
    """Memory over time by function: ``held[f][t]`` is the bytes that function ``functions[f]``
    held **itself** (own: allocated with it as the innermost Python frame, not yet freed) at time
    ``times[t]``. With memray each time stands for a slice of the run and the figures are those
    at that slice's high-water mark, so a spike between two samples is not missed."""

    times: tuple[float, ...]  # seconds from the start of tracking, each the end of its slice
    functions: tuple[str, ...]  # "function (file:line)", the largest (at any time) first
    held: tuple[tuple[int, ...], ...]  # held[f][t], bytes (own)
    tracer: str = "memray"

    def to_json(self) -> dict[str, Any]:
        return {
            "times": list(self.times),
            "functions": list(self.functions),
            "held": [list(row) for row in self.held],
            "tracer": self.tracer,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> MemoryTimeline:
        """Tolerant of a ragged file: rows are cut or padded (0) to the times, functions and
        rows paired up to the shorter of the two."""
        times = tuple(float(t) for t in data.get("times") or ())
        functions = tuple(str(f) for f in data.get("functions") or ())
        rows = list(data.get("held") or ())[: len(functions)]
        held = tuple(tuple(int(v) for v in (list(row) + [0] * len(times))[: len(times)]) for row in rows)
        return cls(times, functions[: len(held)], held, str(data.get("tracer") or "memray"))


@dataclass(frozen=True)
class MemoryProfile:
    """Memory by function of one re-run (``measure.memprofile``) or of a memray capture
    (``measure.memray_profile``); ``tracer`` says which (see docs/evidence.md for what
    ``inclusive_peak`` and ``self_net`` mean under each)."""

    peak: int
    functions: tuple[FunctionMemory, ...]  # by inclusive peak, largest first
    peak_stack: tuple[str, ...]  # outermost first: "function (file:line)"
    peak_sites: tuple[AllocationSite, ...]
    retained: int
    leaks: tuple[AllocationSite, ...] = ()
    tree: MemoryNode | None = None  # call paths; None when none was recorded
    tracer: str = "tracemalloc"  # "memray" | "tracemalloc"; files without the key: tracemalloc
    timeline: MemoryTimeline | None = None  # memory over time by function (memray only)

    def to_json(self, *, functions: int = 25, sites: int = 10) -> dict[str, Any]:
        """A bounded form for the results file (the timeline is bounded when it is made)."""
        out = {
            "peak": self.peak,
            "functions": [f.to_json() for f in self.functions[:functions]],
            "peak_stack": list(self.peak_stack[-30:]),
            "peak_sites": [s.to_json(frames=8) for s in self.peak_sites[:sites]],
            "retained": self.retained,
            "leaks": [s.to_json(frames=8) for s in self.leaks[:sites]],
            "tree": self.tree.to_json() if self.tree is not None else {},
            "tracer": self.tracer,
        }
        if self.timeline is not None:
            out["timeline"] = self.timeline.to_json()
        return out

    @classmethod
    def from_json(cls, data: JsonObject) -> MemoryProfile:
        tree = data.get("tree")
        timeline = data.get("timeline")
        return cls(
            peak=data["peak"],
            functions=tuple(FunctionMemory.from_json(f) for f in data["functions"]),
            peak_stack=tuple(data["peak_stack"]),
            peak_sites=tuple(AllocationSite.from_json(s) for s in data["peak_sites"]),
            retained=data["retained"],
            leaks=tuple(AllocationSite.from_json(s) for s in data["leaks"]),
            tree=MemoryNode.from_json(tree) if tree else None,
            tracer=str(data.get("tracer") or "tracemalloc"),
            timeline=MemoryTimeline.from_json(timeline) if isinstance(timeline, Mapping) else None,
        )


# --------------------------------------------------------------------------- CPU

#: the profilers behind a :class:`CpuProfile`
PYINSTRUMENT = "pyinstrument"
CPROFILE = "cProfile"
#: a profile's clock when its figures are instructions counted by Python function (callgrind)
INSTRUCTIONS_CLOCK = "instructions"
#: the rows of ``CpuProfile.top`` a profiler keeps (the functions with the most own time): a
#: function missing from a full table may have been cut off, not absent
TOP_FUNCTIONS = 25


_N = TypeVar("_N")


def heaviest_path(
    roots: Sequence[_N], *, weight: Callable[[_N], float], children: Callable[[_N], Sequence[_N]]
) -> list[_N]:
    """From the heaviest of ``roots``, the heaviest child at each level (a call tree's hot path)."""
    path: list[_N] = []
    nodes = roots
    while nodes:
        node = max(nodes, key=weight)
        path.append(node)
        nodes = children(node)
    return path


@dataclass(frozen=True)
class CallNode:
    """One call path of the CPU tree. Under pyinstrument (sampled stacks) a node is a real path:
    ``cumulative`` is the time sampled with this path on the stack, ``own`` with it on top, and
    ``calls`` is 0 (a sampling profiler does not count calls). Under the cProfile fallback the tree
    is rebuilt from caller -> callee edges merged over all callers: ``cumulative`` is the time
    through the edge from its parent, ``own`` the function's over the whole run."""

    function: str
    location: str
    calls: int
    cumulative: float  # seconds
    own: float  # seconds
    children: tuple[CallNode, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return _record_json(self)

    @classmethod
    def from_json(cls, data: JsonObject) -> CallNode:
        return cls(
            data["function"],
            data["location"],
            data["calls"],
            data["cumulative"],
            data["own"],
            tuple(cls.from_json(c) for c in data.get("children") or ()),
        )


class FunctionTime(NamedTuple):
    """One row of the CPU profile's table: a function over the whole re-run, all callers (its own
    time summed over its paths; cumulative counted once per sample or call, recursion included).
    ``calls`` is 0 under a sampling profiler."""

    function: str
    location: str
    calls: int
    own: float  # seconds
    cumulative: float

    def to_json(self) -> dict[str, Any]:
        return dict(self._asdict())

    @classmethod
    def from_json(cls, data: JsonObject) -> FunctionTime:
        return cls(data["function"], data["location"], data["calls"], data["own"], data["cumulative"])


@dataclass(frozen=True)
class CpuProfile:
    """Where the time went in a re-run of the measured call (``measure.cpuprofile``): sampled by
    pyinstrument (real call paths), or traced by cProfile when pyinstrument is not installed
    (``profiler``; ``note`` says why the fallback was used). A file written before the field
    existed was cProfile's."""

    calls: int  # how many times the measured call was run under the profiler
    total: float  # seconds, profiler overhead included
    tree: tuple[CallNode, ...]
    top: tuple[FunctionTime, ...]
    profiler: str = CPROFILE
    note: str = ""  # why this profiler (the fallback's reason), or ""
    samples: int = 0  # stacks sampled (pyinstrument); 0 under cProfile
    clock: str = "wall"  # a sample's time: "wall" (waits included) or "cpu" (this thread's CPU time)

    @property
    def sampled(self) -> bool:
        """Whether the tree holds real call paths (a sampling profiler's stacks)."""
        return self.profiler == PYINSTRUMENT

    def hot_path(self) -> list[CallNode]:
        """The chain of most expensive children from the most expensive root."""
        return heaviest_path(self.tree, weight=lambda n: n.cumulative, children=lambda n: n.children)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "calls": self.calls,
            "total": self.total,
            "tree": [n.to_json() for n in self.tree],
            "top": [t.to_json() for t in self.top],
            "profiler": self.profiler,
        }
        if self.note:
            data["note"] = self.note
        if self.samples:
            data["samples"] = self.samples
        if self.clock != "wall":
            data["clock"] = self.clock
        return data

    @classmethod
    def from_json(cls, data: JsonObject) -> CpuProfile:
        return cls(
            data["calls"],
            data["total"],
            tuple(CallNode.from_json(n) for n in data["tree"]),
            tuple(FunctionTime.from_json(t) for t in data["top"]),
            profiler=str(data.get("profiler") or CPROFILE),
            note=str(data.get("note") or ""),
            samples=int(data.get("samples") or 0),
            clock=str(data.get("clock") or "wall"),
        )


# --------------------------------------------------------------------------- imported summaries


@dataclass(frozen=True)
class ImportedSummary:
    """Summary statistics of series imported without samples (``evidence["summary"]``:
    ``{metric: {statistic: value}}``, e.g. from pytest-benchmark), kept as written."""

    figures: JsonObject

    def has(self, metric: str) -> bool:
        return isinstance(self.figures.get(metric), Mapping)

    def statistic(self, metric: str, statistic: str) -> float | None:
        """The figure, when the summary has it as a finite number."""
        figures = self.figures.get(metric)
        value = figures.get(statistic) if isinstance(figures, Mapping) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        return None

    def to_json(self) -> JsonObject:
        return self.figures

    @classmethod
    def from_json(cls, data: JsonObject) -> ImportedSummary:
        return cls(data)


# --------------------------------------------------------------------------- load tests

_LOAD_COUNTS = ("requests", "failures", "error_rate", "rps")


@dataclass(frozen=True)
class LoadFigures:
    """A load test's figures for one endpoint or in total (``load.results``)."""

    requests: int
    failures: int
    error_rate: float  # failed / all requests
    rps: float  # completed requests per second, mean of the whole seconds
    times: tuple[tuple[str, float | None], ...]  # statistic ("p50", "min", ...) -> seconds; None without requests
    errors: tuple[tuple[str, int], ...] = ()  # distinct messages, most frequent first

    def time(self, statistic: str) -> float | None:
        return dict(self.times).get(statistic)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _LOAD_COUNTS}
        out.update(self.times)
        if self.errors:
            out["errors"] = dict(self.errors)
        return out

    @classmethod
    def from_json(cls, data: JsonObject) -> LoadFigures:
        return cls(
            requests=data["requests"],
            failures=data["failures"],
            error_rate=data["error_rate"],
            rps=data["rps"],
            times=tuple((k, v) for k, v in data.items() if k not in (*_LOAD_COUNTS, "errors")),
            errors=tuple((data.get("errors") or {}).items()),
        )


@dataclass(frozen=True)
class LoadRun:
    """A load test run from a test (the ``load`` fixture): its settings, the total, each endpoint."""

    locustfile: str
    users: int
    run_time: float
    processes: int
    window: float
    total: LoadFigures
    endpoints: tuple[tuple[str, LoadFigures], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "locustfile": self.locustfile,
            "users": self.users,
            "run_time": self.run_time,
            "processes": self.processes,
            "window": self.window,
            "total": self.total.to_json(),
            "endpoints": {name: figures.to_json() for name, figures in self.endpoints},
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> LoadRun:
        return cls(
            locustfile=data["locustfile"],
            users=data["users"],
            run_time=data["run_time"],
            processes=data["processes"],
            window=data["window"],
            total=LoadFigures.from_json(data["total"]),
            endpoints=tuple((name, LoadFigures.from_json(f)) for name, f in data["endpoints"].items()),
        )


def _load_from_json(data: JsonObject) -> LoadFigures | LoadRun | JsonObject:
    """The ``load`` key holds a run (from the ``load`` fixture) or one endpoint's figures
    (``perfgate load``); anything else is kept as written."""
    try:
        if {"locustfile", "total", "endpoints"} <= data.keys():
            return LoadRun.from_json(data)
        if set(_LOAD_COUNTS) <= data.keys():
            return LoadFigures.from_json(data)
    except (KeyError, TypeError, AttributeError):  # not checked at the file boundary: another shape
        pass
    return data


# --------------------------------------------------------------------------- the evidence of a test


_Typed = MemoryProfile | CpuProfile | ImportedSummary | LoadFigures | LoadRun | JsonObject | tuple[AllocationSite, ...]


def _sites_from_json(data: Any) -> tuple[AllocationSite, ...]:
    return tuple(AllocationSite.from_json(s) for s in data)


#: the keys typed here: the JSON type each holds, and how it is read
_READERS: dict[str, tuple[type, Callable[[Any], _Typed]]] = {
    "memory_profile": (Mapping, MemoryProfile.from_json),
    "cpu_profile": (Mapping, CpuProfile.from_json),
    "summary": (Mapping, ImportedSummary.from_json),
    "memory_sites_at_end": (list, _sites_from_json),
    "load": (Mapping, _load_from_json),
}


def _keep(value: Any) -> Any:
    return value


def _to_json(value: object) -> Any:
    """A typed value (or a tuple of them) as JSON; JSON as it is."""
    to_json = getattr(value, "to_json", None)
    if to_json is not None:
        return to_json()
    return [_to_json(item) for item in value] if isinstance(value, tuple) else value


class Evidence(Mapping[str, Any]):
    """A test's evidence: typed values for the keys listed in ``_READERS``, every other key as
    written. Immutable; as a mapping it gives each key's JSON value."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, object] | None = None) -> None:
        self._items: dict[str, object] = dict(items or {})

    @classmethod
    def from_json(cls, data: JsonObject) -> Evidence:
        """The one reader of evidence JSON (a results file's, already shape-checked, or a
        recorder's). Values already typed are kept."""
        if isinstance(data, Evidence):
            return data
        items: dict[str, object] = {}
        for key, value in data.items():
            json_type, reader = _READERS.get(key, (type(None), _keep))
            # a typed value (from a profiler in this process) stays; so does JSON of another type
            items[key] = reader(value) if isinstance(value, json_type) else value
        return cls(items)

    def to_json(self) -> dict[str, Any]:
        return {key: _to_json(value) for key, value in self._items.items()}

    # -- typed access

    def _typed(self, key: str, cls: type[_T]) -> _T | None:
        value = self._items.get(key)
        return value if isinstance(value, cls) else None

    @property
    def memory_profile(self) -> MemoryProfile | None:
        return self._typed("memory_profile", MemoryProfile)

    @property
    def cpu_profile(self) -> CpuProfile | None:
        return self._typed("cpu_profile", CpuProfile)

    @property
    def summary(self) -> ImportedSummary | None:
        return self._typed("summary", ImportedSummary)

    @property
    def memory_sites_at_end(self) -> tuple[AllocationSite, ...]:
        value = self._items.get("memory_sites_at_end")
        return value if isinstance(value, tuple) else ()

    @property
    def load(self) -> LoadFigures | LoadRun | None:
        value = self._items.get("load")
        return value if isinstance(value, (LoadFigures, LoadRun)) else None

    def text(self, key: str) -> str:
        """A key holding a string (``error``, ``crash``, ``imported_from``), or ``""``."""
        value = self._items.get(key)
        return value if isinstance(value, str) else ""

    # -- the JSON view

    def __getitem__(self, key: str) -> Any:
        return _to_json(self._items[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Evidence({self._items!r})"


_T = TypeVar("_T")
_O = TypeVar("_O")


class EvidenceField(Generic[_O]):
    """A dataclass field holding :class:`Evidence` that accepts any JSON mapping when set (read
    once with :meth:`Evidence.from_json`): ``TestResult(evidence={"error": ...})`` keeps working."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = "_" + name

    @overload
    def __get__(self, obj: None, owner: Any) -> EvidenceField[_O]: ...

    @overload
    def __get__(self, obj: _O, owner: Any) -> Evidence: ...

    def __get__(self, obj: _O | None, owner: Any) -> Evidence | EvidenceField[_O]:
        if obj is None:
            return self  # the dataclass default: no evidence
        value: Evidence = getattr(obj, self._name)
        return value

    def __set__(self, obj: _O, value: JsonObject | EvidenceField[_O]) -> None:
        evidence = Evidence() if isinstance(value, EvidenceField) else Evidence.from_json(value)
        object.__setattr__(obj, self._name, evidence)
