"""A graph stored in MongoDB: ``nodes`` {_id, refs} and ``edges`` {_id, src, dst}.

``NaiveGraph`` is how the service was first written: check, then act, in separate calls. When
the API is fired in parallel it fails the way the team saw: deleting an edge and its node at
once makes the node delete fail (``EdgeNotFound`` from ``delete_node``), an edge added while
its node is deleted is left dangling, and a node delete that checks "no edges left" can race
with an edge delete and an edge add (three threads, a specific order) into a dangling edge.

``FixedGraph`` uses atomic conditional operations only (mongomock has no transactions):
an edge *claims* both nodes first (``refs`` +1, only if the node is not being deleted), a node
is deleted without cascade only if ``refs == 0`` (one conditional ``delete_one``), a cascading
delete first marks the node ``deleting`` so new claims fail, and an edge whose node got marked
while it was being added removes itself again.
"""

from __future__ import annotations

from typing import Any


class GraphError(Exception):
    pass


class NodeNotFound(GraphError):
    pass


class EdgeNotFound(GraphError):
    pass


class NodeHasEdges(GraphError):
    pass


def _touching(nid: str) -> dict[str, Any]:
    return {"$or": [{"src": nid}, {"dst": nid}]}


class Graph:
    """What both versions share: state set-up and the consistency check."""

    keeps_refs = False

    def __init__(self, db: Any) -> None:
        self.nodes = db.nodes
        self.edges = db.edges

    def reset(self, nodes: tuple[str, ...], edges: tuple[tuple[str, str, str], ...]) -> None:
        """The initial state of every schedule (runs outside the race: not a scheduling point)."""
        self.nodes.delete_many({})
        self.edges.delete_many({})
        refs = {n: 0 for n in nodes}
        for _eid, src, dst in edges:
            refs[src] += 1
            refs[dst] += 1
        self.nodes.insert_many([{"_id": n, "refs": refs[n]} for n in nodes])
        if edges:
            self.edges.insert_many([{"_id": e, "src": s, "dst": d} for e, s, d in edges])

    def check_consistency(self) -> None:
        """Raise AssertionError when the stored graph is broken."""
        nodes = {doc["_id"]: doc for doc in self.nodes.find()}
        degree = dict.fromkeys(nodes, 0)
        for edge in self.edges.find():
            for end in (edge["src"], edge["dst"]):
                if end not in nodes:
                    raise AssertionError(f"edge {edge['_id']} is dangling: node {end} does not exist")
                degree[end] += 1
        if self.keeps_refs:
            for nid, doc in nodes.items():
                assert not doc.get("deleting"), f"node {nid} is left marked as deleting"
                assert doc["refs"] == degree[nid], f"node {nid} has refs={doc['refs']} but {degree[nid]} edges"


class NaiveGraph(Graph):
    def add_edge(self, eid: str, src: str, dst: str) -> None:
        for nid in (src, dst):
            if self.nodes.find_one({"_id": nid}) is None:
                raise NodeNotFound(nid)
        self.edges.insert_one({"_id": eid, "src": src, "dst": dst})

    def delete_edge(self, eid: str) -> None:
        if self.edges.find_one({"_id": eid}) is None:
            raise EdgeNotFound(eid)
        self.edges.delete_one({"_id": eid})

    def delete_node(self, nid: str, cascade: bool = True) -> None:
        if self.nodes.find_one({"_id": nid}) is None:
            raise NodeNotFound(nid)
        touching = list(self.edges.find(_touching(nid)))
        if touching and not cascade:
            raise NodeHasEdges(nid)
        for edge in touching:
            self.delete_edge(edge["_id"])
        self.nodes.delete_one({"_id": nid})


class FixedGraph(Graph):
    keeps_refs = True

    def _release(self, nids: list[str]) -> None:
        if nids:
            self.nodes.update_many({"_id": {"$in": nids}}, {"$inc": {"refs": -1}})

    def add_edge(self, eid: str, src: str, dst: str) -> None:
        claimed: list[str] = []
        for nid in (src, dst):
            claim = self.nodes.update_one({"_id": nid, "deleting": {"$ne": True}}, {"$inc": {"refs": 1}})
            if claim.matched_count == 0:
                self._release(claimed)
                raise NodeNotFound(nid)
            claimed.append(nid)
        self.edges.insert_one({"_id": eid, "src": src, "dst": dst})
        # a cascading delete that began after our claims may have listed the edges before ours
        if self.nodes.count_documents({"_id": {"$in": [src, dst]}, "deleting": {"$ne": True}}) < 2:
            self._remove_edge(eid)
            raise NodeNotFound(src if self.nodes.find_one({"_id": src, "deleting": {"$ne": True}}) is None else dst)

    def _remove_edge(self, eid: str) -> bool:
        edge = self.edges.find_one_and_delete({"_id": eid})
        if edge is None:
            return False
        self._release([edge["src"], edge["dst"]])
        return True

    def delete_edge(self, eid: str) -> None:
        if not self._remove_edge(eid):
            raise EdgeNotFound(eid)

    def delete_node(self, nid: str, cascade: bool = True) -> None:
        if not cascade:
            if self.nodes.delete_one({"_id": nid, "refs": 0, "deleting": {"$ne": True}}).deleted_count:
                return
            if self.nodes.find_one({"_id": nid, "deleting": {"$ne": True}}) is None:
                raise NodeNotFound(nid)
            raise NodeHasEdges(nid)
        if (
            self.nodes.find_one_and_update({"_id": nid, "deleting": {"$ne": True}}, {"$set": {"deleting": True}})
            is None
        ):
            raise NodeNotFound(nid)  # absent, or another delete of it is under way
        for edge in list(self.edges.find(_touching(nid))):
            self._remove_edge(edge["_id"])
        self.nodes.delete_one({"_id": nid})


class GraphModel:
    """The sequential specification (for the history check): a graph in two dicts."""

    def __init__(self, nodes: tuple[str, ...], edges: tuple[tuple[str, str, str], ...]) -> None:
        self.nodes = set(nodes)
        self.edges = {e: (s, d) for e, s, d in edges}

    def add_edge(self, eid: str, src: str, dst: str) -> None:
        for nid in (src, dst):
            if nid not in self.nodes:
                raise NodeNotFound(nid)
        self.edges[eid] = (src, dst)

    def delete_edge(self, eid: str) -> None:
        if self.edges.pop(eid, None) is None:
            raise EdgeNotFound(eid)

    def delete_node(self, nid: str, cascade: bool = True) -> None:
        if nid not in self.nodes:
            raise NodeNotFound(nid)
        touching = [e for e, ends in self.edges.items() if nid in ends]
        if touching and not cascade:
            raise NodeHasEdges(nid)
        for eid in touching:
            del self.edges[eid]
        self.nodes.discard(nid)


#: the errors a client may legitimately get from delete_edge under concurrency
EDGE_ERRORS = (EdgeNotFound,)
