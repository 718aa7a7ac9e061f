"""The MongoDB fixtures, capture, query budgets, N+1 and advisor through real pytest sessions
(pytester), on mongomock; backend selection and fault paths without a server."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time

import mongomock.collection as mc
import pymongo  # noqa: F401
import pytest

# imported here, once: pytester's in-process runs drop modules first imported inside them, and
# re-importing these (and what the perfgate plugins import lazily) costs seconds per run; for
# docker/requests a re-import also breaks them ("You can only merge into CookieJar")
import pytest_perfgate.mongo.plugin  # noqa: F401

try:
    import docker  # noqa: F401
    import testcontainers.core.container  # noqa: F401
except ImportError:  # the docker tests skip or fail with their own message
    pass

pytest_plugins = ["pytester"]

FAST = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]  # hypothesis re-imports per run: seconds


@pytest.fixture(autouse=True)
def no_real_backends(monkeypatch):
    """Where Docker or mongod exist, 'auto' must still mean mongomock in these tests unless a test
    sets up its own (fake) engine, server or mongod."""
    from pytest_perfgate.mongo import backends

    monkeypatch.delenv("PERFGATE_MONGO_URI", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(backends, "DOCKER_SOCKETS", ("/nonexistent/docker.sock",))
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if not os.path.exists(os.path.join(d, "mongod"))]
    monkeypatch.setenv("PATH", os.pathsep.join(path))


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_it=textwrap.dedent(source))
    return pytester.runpytest(*FAST, *args)


def test_mongo_db_is_fresh_unique_and_dropped(pytester):
    result = run(
        pytester,
        """
        import pytest
        NAMES = []

        @pytest.mark.parametrize("n", [1, 2])
        def test_db(mongo_db, mongo_client, n):
            assert mongo_db.list_collection_names() == []
            mongo_db.c.insert_one({"n": n})
            NAMES.append(mongo_db.name)

        def test_after(mongo_client):
            assert len(set(NAMES)) == 2
            left = [n for n in NAMES if n in mongo_client.list_database_names()]
            assert left == []
    """,
    )
    result.assert_outcomes(passed=3)


def test_backend_fixture_and_header_say_mongomock_and_what_it_cannot_do(pytester, monkeypatch):
    monkeypatch.delenv("PERFGATE_MONGO_URI", raising=False)
    result = run(
        pytester,
        """
        def test_backend(mongo_backend):
            assert mongo_backend.kind == "mongomock"
            assert not mongo_backend.capabilities.explain
    """,
        "--perfgate-mongo=mongomock",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["perfgate mongo: mongomock (forced); no transactions, no explain, no command monitoring, no profiler"]
    )


def test_capture_records_commands_with_masked_shapes_and_user_lines(pytester):
    result = run(
        pytester,
        """
        def test_capture(mongo_db, mongo_queries):
            c = mongo_db.events
            c.insert_many([{"user": "u1", "ts": i, "action": "a"} for i in range(5)])
            docs = list(c.find({"user": "u1", "ts": {"$gte": 2}}).sort("ts", -1).limit(2))
            assert len(docs) == 2
            assert c.find_one({"user": "nobody"}) is None
            assert c.count_documents({"action": "a"}) == 5
            list(c.aggregate([{"$match": {"user": "u1"}}, {"$group": {"_id": "$action", "n": {"$sum": 1}}}]))
            c.update_one({"user": "u1"}, {"$set": {"seen": True}})
            c.delete_many({"ts": {"$lt": 1}})
            unused = c.find({"never": "iterated"})
            q = list(mongo_queries)
            assert [r.command for r in q] == ["insert", "find", "find", "aggregate", "aggregate", "update", "delete"]
            find = q[1]
            assert dict(find.shape) == {"filter": {"user": "?", "ts": {"$gte": "?"}}, "sort": {"ts": -1}, "limit": "?"}
            assert find.docs_returned == 2 and find.collection == "events" and find.duration > 0
            assert find.location == "test_it.py:4 in test_capture"
            assert q[2].docs_returned == 0
            assert q[3].shape["pipeline"][0] == {"$match": {"action": "?"}}
            assert q[4].docs_returned == 1
            assert q[5].shape == {"filter": {"user": "?"}, "update": {"$set": {"seen": "?"}}, "multi": False}
            mongo_queries.assert_count(2, command="find")
            mongo_queries.assert_count(1, command="find", filter={"user": "anyone"})
            assert mongo_queries.by_collection() == {"events": 7}
    """,
    )
    result.assert_outcomes(passed=1)


def test_assertion_helpers_fail_with_the_queries_listed(pytester):
    result = run(
        pytester,
        """
        def test_helper(mongo_db, mongo_queries):
            mongo_db.c.find_one({"a": 1})
            mongo_db.c.find_one({"a": 2})
            mongo_queries.assert_at_most(1, command="find")
    """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * AssertionError: expected at most 1 MongoDB commands (command='find'), got 2:",
            'E *   find c filter={"a": "?"} limit="?"  at test_it.py:3 in test_helper',
        ]
    )


def test_queries_budget_passes_and_fails_on_the_test_body_only(pytester):
    result = run(
        pytester,
        """
        import pytest

        @pytest.fixture
        def seeded(mongo_db):
            mongo_db.c.insert_many([{"i": i} for i in range(10)])  # fixture set-up: not counted
            return mongo_db

        @pytest.mark.perf_budget(queries=2)
        def test_within(seeded):
            seeded.c.find_one({"i": 1})
            seeded.c.find_one({"i": 2})

        @pytest.mark.perf_budget(queries=(1, 3))
        def test_over(seeded):
            for i in range(4):
                seeded.c.find_one({"i": i})

        @pytest.mark.perf_budget(queries=1)
        def test_paused(seeded, mongo_queries):
            with mongo_queries.paused():
                seeded.c.insert_one({"i": 99})
            seeded.c.find_one({"i": 99})
    """,
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*perf budget exceeded: queries 4 exceeds critical 3 (target 1)",
            "*Captured perfgate mongo call*",
            "4 MongoDB commands on mongomock*",
            '    1. find c filter={"i": "?"} limit="?"  (*ms, 1 docs)  at test_it.py:16 in test_over',
        ]
    )
    result.stdout.fnmatch_lines(["test_it.py::test_over * queries  4 * 1 * 3 * FAIL*"])


def test_n_plus_one_is_warned_at_the_user_line_and_can_fail(pytester):
    source = """
        def load_users(db, ids):
            return [db.users.find_one({"_id": i}) for i in ids]

        def test_n_plus_one(mongo_db):
            load_users(mongo_db, range(6))
    """
    result = run(pytester, source, "--perfgate-mongo-repeat-threshold=5")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "  test_it.py:2: MongoQueryWarning: perfgate mongo: same query shape issued 6 times (N+1?): "
            'find users filter={"_id": "?"} limit="?"; issued at test_it.py:2 in * (x6)',
        ]
    )
    result = pytester.runpytest(*FAST, "--perfgate-mongo-repeat-threshold=7")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest(*FAST, "--perfgate-mongo-repeats=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*perfgate mongo: same query shape issued 6 times (N+1?)*"])


def test_static_advisor_suggests_the_esr_index_and_sees_it_once_created(pytester):
    result = run(
        pytester,
        """
        import pytest

        def recent(db):
            return list(db.events.find({"user": "u1", "ts": {"$gte": 0}}).sort("ts", -1).limit(5))

        @pytest.mark.perf_budget(queries=0)
        def test_without_index(mongo_db):
            recent(mongo_db)

        @pytest.mark.perf_budget(queries=0)
        def test_with_index(mongo_db, mongo_queries):
            with mongo_queries.paused():
                mongo_db.events.create_index([("user", 1), ("ts", -1)])
            recent(mongo_db)
    """,
        "--perfgate-save=out.json",
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_without_index*",
            "index advice:",
            '  [static estimate] find events filter={"user": "?", "ts": {"$gte": "?"}} sort={"ts": -1} limit="?": '
            "unsupported; suggest index [('user', 1), ('ts', -1)]; no index serves it: COLLSCAN expected",
            "*test_with_index*",
            "index advice:",
            "  ?static estimate? find events * supported (index user_1_ts_-1)",
        ]
    )
    import json

    saved = json.loads((pytester.path / "out.json").read_text())
    evidence = {t["nodeid"].split("::")[-1]: t["evidence"]["mongo"] for t in saved["tests"]}
    advice = evidence["test_without_index"]["index_advice"][0]
    assert advice["suggestion"] == [["user", 1], ["ts", -1]] and advice["basis"] == "static"
    assert evidence["test_with_index"]["index_advice"][0]["status"] == "supported"


def test_explain_budgets_are_recorded_not_checked_on_mongomock(pytester):
    """The recorder carries the reason; the verdict needs session.finish_test to pass it through."""
    result = run(
        pytester,
        """
        import pytest
        from pytest_perfgate import _state

        @pytest.fixture
        def check(request):
            yield
            recorder = request.node.stash[_state.RECORDER]
            assert recorder.not_checked["collscan"].startswith("on mongomock, which has no explain")
            assert "collscan" not in recorder.series and "docs_examined" not in recorder.series

        @pytest.mark.perf_budget(collscan=False, docs_examined=100)
        def test_budgeted(check, mongo_db):
            mongo_db.c.find_one({"a": 1})
    """,
    )
    # until session.finish_test passes recorder.not_checked to budgets.evaluate, the budget cannot
    # be judged and the test fails loudly ("recorded no such metric"), never a silent pass
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()  # the recorder check in teardown held
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 1
    assert "passed" not in outcomes or "not checked" in result.stdout.str()


def test_explain_budgets_show_as_not_checked_never_pass(pytester):
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.perf_budget(queries=5, collscan=False)
        def test_budgeted(mongo_db):
            mongo_db.c.find_one({"a": 1})
    """,
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*collscan * not checked  on mongomock, which has no explain*"])
    assert "1 not checked" in result.stdout.str()


