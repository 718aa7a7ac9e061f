"""Histories (invoke / ok / error per operation) and a brute-force linearizability check.

A history is *explained* by a sequential model when some serial order of the operations, one
that keeps every operation that finished before another started ahead of it, gives each
operation the same result (value, or exception type) in the model as it had in the run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RaceError
from .scheduler import Outcome

#: more operations than this make the brute-force search (n! orders) too slow to be useful
MAX_OPERATIONS = 8


@dataclass(frozen=True)
class OpCall:
    """An operation with a name and arguments (what the sequential model is asked to do)."""

    name: str
    fn: Callable[..., object]
    args: tuple[object, ...] = ()
    kwargs: Mapping[str, object] | None = None
    #: exceptions that are a legitimate result of this operation (a 404 under concurrency)
    expected: tuple[type[BaseException], ...] = ()
    #: meant to run as one atomic step (no scheduling point besides its start): not an error
    atomic: bool = False

    def __call__(self) -> object:
        return self.fn(*self.args, **dict(self.kwargs or {}))

    def describe(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in (self.kwargs or {}).items()]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class Result:
    """An operation's observable result: a value or an exception type name."""

    value: object = None
    error: str | None = None

    def describe(self) -> str:
        return f"raised {self.error}" if self.error else f"returned {self.value!r}"


def result_of(outcome: Outcome) -> Result:
    if outcome.error is not None:
        return Result(error=type(outcome.error).__name__)
    return Result(value=outcome.value)


def format_history(calls: Sequence[OpCall], outcomes: Sequence[Outcome]) -> str:
    lines = []
    for call, outcome in zip(calls, outcomes, strict=True):
        invoke = "never ran" if outcome.invoke is None else f"invoke@{outcome.invoke}"
        done = outcome.response is not None
        end = f"{result_of(outcome).describe()} @{outcome.response}" if done else "did not finish"
        lines.append(f"  T{outcome.thread} {call.describe():<40} {invoke:<10} {end}")
    return "\n".join(lines)


def _apply(model: Any, call: OpCall) -> Result:
    method = getattr(model, call.name, None)
    if method is None:
        raise RaceError(f"the sequential model {type(model).__name__} has no operation {call.name!r}")
    try:
        return Result(value=method(*call.args, **dict(call.kwargs or {})))
    except Exception as exc:
        return Result(error=type(exc).__name__)


def serial_order(
    calls: Sequence[OpCall], outcomes: Sequence[Outcome], model_factory: Callable[[], object]
) -> tuple[int, ...] | None:
    """A serial order of the operations that explains every result, or ``None``."""
    n = len(calls)
    if n > MAX_OPERATIONS:
        raise RaceError(f"history check: {n} operations; accepted at most {MAX_OPERATIONS} (n! serial orders)")
    observed = [result_of(o) for o in outcomes]
    for order in itertools.permutations(range(n)):
        if not _respects_real_time(order, outcomes):
            continue
        model = model_factory()
        if all(_apply(model, calls[i]) == observed[i] for i in order):
            return order
    return None


def _respects_real_time(order: Sequence[int], outcomes: Sequence[Outcome]) -> bool:
    position = {op: pos for pos, op in enumerate(order)}
    for a in outcomes:
        for b in outcomes:
            before = a.response is not None and b.invoke is not None and a.response <= b.invoke
            if before and position[a.thread] > position[b.thread]:
                return False
    return True
