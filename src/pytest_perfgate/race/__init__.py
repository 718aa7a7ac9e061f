"""Race testing: controlled, seeded interleavings at database-call granularity.

Pure and pytest-free; ``race.plugin`` wires it into pytest as the ``race`` fixture.
"""

from __future__ import annotations

from .api import Race
from .faults import Fault, auto_reconnect, transient_transaction_error
from .history import OpCall
from .runner import Failure, RaceConfig, RaceFailure, RaceReport, explore, format_failure
from .scheduler import Timing
from .token import ReplayToken, decode

__all__ = [
    "Failure",
    "Fault",
    "OpCall",
    "Race",
    "RaceConfig",
    "RaceFailure",
    "RaceReport",
    "ReplayToken",
    "Timing",
    "auto_reconnect",
    "decode",
    "explore",
    "format_failure",
    "transient_transaction_error",
]
