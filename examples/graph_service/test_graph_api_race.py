"""The team's races as they hit them: the requests fired in parallel through the app's test
client. The race fixture schedules the handlers' database calls, made in the server's thread
pool or on its event loop, as points of the request that caused them; the scenarios are those of
the direct tests (``scenarios.py``), run over HTTP by ``HttpGraph``."""

from __future__ import annotations

import threading

import pytest
from api import CLIENTS, HttpGraph, asgi_app
from graphstore import FixedGraph, NaiveGraph
from scenarios import EDGES, NODES, SCENARIOS
from test_graph_race import NAIVE_FAILURES

from pytest_perfgate.race import RaceFailure

pytest.importorskip("httpx")


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_naive_races_are_found_through_the_api(race, naive: NaiveGraph, name: str, client: str) -> None:
    scenario = SCENARIOS[name]
    api = HttpGraph(CLIENTS[client](naive))
    with pytest.raises(RaceFailure) as raised:
        race.run(*scenario.operations(api), setup=scenario.setup(naive), invariant=naive.check_consistency)  # type: ignore[arg-type]
    failure = raised.value.report.failure
    assert failure is not None
    assert failure.summary == NAIVE_FAILURES[name]  # as the direct calls fail
    # the handlers' database calls are the interleaving's steps, each one the request's that caused it
    trace = failure.execution.trace.format()
    assert "nodes.find_one {_id: ?}" in trace and "edges." in trace
    assert failure.replay_verified and failure.minimal


@pytest.mark.race(strategy="exhaustive", preemption_bound=2, schedules=2000)
@pytest.mark.parametrize("client", ["starlette-sync-endpoints", "httpx-asgi-transport"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_fixed_service_holds_in_every_interleaving_through_the_api(
    race, fixed: FixedGraph, name: str, client: str
) -> None:
    scenario = SCENARIOS[name]
    api = HttpGraph(CLIENTS[client](fixed))
    report = race.run(*scenario.operations(api), setup=scenario.setup(fixed), invariant=fixed.check_consistency)  # type: ignore[arg-type]
    assert report.complete and "the invariant holds in every one" in report.summary()


def test_a_database_call_the_race_does_not_see_fails_the_run(race, naive: NaiveGraph) -> None:
    """Database work handed to a plain thread (no context carried): the race cannot interleave
    that call, and says so instead of passing."""

    def delete_edge() -> None:
        worker = threading.Thread(target=naive.delete_edge, args=("e12",), name="fire-and-forget")
        worker.start()
        worker.join()

    with pytest.raises(RaceFailure) as raised:
        race.run(delete_edge, lambda: naive.delete_node("n3"), setup=lambda: naive.reset(NODES, EDGES))
    message = str(raised.value)
    assert message.startswith(
        "race: a database call escaped the scheduler: edges.find_one {_id: ?} in thread 'fire-and-forget' while "
        "T0 delete_edge ran"
    ), message
    assert "contextvars.copy_context().run" in message


def test_an_operation_whose_calls_are_never_seen_fails_the_run(race, naive: NaiveGraph) -> None:
    """A request to a server in another process (here: a subprocess) makes no scheduling point:
    the race never interleaved it, and says so."""
    import subprocess
    import sys

    def elsewhere() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    with pytest.raises(RaceFailure) as raised:
        race.run(elsewhere, lambda: naive.delete_node("n3"), setup=lambda: naive.reset(NODES, EDGES), schedules=5)
    assert str(raised.value).startswith("race: T0 elsewhere never reached a scheduling point in 5 schedules")


@pytest.mark.xfail(strict=True, raises=RaceFailure, reason="naive delete_node: 404 when delete_edge runs in parallel")
def test_parallel_delete_through_the_api(race, naive: NaiveGraph) -> None:
    """The users' words, "we are not able to delete an edge and a node if the API is fired in
    parallel", as a test through Starlette's TestClient (``ci/demo`` shows its failure)."""
    from starlette.testclient import TestClient

    client = TestClient(asgi_app(naive))

    def delete_edge() -> None:
        assert client.delete("/edges/e12").status_code in (204, 404)  # a cascade may win: 404 is fine

    def delete_node() -> None:
        assert client.delete("/nodes/n2").status_code == 204  # the node exists: it must go

    race.run(delete_edge, delete_node, setup=lambda: naive.reset(NODES, EDGES), invariant=naive.check_consistency)
