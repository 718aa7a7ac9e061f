"""Unit tests of the pytest-free MongoDB modules: shapes, explain walker, advisor, selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_perfgate import budgets
from pytest_perfgate.errors import BudgetError, MongoBackendError
from pytest_perfgate.mongo import advisor, backends, dbs, explain, shapes
from pytest_perfgate.mongo.analysis import MONGOMOCK_REASON, analyse
from pytest_perfgate.mongo.capture import find_repeats, make_record

try:  # loaded before any pytester run (see test_mongo_plugin.py)
    import docker  # noqa: F401
    import testcontainers.core.container  # noqa: F401
except ImportError:
    pass

DATA = Path(__file__).parent / "data" / "mongo_explain"


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


# --------------------------------------------------------------------------- shapes


def test_filter_values_are_masked_and_operators_kept():
    assert shapes.mask_filter({"user": "u1", "ts": {"$gte": 5, "$lt": 9}, "action": {"$in": [1, 2, 3]}}) == {
        "user": "?",
        "ts": {"$gte": "?", "$lt": "?"},
        "action": {"$in": "?"},
    }


def test_in_lists_of_different_length_have_one_shape():
    a = shapes.command_shape("find", {"find": "c", "filter": {"x": {"$in": [1, 2]}}})
    b = shapes.command_shape("find", {"find": "c", "filter": {"x": {"$in": [1, 2, 3, 4]}}})
    assert a == b


def test_or_branches_are_masked_one_by_one():
    assert shapes.mask_filter({"$or": [{"a": 1}, {"b": {"$gt": 2}}]}) == {"$or": [{"a": "?"}, {"b": {"$gt": "?"}}]}


def test_pipeline_keeps_field_paths_and_sort_directions():
    pipeline = [
        {"$match": {"user": "u1"}},
        {"$sort": {"ts": -1}},
        {"$limit": 20},
        {"$group": {"_id": "$action", "n": {"$sum": 1}}},
    ]
    assert shapes.mask_pipeline(pipeline) == [
        {"$match": {"user": "?"}},
        {"$sort": {"ts": -1}},
        {"$limit": "?"},
        {"$group": {"_id": "$action", "n": {"$sum": 1}}},
    ]


def test_mongomock_sort_list_and_dict_are_the_same_shape():
    assert shapes.sort_spec([("ts", -1), ("user", 1)]) == {"ts": -1, "user": 1}


def test_update_shape_masks_values_but_keeps_operators():
    shape = shapes.command_shape("update", {"update": "c", "updates": [{"q": {"_id": 3}, "u": {"$set": {"a": 1}}}]})
    assert shape == {"filter": {"_id": "?"}, "update": {"$set": {"a": "?"}}, "multi": False}


def test_record_drops_session_keys_from_the_body():
    record = make_record(
        "find",
        {"find": "c", "filter": {}, "lsid": {"id": 1}, "$db": "d"},
        database="d",
        duration=0.0,
        docs_returned=0,
        location=None,
        source="pymongo",
    )
    assert "lsid" not in record.body and "$db" not in record.body and record.collection == "c"


# --------------------------------------------------------------------------- explain walker


@pytest.mark.parametrize(
    ("name", "docs", "collscans", "plan", "engine"),
    [
        ("classic_find_collscan", 1000, 1, "COLLSCAN + in-memory SORT", "classic"),
        ("classic_find_ixscan", 20, 0, "IXSCAN user_1_ts_-1", "classic"),
        ("sbe_find_collscan", 1000, 1, "COLLSCAN + in-memory SORT", "sbe"),
        ("sbe_find_ixscan", 20, 0, "IXSCAN user_1_ts_-1", "sbe"),
        ("classic_aggregate_cursor", 1000, 1, "COLLSCAN", "classic"),
        ("sbe_aggregate_pushdown", 400, 0, "IXSCAN ts_1", "sbe"),
        ("classic_aggregate_lookup", 55, 5, "COLLSCAN", "classic"),
        ("classic_count_sharded", 300, 1, "COLLSCAN", "classic"),
    ],
)
def test_explain_walker_reads_classic_and_slot_based_plans(name, docs, collscans, plan, engine):
    summary = explain.summarize(load(name))
    assert (summary.docs_examined, summary.collscans, summary.plan, summary.engine) == (docs, collscans, plan, engine)


def test_rejected_plans_do_not_count_as_collection_scans():
    # classic_find_ixscan has a rejected COLLSCAN plan
    assert explain.summarize(load("classic_find_ixscan")).collscans == 0


def test_explain_command_adds_a_cursor_to_aggregate_and_drops_session_keys():
    cmd = explain.explain_command({"aggregate": "c", "pipeline": [], "$db": "d", "lsid": {}})
    assert cmd == {"explain": {"aggregate": "c", "pipeline": [], "cursor": {}}, "verbosity": "executionStats"}


# --------------------------------------------------------------------------- advisor

RECENT = {"filter": {"user": "?", "ts": {"$gte": "?", "$lt": "?"}}, "sort": {"ts": -1}}


def test_pattern_splits_equality_sort_range():
    pattern = advisor.pattern_of("find", RECENT)
    assert pattern == advisor.QueryPattern(("user",), (("ts", -1),), ("ts",))
    assert pattern.esr_index() == (("user", 1), ("ts", -1))


def test_esr_orders_equality_then_sort_then_range():
    shape = {"filter": {"user": "?", "action": "?", "size": {"$gt": "?"}}, "sort": {"ts": -1}}
    assert advisor.pattern_of("find", shape).esr_index() == (("user", 1), ("action", 1), ("ts", -1), ("size", 1))


def test_no_index_means_unsupported_with_an_esr_suggestion():
    advice = advisor.advise("events", "q", advisor.pattern_of("find", RECENT), {"_id_": (("_id", 1),)})
    assert advice.status == "unsupported"
    assert advice.suggestion == (("user", 1), ("ts", -1))
    assert advice.message().startswith("[static estimate] q: unsupported; suggest index [('user', 1), ('ts', -1)]")


def test_esr_index_supports_the_query_and_a_reversed_one_too():
    pattern = advisor.pattern_of("find", RECENT)
    assert advisor.advise("e", "q", pattern, {"i": (("user", 1), ("ts", -1))}).status == "supported"
    assert advisor.advise("e", "q", pattern, {"i": (("user", -1), ("ts", 1))}).status == "supported"


def test_index_on_equality_only_is_partial_sorted_in_memory():
    advice = advisor.advise("e", "q", advisor.pattern_of("find", RECENT), {"user_1": (("user", 1),)})
    assert (advice.status, advice.index) == ("partial", "user_1")
    assert advice.notes == ("sorted in memory", "fields not in the index: ts")
    assert advice.suggestion == (("user", 1), ("ts", -1))


def test_or_is_not_analysed_and_empty_filter_is_a_full_scan():
    assert advisor.advise("e", "q", advisor.pattern_of("find", {"filter": {"$or": [{"a": "?"}]}}), {}).status == (
        "not analysed"
    )
    assert advisor.advise("e", "q", advisor.pattern_of("find", {"filter": {}}), {}).status == "full scan"


def test_aggregate_pattern_comes_from_leading_match_and_sort():
    shape = {"pipeline": [{"$match": {"user": "?"}}, {"$sort": {"ts": -1}}, {"$limit": "?"}]}
    assert advisor.pattern_of("aggregate", shape) == advisor.QueryPattern(("user",), (("ts", -1),), ())


def test_reconcile_says_when_explain_disagrees_with_the_static_estimate():
    static = advisor.advise("e", "q", advisor.pattern_of("find", RECENT), {"i": (("user", 1), ("ts", -1))})
    real = advisor.reconcile(static, explain.summarize(load("sbe_find_collscan")))
    assert real.basis == "explain" and real.status == "unsupported"
    assert "the static estimate said 'supported'" in real.notes
    assert real.message().startswith("[explain] q: unsupported")


# --------------------------------------------------------------------------- N+1 and analysis


def _find(user: str, line: int):
    return make_record(
        "find",
        {"find": "events", "filter": {"user": user}},
        database="d",
        duration=0.001,
        docs_returned=1,
        location=f"app.py:{line} in load",
        source="mongomock",
    )


def test_repeats_at_threshold_are_reported_with_the_issuing_line():
    records = [_find(f"u{i}", 10) for i in range(4)] + [_find("x", 11)]
    assert find_repeats(records, 6) == []
    (repeat,) = find_repeats(records, 5)
    assert repeat.count == 5
    assert repeat.locations == (("app.py:10 in load", 4), ("app.py:11 in load", 1))


def test_analysis_on_mongomock_marks_explain_metrics_not_checked():
    result = analyse(
        [_find("u", 1)], real_server=False, explain_all=True, explain=None, indexes=lambda d, c: {}, repeat_threshold=5
    )
    assert result.queries == 1 and result.docs_examined is None
    assert result.not_checked == {"docs_examined": MONGOMOCK_REASON, "collscan": MONGOMOCK_REASON}


def test_analysis_on_a_real_server_sums_explains_and_reconciles_advice():
    records = [_find("a", 1), _find("b", 2)]
    result = analyse(
        records,
        real_server=True,
        explain_all=True,
        explain=lambda r: load("classic_find_collscan"),
        indexes=lambda d, c: {},
        repeat_threshold=5,
    )
    assert (result.docs_examined, result.collscans, result.not_checked) == (2000, 2, {})
    assert result.advice[0].basis == "explain" and result.advice[0].count == 2


def test_a_failing_explain_is_not_checked_never_a_pass():
    def boom(record):
        raise RuntimeError("ns not found")

    result = analyse(
        [_find("a", 1)], real_server=True, explain_all=True, explain=boom, indexes=None, repeat_threshold=5
    )
    assert result.docs_examined is None
    assert result.not_checked["collscan"].startswith('explain of find events filter={"user": "?"} failed: ns')


def test_explain_limit_marks_budgets_not_checked():
    result = analyse(
        [_find(str(i), i) for i in range(3)],
        real_server=True,
        explain_all=True,
        explain=lambda r: load("classic_find_ixscan"),
        indexes=None,
        repeat_threshold=0,
        explain_limit=2,
    )
    assert "more than the limit of 2" in result.not_checked["docs_examined"]


# --------------------------------------------------------------------------- collscan=False budgets


def test_collscan_false_means_critical_zero():
    spec = budgets.parse_marker({"collscan": False})
    assert (spec.get("collscan").target, spec.get("collscan").critical) == (None, 0)
    assert budgets.parse_marker({"critical_collscan": False}).get("collscan").critical == 0


def test_collscan_true_is_refused_with_the_accepted_forms():
    with pytest.raises(BudgetError, match=r"collscan=True is not a level; accepted: collscan=False"):
        budgets.parse_marker({"collscan": True})


def test_false_is_still_refused_for_other_count_metrics():
    with pytest.raises(BudgetError, match="a boolean is not a quantity"):
        budgets.parse_marker({"queries": False})


# --------------------------------------------------------------------------- backend selection


def no_docker(timeout: float) -> str:
    return "no Docker engine answered (refused)"


def test_auto_prefers_uri_then_docker_then_mongod_then_mongomock():
    s = backends.MongoSettings
    assert backends.choose(s(uri="mongodb://h", uri_source="env"), docker_probe=no_docker).kind == "uri"
    assert backends.choose(s(), docker_probe=lambda t: None).kind == "docker"
    sel = backends.choose(s(), docker_probe=no_docker, which=lambda n: "/bin/true")
    assert (sel.kind, sel.mongod_path) == ("mongod", "/bin/true")
    sel = backends.choose(s(), docker_probe=no_docker, which=lambda n: None)
    assert sel.kind == "mongomock"
    assert sel.reason == "no URI set; no Docker engine answered (refused); no mongod on PATH"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (backends.MongoSettings(choice="uri"), "MongoDB backend 'uri': forced, but no URI is set"),
        (backends.MongoSettings(choice="docker"), "forced, but no Docker engine answered (refused)"),
        (backends.MongoSettings(choice="mongod"), "MongoDB backend 'mongod': forced, but no mongod on PATH"),
        (backends.MongoSettings(choice="mongod", mongod="/nonexistent/mongod"), "/nonexistent/mongod: no such file"),
    ],
)
def test_forcing_an_unavailable_backend_says_why(settings, message):
    with pytest.raises(MongoBackendError, match="hint: ") as info:
        backends.choose(settings, docker_probe=no_docker, which=lambda n: None)
    assert message in str(info.value)


def test_uri_password_is_masked():
    assert backends.mask_uri("mongodb://bob:s3cret@db:27017/x") == "mongodb://bob:***@db:27017/x"


def test_database_names_are_unique_legal_and_name_the_test():
    prefix = dbs.session_prefix("gw1")
    assert prefix.startswith("pg_gw1_") and prefix != dbs.session_prefix("gw1")
    name = dbs.database_name(prefix, 7, "tests/test_a.py::test_recent[param-1/2]" + "x" * 80)
    assert name.startswith(prefix + "7_test_recent_param_1_2") and len(name) <= 63
    assert not set(name) & set('/\\. "$*<>:|?')


# --------------------------------------------------------------------------- real-server capture (fakes)


class _Event:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_command_listener_builds_the_same_records_as_mongomock_capture():
    pytest.importorskip("pymongo")
    from pytest_perfgate.mongo.capture import CaptureHub, QueryLog, command_listener

    hub = CaptureHub()
    listener = command_listener(hub)
    log = QueryLog()
    body = {"find": "events", "filter": {"user": "u1"}, "sort": {"ts": -1}, "lsid": {"id": 1}, "$db": "d"}
    listener.started(_Event(command_name="find", command=body, database_name="d", request_id=1, connection_id=("h", 1)))
    assert log.records == ()  # not armed: nothing kept
    hub.arm(log)
    listener.started(_Event(command_name="find", command=body, database_name="d", request_id=2, connection_id=("h", 1)))
    listener.started(
        _Event(command_name="endSessions", command={}, database_name="admin", request_id=3, connection_id=("h", 1))
    )
    listener.succeeded(
        _Event(
            command_name="find",
            request_id=2,
            connection_id=("h", 1),
            duration_micros=1500,
            reply={"cursor": {"firstBatch": [{}, {}, {}], "id": 0}},
        )
    )
    listener.started(
        _Event(
            command_name="insert",
            command={"insert": "events", "documents": [{}]},
            database_name="d",
            request_id=4,
            connection_id=("h", 1),
        )
    )
    listener.failed(
        _Event(
            command_name="insert",
            request_id=4,
            connection_id=("h", 1),
            duration_micros=10,
            failure={"errmsg": "E11000 duplicate key"},
        )
    )
    find, insert = log.records
    assert (find.command, find.collection, find.docs_returned, find.duration) == ("find", "events", 3, 0.0015)
    assert dict(find.shape) == {"filter": {"user": "?"}, "sort": {"ts": -1}}
    assert find.location.startswith("tests/test_mongo_units.py:") or "test_mongo_units.py:" in find.location
    assert "lsid" not in find.body
    assert insert.error == "E11000 duplicate key" and insert.source == "pymongo"


class _Session:
    def __init__(self, in_transaction=False):
        self.has_ended = False
        self.in_transaction = in_transaction

    def end_session(self):
        self.has_ended = True


class _Client:
    def start_session(self, **kw):
        return _Session(**kw)


def test_session_tracker_ends_sessions_a_test_left_open_and_says_where():
    client = _Client()
    with dbs.SessionTracker(client) as tracker:
        closed = client.start_session()
        closed.end_session()
        left = client.start_session(in_transaction=True)
    assert "start_session" not in client.__dict__  # unwrapped again
    (message,) = tracker.end_open()
    assert left.has_ended
    assert "test_mongo_units.py:" in message and message.endswith("(a transaction was open)")


def test_profile_entries_read_the_profiler_fields():
    from pytest_perfgate.mongo.profile import ProfiledOp

    op = ProfiledOp.from_doc(
        {
            "op": "query",
            "ns": "d.events",
            "millis": 12,
            "docsExamined": 1000,
            "keysExamined": 0,
            "planSummary": "COLLSCAN",
        }
    )
    assert op.line() == "12ms query d.events docsExamined=1000 keysExamined=0 plan=COLLSCAN"


def test_start_docker_without_an_engine_is_a_backend_error(monkeypatch):
    pytest.importorskip("testcontainers")
    from pytest_perfgate.mongo.capture import CaptureHub

    with socket_closed_port() as port:
        monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
        with pytest.raises(MongoBackendError, match=r"'docker': no Docker engine answered \(.*Connection refused"):
            backends.start_docker(backends.MongoSettings(), CaptureHub())


def test_probe_without_docker_host_or_socket_does_not_import_docker(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(backends, "DOCKER_SOCKETS", ("/nonexistent/docker.sock",))
    monkeypatch.setitem(__import__("sys").modules, "docker", None)  # importing it would fail
    assert backends.probe_docker(1) == "no Docker engine: DOCKER_HOST is unset and there is no /nonexistent/docker.sock"


import contextlib  # noqa: E402
import socket  # noqa: E402


@contextlib.contextmanager
def socket_closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port
