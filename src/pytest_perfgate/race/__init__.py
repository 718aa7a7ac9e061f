"""Race testing: controlled, seeded interleavings at database-call granularity.

Pure and pytest-free; ``race.plugin`` wires it into pytest as the ``race`` fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_module

if TYPE_CHECKING:
    from .api import Race as Race
    from .faults import Fault as Fault
    from .faults import auto_reconnect as auto_reconnect
    from .faults import transient_transaction_error as transient_transaction_error
    from .history import OpCall as OpCall
    from .runner import Failure as Failure
    from .runner import RaceConfig as RaceConfig
    from .runner import RaceFailure as RaceFailure
    from .runner import RaceReport as RaceReport
    from .runner import explore as explore
    from .runner import format_failure as format_failure
    from .scheduler import Timing as Timing
    from .token import ReplayToken as ReplayToken
    from .token import decode as decode

#: the public names, name -> the submodule defining it (imported on first use); ``__all__``,
#: ``__getattr__`` and ``__dir__`` come from it
_EXPORTS = {
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
}

__getattr__, __dir__ = lazy_module(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
