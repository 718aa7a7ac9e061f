"""The ``mongo_queries`` fixture's object: the commands a test issued, with assertion helpers."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from .capture import CaptureHub, QueryLog, QueryRecord, Repeat, find_repeats
from .shapes import mask_filter


class Queries:
    """A live view of the commands the test body has issued so far.

    ``len(q)``, ``q[0]``, iteration; ``q.count(command=, collection=, filter=)``;
    ``q.by_command()`` / ``q.by_collection()`` / ``q.by_shape()`` (Counters);
    ``q.assert_count(n, ...)``, ``q.assert_at_most(n, ...)``, ``q.assert_no_repeats(threshold)``;
    ``with q.paused(): ...`` to run set-up code in the test body without capturing it.
    """

    def __init__(self, log: QueryLog, hub: CaptureHub, backend: str, repeat_threshold: int) -> None:
        self._log = log
        self._hub = hub
        self.backend = backend
        self.repeat_threshold = repeat_threshold

    @property
    def records(self) -> tuple[QueryRecord, ...]:
        return self._log.records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[QueryRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> QueryRecord:
        return self.records[index]

    def __repr__(self) -> str:
        return f"<mongo_queries {len(self)} commands on {self.backend}: {dict(self.by_command())}>"

    def select(
        self, command: str | None = None, collection: str | None = None, filter: Mapping[str, Any] | None = None
    ) -> list[QueryRecord]:
        """Records matching every criterion given; ``filter`` is compared by shape (values masked)."""
        wanted = mask_filter(filter) if filter is not None else None
        return [
            r
            for r in self.records
            if (command is None or r.command == command)
            and (collection is None or r.collection == collection)
            and (wanted is None or r.shape.get("filter") == wanted)
        ]

    def count(
        self, command: str | None = None, collection: str | None = None, filter: Mapping[str, Any] | None = None
    ) -> int:
        return len(self.select(command, collection, filter))

    def by_command(self) -> Counter[str]:
        return Counter(r.command for r in self.records)

    def by_collection(self) -> Counter[str | None]:
        return Counter(r.collection for r in self.records)

    def by_shape(self) -> Counter[str]:
        return Counter(r.describe() for r in self.records)

    def repeats(self, threshold: int | None = None) -> list[Repeat]:
        return find_repeats(self.records, threshold or self.repeat_threshold)

    def _listing(self, records: list[QueryRecord] | None = None) -> str:
        shown = self.records if records is None else records
        lines = [f"  {r.describe()}  at {r.location}" for r in shown[:20]]
        if len(shown) > 20:
            lines.append(f"  ... {len(shown) - 20} more")
        return "\n".join(lines) or "  (none)"

    def _what(self, command: str | None, collection: str | None, filter: Mapping[str, Any] | None) -> str:
        parts = [
            f"command={command!r}" if command else "",
            f"collection={collection!r}" if collection else "",
            f"filter shape {mask_filter(filter)}" if filter is not None else "",
        ]
        return ", ".join(p for p in parts if p) or "any command"

    def assert_count(
        self,
        expected: int,
        command: str | None = None,
        collection: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> None:
        found = self.select(command, collection, filter)
        if len(found) != expected:
            raise AssertionError(
                f"expected {expected} MongoDB commands ({self._what(command, collection, filter)}), "
                f"got {len(found)}:\n{self._listing(found)}"
            )

    def assert_at_most(
        self,
        limit: int,
        command: str | None = None,
        collection: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> None:
        found = self.select(command, collection, filter)
        if len(found) > limit:
            raise AssertionError(
                f"expected at most {limit} MongoDB commands ({self._what(command, collection, filter)}), "
                f"got {len(found)}:\n{self._listing(found)}"
            )

    def assert_no_repeats(self, threshold: int | None = None) -> None:
        found = self.repeats(threshold)
        if found:
            raise AssertionError("\n".join(r.message() for r in found))

    def paused(self) -> contextlib.AbstractContextManager[None]:
        """Do not capture (nor count against ``queries``) what runs inside."""
        return self._hub.paused()
