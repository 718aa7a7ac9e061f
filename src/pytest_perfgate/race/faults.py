"""Fault injection: raise a transient error at chosen scheduling points (to test retry logic).

Whether a fault fires at a matching point is a decision of the schedule (seeded, replayed by
the token, enumerated by the exhaustive strategy), like the choice of the next thread.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RaceError
from .trace import PointInfo


@dataclass(frozen=True)
class Fault:
    """Raise ``error()`` at scheduling points whose ``collection.operation`` (or explicit point
    label) matches the glob ``where``; at most ``times`` per schedule, each time with
    ``probability`` under the random strategies. ``after=True`` applies the call first and raises
    afterwards (the write happened but the client saw an error, as after a lost reply)."""

    error: Callable[[], BaseException]
    where: str = "*"
    times: int = 1
    probability: float = 0.3
    after: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if not callable(self.error):
            raise RaceError(f"Fault error {self.error!r}: accepted an exception class or a callable returning one")
        if not isinstance(self.times, int) or self.times < 1:
            raise RaceError(f"Fault times {self.times!r}: accepted a whole number >= 1")
        if not 0.0 < self.probability <= 1.0:
            raise RaceError(f"Fault probability {self.probability!r}: accepted a number in (0, 1]")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return getattr(self.error, "__name__", None) or type(self.error).__name__

    def matches(self, point: PointInfo) -> bool:
        if point.operation == "start":
            return False
        target = f"{point.collection}.{point.operation}" if point.collection else point.operation
        return fnmatch.fnmatchcase(target, self.where) or fnmatch.fnmatchcase(point.operation, self.where)


def _pymongo_errors() -> object:
    try:
        import pymongo.errors
    except ImportError:  # pragma: no cover - depends on the environment
        raise RaceError("pymongo fault helpers need pymongo: pip install 'pytest-perfgate[mongo]'") from None
    return pymongo.errors


def transient_transaction_error(where: str = "*", **options: object) -> Fault:
    """An ``OperationFailure`` labelled ``TransientTransactionError`` (a write conflict)."""
    errors = _pymongo_errors()

    def make() -> BaseException:
        failure: BaseException = errors.OperationFailure(  # type: ignore[attr-defined]
            "WriteConflict (injected by perfgate race)",
            code=112,
            details={"errmsg": "WriteConflict", "code": 112, "errorLabels": ["TransientTransactionError"]},
        )
        return failure

    return Fault(make, where, name="OperationFailure[TransientTransactionError]", **options)  # type: ignore[arg-type]


def auto_reconnect(where: str = "*", **options: object) -> Fault:
    """pymongo's ``AutoReconnect`` (a lost connection; the operation may or may not have run)."""
    errors = _pymongo_errors()

    def make() -> BaseException:
        error: BaseException = errors.AutoReconnect("connection reset (injected by perfgate race)")  # type: ignore[attr-defined]
        return error

    return Fault(make, where, name="AutoReconnect", **options)  # type: ignore[arg-type]
