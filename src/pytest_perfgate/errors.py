"""One exception hierarchy for everything perfgate can reject.

Every error names *what* was wrong, *where* (file, key path, test id) and *what is accepted*,
so that the plugin and the CLI can show it as is: no traceback, no guessing.
"""

from __future__ import annotations


class PerfgateError(Exception):
    """Base class: a problem perfgate can explain to the user."""

    #: exit code the CLI uses for this kind of error (2: bad input or configuration)
    exit_code = 2


class UnitError(PerfgateError, ValueError):
    """A value with a unit that does not parse (``"2 parsecs"``)."""


class ConfigError(PerfgateError):
    """``perfgate.yml`` (or an option) is invalid."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        where = ": ".join(part for part in (path, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class MarkerError(PerfgateError):
    """A ``perf_budget`` (or other perfgate) marker has a bad argument."""

    def __init__(self, message: str, *, nodeid: str | None = None) -> None:
        self.nodeid = nodeid
        super().__init__(f"{nodeid}: {message}" if nodeid else message)


class BudgetError(PerfgateError):
    """A budget cannot be evaluated (e.g. it names a metric the test never recorded)."""


class ResultsFileError(PerfgateError):
    """A results or baseline file is missing, corrupt or of an unknown schema version."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class MeasurementError(PerfgateError):
    """The measurement itself was misused (e.g. ``perf`` called twice in one test)."""


class PerfBudgetWarning(UserWarning):
    """A measured value is past its target (warn) level but within its critical level."""
