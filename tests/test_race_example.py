"""The graph service example, run as a user runs it: the naive races found, the fixed version proved."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_race_plugin import run

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "graph_service"


def test_graph_service_example(pytester: pytest.Pytester) -> None:
    result = run(pytester, str(EXAMPLE), "--rootdir", str(EXAMPLE), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=13, xfailed=1)
    output = result.stdout.str()
    for name in ("edge_vs_node_delete", "add_edge_vs_node_delete", "three_way_leaf_delete"):
        assert f"test_fixed_version_holds_in_every_interleaving[{name}]: all " in output, (
            f"no exhaustive proof line for {name}"
        )
    assert (
        "test_fixed_version_holds_in_every_interleaving[three_way_leaf_delete]: all 302 interleavings with at most 2 "
        "preemption(s) explored; the invariant holds in every one (exhaustive, preemption bound 2)"
    ) in output
