"""The team's races, found by the race fixture in the naive version and absent from the fixed one."""

from __future__ import annotations

import pytest
from graphstore import EDGE_ERRORS, FixedGraph, GraphModel, NaiveGraph
from pymongo.errors import AutoReconnect
from scenarios import EDGES, NODES, SCENARIOS

from pytest_perfgate.race import RaceFailure, auto_reconnect

#: what each naive race looks like when found (the failure's one-line summary)
NAIVE_FAILURES = {
    "edge_vs_node_delete": "T1 delete_node raised EdgeNotFound: e12",
    "add_edge_vs_node_delete": "invariant violated: AssertionError: edge e23 is dangling: node n2 does not exist",
    "three_way_leaf_delete": "invariant violated: AssertionError: edge e23 is dangling: node n2 does not exist",
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_naive_version_races_are_found(race, naive: NaiveGraph, name: str) -> None:
    scenario = SCENARIOS[name]
    with pytest.raises(RaceFailure) as raised:
        race.run(*scenario.operations(naive), setup=scenario.setup(naive), invariant=naive.check_consistency)
    failure = raised.value.report.failure
    assert failure is not None
    assert failure.summary == NAIVE_FAILURES[name]
    assert failure.replay_verified and failure.minimal


@pytest.mark.race(strategy="exhaustive", preemption_bound=2, schedules=2000)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fixed_version_holds_in_every_interleaving(race, fixed: FixedGraph, name: str) -> None:
    scenario = SCENARIOS[name]
    report = race.run(*scenario.operations(fixed), setup=scenario.setup(fixed), invariant=fixed.check_consistency)
    assert report.complete, report.summary()
    assert "the invariant holds in every one" in report.summary()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fixed_version_survives_random_exploration(race, fixed: FixedGraph, name: str) -> None:
    scenario = SCENARIOS[name]
    report = race.run(
        *scenario.operations(fixed), setup=scenario.setup(fixed), invariant=fixed.check_consistency, schedules=300
    )
    assert report.failure is None and report.schedules == 300


@pytest.mark.xfail(strict=True, raises=RaceFailure, reason="naive delete_node fails when delete_edge runs in parallel")
def test_parallel_delete(race, naive: NaiveGraph) -> None:
    """The issue's example, as written by a user."""
    race.run(
        # delete_edge may lose to the cascade: a 404 is a fine answer for it (not for delete_node)
        race.op("delete_edge", naive.delete_edge, "e12", expected=EDGE_ERRORS),
        lambda: naive.delete_node("n2"),
        setup=lambda: naive.reset(NODES, EDGES),
        invariant=naive.check_consistency,
        schedules=300,
    )


@pytest.mark.race(strategy="exhaustive", preemption_bound=None, schedules=5000)
def test_three_way_bug_needs_the_third_thread(race, naive: NaiveGraph) -> None:
    """Without the edge delete, the leaf delete and the edge add cannot break the graph at all."""
    _delete_edge, delete_leaf, add_edge = SCENARIOS["three_way_leaf_delete"].operations(naive)
    report = race.run(delete_leaf, add_edge, setup=lambda: naive.reset(NODES, EDGES), invariant=naive.check_consistency)
    assert report.complete and not report.bounded


def _graph_ops(race, graph):
    return (
        race.op("delete_edge", graph.delete_edge, "e12"),
        race.op("delete_node", graph.delete_node, "n2"),
        race.op("add_edge", graph.add_edge, "e13", "n1", "n3"),
    )


def test_naive_history_is_not_linearizable(race, naive: NaiveGraph) -> None:
    with pytest.raises(RaceFailure) as raised:
        race.run(
            *_graph_ops(race, naive), setup=lambda: naive.reset(NODES, EDGES), model=lambda: GraphModel(NODES, EDGES)
        )
    assert "no serial order of the operations explains their results" in str(raised.value)
    assert "delete_node('n2')" in str(raised.value) and "raised EdgeNotFound" in str(raised.value)


@pytest.mark.race(strategy="exhaustive", preemption_bound=2, schedules=2000)
def test_fixed_history_is_linearizable_in_every_interleaving(race, fixed: FixedGraph) -> None:
    report = race.run(
        *_graph_ops(race, fixed),
        setup=lambda: fixed.reset(NODES, EDGES),
        model=lambda: GraphModel(NODES, EDGES),
        invariant=fixed.check_consistency,
    )
    assert report.complete


def retrying(fn, attempts: int = 3):
    """The usual client-side retry on a lost connection."""

    def call():
        for attempt in range(attempts):
            try:
                return fn()
            except AutoReconnect:
                if attempt == attempts - 1:
                    raise
        return None

    call.__name__ = getattr(fn, "__name__", "retrying")
    return call


@pytest.mark.race(strategy="exhaustive")
def test_retrying_add_edge_after_a_lost_reply_is_not_idempotent(race, fixed: FixedGraph) -> None:
    """Fault injection: the insert succeeds but its reply is lost; the retry claims the nodes again
    and its insert hits the edge the first attempt wrote."""

    def add_edge() -> None:
        fixed.add_edge("e23", "n2", "n3")

    with pytest.raises(RaceFailure) as raised:
        race.run(
            retrying(add_edge),
            race.op("delete_edge", fixed.delete_edge, "e12", expected=EDGE_ERRORS),
            setup=lambda: fixed.reset(NODES, EDGES),
            invariant=fixed.check_consistency,
            faults=[auto_reconnect("edges.insert_one", after=True)],
        )
    failure = raised.value.report.failure
    assert failure is not None
    assert failure.summary.startswith("T0 add_edge raised DuplicateKeyError")
    assert "edges.insert_one  <- injected AutoReconnect" in failure.execution.trace.format()
