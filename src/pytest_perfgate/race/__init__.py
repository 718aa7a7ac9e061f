"""Race testing: controlled, seeded interleavings at database-call granularity.

Pure and pytest-free; ``race.plugin`` wires it into pytest as the ``race`` fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .api import Race
    from .faults import Fault, auto_reconnect, transient_transaction_error
    from .history import OpCall
    from .runner import Failure, RaceConfig, RaceFailure, RaceReport, explore, format_failure
    from .scheduler import Timing
    from .token import ReplayToken, decode

__getattr__ = lazy_exports(
    __name__,
    {
        "Race": "api",
        "Fault": "faults",
        "auto_reconnect": "faults",
        "transient_transaction_error": "faults",
        "OpCall": "history",
        "Failure": "runner",
        "RaceConfig": "runner",
        "RaceFailure": "runner",
        "RaceReport": "runner",
        "explore": "runner",
        "format_failure": "runner",
        "Timing": "scheduler",
        "ReplayToken": "token",
        "decode": "token",
    },
)


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
