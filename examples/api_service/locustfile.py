"""Load profile for the example API: browse (list), search by category, open a product.

Weights follow a shop's traffic: most users browse and search, fewer open a product page.
Request names group the product pages under one name, so percentiles are per endpoint, not
per product id.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, between, task

CATEGORIES = ("health", "garden", "kitchen", "books", "toys", "sports", "music", "office")
PRODUCTS = 120


class Shopper(FastHttpUser):
    wait_time = between(0.0, 0.01)

    @task(4)
    def browse(self) -> None:
        self.client.get(f"/products?limit=20&after={random.randrange(0, PRODUCTS, 20)}", name="/products")

    @task(4)
    def search(self) -> None:
        self.client.get(f"/products/search?category={random.choice(CATEGORIES)}", name="/products/search")

    @task(2)
    def details(self) -> None:
        product = random.randint(1, PRODUCTS)
        self.client.get(f"/products/{product}", name="/products/[id]", headers={"X-User": f"u{product % 50}"})
