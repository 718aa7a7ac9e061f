"""Cost of the allocation counter on the call itself: each workload timed plain and between
alloc_start()/alloc_stop() (no warm-up, no gc.collect: only the wrappers' cost), best of 30.

    PYTHONPATH=src python bench/instructions/alloc_overhead.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import WORKLOADS

from pytest_perfgate.counts import native


def best(fn: object, counted: bool, rounds: int = 30) -> float:
    module = native()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        if counted:
            module.alloc_start()
        fn()  # type: ignore[operator]
        if counted:
            module.alloc_stop()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    print("| workload | plain (best of 30) | counted (best of 30) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, fn in WORKLOADS.items():
        fn()
        plain, counted = best(fn, False), best(fn, True)
        print(f"| {name} | {plain * 1e3:.3f} ms | {counted * 1e3:.3f} ms | {counted / plain:.2f} |")


if __name__ == "__main__":
    main()
