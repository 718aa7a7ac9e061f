"""Cost of the evidence profilers: one call of each workload, plain vs under profile_memory
(tracemalloc + a profile hook) vs under cProfile, alternated, median of repetitions.

Usage: python bench/evidence_overhead.py [--reps 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

from pytest_perfgate.measure.cpuprofile import profile_cpu
from pytest_perfgate.measure.memprofile import profile_memory

PAYLOAD = [{"id": i, "name": f"item {i}", "tags": ["a", "b", "c"]} for i in range(2000)]


def many_small_calls() -> int:
    def f(x: int) -> int:
        return x + 1

    return sum(f(i) for i in range(100_000))


def allocation_heavy() -> int:
    rows = [("x" * 50, i, [i, i + 1]) for i in range(50_000)]
    return len({r[1]: r for r in rows})


def json_round_trip() -> int:
    return len(json.loads(json.dumps(PAYLOAD)))


WORKLOADS: dict[str, Callable[[], Any]] = {
    "many_small_calls": many_small_calls,
    "allocation_heavy": allocation_heavy,
    "json_round_trip": json_round_trip,
}


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    rows = []
    print(f"{'workload':18s} {'plain':>9s} {'memory profile':>15s} {'cpu profile':>12s}")
    for name, fn in WORKLOADS.items():
        plain, mem, cpu = [], [], []
        for _ in range(args.reps):
            plain.append(timed(fn))
            mem.append(timed(lambda fn=fn: profile_memory(fn)))
            cpu.append(timed(lambda fn=fn: profile_cpu(fn, min_time=0.0, max_calls=1)))
        p, m, c = (statistics.median(v) for v in (plain, mem, cpu))
        rows.append({"workload": name, "plain_s": p, "memory_ratio": m / p, "cpu_ratio": c / p})
        print(f"{name:18s} {p * 1e3:7.1f}ms {m / p:14.1f}x {c / p:11.1f}x")
    print(f"written: {write_result('evidence_overhead', {'reps': args.reps, 'rows': rows})}")


if __name__ == "__main__":
    main()
