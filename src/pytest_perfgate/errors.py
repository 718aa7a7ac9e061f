"""One exception hierarchy for everything perfgate can reject.

Every error names *what* was wrong, *where* (file, key path, test id) and *what is accepted*,
so that the plugin and the CLI can show it as is: no traceback, no guessing. Warnings are inside
the hierarchy too (:class:`PerfgateWarning`), as hypothesis does it.
"""

from __future__ import annotations

import os
import sys
from typing import Any


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


class PerfgateWarning(PerfgateError, Warning):
    """Base class of perfgate's warnings: ``-W error::pytest_perfgate.PerfgateWarning`` turns
    them all into errors, and ``except PerfgateError`` then catches them."""


class PerfBudgetWarning(PerfgateWarning, UserWarning):
    """A measured value is past its target (warn) level but within its critical level."""


class GateError(PerfgateError):
    """The gate cannot compare what it was given (e.g. no test in common with the baseline)."""


class RaceError(PerfgateError):
    """A race test is misused: a bad ``race`` argument or marker value, a replay token that does
    not parse or does not fit the test, or operations that do not behave deterministically."""


class RaceFailure(PerfgateError, AssertionError):
    """A race test found a failing interleaving (an assertion failure: pytest shows a failed
    test); ``report`` is the :class:`~pytest_perfgate.race.RaceReport` with the evidence."""

    def __init__(self, message: str, report: Any) -> None:  # Any: errors imports nothing of perfgate's
        super().__init__(message)
        self.report = report


class MongoBackendError(PerfgateError):
    """A MongoDB backend cannot be used: not available, failed to start, or unreachable."""

    def __init__(self, backend: str, message: str, *, hint: str | None = None) -> None:
        self.backend = backend
        self.hint = hint
        super().__init__(f"MongoDB backend '{backend}': {message}" + (f"\nhint: {hint}" if hint else ""))


class MongoQueryWarning(PerfgateWarning, UserWarning):
    """A test issued the same MongoDB query shape many times (a likely N+1)."""


class LoadError(PerfgateError):
    """A load test cannot be set up: a missing locustfile, a run-time that does not parse, a bad
    option, locust not installed (exit code 2, like any bad input)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.hint = hint
        super().__init__(message + (f"\nhint: {hint}" if hint else ""))


class LoadRunError(LoadError):
    """The load run itself could not be done: the target does not answer, locust exited with an
    error or did not finish in its time limit (exit code 3: nothing was measured)."""

    exit_code = 3


class AbError(PerfgateError):
    """``perfgate ab`` could not set up or finish the paired run (bad revision, worktree or
    install step failed, a worker crashed or hung)."""


class RoundFailed(AbError):
    """The timed call raised on one side in a measured round (or in calibration)."""

    def __init__(self, side: str, message: str, where: str) -> None:
        super().__init__(f"{message} (in {where}, after a first call that passed)")
        self.side = side


class ChannelClosed(AbError):
    """The other end went away (a worker crashed or exited)."""


class ChannelTimeout(AbError):
    """Nothing arrived before the deadline (a worker hangs)."""


class GitLabError(PerfgateError):
    """A GitLab API call failed, or its answer was not what GitLab answers; the message never
    contains the token. ``transient`` marks a failure worth retrying later (429, 502-504, a
    timeout)."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False) -> None:
        self.status = status
        self.transient = transient
        super().__init__(message)


class PlatformError(PerfgateError):
    """A feature needs what this platform does not have (process groups and signals: POSIX)."""


def require_posix(feature: str) -> None:
    """Raise :class:`PlatformError` unless this is a POSIX system (Linux, macOS): call it before
    ``feature`` (e.g. ``"perfgate ab"``) starts process groups, sends signals or passes fds."""
    if os.name != "posix":
        raise PlatformError(
            f"{feature} needs a POSIX system (Linux or macOS): it runs its processes in their own process "
            f"group and stops them with signals; this is {sys.platform!r}"
        )
