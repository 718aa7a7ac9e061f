"""Verify the slowdown knob: the ratio each factor actually achieves, per workload.

    python bench/gate_accuracy/verify_ratio.py [--pairs 30]

In one process, the unchanged and the slowed version of a workload are timed alternately
(ABBA, so drifts cancel), each timing a batch of calls; the achieved ratio is the median of the
per-pair ratios. A fixed per-call overhead (the call itself, the loop) dilutes the ratio below
the nominal one for the tiniest workloads; this says by how much. Each cell is "median of the
per-pair ratios / ratio of the fastest batches"; on a loaded machine the second is the steadier.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from workloads import UNITS, make

FACTORS = (1.05, 1.10, 1.25)


def batch_time(fn: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - start


def achieved(name: str, factor: float, pairs: int) -> tuple[float, float]:
    a, b = make(name, 1.0), make(name, factor)
    probe = batch_time(a, 1) or 1e-6
    calls = max(1, int(0.01 / probe))  # ~10 ms batches
    batch_time(a, calls)
    batch_time(b, calls)
    ratios, times_a, times_b = [], [], []
    for i in range(pairs):
        if i % 2 == 0:
            ta, tb = batch_time(a, calls), batch_time(b, calls)
        else:
            tb, ta = batch_time(b, calls), batch_time(a, calls)
        ratios.append(tb / ta)
        times_a.append(ta)
        times_b.append(tb)
    return statistics.median(ratios), min(times_b) / min(times_a)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=60)
    args = parser.parse_args()
    print("| workload | " + " | ".join(f"x{f:.2f} achieved" for f in FACTORS) + " |")
    print("| --- |" + " ---: |" * len(FACTORS))
    for name in sorted(UNITS):
        cells = ["{:.3f} / {:.3f}".format(*achieved(name, f, args.pairs)) for f in FACTORS]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
