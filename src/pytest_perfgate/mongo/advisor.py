"""Index advice from query shapes.

*Static* (any backend, mongomock included): split a query shape into equality, sort and range
fields, check each existing index of the collection against them, and where none serves the
query suggest the compound index the equality-sort-range (ESR) guideline gives. It is an
estimate: the server's planner decides. On a real server :func:`reconcile` compares the estimate
with the winning plan from ``explain``, which is the truth. Pure: no pymongo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .explain import ExplainSummary

IndexKey = tuple[tuple[str, Any], ...]

_EQUALITY_OPS = frozenset({"$eq", "$in", "$elemMatch", "$all"})
_UNANALYSED = frozenset(
    {"$or", "$nor", "$expr", "$text", "$where", "$jsonSchema", "$near", "$nearSphere", "$geoWithin", "$geoIntersects"}
)


@dataclass(frozen=True)
class QueryPattern:
    """The fields a query filters on by equality, sorts on, and filters on by range."""

    equality: tuple[str, ...] = ()
    sort: tuple[tuple[str, int], ...] = ()
    ranges: tuple[str, ...] = ()
    unanalysed: str | None = None  # why the shape was not analysed ($or, $text, ...)

    @property
    def empty(self) -> bool:
        return not (self.equality or self.sort or self.ranges)

    def esr_index(self) -> IndexKey:
        keys: list[tuple[str, Any]] = [(f, 1) for f in self.equality]
        keys += [(f, d) for f, d in self.sort if f not in self.equality]
        keys += [(f, 1) for f in self.ranges if f not in self.equality and f not in dict(self.sort)]
        return tuple(keys)


def _add_filter(flt: Mapping[str, Any], eq: list[str], rng: list[str]) -> str | None:
    for field, value in flt.items():
        if field == "$and" and isinstance(value, list):
            for part in value:
                if isinstance(part, Mapping):
                    why = _add_filter(part, eq, rng)
                    if why:
                        return why
            continue
        if field in _UNANALYSED or field.startswith("$"):
            return f"{field} is not analysed statically"
        if isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
            ops = set(map(str, value))
            if ops & _UNANALYSED:
                return f"{sorted(ops & _UNANALYSED)[0]} on '{field}' is not analysed statically"
            target = eq if ops <= _EQUALITY_OPS else rng
            if field not in eq and field not in rng:
                target.append(field)
        elif field not in eq:  # a value, or an embedded document compared whole
            if field in rng:
                rng.remove(field)
            eq.append(field)
    return None


def pattern_of(command: str, shape: Mapping[str, Any]) -> QueryPattern | None:
    """The pattern of a captured command's shape; None for commands that read no documents."""
    flt: Any
    sort: Any = None
    if command in ("find", "count", "distinct", "update", "delete", "findAndModify"):
        flt, sort = shape.get("filter") or {}, shape.get("sort")
    elif command == "aggregate":
        flt, sort = {}, None
        merged: dict[str, Any] = {}
        for stage in shape.get("pipeline") or []:
            if isinstance(stage, Mapping) and "$match" in stage and isinstance(stage["$match"], Mapping):
                merged.setdefault("$and", []).append(stage["$match"])
                continue
            if isinstance(stage, Mapping) and "$sort" in stage:
                sort = stage["$sort"]
            break
        flt = merged
    else:
        return None
    if not isinstance(flt, Mapping):
        return QueryPattern(unanalysed="filter is not a document")
    eq: list[str] = []
    rng: list[str] = []
    why = _add_filter(flt, eq, rng)
    if why:
        return QueryPattern(unanalysed=why)
    sort_keys: tuple[tuple[str, int], ...] = ()
    if isinstance(sort, Mapping):
        sort_keys = tuple((str(k), -1 if v == -1 else 1) for k, v in sort.items() if v in (1, -1))
    return QueryPattern(tuple(eq), sort_keys, tuple(r for r in rng if r not in eq))


@dataclass(frozen=True)
class IndexFit:
    """How well one index serves a pattern."""

    name: str
    key: IndexKey
    bounds_scan: bool  # its first key is a filtered field: the scan is bounded
    provides_sort: bool  # no in-memory sort needed
    esr: bool  # equality, then sort, then range: the ideal order
    missing: tuple[str, ...]  # filtered fields the index does not contain


def fit(pattern: QueryPattern, name: str, key: IndexKey) -> IndexFit:
    fields = [f for f, _ in key]
    filtered = set(pattern.equality) | set(pattern.ranges)
    bounds = bool(fields) and fields[0] in filtered
    # equality prefix, then the sort keys in order (all the same way or all reversed)
    i = 0
    while i < len(fields) and fields[i] in pattern.equality:
        i += 1
    prefix_eq = set(fields[:i])
    sort = [(f, d) for f, d in pattern.sort if f not in prefix_eq]
    provides_sort = not pattern.sort
    if sort and len(fields) >= i + len(sort):
        index_dirs = [key[i + j] for j in range(len(sort))]
        same_fields = all(index_dirs[j][0] == sort[j][0] for j in range(len(sort)))
        same = all(index_dirs[j][1] == sort[j][1] for j in range(len(sort)))
        reverse = all(index_dirs[j][1] == -sort[j][1] for j in range(len(sort)) if isinstance(index_dirs[j][1], int))
        provides_sort = same_fields and (same or reverse)
    elif pattern.sort and not sort:
        provides_sort = True  # sorting on equality-matched fields only
    after = i + (len(sort) if provides_sort else 0)
    sorted_fields = {f for f, _ in pattern.sort}
    ranges = [r for r in pattern.ranges if r not in sorted_fields and r not in pattern.equality]
    ranges_follow = set(fields[after : after + len(ranges)]) >= set(ranges)
    esr = prefix_eq >= set(pattern.equality) and provides_sort and ranges_follow
    if not bounds and provides_sort and pattern.sort and fields and fields[0] == pattern.sort[0][0]:
        bounds = not filtered  # a sort-only query walks the index in order
    missing = tuple(f for f in (*pattern.equality, *pattern.ranges) if f not in fields)
    return IndexFit(name, key, bounds, provides_sort, esr, missing)


