"""Budgeted tests for the catalog: run them with `pytest --perfgate-save=.perfgate/current.json`."""

import pytest


@pytest.mark.perf_budget(kpi="catalog_search")
def test_search_by_category(perf, catalog):
    """Levels from perfgate.yml (KPI catalog_search); the perf fixture times a calibrated loop."""
    found = perf(catalog.search, "health", limit=20)
    assert len(found) == 20


@pytest.mark.perf_budget(p95=("2us", "250ms"))
def test_render_product_page(perf, catalog):
    """The target (2us) is unrealistically tight on purpose: this shows a warning, not a failure."""
    page = perf(catalog.render_page, "garden")
    assert page.startswith("<html>")
    perf.record("page_weight", len(page.encode()), unit="B")


@pytest.mark.perf_budget(median="1s", mem_peak=("1MB", "4MB"))
def test_export_csv_memory(perf, catalog):
    """Deliberately over budget: export_csv builds the whole file in memory (about 10 MB for
    20,000 products). The failure report names the lines that held the memory at the peak."""
    text = perf(catalog.export_csv)
    assert text.count("\n") == 20_000


@pytest.mark.perf_budget(p95=("100us", "1ms"))
def test_search_text_slow(perf, catalog):
    """Deliberately over budget: search_text splits every description of 20,000 products (a few
    tens of ms anywhere). The failure report shows the hot path: search_text -> <listcomp> ->
    _matches -> str.split."""
    assert perf(catalog.search_text, "organic")


@pytest.mark.perf_budget(p99="5ms", metrics={"cache_hit_ratio": (0.9, 0.5)})
def test_details_with_cache(perf, catalog):
    """A custom, higher-is-better figure with its own levels next to a latency budget."""
    cache: dict[int, object] = {}
    hits = 0

    def lookup(product_id: int) -> object:
        nonlocal hits
        if product_id in cache:
            hits += 1
            return cache[product_id]
        cache[product_id] = catalog.details(product_id)
        return cache[product_id]

    perf(lambda: [lookup(i % 50) for i in range(100)])
    perf.record("cache_hit_ratio", 0.5 + 0.5 * (len(cache) == 50))


@pytest.mark.perf_budget(kpi="api_response_time", p95="100ms")
def test_search_request():
    """No fixture: the whole test call is one sample; the marker's p95 overrides the KPI's."""
    for category in ("health", "books", "toys"):
        assert catalog_search_request(category)


def catalog_search_request(category: str) -> list[int]:
    from catalog import Catalog

    return [p.id for p in Catalog.generate(200, seed=1).search(category)]


@pytest.mark.perf_budget(median=("500us", "5ms"))
def test_search_with_price_filter(benchmark, catalog):
    """pytest-benchmark's fixture works too: its raw rounds are judged and saved."""
    benchmark(catalog.search, "toys", max_price_cents=50_000)
