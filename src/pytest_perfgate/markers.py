"""The one registry of perfgate's markers: registration, validation and docs read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MarkerDoc:
    name: str
    signature: str
    help: str

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
    ),
}
