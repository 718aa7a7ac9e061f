"""A small marketplace API on ASGI (Starlette), served by uvicorn: the load-test example.

Endpoints (JSON):

* ``GET /health``                           -> ``{"status": "ok", "products": N}``
* ``GET /products?limit=20&after=0``        -> a page of products by id (keyset pagination)
* ``GET /products/search?category=health``  -> products of a category (``limit`` as above)
* ``GET /products/{id}``                    -> one product, 404 when unknown; each view is
  written to the ``audit`` collection (who viewed what, when), as the team's services audit reads
* ``GET /categories/{category}/stats``      -> ``{"category", "products", "share", "in_stock", "average_price"}``
  (an async handler that awaits two store calls concurrently; its perf test is
  ``test_api_async.py``: ``await perf.aio(client.get, ...)`` through the ASGI app)
* ``GET /categories/{category}/ranking``    -> the category's products by a computed score
  (CPU-heavy on purpose: :func:`score_products`, pure Python, a few ms per request)
* ``GET /reports/{category}``               -> ``{"category", "products", "bytes"}`` of a sales report
  (memory-heavy on purpose: :func:`build_report_cache` holds 16 MiB for the whole request)

The last two are the deliberate hot spots ``perfgate load --serve ... --profile cpu|memory`` is
shown to find by function name (docs/load.md); the locustfile hits them only when asked
(``--locust-arg=--analytics``).

Data lives in MongoDB: a real server when ``API_SERVICE_MONGO_URI`` is set (e.g.
``mongodb://localhost:27017``), otherwise mongomock (in memory, seeded at start). pymongo calls
block, so on a real server they run in Starlette's thread pool; mongomock answers in
under a millisecond for the default 120 products and is not thread-safe, so its calls run inline
on the event loop. mongomock scans every document on every query (it has no indexes): it is a
stand-in for correctness, and the figures a load test gets against it are the service's HTTP
and Python overhead plus that scan, not MongoDB's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CATEGORIES = ("health", "garden", "kitchen", "books", "toys", "sports", "music", "office")
URI_ENV = "API_SERVICE_MONGO_URI"
DB_ENV = "API_SERVICE_DB"
SIZE_ENV = "API_SERVICE_PRODUCTS"
MAX_LIMIT = 100
#: mongomock has no indexes: every query scans (and copies the matches of) the whole collection at
#: about 5us a document, so the in-memory default stays small; a real server uses the indexes
DEFAULT_PRODUCTS = 120
SUMMARY = {"_id": 1, "name": 1, "price": 1}
#: what build_report_cache holds per request (the deliberate memory hog)
REPORT_CACHE_BYTES = 16 * 2**20
#: rounds of score_products per product (the deliberate CPU hog: a few ms per request)
SCORE_ROUNDS = 4000

T = TypeVar("T")


def seed(db: Any, products: int, *, rng_seed: int = 7) -> None:
    """(Re)create the products collection with ``products`` documents and its indexes."""
    rng = random.Random(rng_seed)
    db.products.drop()
    db.audit.drop()
    db.products.insert_many(
        [
            {
                "_id": i,
                "name": f"product {i}",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "price": round(rng.uniform(1, 500), 2),
                "stock": rng.randint(0, 100),
                "created": 1_700_000_000 + i * 60,
            }
            for i in range(1, products + 1)
        ]
    )
    db.products.create_index([("category", 1), ("_id", 1)])


class Store:
    """The service's data access: three queries and one audit write."""

    def __init__(self, db: Any, *, blocking: bool) -> None:
        self.db = db
        self.blocking = blocking

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(fn, *args) if self.blocking else fn(*args)

    def count(self) -> int:
        return int(self.db.products.estimated_document_count())

    def page(self, limit: int, after: int) -> list[dict[str, Any]]:
        """Keyset pagination: the ``limit`` products after id ``after`` (no skip-scan)."""
        query = {"_id": {"$gt": after, "$lte": after + limit}}
        return sorted(self.db.products.find(query, SUMMARY), key=lambda doc: int(doc["_id"]))

    def search(self, category: str, limit: int) -> list[dict[str, Any]]:
        return list(self.db.products.find({"category": category}, SUMMARY).limit(limit))

    def category(self, category: str) -> list[dict[str, Any]]:
        return list(self.db.products.find({"category": category}, {"_id": 1, "price": 1, "stock": 1}))

    async def category_stats(self, category: str) -> dict[str, Any]:
        """Figures of one category: the products and the store's count, awaited together."""
        products, total = await asyncio.gather(self.call(self.category, category), self.call(self.count))
        prices = [doc["price"] for doc in products]
        return {
            "category": category,
            "products": len(products),
            "share": round(len(products) / total, 4) if total else 0.0,
            "in_stock": sum(1 for doc in products if doc["stock"] > 0),
            "average_price": round(sum(prices) / len(prices), 2) if prices else None,
        }

    def details(self, product_id: int, viewer: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = self.db.products.find_one({"_id": product_id})
        if doc is not None:
            self.db.audit.insert_one({"product": product_id, "viewer": viewer, "at": time.time()})
        return doc


def score_products(products: list[dict[str, Any]], rounds: int = SCORE_ROUNDS) -> list[tuple[float, int]]:
    """A deliberate CPU hog: a made-up relevance score per product, computed the slow way (a pure
    Python loop of ``rounds`` steps per product). Found by ``perfgate load --profile cpu``."""
    scored = []
    for doc in products:
        score, price, stock = 0.0, float(doc["price"]), float(doc["stock"]) + 1.0
        for step in range(1, rounds + 1):
            score += (price % step) / (stock * step) + (step % 7) * 0.001
        scored.append((round(score, 6), int(doc["_id"])))
    scored.sort(reverse=True)
    return scored


def build_report_cache(products: list[dict[str, Any]], size: int = REPORT_CACHE_BYTES) -> bytes:
    """A deliberate memory hog: renders every product as a fixed-width row and repeats the rows
    until ``size`` bytes (a cache nobody reuses), held by the caller for the whole request.
    Found by ``perfgate load --profile memory``."""
    rows = "".join(f"{doc['_id']:>8}{doc['price']:>12.2f}{doc['stock']:>6}\n" for doc in products).encode()
    return rows * max(1, size // max(len(rows), 1))


def open_store() -> Store:
    uri = os.environ.get(URI_ENV)
    size = int(os.environ.get(SIZE_ENV, str(DEFAULT_PRODUCTS)))
    if uri:
        import pymongo

        client: Any = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        db = client[os.environ.get(DB_ENV, "api_service_example")]
        if db.products.estimated_document_count() != size:
            seed(db, size)
        return Store(db, blocking=True)
    import mongomock

    db = mongomock.MongoClient()["api_service_example"]
    seed(db, size)
    return Store(db, blocking=False)


def _int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def create_app(store: Store | None = None) -> Starlette:
    state: dict[str, Store] = {}

    def get_store() -> Store:
        if "store" not in state:
            state["store"] = store or open_store()
        return state["store"]

    async def health(request: Request) -> JSONResponse:
        s = get_store()
        return JSONResponse({"status": "ok", "products": await s.call(s.count)})

    async def products(request: Request) -> JSONResponse:
        try:
            limit = _int(request, "limit", 20, low=1, high=MAX_LIMIT)
            after = _int(request, "after", 0, low=0, high=10**9)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        s = get_store()
        return JSONResponse({"items": await s.call(s.page, limit, after)})

    async def search(request: Request) -> JSONResponse:
        category = request.query_params.get("category")
        if category not in CATEGORIES:
            accepted = ", ".join(CATEGORIES)
            return JSONResponse({"error": f"unknown category {category!r}; accepted: {accepted}"}, status_code=400)
        try:
            limit = _int(request, "limit", 20, low=1, high=MAX_LIMIT)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        s = get_store()
        return JSONResponse({"items": await s.call(s.search, category, limit)})

    async def details(request: Request) -> JSONResponse:
        try:
            product_id = int(request.path_params["product_id"])
        except ValueError:
            return JSONResponse({"error": "product id must be a whole number"}, status_code=400)
        s = get_store()
        viewer = request.headers.get("x-user", "anonymous")
        doc = await s.call(s.details, product_id, viewer)
        if doc is None:
            return JSONResponse({"error": f"no product {product_id}"}, status_code=404)
        return JSONResponse(doc)

    async def category_stats(request: Request) -> JSONResponse:
        category = request.path_params["category"]
        if category not in CATEGORIES:
            accepted = ", ".join(CATEGORIES)
            return JSONResponse({"error": f"unknown category {category!r}; accepted: {accepted}"}, status_code=404)
        return JSONResponse(await get_store().category_stats(category))

    async def ranking(request: Request) -> JSONResponse:
        category = request.path_params["category"]
        if category not in CATEGORIES:
            return JSONResponse({"error": f"unknown category {category!r}"}, status_code=404)
        s = get_store()
        products = await s.call(s.category, category)
        return JSONResponse({"category": category, "ranking": [pid for _, pid in score_products(products)[:10]]})

    async def report(request: Request) -> JSONResponse:
        category = request.path_params["category"]
        if category not in CATEGORIES:
            return JSONResponse({"error": f"unknown category {category!r}"}, status_code=404)
        s = get_store()
        products = await s.call(s.category, category)
        cache = build_report_cache(products)
        await asyncio.sleep(0.05)  # the report is "streamed" while the cache is held
        return JSONResponse({"category": category, "products": len(products), "bytes": len(cache)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        get_store()  # seed before the first request, not during it
        yield

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/products", products),
            Route("/products/search", search),
            Route("/products/{product_id}", details),
            Route("/categories/{category}/stats", category_stats),
            Route("/categories/{category}/ranking", ranking),
            Route("/reports/{category}", report),
        ],
        lifespan=lifespan,
    )


app = create_app()
