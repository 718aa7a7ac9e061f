"""The bench's workloads: small, deterministic for a fixed hash seed, a few million instructions."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any

_rng = random.Random(1234)
_DOC = {f"key{i}": [i, str(i) * 3, {"x": i * 1.5, "ok": i % 2 == 0, "none": None}] for i in range(300)}
_NUMBERS = [_rng.random() for _ in range(20_000)]
_TEXT = " ".join(f"user{i}@example{i % 7}.org said {i * 37} times: hello-world_{i}" for i in range(500))
_EMAIL = re.compile(r"\b[\w.]+@([\w-]+)\.org\b")


def json_encode() -> Any:
    return json.dumps(_DOC)


def sort() -> Any:
    return sorted(_NUMBERS)


def regex() -> Any:
    return _EMAIL.findall(_TEXT)


def dict_loop() -> Any:
    counts: dict[str, int] = {}
    for i in range(5_000):
        key = f"k{i % 257}"
        counts[key] = counts.get(key, 0) + i
    return counts


class Point:
    __slots__ = ("x", "y")

    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y


class Record:
    def __init__(self, name: str, value: int) -> None:
        self.name = name
        self.value = value
        self.tags = [name]


def classes() -> Any:
    return [(Point(i, -i), Record("r", i)) for i in range(3_000)]


WORKLOADS: dict[str, Callable[[], Any]] = {
    "json_encode": json_encode,
    "sort": sort,
    "regex": regex,
    "dict_loop": dict_loop,
    "classes": classes,
}
