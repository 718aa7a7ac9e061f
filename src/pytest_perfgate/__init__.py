"""pytest-perfgate: performance budgets in tests, and a statistical CI gate on their results."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from .budgets import BudgetResult, BudgetSpec, MetricBudget, Verdict
    from .config import PerfgateConfig, load_config
    from .errors import (
        BudgetError,
        ConfigError,
        MarkerError,
        MeasurementError,
        PerfgateError,
        ResultsFileError,
        UnitError,
    )
    from .model import RunResult, Series, TestResult, load_results, save_results
    from .recorder import Perf

# imported on first use: the pytest plugin loads this package in every session
__getattr__ = lazy_exports(
    __name__,
    {
        "BudgetResult": "budgets",
        "BudgetSpec": "budgets",
        "MetricBudget": "budgets",
        "Verdict": "budgets",
        "PerfgateConfig": "config",
        "load_config": "config",
        "BudgetError": "errors",
        "ConfigError": "errors",
        "MarkerError": "errors",
        "MeasurementError": "errors",
        "PerfgateError": "errors",
        "ResultsFileError": "errors",
        "UnitError": "errors",
        "RunResult": "model",
        "Series": "model",
        "TestResult": "model",
        "load_results": "model",
        "save_results": "model",
        "Perf": "recorder",
    },
)


__all__ = [
    "BudgetError",
    "BudgetResult",
    "BudgetSpec",
    "ConfigError",
    "MarkerError",
    "MeasurementError",
    "MetricBudget",
    "Perf",
    "PerfgateConfig",
    "PerfgateError",
    "ResultsFileError",
    "RunResult",
    "Series",
    "TestResult",
    "UnitError",
    "Verdict",
    "__version__",
    "load_config",
    "load_results",
    "save_results",
]
