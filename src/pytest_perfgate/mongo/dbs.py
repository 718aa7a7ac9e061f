"""Per-test databases: unique names (safe under pytest-xdist), dropping with a bounded wait, and
finding sessions a test left open. Pure: no pytest; pymongo is imported lazily."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_NAME = 63  # MongoDB database names are at most 64 bytes


def session_prefix(worker: str | None) -> str:
    """``pg_<worker>_<random>_``: every database this session creates starts with it."""
    worker_part = re.sub(r"[^A-Za-z0-9]", "", worker or "main")[:8]
    return f"pg_{worker_part}_{secrets.token_hex(3)}_"


def database_name(prefix: str, counter: int, nodeid: str) -> str:
    """A unique, legal database name that still says which test it was for."""
    test = nodeid.rsplit("::", 1)[-1]
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", test).strip("_")
    name = f"{prefix}{counter}_{slug}"
    return name[:MAX_NAME]


@dataclass
class SessionTracker:
    """Wraps ``client.start_session`` so sessions a test leaves open can be found and ended."""

    client: Any
    rootdir: str | None = None
    started: list[tuple[Any, str | None]] = field(default_factory=list)
    _previous: Any = None

    def __enter__(self) -> SessionTracker:
        from .capture import user_location

        original: Callable[..., Any] = self.client.start_session
        self._previous = self.client.__dict__.get("start_session")

        def start_session(*args: Any, **kwargs: Any) -> Any:
            session = original(*args, **kwargs)
            self.started.append((session, user_location(self.rootdir, depth=2)))
            return session

        self.client.start_session = start_session
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is None:
            self.client.__dict__.pop("start_session", None)
        else:
            self.client.start_session = self._previous

    def end_open(self) -> list[str]:
        """End (aborting any transaction) every session still open; say where each was started."""
        left = []
        for session, location in self.started:
            if not getattr(session, "has_ended", True):
                in_txn = bool(getattr(session, "in_transaction", False))
                try:
                    session.end_session()
                finally:
                    txn = " (a transaction was open)" if in_txn else ""
                    left.append(f"started at {location or '<unknown>'}{txn}")
        return left


def drop_database(client: Any, name: str, timeout: float, *, real_server: bool) -> None:
    """Drop ``name``, waiting at most ``timeout`` seconds on a real server (an open transaction
    holding a lock would otherwise block the drop for a minute)."""
    if real_server:
        import pymongo

        with pymongo.timeout(timeout):
            client.drop_database(name)
    else:
        client.drop_database(name)


def leftovers(client: Any, prefix: str) -> list[str]:
    return [n for n in client.list_database_names() if n.startswith(prefix)]
