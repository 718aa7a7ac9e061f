"""A small product catalog, in the spirit of a marketplace API: list, search, details, export.

Deliberately ordinary code: an index by category, an HTML-ish page renderer, and a CSV export
that builds the whole file in memory (the kind of thing a memory budget catches).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

CATEGORIES = ("health", "garden", "books", "toys", "kitchen", "sports", "music", "tools")


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    category: str
    price_cents: int
    description: str


class Catalog:
    def __init__(self, products: list[Product]) -> None:
        self._products = {p.id: p for p in products}
        self._by_category: dict[str, list[Product]] = defaultdict(list)
        for product in products:
            self._by_category[product.category].append(product)
        for items in self._by_category.values():
            items.sort(key=lambda p: p.price_cents)

    @classmethod
    def generate(cls, n: int, seed: int = 7) -> Catalog:
        rng = random.Random(seed)
        products = [
            Product(
                id=i,
                name=f"product {i}",
                category=rng.choice(CATEGORIES),
                price_cents=rng.randint(100, 100_000),
                description=" ".join(
                    rng.choice(("fresh", "durable", "organic", "compact", "classic")) for _ in range(12)
                ),
            )
            for i in range(n)
        ]
        return cls(products)

    def search(self, category: str, *, limit: int = 20, max_price_cents: int | None = None) -> list[Product]:
        items = self._by_category.get(category, [])
        if max_price_cents is not None:
            items = [p for p in items if p.price_cents <= max_price_cents]
        return items[:limit]

    def search_text(self, word: str, *, limit: int = 20) -> list[Product]:
        """Full-text search without an index: scans every description (what a time budget catches)."""
        found = [p for p in self._products.values() if _matches(p.description, word)]
        found.sort(key=lambda p: p.price_cents)
        return found[:limit]

    def details(self, product_id: int) -> Product:
        return self._products[product_id]

    def render_page(self, category: str) -> str:
        rows = "".join(
            f"<li><a href='/p/{p.id}'>{p.name}</a> {p.price_cents / 100:.2f} - {p.description}</li>"
            for p in self.search(category, limit=200)
        )
        return f"<html><body><h1>{category}</h1><ul>{rows}</ul></body></html>"

    def export_csv(self) -> str:
        lines = ["id,name,category,price,description"]
        lines.extend(
            f"{p.id},{p.name},{p.category},{p.price_cents / 100:.2f},{p.description}" for p in self._products.values()
        )
        return "\n".join(lines)


def _matches(text: str, word: str) -> bool:
    return word in text.split()
