"""The object behind the ``load_test`` fixture (pure: no pytest).

``load_test(locustfile, host=..., users=..., run_time=...)`` runs locust against a service the
test started and records the run's total on the test's recorder: ``time`` (every response
time), ``rps``, ``error_rate`` and ``requests``, so the test's
``perf_budget(kpi=..., p95=..., rps=..., error_rate=...)`` is judged by perfgate's core like any
budget. Per-endpoint figures go in the test's evidence (``load.endpoints``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import MeasurementError
from ..recorder import Mode, Recorder
from .run import LoadRun, run_load
from .runner import LoadSettings, parse_run_time


class LoadTest:
    def __init__(self, recorder: Recorder, base_dir: str) -> None:
        self._recorder = recorder
        self._base_dir = base_dir
        self.run: LoadRun | None = None

    def __call__(
        self,
        locustfile: str | os.PathLike[str],
        *,
        host: str,
        users: int = 10,
        spawn_rate: float | None = None,
        run_time: str | int = "5s",
        processes: int = 1,
        warmup: float = 0.0,
        html: str | os.PathLike[str] | None = None,
        connect_timeout: float = 5.0,
        locust_args: Sequence[str] = (),
    ) -> LoadRun:
        """Run the load; a relative ``locustfile`` is found next to the test file."""
        if self.run is not None:
            raise MeasurementError(
                "load_test(...) was already called in this test; run one load per test (split the test)"
            )
        path = os.fspath(locustfile)
        if not os.path.isabs(path):
            path = os.path.join(self._base_dir, path)
        settings = LoadSettings(
            locustfile=path,
            host=host,
            users=users,
            spawn_rate=spawn_rate,
            run_time=parse_run_time(run_time),
            processes=processes,
            warmup=warmup,
            connect_timeout=connect_timeout,
            html=os.fspath(html) if html is not None else None,
            locust_args=tuple(locust_args),
        )
        run = run_load(settings)
        self.run = run
        recorder = self._recorder
        recorder.mode = Mode.LOAD
        for series in run.stats.total.series().values():
            recorder.set_series(series)
        recorder.evidence["load"] = {
            "locustfile": run.locustfile_id,
            "users": users,
            "run_time": settings.run_time,
            "processes": processes,
            "window": run.stats.window,
            "total": run.stats.total.summary(),
            "endpoints": {ep.name: ep.summary() for ep in run.stats.endpoints},
        }
        return run