def test_profile_fixture_skips_on_mongomock_with_the_reason(pytester):
    result = run(
        pytester,
        """
        def test_profiled(mongo_profile):
            raise AssertionError("must not run on mongomock")
    """,
        "-rs",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * mongo_profile needs a real MongoDB server: mongomock has no database profiler "
            "(backend: mongomock * (embedded))"
        ]
    )


def test_mongomock_patches_are_removed_after_the_session(pytester):
    before = {n: mc.Collection.__dict__[n] for n in ("find_one", "insert_one", "aggregate")}
    next_before = mc.Cursor.__dict__["__next__"]
    result = run(
        pytester,
        """
        import mongomock.collection as mc
        def test_patched(mongo_db):
            assert hasattr(mc.Collection.find_one, "__wrapped__")
    """,
    )
    result.assert_outcomes(passed=1)
    assert {n: mc.Collection.__dict__[n] for n in before} == before
    assert mc.Cursor.__dict__["__next__"] is next_before


def test_a_wrapper_installed_on_top_of_ours_keeps_working_after_we_uninstall():
    import mongomock

    from pytest_perfgate.mongo.capture import CaptureHub, MongomockCapture, QueryLog

    original = mc.Collection.__dict__["insert_one"]
    hub = CaptureHub()
    capture = MongomockCapture(hub)
    capture.install()
    ours = mc.Collection.__dict__["insert_one"]
    calls = []

    def theirs(self, *a, **k):
        calls.append(1)
        return ours(self, *a, **k)

    mc.Collection.insert_one = theirs
    try:
        log = QueryLog()
        hub.arm(log)
        coll = mongomock.MongoClient().db.c
        coll.insert_one({"a": 1})
        assert len(log.records) == 1 and calls == [1]
        capture.uninstall()  # someone else's wrapper is on top: ours becomes a pass-through
        assert mc.Collection.__dict__["insert_one"] is theirs
        coll.insert_one({"a": 2})
        assert len(log.records) == 1 and calls == [1, 1]
    finally:
        mc.Collection.insert_one = original
        capture.uninstall()


