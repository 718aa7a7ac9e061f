"""Load tests of the example API: locust runs in a subprocess (load_test), the budgets are the
KPIs of perfgate.yml, judged on every response time of the run."""

from __future__ import annotations

import pytest


@pytest.mark.perf_budget(kpi="api_response_time", error_rate="1%")
def test_shopping_mix_latency(load_test, api_server):
    run = load_test("locustfile.py", host=api_server.url, users=10, run_time="5s")
    # every endpoint of the mix was exercised, none failed
    assert {ep.name for ep in run.stats.endpoints} == {
        "GET /products",
        "GET /products/search",
        "GET /products/[id]",
    }
    assert run.stats.total.failures == 0


@pytest.mark.perf_budget(kpi="api_throughput", requests=200)
def test_shopping_mix_throughput(load_test, api_server):
    load_test("locustfile.py", host=api_server.url, users=10, run_time="5s")
