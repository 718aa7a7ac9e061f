"""``explain`` documents: what a query examined and whether it scanned a whole collection.

Walks both plan shapes MongoDB returns:

* classic: ``queryPlanner.winningPlan`` is a tree of stages (``inputStage`` / ``inputStages``);
* slot-based (SBE, MongoDB 6+): ``winningPlan`` holds ``queryPlan`` (the same kind of stage tree)
  next to ``slotBasedPlan`` (the SBE program, not walked);

and the places they appear: a find/count/update explain, an aggregate explain with a ``$cursor``
first stage, a fully pushed-down aggregate (top level), sharded explains (``shards``), and the
``$lookup`` stage statistics (``collectionScans``, ``totalDocsExamined``). Pure: no pymongo.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_CHILD_KEYS = ("inputStage", "queryPlan", "thenStage", "elseStage", "outerStage", "innerStage")
_CHILD_LIST_KEYS = ("inputStages", "shards")
_INDEX_STAGES = frozenset({"IXSCAN", "COUNT_SCAN", "DISTINCT_SCAN", "EXPRESS_IXSCAN", "IDHACK"})


@dataclass(frozen=True)
class ExplainSummary:
    """What one explained command did."""

    docs_examined: int
    keys_examined: int
    n_returned: int
    collscans: int
    stages: tuple[str, ...]
    indexes: tuple[str, ...]
    engine: str  # "classic" or "sbe"

    @property
    def in_memory_sort(self) -> bool:
        return "SORT" in self.stages

    @property
    def plan(self) -> str:
        """``COLLSCAN``, ``IXSCAN user_1_ts_-1``, with ``+ SORT`` when sorted in memory."""
        if self.collscans:
            head = "COLLSCAN"
        elif self.indexes:
            head = "IXSCAN " + ", ".join(self.indexes)
        elif "EOF" in self.stages:
            head = "EOF (no such collection)"
        else:
            head = "/".join(self.stages) or "unknown plan"
        return head + (" + in-memory SORT" if self.in_memory_sort else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "docs_examined": self.docs_examined,
            "keys_examined": self.keys_examined,
            "n_returned": self.n_returned,
            "collscans": self.collscans,
            "plan": self.plan,
            "engine": self.engine,
            "indexes": list(self.indexes),
        }


def _plan_nodes(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every stage of a plan tree, root first."""
    if not isinstance(node, Mapping):
        return
    if "winningPlan" in node:  # a shard's queryPlanner
        yield from _plan_nodes(node["winningPlan"])
        return
    if "stage" in node:
        yield node
    for key in _CHILD_KEYS:
        if key in node:
            yield from _plan_nodes(node[key])
    for key in _CHILD_LIST_KEYS:
        children = node.get(key)
        if isinstance(children, list):
            for child in children:
                yield from _plan_nodes(child)


def _find_key(doc: Any, key: str, *, stop_inside: bool = True) -> Iterator[Any]:
    """Values of ``key`` anywhere in ``doc`` (not looking inside a found value when ``stop_inside``)."""
    if isinstance(doc, Mapping):
        for k, v in doc.items():
            if k == key:
                yield v
                if stop_inside:
                    continue
            yield from _find_key(v, key, stop_inside=stop_inside)
    elif isinstance(doc, list):
        for item in doc:
            yield from _find_key(item, key, stop_inside=stop_inside)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _lookup_stats(explain: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Aggregation stage entries carrying their own statistics (``$lookup`` in 5.0+)."""
    stages = explain.get("stages")
    if isinstance(stages, list):
        for stage in stages:
            if isinstance(stage, Mapping) and "collectionScans" in stage:
                yield stage


def summarize(explain: Mapping[str, Any]) -> ExplainSummary:
    """Summarise an ``explain`` (``executionStats`` verbosity) of any command."""
    stages: list[str] = []
    indexes: list[str] = []
    collscans = 0
    engine = "classic"
    for winning in _find_key(explain, "winningPlan"):
        if isinstance(winning, Mapping) and "slotBasedPlan" in winning:
            engine = "sbe"
        for node in _plan_nodes(winning):
            stage = str(node["stage"])
            stages.append(stage)
            if stage == "COLLSCAN":
                collscans += 1
            if stage in _INDEX_STAGES:
                name = node.get("indexName") or ("_id_" if stage == "IDHACK" else None)
                if name and name not in indexes:
                    indexes.append(str(name))
    docs = keys = returned = 0
    for stats in _find_key(explain, "executionStats"):
        if isinstance(stats, Mapping):
            docs += _int(stats.get("totalDocsExamined"))
            keys += _int(stats.get("totalKeysExamined"))
            returned += _int(stats.get("nReturned"))
    for entry in _lookup_stats(explain):
        collscans += _int(entry.get("collectionScans"))
        docs += _int(entry.get("totalDocsExamined"))
        keys += _int(entry.get("totalKeysExamined"))
        for name in entry.get("indexesUsed") or []:
            if name not in indexes:
                indexes.append(str(name))
    if explain.get("explainVersion") == "2":
        engine = "sbe"
    return ExplainSummary(docs, keys, returned, collscans, tuple(stages), tuple(indexes), engine)


#: keys of a captured command that ``explain`` does not accept or that do not change the plan
_NOT_FOR_EXPLAIN = frozenset({"$db", "lsid", "txnNumber", "$clusterTime", "readConcern", "writeConcern"})


def explain_command(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``explain`` command for a captured command document."""
    inner = {k: v for k, v in body.items() if k not in _NOT_FOR_EXPLAIN}
    if "aggregate" in inner and "cursor" not in inner:
        inner["cursor"] = {}
    return {"explain": inner, "verbosity": "executionStats"}
