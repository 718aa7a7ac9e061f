"""pytest-perfgate: performance budgets in tests, and a statistical CI gate on their results."""

from __future__ import annotations

__version__ = "0.1.0"

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