def test_capture_wrapper_is_inner_to_the_core_budget_wrapper(pytester):
    """trylast: our pytest_runtest_call wrapper runs inside the core's, so the series exists
    when the core judges budgets (if it were outer, 'queries' would be 'recorded no such metric')."""
    pytester.makeconftest("""
        import pytest
        ORDER = []
        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_call(item):
            result = yield
            return result
    """)
    result = run(
        pytester,
        """
        import pytest
        @pytest.mark.perf_budget(queries=1)
        def test_one(mongo_db):
            mongo_db.c.find_one({})
    """,
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_it.py::test_one  queries  1 * pass*"])


# --------------------------------------------------------------------------- backends and faults


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_forced_docker_without_an_engine_is_a_usage_error(pytester, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{closed_port()}")
    pytester.makepyfile(test_it="def test_x(): pass")
    result = pytester.runpytest(*FAST, "--perfgate-mongo=docker", "--perfgate-mongo-timeout=1s")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: perfgate: MongoDB backend 'docker': forced, but no Docker engine answered (*",
            "hint: start Docker (or set DOCKER_HOST), or choose --perfgate-mongo=uri|mongod|mongomock",
        ]
    )


def test_bad_backend_name_is_a_usage_error(pytester):
    pytester.makepyfile(test_it="def test_x(): pass")
    result = pytester.runpytest(*FAST, "--perfgate-mongo=sqlite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'sqlite' is not a backend; accepted: auto, uri, docker, mongod, mongomock*"])


