"""Load tests with locust, driven by perfgate's KPIs (see docs/load.md).

Locust runs in a subprocess (it monkey-patches its process with gevent); nothing here imports
it. :func:`run_load` runs one load test; :mod:`.kpi` judges it; :mod:`.results` puts it in the
results schema the gate reads; :mod:`.gitlab` writes GitLab's load_performance report.
:mod:`.serve` starts the service under load itself (``--serve``); :mod:`.profile` samples its CPU
with py-spy during the measured window (:mod:`.flamegraph` draws it), :mod:`.memory` runs it
under memray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_module

if TYPE_CHECKING:
    from .kpi import build_spec as build_spec
    from .kpi import judge as judge
    from .kpi import parse_budget_option as parse_budget_option
    from .profile import ServiceCpuProfile as ServiceCpuProfile
    from .results import EndpointStats as EndpointStats
    from .results import LoadStats as LoadStats
    from .results import compute as compute
    from .run import LoadRun as LoadRun
    from .run import ProfileSettings as ProfileSettings
    from .run import ServiceRun as ServiceRun
    from .run import run_load as run_load
    from .runner import LoadSettings as LoadSettings
    from .runner import RawRun as RawRun
    from .runner import check_locust as check_locust
    from .runner import check_target as check_target
    from .runner import listener_path as listener_path
    from .runner import parse_run_time as parse_run_time
    from .serve import ServeSettings as ServeSettings

#: the public names, name -> the submodule defining it (imported on first use); ``__all__``,
#: ``__getattr__`` and ``__dir__`` come from it
_EXPORTS = {
    "build_spec": "kpi",
    "judge": "kpi",
    "parse_budget_option": "kpi",
    "EndpointStats": "results",
    "LoadStats": "results",
    "compute": "results",
    "ServiceCpuProfile": "profile",
    "LoadRun": "run",
    "ProfileSettings": "run",
    "ServiceRun": "run",
    "run_load": "run",
    "LoadSettings": "runner",
    "RawRun": "runner",
    "check_locust": "runner",
    "check_target": "runner",
    "listener_path": "runner",
    "parse_run_time": "runner",
    "ServeSettings": "serve",
}

__getattr__, __dir__ = lazy_module(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
