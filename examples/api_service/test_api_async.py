"""The async handler ``GET /categories/{category}/stats``, timed through the service's own code
path: the ASGI app (routing, handler, store) called in-process by httpx, every call awaited in the
test's event loop (``await perf.aio``). anyio's pytest plugin runs the test (anyio comes with
Starlette); ``@pytest.mark.asyncio`` with pytest-asyncio works the same way."""

from __future__ import annotations

import httpx
import pytest
from app import create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.perf_budget(median="5ms", critical_median="50ms")
async def test_category_stats_latency(perf):
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await perf.aio(client.get, "/categories/health/stats")
        assert response.status_code == 200
        stats = response.json()
        assert stats["category"] == "health" and stats["products"] == 15 and stats["share"] == 0.125
        assert (await client.get("/categories/nope/stats")).status_code == 404
