"""Push a run's measurements to a Prometheus Pushgateway (``--perfgate-pushgateway URL``).

Families (gauges, base units; the ``unit`` label says which):

* ``perfgate_measured{test, metric, unit}``: the value each budget judged;
* ``perfgate_budget_target`` / ``perfgate_budget_critical``: the levels;
* ``perfgate_budget_verdict``: 0 pass, 1 warn, 2 fail, -1 not checked;
* ``perfgate_time_median_seconds{test}``: the median of every timed test, budgeted or not;
* ``perfgate_tests``: tests recorded.

Grouped by ``job`` and ``branch`` labels, so each branch's latest run replaces its previous one.
"""

from __future__ import annotations

from typing import Any

from .. import stats
from ..budgets import Verdict
from ..errors import PerfgateError
from ..metrics import TIME_SERIES
from ..model import RunResult

_VERDICT_VALUE = {Verdict.PASS: 0.0, Verdict.WARN: 1.0, Verdict.FAIL: 2.0, Verdict.NOT_CHECKED: -1.0}


def branch_of(run: RunResult) -> str:
    ci = run.metadata.get("ci") or {}
    git = run.metadata.get("git") or {}
    return str(ci.get("CI_COMMIT_REF_NAME") or git.get("branch") or "unknown")


def build_registry(run: RunResult) -> Any:
    """A prometheus_client registry holding the run's figures."""
    try:
        from prometheus_client import CollectorRegistry, Gauge
    except ImportError:  # pragma: no cover - exercised by the install hint test
        raise PerfgateError(
            "--perfgate-pushgateway needs prometheus-client: pip install 'pytest-perfgate[prometheus]'"
        ) from None
    registry = CollectorRegistry()
    labels = ["test", "metric", "unit"]
    measured = Gauge("perfgate_measured", "value judged by a budget, in base units", labels, registry=registry)
    target = Gauge("perfgate_budget_target", "target (warn) level, base units", labels, registry=registry)
    critical = Gauge("perfgate_budget_critical", "critical (fail) level, base units", labels, registry=registry)
    verdict = Gauge("perfgate_budget_verdict", "0 pass, 1 warn, 2 fail, -1 not checked", labels, registry=registry)
    median = Gauge("perfgate_time_median_seconds", "median time per call", ["test"], registry=registry)
    tests = Gauge("perfgate_tests", "tests recorded in the run", registry=registry)
    tests.set(len(run.tests))
    for test in run.tests:
        for v in test.verdicts:
            key = (test.nodeid, v.metric, v.kind.base_unit or v.unit)
            verdict.labels(*key).set(_VERDICT_VALUE[v.verdict])
            for gauge, value in ((measured, v.measured), (target, v.target), (critical, v.critical)):
                if value is not None:
                    gauge.labels(*key).set(value)
        series = test.series.get(TIME_SERIES)
        if series is not None and series.values:
            median.labels(test.nodeid).set(stats.statistic(series.values, "median"))
    return registry


def push(run: RunResult, url: str, *, job: str = "perfgate", timeout: float = 10.0) -> str:
    """Push the run; returns where it went. Raises PerfgateError with the reason on failure."""
    from prometheus_client import push_to_gateway

    registry = build_registry(run)
    branch = branch_of(run)
    try:
        push_to_gateway(url, job=job, registry=registry, grouping_key={"branch": branch}, timeout=timeout)
    except OSError as exc:  # URLError and connection errors are OSErrors
        reason = getattr(exc, "reason", None) or exc
        raise PerfgateError(f"could not push metrics to the Pushgateway at {url}: {reason}") from None
    return f"{url.rstrip('/')}/metrics/job/{job}/branch/{branch}"
