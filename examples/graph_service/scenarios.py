"""The race scenarios of the example, shared by its tests and by bench/race."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from graphstore import EdgeNotFound, Graph, NodeHasEdges, NodeNotFound

NODES = ("n1", "n2", "n3")
EDGES = (("e12", "n1", "n2"),)


def tolerate(fn: Callable[[], object], *errors: type[BaseException]) -> Callable[[], object]:
    """An API call whose documented errors (404, 409) are fine results under concurrency."""

    def call() -> object:
        try:
            return fn()
        except errors:
            return None

    call.__name__ = getattr(fn, "__name__", "op")
    return call


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    operations: Callable[[Graph], tuple[Callable[[], object], ...]]

    def setup(self, graph: Graph) -> Callable[[], None]:
        return lambda: graph.reset(NODES, EDGES)


def _edge_vs_node(g: Graph) -> tuple[Callable[[], object], ...]:
    def delete_edge() -> None:
        g.delete_edge("e12")

    def delete_node() -> None:
        g.delete_node("n2")

    return tolerate(delete_edge, EdgeNotFound), delete_node


def _add_vs_delete(g: Graph) -> tuple[Callable[[], object], ...]:
    def add_edge() -> None:
        g.add_edge("e23", "n2", "n3")

    def delete_node() -> None:
        g.delete_node("n2")

    return tolerate(add_edge, NodeNotFound), delete_node


def _three_way(g: Graph) -> tuple[Callable[[], object], ...]:
    def delete_edge() -> None:
        g.delete_edge("e12")

    def delete_leaf() -> None:
        g.delete_node("n2", cascade=False)

    def add_edge() -> None:
        g.add_edge("e23", "n2", "n3")

    return (
        tolerate(delete_edge, EdgeNotFound),
        tolerate(delete_leaf, NodeHasEdges, NodeNotFound),
        tolerate(add_edge, NodeNotFound),
    )


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("edge_vs_node_delete", "delete_edge(e12) || delete_node(n2): the node delete fails", _edge_vs_node),
        Scenario("add_edge_vs_node_delete", "add_edge(e23) || delete_node(n2): a dangling edge", _add_vs_delete),
        Scenario(
            "three_way_leaf_delete",
            "delete_edge(e12) || delete_node(n2, cascade=False) || add_edge(e23): a dangling edge, only when "
            "the edge delete, the emptiness check and the insert happen in that order",
            _three_way,
        ),
    )
}