def test_forced_uri_without_a_uri_is_a_usage_error(pytester, monkeypatch):
    monkeypatch.delenv("PERFGATE_MONGO_URI", raising=False)
    pytester.makepyfile(test_it="def test_x(): pass")
    result = pytester.runpytest(*FAST, "--perfgate-mongo=uri")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: perfgate: MongoDB backend 'uri': forced, but no URI is set"])


def test_unreachable_uri_fails_fast_with_a_hint_once_per_session(pytester, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("PERFGATE_MONGO_URI", f"mongodb://user:pw@127.0.0.1:{port}/")
    start = time.monotonic()
    result = run(
        pytester,
        """
        def test_a(mongo_db):
            pass
        def test_b(mongo_client):
            pass
        def test_plain():
            pass
    """,
        "--perfgate-mongo-timeout=0.5s",
    )
    elapsed = time.monotonic() - start
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "perfgate mongo: uri (URI from PERFGATE_MONGO_URI); *",
            f"perfgate: MongoDB backend 'uri': cannot reach mongodb://user:***@127.0.0.1:{port}/ within 0.5s: "
            f"127.0.0.1:{port}: ?Errno 111? Connection refused",
            "hint: is the server running and reachable from here? In GitLab CI add `services: ?mongo:7?` and use "
            "mongodb://mongo:27017; *",
        ]
    )
    assert "pw@" not in result.stdout.str()
    assert elapsed < 8, f"two tests on an unreachable server took {elapsed:.1f}s: the failure must be cached"


FAKE_MONGOD = """#!{python}
import os, sys, time
args = sys.argv[1:]
log = args[args.index("--logpath") + 1]
with open(os.path.join(os.environ["FAKE_DIR"], "pid"), "w") as fh:
    fh.write(str(os.getpid()))
with open(log, "w") as fh:
    fh.write('{{"t":"start","msg":"MongoDB starting","port":%s}}\\n' % args[args.index("--port") + 1])
    fh.write('{{"msg":"{message}"}}\\n')
if {exit_code} >= 0:
    sys.exit({exit_code})
time.sleep(60)
"""


