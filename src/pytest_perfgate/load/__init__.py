"""Load tests with locust, driven by perfgate's KPIs (see docs/load.md).

Locust runs in a subprocess (it monkey-patches its process with gevent); nothing here imports
it. :func:`run_load` runs one load test; :mod:`.kpi` judges it; :mod:`.results` puts it in the
results schema the gate reads; :mod:`.gitlab` writes GitLab's load_performance report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .kpi import build_spec, judge, parse_budget_option
    from .results import EndpointStats, LoadStats, compute
    from .run import LoadRun, run_load
    from .runner import LoadSettings, RawRun, check_locust, check_target, listener_path, parse_run_time

__getattr__ = lazy_exports(
    __name__,
    {
        "build_spec": "kpi",
        "judge": "kpi",
        "parse_budget_option": "kpi",
        "EndpointStats": "results",
        "LoadStats": "results",
        "compute": "results",
        "LoadRun": "run",
        "run_load": "run",
        "LoadSettings": "runner",
        "RawRun": "runner",
        "check_locust": "runner",
        "check_target": "runner",
        "listener_path": "runner",
        "parse_run_time": "runner",
    },
)


__all__ = [
    "EndpointStats",
    "LoadRun",
    "LoadSettings",
    "LoadStats",
    "RawRun",
    "build_spec",
    "check_locust",
    "check_target",
    "compute",
    "judge",
    "listener_path",
    "parse_budget_option",
    "parse_run_time",
    "run_load",
]
