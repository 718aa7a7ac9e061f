"""Query shapes: a command with its values masked, so that two calls that differ only in the
values they look for compare equal (``{"user": "?", "ts": {"$gte": "?"}}``).

Pure: no pymongo, no pytest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

MASK = "?"

#: keys of a pipeline stage whose string values are names (collections, fields), not user data
_NAME_KEYS = frozenset(
    {
        "from",
        "localField",
        "foreignField",
        "as",
        "path",
        "coll",
        "connectFromField",
        "connectToField",
        "startWith",
        "into",
        "on",
    }
)


def mask_filter(value: Any) -> Any:
    """Mask every value of a query filter; keep field names and operators.

    A list of plain values (the operand of ``$in``, ``$nin``, ``$all``) becomes one ``"?"`` so
    that ``{"$in": [1, 2]}`` and ``{"$in": [1, 2, 3]}`` have the same shape.
    """
    if isinstance(value, Mapping):
        return {str(k): mask_filter(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) for v in value):
            return [mask_filter(v) for v in value]
        return MASK
    return MASK


def _mask_expression(value: Any, key: str = "") -> Any:
    """Mask literals of an aggregation expression; keep ``$field`` paths, numbers and names."""
    if isinstance(value, Mapping):
        return {str(k): _mask_expression(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_expression(v, key) for v in value]
    if isinstance(value, str):
        return value if value.startswith("$") or key in _NAME_KEYS else MASK
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    return MASK


def mask_pipeline(pipeline: Any) -> list[Any]:
    """Mask an aggregation pipeline stage by stage (``$match`` like a filter)."""
    if not isinstance(pipeline, (list, tuple)):
        return [MASK]
    stages: list[Any] = []
    for stage in pipeline:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            stages.append(_mask_expression(stage))
            continue
        ((name, body),) = stage.items()
        if name == "$match":
            stages.append({name: mask_filter(body)})
        elif name in ("$sort", "$project", "$group", "$unwind", "$count", "$sortByCount", "$replaceRoot"):
            stages.append({name: _mask_expression(body)})
        elif name in ("$limit", "$skip", "$sample"):
            stages.append({name: MASK})
        elif name == "$lookup" and isinstance(body, Mapping) and "pipeline" in body:
            inner = {k: (mask_pipeline(v) if k == "pipeline" else _mask_expression(v, k)) for k, v in body.items()}
            stages.append({name: inner})
        else:
            stages.append({name: _mask_expression(body)})
    return stages


def sort_spec(sort: Any) -> dict[str, Any] | None:
    """A sort given as a mapping or as ``[(key, direction), ...]`` (mongomock) as a dict."""
    if sort is None:
        return None
    if isinstance(sort, Mapping):
        return {str(k): v for k, v in sort.items()}
    if isinstance(sort, (list, tuple)):
        out: dict[str, Any] = {}
        for item in sort:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                out[str(item[0])] = item[1]
            else:
                out[str(item)] = 1
        return out
    return {str(sort): 1}


def _update_shape(update: Any) -> Any:
    if isinstance(update, (list, tuple)):  # pipeline-style update
        return mask_pipeline(update)
    if isinstance(update, Mapping) and any(str(k).startswith("$") for k in update):
        return {str(op): mask_filter(fields) if isinstance(fields, Mapping) else MASK for op, fields in update.items()}
    return MASK  # a replacement document


#: command name -> key of the collection name in the command document
_COLLECTION_KEY = {"getMore": "collection"}


def collection_of(command: str, body: Mapping[str, Any]) -> str | None:
    value = body.get(_COLLECTION_KEY.get(command, command))
    return value if isinstance(value, str) else None


def command_shape(command: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The shape of a command document as pymongo sends it (``{"find": "c", "filter": ...}``)."""
    shape: dict[str, Any] = {}
    if command == "find":
        shape["filter"] = mask_filter(body.get("filter") or {})
        if body.get("sort"):
            shape["sort"] = sort_spec(body["sort"])
        if body.get("projection"):
            shape["projection"] = _mask_expression(body["projection"])
        if body.get("limit"):
            shape["limit"] = MASK
        if body.get("skip"):
            shape["skip"] = MASK
    elif command == "aggregate":
        shape["pipeline"] = mask_pipeline(body.get("pipeline") or [])
    elif command == "count":
        shape["filter"] = mask_filter(body.get("query") or {})
    elif command == "distinct":
        shape["key"] = body.get("key")
        shape["filter"] = mask_filter(body.get("query") or {})
    elif command in ("update", "delete"):
        statements = body.get("updates" if command == "update" else "deletes") or []
        first = statements[0] if isinstance(statements, Sequence) and statements else {}
        if isinstance(first, Mapping):
            shape["filter"] = mask_filter(first.get("q") or {})
            if command == "update":
                shape["update"] = _update_shape(first.get("u"))
                shape["multi"] = bool(first.get("multi", False))
            else:
                shape["limit"] = first.get("limit", 0)
    elif command == "findAndModify":
        shape["filter"] = mask_filter(body.get("query") or {})
        if body.get("sort"):
            shape["sort"] = sort_spec(body["sort"])
        shape["update"] = "remove" if body.get("remove") else _update_shape(body.get("update"))
    return shape


def shape_key(command: str, collection: str | None, shape: Mapping[str, Any]) -> str:
    """A stable text key of a shape (field order kept: it matters for sorts)."""
    return json.dumps({"cmd": command, "coll": collection, **shape}, default=str, separators=(",", ":"))


def describe(command: str, collection: str | None, shape: Mapping[str, Any]) -> str:
    """One readable line: ``find audit filter={"user": "?"} sort={"ts": -1}``."""
    parts = [command, collection or "-"]
    for key, value in shape.items():
        parts.append(f"{key}={json.dumps(value, default=str)}")
    return " ".join(parts)
