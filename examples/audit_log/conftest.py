from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import audit

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def t0():
    """The time of the first seeded event."""
    return T0


@pytest.fixture
def seeded(mongo_db):
    """200 events of 10 users (fixture set-up: not counted against query budgets)."""
    audit.ensure_indexes(mongo_db)
    actions = ["login", "read", "write", "delete"]
    mongo_db[audit.COLLECTION].insert_many(
        [{"user": f"u{i % 10}", "action": actions[i % 4], "target": f"doc{i}", "ts": T0 + timedelta(minutes=i)}
         for i in range(200)]
    )
    return mongo_db
