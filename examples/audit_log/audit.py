"""A small audit service: record events, read a user's recent events, count events per action."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

COLLECTION = "audit"
#: the index the recent-events query needs (equality on user, then the sort on ts; ESR)
RECENT_INDEX = [("user", 1), ("ts", -1)]


def ensure_indexes(db: Any) -> None:
    db[COLLECTION].create_index(RECENT_INDEX, name="user_1_ts_-1")


def record(db: Any, user: str, action: str, target: str, ts: datetime | None = None) -> Any:
    doc = {"user": user, "action": action, "target": target, "ts": ts or datetime.now(timezone.utc)}
    return db[COLLECTION].insert_one(doc).inserted_id


def recent(db: Any, user: str, since: datetime, until: datetime, limit: int = 20) -> list[dict[str, Any]]:
    """A user's events in [since, until), newest first."""
    cursor = db[COLLECTION].find({"user": user, "ts": {"$gte": since, "$lt": until}}).sort("ts", -1).limit(limit)
    return list(cursor)


def counts_per_action(db: Any, since: datetime) -> dict[str, int]:
    pipeline = [{"$match": {"ts": {"$gte": since}}}, {"$group": {"_id": "$action", "n": {"$sum": 1}}}]
    return {row["_id"]: row["n"] for row in db[COLLECTION].aggregate(pipeline)}


def recent_for_users_slow(db: Any, users: list[str], since: datetime, until: datetime) -> dict[str, list[Any]]:
    """The N+1 way: one query per user (kept to show what the detector reports)."""
    return {u: recent(db, u, since, until, limit=5) for u in users}


def recent_for_users(db: Any, users: list[str], since: datetime, until: datetime) -> dict[str, list[Any]]:
    """One query for all users."""
    out: dict[str, list[Any]] = {u: [] for u in users}
    query = {"user": {"$in": users}, "ts": {"$gte": since, "$lt": until}}
    for doc in db[COLLECTION].find(query).sort("ts", -1):
        out[doc["user"]].append(doc)
    return out