@dataclass(frozen=True)
class Advice:
    """Index advice for one query shape."""

    collection: str | None
    query: str  # readable shape
    status: str  # "supported", "partial", "unsupported", "full scan", "not analysed"
    index: str | None  # the existing index judged best (static) or used (explain)
    suggestion: IndexKey | None
    notes: tuple[str, ...]
    basis: str = "static"  # "static" (an estimate) or "explain" (what the server did)
    count: int = 1  # how many captured commands had this shape
    location: str | None = None  # "path:line in function" of the user code that issued the first

    def message(self) -> str:
        label = "static estimate" if self.basis == "static" else "explain"
        text = f"[{label}] {self.query}: {self.status}"
        if self.index:
            text += f" (index {self.index})"
        if self.suggestion:
            text += f"; suggest index {format_key(self.suggestion)}"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "query": self.query,
            "status": self.status,
            "index": self.index,
            "suggestion": [list(k) for k in self.suggestion] if self.suggestion else None,
            "notes": list(self.notes),
            "basis": self.basis,
            "count": self.count,
            "location": self.location,
        }


def format_key(key: IndexKey) -> str:
    return "[" + ", ".join(f"({f!r}, {d!r})" for f, d in key) + "]"


def advise(
    collection: str | None, query: str, pattern: QueryPattern, indexes: Mapping[str, IndexKey], count: int = 1
) -> Advice:
    """Static advice for one pattern given the collection's indexes (name -> key)."""
    if pattern.unanalysed:
        return Advice(collection, query, "not analysed", None, None, (pattern.unanalysed,), count=count)
    if pattern.empty:
        why = ("no filter or sort: reads every document by design",)
        return Advice(collection, query, "full scan", None, None, why, count=count)
    if pattern.equality == ("_id",) or "_id" in pattern.equality[:1]:
        return Advice(collection, query, "supported", "_id_", None, (), count=count)
    fits = [fit(pattern, name, key) for name, key in indexes.items()]
    ideal = next((f for f in fits if f.esr and f.bounds_scan and not f.missing), None)
    if ideal is not None:
        return Advice(collection, query, "supported", ideal.name, None, (), count=count)
    suggestion = pattern.esr_index()
    usable = sorted((f for f in fits if f.bounds_scan), key=lambda f: (-(not f.missing), -f.provides_sort, f.name))
    if usable:
        best = usable[0]
        notes = []
        if not best.provides_sort:
            notes.append("sorted in memory")
        if best.missing:
            notes.append("fields not in the index: " + ", ".join(best.missing))
        if not best.esr and best.provides_sort and not best.missing:
            notes.append("key order is not equality-sort-range")
        return Advice(collection, query, "partial", best.name, suggestion, tuple(notes), count=count)
    return Advice(
        collection, query, "unsupported", None, suggestion, ("no index serves it: COLLSCAN expected",), count=count
    )


def reconcile(advice: Advice, summary: ExplainSummary) -> Advice:
    """Replace the static estimate by what ``explain`` showed, saying where they disagreed."""
    notes = [n for n in advice.notes if n not in ("no index serves it: COLLSCAN expected", "sorted in memory")]
    if summary.collscans:
        status, index = "unsupported", None
        notes.append(f"explain: COLLSCAN, {summary.docs_examined} docs examined for {summary.n_returned} returned")
    elif summary.indexes:
        status, index = ("partial" if summary.in_memory_sort else "supported"), summary.indexes[0]
        notes.append(f"explain: {summary.plan}, {summary.keys_examined} keys / {summary.docs_examined} docs examined")
    else:
        status, index = advice.status, advice.index
        notes.append(f"explain: {summary.plan}")
    if summary.in_memory_sort:
        notes.append("sorted in memory")
    static_ok = advice.status == "supported"
    explain_ok = status == "supported"
    if advice.status not in ("not analysed", "full scan") and static_ok != explain_ok:
        notes.append(f"the static estimate said {advice.status!r}")
    suggestion = advice.suggestion if status != "supported" else None
    return replace(advice, status=status, index=index, notes=tuple(notes), basis="explain", suggestion=suggestion)


def index_keys(index_information: Mapping[str, Mapping[str, Any]]) -> dict[str, IndexKey]:
    """``Collection.index_information()`` (pymongo or mongomock) as name -> key."""
    out: dict[str, IndexKey] = {}
    for name, info in index_information.items():
        key = info.get("key") or []
        out[str(name)] = tuple((str(f), d) for f, d in key)
    return out


__all__: Sequence[str] = [
    "Advice",
    "QueryPattern",
    "advise",
    "fit",
    "format_key",
    "index_keys",
    "pattern_of",
    "reconcile",
]
