"""Command capture: one record shape for every command a test issues, whether it came from
pymongo's ``CommandListener`` (real servers) or from wrapped mongomock methods.

Pure (no pytest). pymongo and mongomock are imported lazily, only when capture is installed.

Recording is *armed* only for a window (the test body); outside it every hook is a cheap
pass-through. Patching of mongomock (:mod:`pytest_perfgate._patch`, shared with the race interception) is
composable and reversible: the wrappers call whatever was there before (another tool's wrapper
included), and :meth:`MongomockCapture.uninstall` restores the previous attribute, or, when
someone wrapped on top of ours since, turns ours into a pure pass-through instead of tearing
their wrapper off.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._patch import Args, Kwargs, Patches, method_wrapper
from ..instrumented import own_calls
from . import shapes

#: a MongoDB command as pymongo would send it (BSON: anything the driver accepts)
Command = dict[str, Any]

#: commands that are connection housekeeping, not the test's queries
IGNORED_COMMANDS = frozenset(
    {
        "hello",
        "ismaster",
        "isMaster",
        "ping",
        "endSessions",
        "saslStart",
        "saslContinue",
        "authenticate",
        "getnonce",
        "killCursors",
    }
)

#: keys pymongo adds to a command that are not part of the query (dropped before ``explain``)
_SESSION_KEYS = frozenset(
    {
        "lsid",
        "$db",
        "$clusterTime",
        "txnNumber",
        "startTransaction",
        "autocommit",
        "$readPreference",
        "readConcern",
        "writeConcern",
        "apiVersion",
        "apiStrict",
        "apiDeprecationErrors",
        "$audit",
    }
)


@dataclass(frozen=True)
class QueryRecord:
    """One command a test issued."""

    command: str
    database: str
    collection: str | None
    shape: Mapping[str, Any]
    duration: float  # seconds
    docs_returned: int | None
    location: str | None  # "path:line in function" of the user code that issued it
    source: str  # "pymongo" or "mongomock"
    error: str | None = None
    #: the command document as sent (session keys removed), for ``explain``; not serialised
    body: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape_key(self) -> str:
        return shapes.shape_key(self.command, self.collection, self.shape)

    def describe(self) -> str:
        return shapes.describe(self.command, self.collection, self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "database": self.database,
            "collection": self.collection,
            "shape": dict(self.shape),
            "duration": self.duration,
            "docs_returned": self.docs_returned,
            "location": self.location,
            "source": self.source,
            **({"error": self.error} if self.error else {}),
        }


def make_record(
    command: str,
    body: Mapping[str, Any],
    *,
    database: str,
    duration: float,
    docs_returned: int | None,
    location: str | None,
    source: str,
    error: str | None = None,
) -> QueryRecord:
    """The one place a record is built, for both sources, so their shapes are the same."""
    clean = {k: v for k, v in body.items() if k not in _SESSION_KEYS}
    return QueryRecord(
        command=command,
        database=database,
        collection=shapes.collection_of(command, clean),
        shape=shapes.command_shape(command, clean),
        duration=duration,
        docs_returned=docs_returned,
        location=location,
        source=source,
        error=error,
        body=clean,
    )


# --------------------------------------------------------------------------- user code location

_LIBRARY_DIRS: tuple[str, ...] = ()


def _library_dirs() -> tuple[str, ...]:
    global _LIBRARY_DIRS
    if not _LIBRARY_DIRS:
        dirs = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # pytest_perfgate
        for name in ("pymongo", "mongomock", "bson", "gridfs", "_pytest", "pluggy"):
            module = sys.modules.get(name)
            if module is not None and getattr(module, "__file__", None):
                dirs.append(os.path.dirname(os.path.abspath(module.__file__ or "")))
        dirs.append(os.path.dirname(os.path.abspath(threading.__file__)) + os.sep + "threading.py")
        dirs.append(os.path.dirname(os.path.abspath(functools.__file__)) + os.sep + "concurrent")
        _LIBRARY_DIRS = tuple(dirs)
    return _LIBRARY_DIRS


def user_location(rootdir: str | None = None, *, depth: int = 1) -> str | None:
    """``path:line in function`` of the innermost frame outside perfgate, pymongo, mongomock."""
    libraries = _library_dirs()
    frame = sys._getframe(depth)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(libraries) and not filename.startswith("<frozen"):
            path = filename
            if rootdir and os.path.isabs(filename):
                try:
                    rel = os.path.relpath(filename, rootdir)
                    path = filename if rel.startswith("..") else rel
                except ValueError:
                    pass
            return f"{path}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


# --------------------------------------------------------------------------- the log and the hub


class QueryLog:
    """The records of one window (one test body). Thread-safe appends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[QueryRecord] = []

    def add(self, record: QueryRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> tuple[QueryRecord, ...]:
        with self._lock:
            return tuple(self._records)


class CaptureHub:
    """Where capture hooks send records: the armed :class:`QueryLog`, or nowhere."""

    def __init__(self, rootdir: str | None = None) -> None:
        self.rootdir = rootdir
        self._log: QueryLog | None = None

    @property
    def armed(self) -> bool:
        return self._log is not None

    def arm(self, log: QueryLog) -> None:
        self._log = log

    def disarm(self) -> None:
        self._log = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Capture nothing inside (perfgate's own explain/profiler reads, or set-up code)."""
        log = self._log
        self._log = None
        try:
            yield
        finally:
            self._log = log

    def emit(self, record: QueryRecord) -> None:
        log = self._log
        if log is not None:
            log.add(record)

    def location(self) -> str | None:
        return user_location(self.rootdir, depth=2)


# --------------------------------------------------------------------------- pymongo


def _docs_in_reply(command: str, reply: Mapping[str, Any]) -> int | None:
    cursor = reply.get("cursor")
    if isinstance(cursor, Mapping):
        batch = cursor.get("firstBatch", cursor.get("nextBatch"))
        return len(batch) if isinstance(batch, list) else None
    if command == "count":
        n = reply.get("n")
        return 1 if isinstance(n, int) else None
    if command == "distinct":
        values = reply.get("values")
        return len(values) if isinstance(values, list) else None
    if command == "findAndModify":
        return 0 if reply.get("value") is None else 1
    return None


def command_listener(hub: CaptureHub) -> Any:
    """A ``pymongo.monitoring.CommandListener`` feeding ``hub`` (pass it in ``event_listeners``).

    pymongo calls it synchronously in the thread that issued the command, so the user code line
    is found by walking that thread's stack at the started event.
    """
    from pymongo import monitoring

    class _Listener(monitoring.CommandListener):
        def __init__(self) -> None:
            self._pending: dict[tuple[int, Any], tuple[str, Mapping[str, Any], str, str | None]] = {}
            self._lock = threading.Lock()

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if not hub.armed or event.command_name in IGNORED_COMMANDS:
                return
            entry = (event.command_name, dict(event.command), event.database_name, hub.location())
            with self._lock:
                self._pending[(event.request_id, event.connection_id)] = entry

        def _finish(self, event: Any, reply: Mapping[str, Any] | None, error: str | None) -> None:
            with self._lock:
                entry = self._pending.pop((event.request_id, event.connection_id), None)
            if entry is None:
                return
            name, body, database, location = entry
            hub.emit(
                make_record(
                    name,
                    body,
                    database=database,
                    duration=event.duration_micros / 1e6,
                    docs_returned=_docs_in_reply(name, reply) if reply is not None else None,
                    location=location,
                    source="pymongo",
                    error=error,
                )
            )

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            self._finish(event, event.reply, None)

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            failure = event.failure
            message = failure.get("errmsg", str(failure)) if isinstance(failure, Mapping) else str(failure)
            self._finish(event, None, str(message))

    return _Listener()


# --------------------------------------------------------------------------- mongomock

Builder = Callable[[Any, Args, Kwargs, Any], Iterable[tuple[str, Command, int | None]]]


def _filter_arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str = "filter") -> Any:
    return args[0] if args else kwargs.get(name, {})


def _find_one(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
    flt = _filter_arg(args, kwargs)
    if flt is None:
        flt = {}
    if not isinstance(flt, Mapping):
        flt = {"_id": flt}
    body: Command = {"find": coll.name, "filter": flt, "limit": 1, "singleBatch": True}
    for key in ("sort", "projection", "skip"):
        if kwargs.get(key):
            body[key] = shapes.sort_spec(kwargs[key]) if key == "sort" else kwargs[key]
    yield "find", body, 0 if result is None else 1


def _insert(many: bool) -> Builder:
    def build(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
        docs: Any = args[0] if args else kwargs.get("documents" if many else "document")
        yield "insert", {"insert": coll.name, "documents": list(docs or []) if many else [docs]}, None

    return build


def _update(multi: bool, replace: bool = False) -> Builder:
    def build(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
        flt = _filter_arg(args, kwargs)
        update = args[1] if len(args) > 1 else kwargs.get("replacement" if replace else "update")
        statement = {"q": flt, "u": update, "multi": multi, "upsert": bool(kwargs.get("upsert", False))}
        yield "update", {"update": coll.name, "updates": [statement]}, None

    return build


def _delete(multi: bool) -> Builder:
    def build(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
        statement = {"q": _filter_arg(args, kwargs), "limit": 0 if multi else 1}
        yield "delete", {"delete": coll.name, "deletes": [statement]}, None

    return build


def _find_and_modify(kind: str) -> Builder:
    def build(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
        body: Command = {"findAndModify": coll.name, "query": _filter_arg(args, kwargs)}
        if kind == "delete":
            body["remove"] = True
        else:
            body["update"] = args[1] if len(args) > 1 else kwargs.get("replacement" if kind == "replace" else "update")
        if kwargs.get("sort"):
            body["sort"] = shapes.sort_spec(kwargs["sort"])
        yield "findAndModify", body, 0 if result is None else 1

    return build


def _count_documents(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
    # pymongo sends count_documents as an aggregate; record it the same way
    pipeline = [{"$match": _filter_arg(args, kwargs)}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]
    yield "aggregate", {"aggregate": coll.name, "pipeline": pipeline}, 1


def _simple(command: str, extra: Callable[[Args, Kwargs], Command] | None = None) -> Builder:
    def build(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
        body = {command: coll.name, **(extra(args, kwargs) if extra else {})}
        yield command, body, None

    return build


def _distinct(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
    key = args[0] if args else kwargs.get("key")
    flt = args[1] if len(args) > 1 else kwargs.get("filter") or {}
    docs = len(result) if isinstance(result, list) else None
    yield "distinct", {"distinct": coll.name, "key": key, "query": flt}, docs


def _aggregate(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
    pipeline = args[0] if args else kwargs.get("pipeline", [])
    docs = None
    inner = getattr(result, "_collection", None)
    if inner is not None:  # mongomock's CommandCursor iterates a list it holds: count it, keep it usable
        materialised = list(inner)
        result._collection = iter(materialised)
        docs = len(materialised)
    yield "aggregate", {"aggregate": coll.name, "pipeline": list(pipeline)}, docs


_BULK_KIND = {
    "InsertOne": "insert",
    "UpdateOne": "update",
    "UpdateMany": "update",
    "ReplaceOne": "update",
    "DeleteOne": "delete",
    "DeleteMany": "delete",
}


def _bulk_write(coll: Any, args: Args, kwargs: Kwargs, result: Any) -> Iterator[Any]:
    """pymongo sends one command per run of same-kind requests; so do we."""
    requests = list(args[0] if args else kwargs.get("requests", []))
    runs: list[tuple[str, list[Any]]] = []
    for request in requests:
        kind = _BULK_KIND.get(type(request).__name__, "update")
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(request)
        else:
            runs.append((kind, [request]))
    for kind, batch in runs:
        if kind == "insert":
            yield "insert", {"insert": coll.name, "documents": [getattr(r, "_doc", {}) for r in batch]}, None
        elif kind == "delete":
            deletes = [
                {"q": getattr(r, "_filter", {}), "limit": 0 if type(r).__name__ == "DeleteMany" else 1} for r in batch
            ]
            yield "delete", {"delete": coll.name, "deletes": deletes}, None
        else:
            updates = [
                {"q": getattr(r, "_filter", {}), "u": getattr(r, "_doc", {}), "multi": type(r).__name__ == "UpdateMany"}
                for r in batch
            ]
            yield "update", {"update": coll.name, "updates": updates}, None


#: mongomock.Collection method -> how to describe its call as the command(s) pymongo would send
COLLECTION_BUILDERS: dict[str, Builder] = {
    "find_one": _find_one,
    "insert_one": _insert(many=False),
    "insert_many": _insert(many=True),
    "update_one": _update(multi=False),
    "update_many": _update(multi=True),
    "replace_one": _update(multi=False, replace=True),
    "delete_one": _delete(multi=False),
    "delete_many": _delete(multi=True),
    "find_one_and_delete": _find_and_modify("delete"),
    "find_one_and_replace": _find_and_modify("replace"),
    "find_one_and_update": _find_and_modify("update"),
    "count_documents": _count_documents,
    "estimated_document_count": _simple("count"),
    "distinct": _distinct,
    "aggregate": _aggregate,
    "create_index": _simple("createIndexes", lambda a, k: {"indexes": [{"key": a[0] if a else k.get("keys")}]}),
    "create_indexes": _simple("createIndexes"),
    "drop_index": _simple("dropIndexes"),
    "drop_indexes": _simple("dropIndexes"),
    "list_indexes": _simple("listIndexes"),
    "index_information": _simple("listIndexes"),
    "drop": _simple("drop"),
    "bulk_write": _bulk_write,
}


class MongomockCapture:
    """Wraps mongomock's Collection methods and Cursor iteration so they report to a hub."""

    def __init__(self, hub: CaptureHub) -> None:
        self.hub = hub
        self._local = threading.local()
        self._patches = Patches()
        self._enabled = False

    # a call made inside another captured call (find_one -> find -> next) is not a new command
    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)  # type: ignore[no-any-return]

    def _outer(self) -> bool:
        return self._enabled and self.hub.armed and self._depth() == 0

    def _timed(self, call: Callable[[], Any]) -> tuple[Any, float]:
        self._local.depth = self._depth() + 1
        start = time.perf_counter()
        try:
            return call(), time.perf_counter() - start
        finally:
            self._local.depth -= 1

    def _emit_all(
        self,
        coll: Any,
        built: Iterable[tuple[str, Command, int | None]],
        elapsed: float,
        location: str | None,
        error: str | None = None,
    ) -> None:
        items = list(built)
        database = getattr(getattr(coll, "database", None), "name", "") or ""
        for name, body, docs in items:
            self.hub.emit(
                make_record(
                    name,
                    body,
                    database=database,
                    duration=elapsed / len(items),
                    docs_returned=docs,
                    location=location,
                    source="mongomock",
                    error=error,
                )
            )

    def _wrap_method(self, name: str, original: Any, builder: Builder) -> Any:
        def call(original: Callable[..., Any], coll: Any, args: Args, kwargs: Kwargs) -> Any:
            if not self._outer():
                return original(coll, *args, **kwargs)
            location = self.hub.location()
            if name == "insert_many" and args and not isinstance(args[0], list):
                args = (list(args[0]), *args[1:])  # an iterator must survive being read twice
            try:
                result, elapsed = self._timed(lambda: original(coll, *args, **kwargs))
            except Exception as exc:
                self._emit_all(coll, builder(coll, args, kwargs, None), 0.0, location, error=repr(exc))
                raise
            self._emit_all(coll, builder(coll, args, kwargs, result), elapsed, location)
            return result

        return method_wrapper(original, call)

    def _wrap_next(self, original: Any) -> Any:
        def call(original: Callable[..., Any], cursor: Any, args: Args, kwargs: Kwargs) -> Any:
            # pymongo sends ``find`` when a cursor is first iterated; mongomock computes then too
            if not self._outer() or cursor.__dict__.get("_perfgate_sent"):
                return original(cursor)
            cursor.__dict__["_perfgate_sent"] = True
            location = self.hub.location()
            exhausted = False

            def first() -> Any:
                nonlocal exhausted
                try:
                    return original(cursor)
                except StopIteration:
                    exhausted = True
                    return None

            doc, elapsed = self._timed(first)
            self._emit_all(cursor.collection, [_cursor_command(cursor)], elapsed, location)
            if exhausted:
                raise StopIteration
            return doc

        return method_wrapper(original, call)

    def install(self) -> None:
        if self._enabled:
            return
        import mongomock.collection as mc

        for name, builder in COLLECTION_BUILDERS.items():
            self._patches.wrap(mc.Collection, name, functools.partial(self._wrap_method, name, builder=builder))
        next_original = mc.Cursor.__dict__.get("__next__")
        wrapped = self._patches.wrap(mc.Cursor, "__next__", self._wrap_next)
        if wrapped is not None and mc.Cursor.__dict__.get("next") is next_original:
            self._patches.put(mc.Cursor, "next", wrapped)
        self._enabled = True

    def uninstall(self) -> None:
        """Restore what was there; a wrapper someone put on top of ours stays and calls through."""
        self._enabled = False
        self._patches.restore()


def _cursor_command(cursor: Any) -> tuple[str, Command, int | None]:
    body: Command = {"find": cursor.collection.name, "filter": getattr(cursor, "_spec", None) or {}}
    sort = shapes.sort_spec(getattr(cursor, "_sort", None))
    if sort:
        body["sort"] = sort
    if getattr(cursor, "_projection", None):
        body["projection"] = cursor._projection
    if getattr(cursor, "_limit", None):
        body["limit"] = cursor._limit
    if getattr(cursor, "_skip", 0):
        body["skip"] = cursor._skip
    docs: int | None = None
    compute = getattr(cursor, "_compute_results", None)
    if compute is not None:
        try:
            with own_calls():  # bookkeeping, not a call of the test's (a race must not see a point here)
                docs = len(compute(with_limit_and_skip=True))
        except Exception:
            docs = None
    return "find", body, docs


# --------------------------------------------------------------------------- analysis of a log


@dataclass(frozen=True)
class Repeat:
    """A query shape issued ``count`` times in one test (a likely N+1)."""

    shape: str
    description: str
    count: int
    locations: tuple[tuple[str, int], ...]  # (location, times), most frequent first

    def message(self) -> str:
        where = ", ".join(f"{loc} (x{n})" for loc, n in self.locations[:3])
        return f"same query shape issued {self.count} times (N+1?): {self.description}; issued at {where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.description,
            "count": self.count,
            "locations": [{"location": loc, "count": n} for loc, n in self.locations],
        }


#: commands that explain can describe
EXPLAINABLE = frozenset({"find", "aggregate", "count", "distinct", "update", "delete", "findAndModify"})
#: commands counted by N+1 detection: reads, writes (an insert per loop turn is the write-side N+1)
REPEATABLE = EXPLAINABLE | {"insert"}


def find_repeats(records: Iterable[QueryRecord], threshold: int) -> list[Repeat]:
    """Shapes of reads and writes issued at least ``threshold`` times in one log."""
    by_shape: dict[str, list[QueryRecord]] = {}
    for record in records:
        if record.command in REPEATABLE:
            by_shape.setdefault(record.shape_key, []).append(record)
    repeats = []
    for key, group in by_shape.items():
        if len(group) >= threshold:
            places = Counter(r.location or "<unknown>" for r in group).most_common()
            repeats.append(Repeat(key, group[0].describe(), len(group), tuple(places)))
    return sorted(repeats, key=lambda r: -r.count)
