"""CPU cost of perfgate's locust listener per request, measured in isolation (deterministic,
unlike a whole load run on a shared machine): the ``request`` event handler locust calls for
every request, and the master's final JSON dump per row.

    python bench/load/listener_cost.py

Runs in a subprocess of its own because importing the listener imports locust (gevent's
monkey-patching must not reach this process).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LISTENER_DIR = Path(__file__).resolve().parents[2] / "src" / "pytest_perfgate" / "load"

PROBE = r"""
import json, os, sys, tempfile, time, timeit
sys.path.insert(0, sys.argv[1])
import perfgate_listener as listener

n = 200_000
c = listener._Collector()
ok = min(timeit.repeat(lambda: c.on_request("GET", "/products", 12.345678, None), number=n, repeat=5)) / n
c.rows.clear()
exc = ValueError("HTTP 500")
failed = min(timeit.repeat(lambda: c.on_request("GET", "/products", 12.345678, exc), number=n, repeat=5)) / n
c.rows = [["GET", "/products", 12.345678, time.time(), None] for _ in range(100_000)]
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "raw.json")
    start = time.perf_counter()
    with open(path, "w") as handle:
        json.dump({"rows": c.rows}, handle, separators=(",", ":"))
    dump = (time.perf_counter() - start) / len(c.rows)
    size = os.path.getsize(path) / len(c.rows)
print(f"request handler, success: {ok * 1e6:.2f} us per request")
print(f"request handler, failure: {failed * 1e6:.2f} us per request")
print(f"final JSON dump on the master: {dump * 1e6:.2f} us and {size:.0f} bytes per request")
"""


def main() -> int:
    return subprocess.call([sys.executable, "-c", PROBE, str(LISTENER_DIR)])


if __name__ == "__main__":
    sys.exit(main())
