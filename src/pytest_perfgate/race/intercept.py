"""Database calls as scheduling points: wrap pymongo and mongomock methods while a race runs.

Patching (:mod:`pytest_perfgate._patch`) is reference-counted, wraps whatever is currently
installed (the query capture's wrapper included) and calls through, and is undone on exit. A
wrapper that another wrapper was since stacked on is left in place (it calls straight through
outside a race run) rather than pulling the other wrapper out. Nested intercepted calls
(mongomock's ``find_one`` calling ``find``) are one scheduling point: the outer call runs
atomically.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .._patch import Args, Kwargs, Patches, SharedPatches, method_wrapper
from ..instrumented import in_own_call
from . import scheduler
from .scheduler import current
from .trace import PointInfo, call_shape, shape_of

_MARK = "__perfgate_race__"

#: collection methods that talk to the server (find is lazy: its cursor's first fetch is the call)
COLLECTION_METHODS = (
    "insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one", "delete_many",
    "find_one", "find_one_and_delete", "find_one_and_replace", "find_one_and_update", "count_documents",
    "estimated_document_count", "distinct", "aggregate", "bulk_write", "drop", "create_index",
    "create_indexes", "drop_index",
)  # fmt: skip
SESSION_METHODS = ("start_transaction", "commit_transaction", "abort_transaction")


def _collection_point(self: Any, operation: str, args: Args, kwargs: Kwargs) -> PointInfo:
    return PointInfo(operation, getattr(self, "name", None), call_shape(operation, args, kwargs))


def _cursor_point(self: Any, operation: str, args: Args, kwargs: Kwargs) -> PointInfo:
    collection = getattr(self, "collection", None)
    spec = getattr(self, "_spec", None)
    return PointInfo(operation, getattr(collection, "name", None), shape_of(spec) if spec is not None else None)


def _session_point(self: Any, operation: str, args: Args, kwargs: Kwargs) -> PointInfo:
    return PointInfo(f"session.{operation}")


def _mongomock_cursor_fetches(self: Any) -> bool:
    """mongomock computes a cursor's results at once, and again only when they are empty."""
    return not self._results or self._factory_last_generated_results != self._factory


@dataclass(frozen=True)
class Target:
    module: str
    owner: str
    methods: tuple[str, ...]
    describe: Callable[[Any, str, Args, Kwargs], PointInfo]
    releasable: bool  # a real server round trip: may be left in flight
    label: str | None = None  # the operation shown, when not the method name
    needs_point: Callable[[Any], bool] | None = None


TARGETS: tuple[Target, ...] = (
    Target("mongomock.collection", "Collection", COLLECTION_METHODS, _collection_point, releasable=False),
    Target(
        "mongomock.collection", "Cursor", ("_compute_results",), _cursor_point, releasable=False,
        label="find", needs_point=_mongomock_cursor_fetches,
    ),
    Target("pymongo.synchronous.collection", "Collection", COLLECTION_METHODS, _collection_point, releasable=True),
    Target("pymongo.synchronous.cursor", "Cursor", ("_refresh",), _cursor_point, releasable=True, label="find"),
    Target(
        "pymongo.synchronous.command_cursor", "CommandCursor", ("_refresh",), _cursor_point, releasable=True,
        label="cursor.getMore",
    ),
    Target("pymongo.synchronous.client_session", "ClientSession", SESSION_METHODS, _session_point, releasable=True),
    # pymongo's async driver (AsyncMongoClient): awaited calls, the operation waits for its turn in
    # its coroutine, so the event loop runs other operations' coroutines meanwhile
    Target("pymongo.asynchronous.collection", "AsyncCollection", COLLECTION_METHODS, _collection_point,
           releasable=True),
    Target("pymongo.asynchronous.cursor", "AsyncCursor", ("_refresh",), _cursor_point, releasable=True, label="find"),
    Target(
        "pymongo.asynchronous.command_cursor", "AsyncCommandCursor", ("_refresh",), _cursor_point, releasable=True,
        label="cursor.getMore",
    ),
    Target("pymongo.asynchronous.client_session", "AsyncClientSession", SESSION_METHODS, _session_point,
           releasable=True),
)  # fmt: skip


def _scheduled(
    target: Target, operation: str, self: Any, args: Args, kwargs: Kwargs
) -> tuple[Any, Any, PointInfo] | None:
    """The schedule, operation and point an intercepted call waits at, or None: the call runs
    straight through (perfgate's own, nested in another, not a fetch, or no race operation: then,
    while a schedule runs, it escaped the scheduler and is recorded as such)."""
    if in_own_call():
        return None
    needs_point = target.needs_point
    active = current()
    if active is None:
        if scheduler._RUNNING and (needs_point is None or needs_point(self)):
            scheduler.escaped(target.describe(self, operation, args, kwargs))
        return None
    schedule, worker = active
    if worker.depth or (needs_point is not None and not needs_point(self)):
        return None
    return schedule, worker, target.describe(self, operation, args, kwargs)


def _wrapper(original: Callable[..., Any], operation: str, target: Target) -> Callable[..., Any]:
    def call(original: Callable[..., Any], self: Any, args: Args, kwargs: Kwargs) -> Any:
        scheduled = _scheduled(target, operation, self, args, kwargs)
        if scheduled is None:
            return original(self, *args, **kwargs)
        schedule, worker, point = scheduled
        return schedule.call(worker, point, lambda: original(self, *args, **kwargs), releasable=target.releasable)

    async def acall(original: Callable[..., Any], self: Any, args: Args, kwargs: Kwargs) -> Any:
        scheduled = _scheduled(target, operation, self, args, kwargs)
        if scheduled is None:
            return await original(self, *args, **kwargs)
        schedule, worker, point = scheduled
        return await schedule.acall(
            worker, point, lambda: original(self, *args, **kwargs), releasable=target.releasable
        )

    return method_wrapper(original, call, acall)


def _apply(patches: Patches) -> None:
    for target in TARGETS:
        try:
            owner = getattr(importlib.import_module(target.module), target.owner)
        except (ImportError, AttributeError):
            continue  # that driver is not installed (or has another layout)
        for name in target.methods:
            make = functools.partial(_wrapper, operation=target.label or name, target=target)
            patches.wrap(owner, name, make, inherited=True)


INTERCEPTOR = SharedPatches(_apply, mark=_MARK)


@contextmanager
def intercepting() -> Iterator[None]:
    INTERCEPTOR.install()
    try:
        yield
    finally:
        INTERCEPTOR.uninstall()
