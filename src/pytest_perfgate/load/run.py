"""One load run end to end, for the CLI and the pytest fixture: run locust, compute the figures,
judge them, and turn them into perfgate results (pure apart from the subprocess)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..budgets import BudgetSpec
from ..measure import metadata
from ..model import RunResult, TestResult
from .kpi import judge
from .results import LoadStats, compute, to_test_results
from .runner import LoadSettings, Progress, RawRun, run_locust


@dataclass(frozen=True)
class LoadRun:
    settings: LoadSettings
    raw: RawRun
    stats: LoadStats
    locustfile_id: str  # the locustfile as named in node ids (relative to the current directory)
    wall_time: float
    command: tuple[str, ...]

    def judged(self, spec: BudgetSpec, *, strict: bool = False) -> TestResult:
        return judge(self.stats, spec, self.locustfile_id, strict=strict)

    def run_result(self, total: TestResult | None = None, *, cwd: str = ".") -> RunResult:
        """The run in perfgate's results schema (see :mod:`pytest_perfgate.load.results`)."""
        s = self.settings
        extra = {
            "load": {
                "locustfile": self.locustfile_id,
                "host": s.host,
                "users": s.users,
                "spawn_rate": s.spawn_rate if s.spawn_rate is not None else float(s.users),
                "run_time": s.run_time,
                "warmup": s.warmup,
                "processes": s.processes,
                "expect_workers": s.expect_workers,
                "locust_version": self.raw.locust_version,
                "locust_requests": self.raw.locust_requests,
                "max_users": self.raw.max_users,
                "window": self.stats.window,
            }
        }
        tests = to_test_results(self.stats, self.locustfile_id, total)
        return RunResult(metadata=metadata.collect(cwd, extra=extra), tests=tests)


def locustfile_id(path: str, cwd: str | None = None) -> str:
    """The locustfile relative to ``cwd`` with forward slashes (absolute when outside it)."""
    full = os.path.abspath(path)
    base = os.path.abspath(cwd or os.getcwd())
    rel = os.path.relpath(full, base)
    return (full if rel.startswith("..") else rel).replace(os.sep, "/")


def run_load(
    settings: LoadSettings,
    *,
    progress: Progress | None = None,
    workdir: str | None = None,
    check_target: bool = True,
) -> LoadRun:
    outcome = run_locust(settings, progress=progress, workdir=workdir, check=check_target)
    return LoadRun(
        settings=settings,
        raw=outcome.raw,
        stats=compute(outcome.raw, warmup=settings.warmup),
        locustfile_id=locustfile_id(settings.locustfile),
        wall_time=outcome.wall_time,
        command=outcome.command,
    )
