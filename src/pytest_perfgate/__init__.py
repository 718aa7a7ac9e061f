"""pytest-perfgate: performance budgets in tests, and a statistical CI gate on their results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_module

__version__ = "0.1.0"

#: the public API, name -> the submodule defining it; imported on first use (the pytest plugin
#: loads this package in every session). ``__all__``, ``__getattr__`` and ``__dir__`` come from it.
_EXPORTS = {
    "BudgetResult": "budgets",
    "BudgetSpec": "budgets",
    "MetricBudget": "budgets",
    "Verdict": "budgets",
    "PerfgateConfig": "config",
    "load_config": "config",
    "RunResult": "model",
    "Series": "model",
    "TestResult": "model",
    "load_results": "model",
    "save_results": "model",
    "Perf": "recorder",
    # every error and warning
    "PerfgateError": "errors",
    "PerfgateWarning": "errors",
    "AbError": "errors",
    "BudgetError": "errors",
    "ChannelClosed": "errors",
    "ChannelTimeout": "errors",
    "ConfigError": "errors",
    "GateError": "errors",
    "GitLabError": "errors",
    "LoadError": "errors",
    "LoadRunError": "errors",
    "MarkerError": "errors",
    "MeasurementError": "errors",
    "MongoBackendError": "errors",
    "MongoQueryWarning": "errors",
    "PerfBudgetWarning": "errors",
    "PlatformError": "errors",
    "RaceError": "errors",
    "RaceFailure": "errors",
    "ResultsFileError": "errors",
    "RoundFailed": "errors",
    "UnitError": "errors",
}

__all__ = ["__version__", *_EXPORTS]

# type checkers see the imports (and no __getattr__: a name not exported is an error for them);
# tests/test_public_api.py holds the imports equal to _EXPORTS
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_module(__name__, _EXPORTS)
else:
    from .budgets import BudgetResult as BudgetResult
    from .budgets import BudgetSpec as BudgetSpec
    from .budgets import MetricBudget as MetricBudget
    from .budgets import Verdict as Verdict
    from .config import PerfgateConfig as PerfgateConfig
    from .config import load_config as load_config
    from .errors import AbError as AbError
    from .errors import BudgetError as BudgetError
    from .errors import ChannelClosed as ChannelClosed
    from .errors import ChannelTimeout as ChannelTimeout
    from .errors import ConfigError as ConfigError
    from .errors import GateError as GateError
    from .errors import GitLabError as GitLabError
    from .errors import LoadError as LoadError
    from .errors import LoadRunError as LoadRunError
    from .errors import MarkerError as MarkerError
    from .errors import MeasurementError as MeasurementError
    from .errors import MongoBackendError as MongoBackendError
    from .errors import MongoQueryWarning as MongoQueryWarning
    from .errors import PerfBudgetWarning as PerfBudgetWarning
    from .errors import PerfgateError as PerfgateError
    from .errors import PerfgateWarning as PerfgateWarning
    from .errors import PlatformError as PlatformError
    from .errors import RaceError as RaceError
    from .errors import RaceFailure as RaceFailure
    from .errors import ResultsFileError as ResultsFileError
    from .errors import RoundFailed as RoundFailed
    from .errors import UnitError as UnitError
    from .model import RunResult as RunResult
    from .model import Series as Series
    from .model import TestResult as TestResult
    from .model import load_results as load_results
    from .model import save_results as save_results
    from .recorder import Perf as Perf
