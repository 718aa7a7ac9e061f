"""Query budgets on the audit service. Runs on any backend; the explain-based checks are
judged on a real server (--perfgate-mongo-uri, Docker or mongod) and "not checked" on mongomock."""

from __future__ import annotations

from datetime import timedelta

import audit
import pytest


def test_record_is_one_insert(mongo_db, mongo_queries):
    audit.record(mongo_db, "u1", "login", "app")
    mongo_queries.assert_count(1, command="insert", collection="audit")


@pytest.mark.perf_budget(queries=1)
def test_recent_events_sorted(seeded, t0):
    events = audit.recent(seeded, "u3", t0, t0 + timedelta(hours=2))
    assert [e["ts"] for e in events] == sorted((e["ts"] for e in events), reverse=True)
    assert {e["user"] for e in events} == {"u3"} and len(events) == 12


@pytest.mark.perf_budget(queries=1)
def test_counts_per_action(seeded, t0):
    assert audit.counts_per_action(seeded, t0) == {"login": 50, "read": 50, "write": 50, "delete": 50}


@pytest.mark.perf_budget(queries=1)
def test_recent_for_many_users_in_one_query(seeded, mongo_queries, t0):
    result = audit.recent_for_users(seeded, ["u1", "u2", "u3"], t0, t0 + timedelta(hours=4))
    assert sum(map(len, result.values())) == 60
    mongo_queries.assert_no_repeats()


def test_advisor_suggests_the_missing_index_everywhere(mongo_db, mongo_queries, t0):
    """No index: the advisor (static on mongomock, explain on a server) names the ESR index."""
    mongo_db[audit.COLLECTION].insert_one({"user": "u1", "action": "a", "ts": t0})
    audit.recent(mongo_db, "u1", t0, t0 + timedelta(days=1))
    from pytest_perfgate.mongo.advisor import advise, index_keys, pattern_of

    (query,) = mongo_queries.select(command="find")
    advice = advise(query.collection, query.describe(), pattern_of(query.command, query.shape),
                    index_keys(mongo_db[audit.COLLECTION].index_information()))
    assert advice.status == "unsupported"
    assert advice.suggestion == tuple(audit.RECENT_INDEX)


@pytest.mark.perf_budget(queries=1, collscan=False, docs_examined=20)
def test_recent_uses_its_index(seeded, t0):
    """On a real server: passes with the index; on mongomock: collscan/docs_examined are 'not checked'."""
    audit.recent(seeded, "u3", t0, t0 + timedelta(hours=2))


def test_gate_catches_a_lost_index(seeded, mongo_backend, explain_of, t0):
    """Drop the index and the same query becomes a COLLSCAN: the explain-based gate sees it."""
    seeded[audit.COLLECTION].drop_index("user_1_ts_-1")
    summary = explain_of(seeded, lambda: audit.recent(seeded, "u3", t0, t0 + timedelta(hours=2)))
    assert summary.collscans == 1, summary.plan
    assert summary.docs_examined == 200


@pytest.fixture
def explain_of(mongo_backend, mongo_queries):
    """Explain what a callable sent (real servers only; skips on mongomock with the reason)."""
    if not mongo_backend.capabilities.explain:
        pytest.skip(f"needs a real MongoDB server for explain; backend is {mongo_backend.description}")
    from pytest_perfgate.mongo.explain import explain_command, summarize

    def run(db, fn):
        before = len(mongo_queries)
        fn()
        (record,) = mongo_queries.records[before:]
        with mongo_queries.paused():
            return summarize(db.command(explain_command(record.body)))

    return run
