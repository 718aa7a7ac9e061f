"""Where the time went: one re-run of the measured call under cProfile, as a call tree.

cProfile records, for every caller -> callee edge, the calls and the cumulative time. From the
measured call downwards that gives a tree: each node is a function with its cumulative time
*through that edge*, its own time and its calls; the **hot path** follows the most expensive
child at each level. Recursion is cut where a function reappears on its own path.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import time
from collections.abc import Callable
from typing import Any

from ..evidence import CallNode, CpuProfile, FunctionTime

FuncKey = tuple[str, int, str]  # (file, line, name) as pstats keys functions

_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _name(key: FuncKey) -> tuple[str, str]:
    filename, line, name = key
    if filename == "~":  # a built-in: "<built-in method builtins.sorted>"
        return name.strip("<>").replace("built-in method ", ""), "built-in"
    return name, f"{filename}:{line}"


def profile_cpu(fn: Callable[[], Any], *, min_time: float = 0.2, max_calls: int = 10_000) -> CpuProfile:
    """Run ``fn`` under cProfile until ``min_time`` has passed (at least once)."""
    profiler = cProfile.Profile()
    calls = 0
    start = time.perf_counter()
    profiler.enable()
    try:
        while True:
            fn()
            calls += 1
            if time.perf_counter() - start >= min_time or calls >= max_calls:
                break
    finally:
        profiler.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    table: dict[FuncKey, Any] = stats.stats  # type: ignore[attr-defined]
    callees: dict[FuncKey, dict[FuncKey, tuple[int, float]]] = {}
    for callee, (_cc, _nc, _tt, _ct, callers) in table.items():
        for caller, edge in callers.items():
            callees.setdefault(caller, {})[callee] = (edge[1], edge[3])
    budget = [200]  # nodes left: bounds the evidence kept in the results file
    tree = tuple(_build(root, table, callees, total, path=(), depth=0, budget=budget) for root in _roots(table)[:5])
    rows = (
        FunctionTime(*_name(key), nc, tt, ct) for key, (_cc, nc, tt, ct, _) in table.items() if not _is_harness(key)
    )
    top = sorted(rows, key=lambda row: -row.own)[:25]
    return CpuProfile(calls=calls, total=total, tree=tree, top=tuple(top))


def _is_harness(key: FuncKey) -> bool:
    return key[0].startswith(_OWN_DIR) or key[2] == "<method 'disable' of '_lsprof.Profiler' objects>"


def _roots(table: dict[FuncKey, Any]) -> list[FuncKey]:
    """The user's outermost functions: called from perfgate itself (the profiling loop)."""
    roots = []
    for key, (*_, callers) in table.items():
        if _is_harness(key):
            continue
        if not callers or all(_is_harness(caller) for caller in callers):
            roots.append(key)
    return sorted(roots, key=lambda k: -table[k][3])


def _build(
    key: FuncKey,
    table: dict[FuncKey, Any],
    callees: dict[FuncKey, dict[FuncKey, tuple[int, float]]],
    total: float,
    *,
    path: tuple[FuncKey, ...],
    depth: int,
    budget: list[int],
    calls: int | None = None,
    cumulative: float | None = None,
) -> CallNode:
    _cc, nc, tt, ct, _callers = table[key]
    children: list[CallNode] = []
    budget[0] -= 1
    if depth < 12 and budget[0] > 0:
        for child, (edge_calls, edge_ct) in sorted(callees.get(key, {}).items(), key=lambda kv: -kv[1][1]):
            if child in path or child == key or edge_ct < 0.01 * total or _is_harness(child):
                continue
            if budget[0] <= 0:
                break
            children.append(
                _build(
                    child,
                    table,
                    callees,
                    total,
                    path=(*path, key),
                    depth=depth + 1,
                    budget=budget,
                    calls=edge_calls,
                    cumulative=edge_ct,
                )
            )
            if len(children) >= 8:
                break
    function, location = _name(key)
    return CallNode(
        function,
        location,
        calls if calls is not None else nc,
        cumulative if cumulative is not None else ct,
        tt,
        tuple(children),
    )