def fake_mongod(tmp_path, message: str, exit_code: int) -> str:
    path = tmp_path / "mongod"
    path.write_text(FAKE_MONGOD.format(python=sys.executable, message=message, exit_code=exit_code))
    path.chmod(0o755)
    return str(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes only once reaped; mongod is our child, so check state
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:  # reaped between the two looks
        return False


def test_mongod_that_exits_at_start_shows_its_log_tail(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    exe = fake_mongod(tmp_path, "Address already in use: bind failed", 48)
    result = run(
        pytester,
        """
        def test_a(mongo_db):
            pass
    """,
        "--perfgate-mongo=mongod",
        f"--perfgate-mongod={exe}",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*perfgate: MongoDB backend 'mongod': mongod exited with code 48 during start-up; last lines of its log:",
            '*  | {"t":"start","msg":"MongoDB starting","port":*}',
            '*  | {"msg":"Address already in use: bind failed"}',
            "*hint: the log above says why*",
        ]
    )
    assert not alive(int((tmp_path / "pid").read_text()))
    assert not [p for p in os.listdir(tmp_path) if p.startswith("perfgate-mongod-")]


def test_mongod_that_never_answers_is_stopped_after_the_start_timeout(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    exe = fake_mongod(tmp_path, "waiting forever", -1)
    start = time.monotonic()
    result = run(
        pytester,
        """
        def test_a(mongo_db):
            pass
    """,
        "--perfgate-mongo=mongod",
        f"--perfgate-mongod={exe}",
        "--perfgate-mongo-start-timeout=1.5s",
    )
    assert time.monotonic() - start < 15
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*perfgate: MongoDB backend 'mongod': not ready within 1.5s (port *); last lines of its log:",
            '*  | {"msg":"waiting forever"}',
        ]
    )
    assert not alive(int((tmp_path / "pid").read_text()))
    assert not [p for p in os.listdir(tmp_path) if p.startswith("perfgate-mongod-")]


def test_forced_mongod_with_a_missing_path_is_a_usage_error(pytester):
    pytester.makepyfile(test_it="def test_x(): pass")
    result = pytester.runpytest(*FAST, "--perfgate-mongo=mongod", "--perfgate-mongod=/nonexistent/mongod")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: perfgate: MongoDB backend 'mongod': forced, but --perfgate-mongod=/nonexistent/mongod: no such file"]
    )


def test_real_server_checks_skip_on_mongomock_never_pass(pytester):
    """A test needing a real server says so through a skip with the backend's own reason."""
    result = run(
        pytester,
        """
        import pytest
        def test_needs_explain(mongo_backend):
            if not mongo_backend.capabilities.explain:
                pytest.skip(f"needs explain; backend is {mongo_backend.description}")
    """,
        "-rs",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * needs explain; backend is mongomock * (embedded)"])


@pytest.fixture
def fake_engine(monkeypatch):
    from fake_docker_engine import FakeDockerEngine

    with FakeDockerEngine() as engine:
        monkeypatch.setenv("DOCKER_HOST", engine.url)
        monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
        monkeypatch.delenv("PERFGATE_MONGO_URI", raising=False)
        yield engine


def test_docker_present_but_image_missing_is_a_clear_error(pytester, fake_engine):
    result = run(
        pytester,
        """
        def test_a(mongo_db):
            pass
        def test_b(mongo_db):
            pass
    """,
        "--perfgate-mongo-image=mongo:does-not-exist",
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "perfgate mongo: docker (no URI set; Docker engine answered; image mongo:does-not-exist); *",
            "perfgate: MongoDB backend 'docker': could not start image 'mongo:does-not-exist': 404 Client Error*"
            "manifest unknown*",
            "hint: check the image name and tag (--perfgate-mongo-image), or pull it first: "
            "docker pull mongo:does-not-exist",
        ]
    )
    pulls = [r for r in fake_engine.requests if r[0] == "POST" and "/images/create" in r[1]]
    assert len(pulls) == 1, "a failed start must be remembered, not retried for every test"
    assert not [r for r in fake_engine.requests if "/containers/create" in r[1]]


# --------------------------------------------------------------------------- more capture paths


