"""GitLab's ``load_performance`` report: the JSON k6 writes with ``--summary-export``.

GitLab's merge-request widget reads ``metrics.checks.passes`` / ``fails`` (success rate),
``metrics.http_req_waiting["p(90)"]`` and ``["p(95)"]`` (TTFB, milliseconds) and
``metrics.http_reqs.rate`` (requests per second), and compares them with the target branch's
report. Locust measures the whole response (headers and body), not the time to first byte, so
``http_req_waiting`` carries the same figures as ``http_req_duration``; for small JSON answers
on a fast link the two are the same to well under a millisecond.

A "check" here is a request: it passes when locust counted it as a success. Each endpoint is a
named check in ``root_group.checks``, as k6 lists its checks.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from .results import EndpointStats, LoadStats


def _trend(ep: EndpointStats) -> dict[str, float]:
    """k6 trend figures in milliseconds."""

    def ms(statistic: str) -> float:
        value = ep.statistic(statistic)
        return 0.0 if math.isnan(value) else value * 1000.0

    return {
        "avg": ms("mean"),
        "min": ms("min"),
        "med": ms("p50"),
        "max": ms("max"),
        "p(90)": ms("p90"),
        "p(95)": ms("p95"),
    }


def _check_id(name: str) -> str:
    return hashlib.md5(name.encode("utf-8"), usedforsecurity=False).hexdigest()


def k6_summary(load: LoadStats, *, max_users: int = 0) -> dict[str, Any]:
    """The k6 ``--summary-export`` document for a load run."""
    total = load.total
    passes, fails = total.requests - total.failures, total.failures
    trend = _trend(total)
    checks = {}
    for ep in load.endpoints:
        name = f"{ep.name} succeeds"
        checks[name] = {
            "name": name,
            "path": f"::{name}",
            "id": _check_id(name),
            "passes": ep.requests - ep.failures,
            "fails": ep.failures,
        }
    return {
        "root_group": {"name": "", "path": "", "id": _check_id(""), "groups": {}, "checks": checks},
        "metrics": {
            "checks": {"passes": passes, "fails": fails, "value": passes / total.requests if total.requests else 0.0},
            "http_reqs": {"count": total.requests, "rate": total.rps},
            "http_req_failed": {"passes": fails, "fails": passes, "value": total.error_rate},
            "http_req_waiting": dict(trend),
            "http_req_duration": dict(trend),
            "iterations": {"count": total.requests, "rate": total.rps},
            "vus_max": {"value": max_users, "min": max_users, "max": max_users},
        },
    }
