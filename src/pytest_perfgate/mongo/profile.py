"""The database profiler (real servers): switch it on for a test, read the slowest operations."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PROFILE_COLLECTION = "system.profile"
SKIP_REASON = "mongo_profile needs a real MongoDB server: mongomock has no database profiler (backend: {backend})"


@dataclass(frozen=True)
class ProfiledOp:
    op: str
    ns: str
    millis: int
    docs_examined: int | None
    keys_examined: int | None
    plan_summary: str | None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ProfiledOp:
        def num(key: str) -> int | None:
            value = doc.get(key)
            return int(value) if isinstance(value, (int, float)) else None

        return cls(
            str(doc.get("op", "?")),
            str(doc.get("ns", "?")),
            int(doc.get("millis", 0) or 0),
            num("docsExamined"),
            num("keysExamined"),
            doc.get("planSummary"),
        )

    def line(self) -> str:
        return (
            f"{self.millis}ms {self.op} {self.ns} docsExamined={self.docs_examined} "
            f"keysExamined={self.keys_examined} plan={self.plan_summary}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "ns": self.ns,
            "millis": self.millis,
            "docsExamined": self.docs_examined,
            "keysExamined": self.keys_examined,
            "planSummary": self.plan_summary,
        }


class Profile:
    """The ``mongo_profile`` fixture's object: ``slowest(n)`` reads the profiler now."""

    def __init__(self, db: Any, pause: Callable[[], Any], slow_ms: int = 0) -> None:
        self.db = db
        self._pause = pause
        self.slow_ms = slow_ms
        self.entries: tuple[ProfiledOp, ...] = ()

    def start(self) -> None:
        self.db.command({"profile": 2, "slowms": self.slow_ms})

    def stop(self) -> None:
        self.db.command({"profile": 0})

    def slowest(self, n: int = 10) -> list[ProfiledOp]:
        with self._pause():
            cursor = (
                self.db[PROFILE_COLLECTION]
                .find({"ns": {"$ne": f"{self.db.name}.{PROFILE_COLLECTION}"}, "command.profile": {"$exists": False}})
                .sort("millis", -1)
                .limit(n)
            )
            return [ProfiledOp.from_doc(doc) for doc in cursor]

    def report(self, n: int = 10) -> str:
        lines = [f"slowest operations (database profiler, {self.db.name}):"]
        lines += [f"  {op.line()}" for op in self.entries[:n]] or ["  (none recorded)"]
        return "\n".join(lines)
