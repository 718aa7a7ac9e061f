"""The one registry of perfgate's markers: registration, validation and docs read it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Validator = Callable[[tuple[Any, ...], Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class MarkerDoc:
    name: str
    signature: str
    help: str
    #: "module:function" validating (args, kwargs) into the arguments to keep, raising a
    #: PerfgateError; imported only when a test carries the marker
    validator: str | None = None

    def load_validator(self) -> Validator | None:
        if self.validator is None:
            return None
        module, _, function = self.validator.partition(":")
        validate: Validator = getattr(importlib.import_module(module), function)
        return validate

    @property
    def ini_line(self) -> str:
        return f"{self.name}({self.signature}): {self.help}"


MARKERS: dict[str, MarkerDoc] = {
    "perf_budget": MarkerDoc(
        "perf_budget",
        "p95='200ms', critical_p95=..., mem_peak='50MB', kpi='name', metrics={...}, max_regression='10%'",
        "performance budget: each metric with a target (warn) and/or critical (fail) level; see docs/budgets.md",
    ),
    "race": MarkerDoc(
        "race",
        "schedules=300, strategy='random'|'pct'|'exhaustive', seed=0, depth=3, preemption_bound=2, seconds=60",
        "defaults for the race fixture's race.run (controlled, seeded interleavings); see docs/race.md",
        validator="pytest_perfgate.race.options:marker_kwargs",
    ),
}