def test_budgeted_test_without_fixtures_is_captured_too(pytester):
    result = run(
        pytester,
        """
        import mongomock, pytest

        @pytest.mark.perf_budget(queries=1)
        def test_app_client():
            client = mongomock.MongoClient()   # the application's own client
            client.app.users.find_one({"name": "x"})
            client.app.users.find_one({"name": "y"})
    """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*perf budget exceeded: queries 2 exceeds critical 1"])


def test_databases_are_unique_under_xdist(pytester, monkeypatch):
    pytest.importorskip("xdist")
    monkeypatch.setenv("NAMES_DIR", str(pytester.path))
    result = run(
        pytester,
        """
        import os, pathlib, pytest

        @pytest.mark.parametrize("n", range(6))
        def test_db(mongo_db, n):
            assert mongo_db.list_collection_names() == []
            mongo_db.c.insert_one({"n": n})
            pathlib.Path(os.environ["NAMES_DIR"], "db-" + mongo_db.name).touch()
    """,
        "-n",
        "2",
    )
    result.assert_outcomes(passed=6)
    names = [p.name[3:] for p in pytester.path.glob("db-*")]
    assert len(names) == 6
    assert {n.split("_")[1] for n in names} == {"gw0", "gw1"}


# --------------------------------------------------------------------------- the real-server paths, on a
# wire-protocol fake (tests/fake_mongo_server.py): real pymongo client, CommandListener, explain,
# listIndexes, profiler and dropDatabase commands. It is not MongoDB: plans are canned by rule.


@pytest.fixture
def fake_server(monkeypatch):
    from fake_mongo_server import FakeMongoServer

    with FakeMongoServer() as server:
        monkeypatch.setenv("PERFGATE_MONGO_URI", server.uri)
        yield server


def test_uri_backend_captures_with_the_command_listener_and_judges_explain_budgets(pytester, fake_server):
    result = run(
        pytester,
        """
        import pytest

        @pytest.fixture
        def events(mongo_db):
            mongo_db.events.insert_many([{"user": f"u{i % 3}", "n": i} for i in range(9)])
            return mongo_db.events

        @pytest.mark.perf_budget(queries=1, collscan=False)
        def test_without_index(events):
            assert len(list(events.find({"user": "u1"}))) == 3

        @pytest.mark.perf_budget(queries=1, collscan=False, docs_examined=3)
        def test_with_index(events, mongo_queries):
            with mongo_queries.paused():
                events.create_index([("user", 1)])
            assert len(list(events.find({"user": "u1"}))) == 3
            (find,) = mongo_queries
            assert (find.source, find.docs_returned, dict(find.shape)) == ("pymongo", 3, {"filter": {"user": "?"}})
            assert find.location == "test_it.py:16 in test_with_index"

        def test_backend(mongo_backend):
            assert mongo_backend.kind == "uri" and mongo_backend.capabilities.explain
            assert not mongo_backend.capabilities.transactions  # standalone
    """,
        "--perfgate-save=out.json",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "perfgate mongo: uri (URI from PERFGATE_MONGO_URI); explain, command monitoring, profiler; *",
            "*perf budget exceeded: collscan 1 exceeds critical 0",
            "*Captured perfgate mongo call*",
            "1 MongoDB command on MongoDB 7.0.99-fake at mongodb://127.0.0.1:*",
            "explain (executionStats):",
            '  find events filter={"user": "?"}: COLLSCAN; 9 docs / 0 keys examined, 3 returned (sbe)',
            "index advice:",
            '  ?explain? find events filter={"user": "?"}: unsupported; suggest index ?(\'user\', 1)?; '
            "explain: COLLSCAN, 9 docs examined for 3 returned",
        ]
    )
    result.stdout.fnmatch_lines(["test_it.py::test_with_index * docs_examined  3 * pass*"])
    assert [c for c in fake_server.store.commands if "dropDatabase" in c], "per-test databases are dropped"
    assert not fake_server.store.dbs, f"stray databases: {list(fake_server.store.dbs)}"


