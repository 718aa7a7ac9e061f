"""Calls perfgate makes on its own behalf while it instruments a test (the MongoDB capture
counting a cursor's documents, say): other instrumentation lets them through untouched, so a
race does not see the capture's bookkeeping as a scheduling point of the operation."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_OWN: contextvars.ContextVar[bool] = contextvars.ContextVar("perfgate_own_call", default=False)


@contextmanager
def own_calls() -> Iterator[None]:
    """Mark the calls made inside as perfgate's own."""
    token = _OWN.set(True)
    try:
        yield
    finally:
        _OWN.reset(token)


def in_own_call() -> bool:
    return _OWN.get()
