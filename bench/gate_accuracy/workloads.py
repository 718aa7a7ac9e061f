"""Workloads for the gate-accuracy harness, each made of identical *units* of work.

A workload at slowdown factor ``f`` runs ``round(BASE_UNITS * f)`` units, so a 5% / 10% / 25%
slowdown adds exactly 1 / 2 / 5 units to the 20 of the unchanged version. ``verify_ratio.py``
measures the ratio actually achieved (fixed per-call overhead dilutes it for the tiniest ones).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable

BASE_UNITS = 20

_rng = random.Random(1234)
_SHUFFLED = [_rng.randrange(1_000_000) for _ in range(600)]
_DOC = {"users": [{"id": i, "name": f"user{i}", "tags": ["a", "b", "c"], "score": i * 1.5} for i in range(40)]}
_BLOB = bytes(range(256)) * 256  # 64 KiB


def _arith() -> None:  # ~0.1us
    x = 7
    x = (x * 31 + 7) % 1000003
    x = (x * 31 + 7) % 1000003


def _strings() -> None:  # ~1us
    "-".join([str(i) for i in range(12)])


def _dicts() -> None:  # ~5us
    d = {i: i * 2 for i in range(60)}
    for i in range(0, 60, 3):
        d.get(i)


def _sort() -> None:  # ~40us
    sorted(_SHUFFLED)


def _alloc() -> None:  # ~100us, allocation heavy
    keep = [(i, str(i), [i]) for i in range(600)]
    del keep


def _json() -> None:  # ~150us
    json.loads(json.dumps(_DOC))


def _sleep() -> None:  # ~60-150us: a tiny sleep (the timer slack dominates)
    time.sleep(0.00005)


def _hash_and_loop() -> None:  # ~1ms: pure-Python loop plus a small hash
    total = 0
    for i in range(12_000):
        total += i * i
    hashlib.sha256(_BLOB).digest()


UNITS: dict[str, Callable[[], None]] = {
    "arith_us": _arith,
    "strings_20us": _strings,
    "dicts_100us": _dicts,
    "sort_1ms": _sort,
    "alloc_2ms": _alloc,
    "json_3ms": _json,
    "sleep_2ms": _sleep,
    "loop_20ms": _hash_and_loop,
}


def units_for(factor: float) -> int:
    return round(BASE_UNITS * factor)


def make(name: str, factor: float) -> Callable[[], None]:
    unit = UNITS[name]
    n = units_for(factor)

    def workload() -> None:
        for _ in range(n):
            unit()

    workload.__name__ = f"{name}_x{n}"
    return workload