def test_profile_fixture_on_a_server_attaches_the_slowest_operations(pytester, fake_server):
    result = run(
        pytester,
        """
        def test_profiled(mongo_profile, mongo_db):
            mongo_db.events.insert_one({"a": 1})
            assert False, "show the report"
    """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*Captured perfgate mongo profile teardown*",
            "slowest operations (database profiler, pg_*):",
            "  7ms query pg_*.events docsExamined=3 keysExamined=0 plan=COLLSCAN",
        ]
    )
    profiles = [c for c in fake_server.store.commands if "profile" in c]
    assert [c["profile"] for c in profiles] == [2, 0], "the profiler is switched on, then off again"


def test_a_session_left_open_is_ended_and_reported(pytester, fake_server):
    result = run(
        pytester,
        """
        def test_leaky(mongo_db, mongo_client):
            session = mongo_client.start_session()
            mongo_db.events.insert_one({"a": 1}, session=session)
    """,
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*perfgate mongo: the test left 1 MongoDB session(s) open (started at test_it.py:2 in test_leaky); "
            "perfgate ended them*",
        ]
    )
    assert not fake_server.store.dbs


def test_a_replica_set_server_reports_transactions():
    from fake_mongo_server import FakeMongoServer
    from pytest_perfgate.mongo import backends
    from pytest_perfgate.mongo.capture import CaptureHub

    with FakeMongoServer(set_name="rs0") as server:
        backend = backends.connect("uri", server.uri, CaptureHub(), 2.0)
        try:
            assert backend.capabilities.transactions
            assert backend.description.endswith("(replica set rs0)")
        finally:
            assert backend.close() == []


