"""The graph service example, run as a user runs it: the naive races found, the fixed version proved."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.sessions import run

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "graph_service"


def test_graph_service_example(pytester: pytest.Pytester) -> None:
    result = run(pytester, str(EXAMPLE), "--rootdir", str(EXAMPLE), "-p", "no:cacheprovider")
    pytest.importorskip("httpx")
    result.assert_outcomes(passed=36, xfailed=2)
    output = result.stdout.str()
    # the race fired through each app's test client is found at the same schedule as the direct calls
    for client in (
        "starlette-sync-endpoints",
        "starlette-async-endpoints",
        "fastapi",
        "httpx-asgi-transport",
        "flask-wsgi",
    ):
        assert (
            f"test_the_naive_races_are_found_through_the_api[edge_vs_node_delete-{client}]: an unexpected exception "
            "found by random walk, seed 0 at schedule 16 of 300"
        ) in output, client
    for name in ("edge_vs_node_delete", "add_edge_vs_node_delete", "three_way_leaf_delete"):
        assert f"test_fixed_version_holds_in_every_interleaving[{name}]: all " in output, (
            f"no exhaustive proof line for {name}"
        )
    assert (
        "test_fixed_version_holds_in_every_interleaving[three_way_leaf_delete]: all 302 interleavings with at most 2 "
        "preemption(s) explored; the invariant holds in every one (exhaustive, preemption bound 2)"
    ) in output
