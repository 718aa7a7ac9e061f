"""Load profile for the example API: browse (list), search by category, open a product.

Weights follow a shop's traffic: most users browse and search, fewer open a product page.
Request names group the product pages under one name, so percentiles are per endpoint, not
per product id.

``--analytics`` (a locust option of this file; ``perfgate load ... --locust-arg=--analytics``)
adds the service's two deliberate hot spots to the mix: the category ranking (CPU-heavy) and the
sales report (memory-heavy), which ``perfgate load --serve ... --profile cpu|memory`` finds by
function name. Without it the mix is the three shop endpoints only.
"""

from __future__ import annotations

import random
from typing import Any

from locust import FastHttpUser, between, events, task

CATEGORIES = ("health", "garden", "kitchen", "books", "toys", "sports", "music", "office")
PRODUCTS = 120


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--analytics",
        action="store_true",
        default=False,
        help="also open the category ranking (CPU-heavy) and the sales report (memory-heavy)",
    )


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

    @task(2)
    def ranking(self) -> None:
        if self.environment.parsed_options and self.environment.parsed_options.analytics:
            self.client.get(f"/categories/{random.choice(CATEGORIES)}/ranking", name="/categories/[category]/ranking")

    @task(1)
    def report(self) -> None:
        if self.environment.parsed_options and self.environment.parsed_options.analytics:
            self.client.get(f"/reports/{random.choice(CATEGORIES)}", name="/reports/[category]")