def test_local_mongod_backend_starts_serves_and_stops(pytester, tmp_path, monkeypatch):
    """The whole mongod lifecycle, with a fake mongod that speaks the wire protocol."""
    exe = tmp_path / "mongod"
    exe.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n"
        "from fake_mongo_server import main\nmain()\n"
    )
    exe.chmod(0o755)
    monkeypatch.setenv("FAKE_PIDFILE", str(tmp_path / "pid"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")  # found on PATH by auto
    monkeypatch.delenv("PERFGATE_MONGO_URI", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.perf_budget(queries=2)
        def test_db(mongo_db, mongo_backend):
            assert mongo_backend.kind == "mongod" and mongo_backend.capabilities.transactions
            assert "(replica set rs0)" in mongo_backend.description
            mongo_db.c.insert_one({"a": 1})
            assert mongo_db.c.find_one({"a": 1})["a"] == 1
    """,
        "--perfgate-mongo-replset",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"perfgate mongo: mongod (no URI set; no Docker engine*; found {exe}); *"])
    pid = int((tmp_path / "pid").read_text())
    assert not alive(pid), "mongod must be stopped at session end"
    assert not [p for p in os.listdir(tmp_path) if p.startswith("perfgate-mongod-")], "its temp dir is removed"


def test_advice_is_static_unless_explain_is_budgeted_or_asked_for(pytester, fake_server):
    source = """
        def test_read(mongo_db, mongo_client):
            mongo_client[mongo_db.name].events.find_one({"user": "u1"})
            assert False, "show the report"
    """
    result = run(pytester, source)
    result.stdout.fnmatch_lines(['  ?static estimate? find events filter={"user": "?"} limit="?": unsupported*'])
    assert not [c for c in fake_server.store.commands if "explain" in c], "no explain round trips by default"
    result = pytester.runpytest(*FAST, "--perfgate-mongo-explain=always")
    result.stdout.fnmatch_lines(['  ?explain? find events filter={"user": "?"} limit="?": unsupported*'])
    assert len([c for c in fake_server.store.commands if "explain" in c]) == 1


def test_tests_using_only_the_client_are_captured(pytester):
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.perf_budget(queries=0)
        def test_client_only(mongo_client):
            mongo_client.somedb.c.find_one({})
    """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*perf budget exceeded: queries 1 exceeds critical 0"])


def test_ini_options_are_read_and_a_bad_one_names_its_key(pytester):
    pytester.makeini("[pytest]\nperfgate_mongo = mongomock\nperfgate_mongo_repeat_threshold = 2\n")
    result = run(
        pytester,
        """
        def test_twice(mongo_db):
            mongo_db.c.find_one({"a": 1})
            mongo_db.c.find_one({"a": 2})
    """,
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["perfgate mongo: mongomock (forced); *", "*same query shape issued 2 times*"])
    pytester.makeini("[pytest]\nperfgate_mongo_timeout = soon\n")
    result = pytester.runpytest(*FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: perfgate: ini option perfgate_mongo_timeout: 'soon' is not a valid time*"])


def test_race_schedules_are_captured_but_not_reported_as_n_plus_one(pytester):
    pytest.importorskip("pytest_perfgate.race.plugin")
    result = run(
        pytester,
        """
        def test_race(race, mongo_db, mongo_queries):
            mongo_db.c.insert_one({"_id": 1, "n": 0})
            before = len(mongo_queries)

            def inc():
                doc = mongo_db.c.find_one({"_id": 1})
                mongo_db.c.update_one({"_id": 1}, {"$set": {"n": doc["n"] + 1}})

            race.run(inc, inc, schedules=3, invariant=lambda: True)
            assert len(mongo_queries) - before == 12   # 3 schedules x 2 operations x 2 commands
            assert mongo_queries.by_command() == {"insert": 1, "find": 6, "update": 6}
    """,
        "--perfgate-mongo-repeat-threshold=2",
    )
    result.assert_outcomes(passed=1)
    assert "MongoQueryWarning" not in result.stdout.str()


# --------------------------------------------------------------------------- the backend line: only where MongoDB is used

MONGOMOCK_LINE = (
    "perfgate mongo: mongomock (no URI set; no Docker engine: DOCKER_HOST is unset and there is no "
    "/nonexistent/docker.sock; no mongod on PATH); no transactions, no explain, no command monitoring, no profiler"
)


def test_a_session_that_never_uses_mongodb_says_nothing_about_it(pytester):
    result = run(
        pytester,
        """
        def test_plain():
            pass
    """,
    )
    result.assert_outcomes(passed=1)
    assert "perfgate mongo" not in result.stdout.str() and "MongoDB" not in result.stdout.str()
    xdist = pytester.runpytest(*FAST, "-n", "2")
    xdist.assert_outcomes(passed=1)
    assert "perfgate mongo" not in xdist.stdout.str() and "MongoDB" not in xdist.stdout.str()


def test_the_line_follows_collection_when_a_selected_test_uses_a_mongodb_fixture(pytester):
    result = run(
        pytester,
        """
        def test_db(mongo_db):
            mongo_db.c.insert_one({"a": 1})

        def test_plain():
            pass
    """,
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["collected 2 items", MONGOMOCK_LINE])
    assert result.stdout.str().count("perfgate mongo:") == 1
    deselected = pytester.runpytest(*FAST, "-k", "plain")
    deselected.assert_outcomes(passed=1)
    assert "perfgate mongo:" not in deselected.stdout.str()


def test_under_xdist_the_workers_line_is_in_the_summary(pytester):
    result = run(
        pytester,
        """
        def test_db(mongo_db):
            pass
    """,
        "-n",
        "2",
    )
    result.assert_outcomes(passed=1)
    # the workers are other processes: this test's stand-in for a missing Docker socket is not theirs
    result.stdout.fnmatch_lines(
        [
            "perfgate mongo: mongomock (no URI set; no Docker engine*); no transactions, no "
            "explain, no command monitoring, no profiler",
            "*1 passed*",
        ]
    )
    assert result.stdout.str().count("perfgate mongo:") == 1


def test_a_mongodb_option_puts_the_line_in_the_header_even_without_mongodb_tests(pytester):
    result = run(
        pytester,
        """
        def test_plain():
            pass
    """,
        "--perfgate-mongo-timeout=2s",
    )
    result.assert_outcomes(passed=1)
    lines = result.stdout.lines
    header = next(i for i, line in enumerate(lines) if line.startswith("perfgate mongo: mongomock (no URI set"))
    assert header < next(i for i, line in enumerate(lines) if line.startswith("collected"))
