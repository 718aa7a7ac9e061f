"""Memory evidence, measured: each tracer's slowdown on the catalog example's workloads, and its
figures on constructed programs with known answers.

Cost: one call of each workload plain, under perfgate's tracemalloc profiler (a profile hook;
``profile_memory(tracer="tracemalloc")``), under a bare ``memray.Tracker`` (memray's own cost,
with and without ``trace_python_allocators``) and as a whole ``profile_memory(tracer="memray")``
(the tracker, then reading the capture into a profile). Alternated, median of ``--reps``; ratios to
the plain median of the same run.

Correctness: the known-answer programs of tests/test_memory_evidence.py, each tracer's figure
next to the answer.

Usage: PYTHONPATH=src python bench/evidence/memory.py [--reps 5]   (memray installed)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(ROOT / "examples" / "catalog"))
from _common import write_result  # noqa: E402
from catalog import Catalog  # noqa: E402
from evidence_overhead import WORKLOADS as SYNTHETIC  # noqa: E402

from pytest_perfgate.evidence import MemoryProfile  # noqa: E402
from pytest_perfgate.measure.memprofile import profile_memory  # noqa: E402

MB = 1024 * 1024
CATALOG = Catalog.generate(20_000)
KEEP: list[object] = []


def _repeat(fn: Callable[[], Any], times: int) -> Callable[[], Any]:
    def run() -> None:
        for _ in range(times):
            fn()

    return run


# the catalog example's tests' calls (examples/catalog/test_catalog.py), repeated to >= ~10 ms
WORKLOADS: dict[str, Callable[[], Any]] = {
    "catalog.search x50k": _repeat(lambda: CATALOG.search("health", limit=20), 50_000),
    "catalog.render_page x200": _repeat(lambda: CATALOG.render_page("garden"), 200),
    "catalog.export_csv": CATALOG.export_csv,
    "catalog.search_text": lambda: CATALOG.search_text("organic"),
    "catalog.details x100k": _repeat(lambda: CATALOG.details(7), 100_000),
    **SYNTHETIC,
}


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare_tracker(fn: Callable[[], Any], *, python_allocators: bool) -> float:
    """Seconds of ``fn`` inside a memray Tracker (the capture is written, not read)."""
    import memray

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.bin")
        with memray.Tracker(path, trace_python_allocators=python_allocators):
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start


def cost(reps: int) -> list[dict[str, Any]]:
    """Ratios: the code's time under each tracer over its plain time. ``memray_profile`` and
    ``tracemalloc`` are whole ``profile_memory`` calls (seconds also given): for memray that adds
    starting and stopping the tracker and reading the capture, a fixed cost of a few tenths of a
    second that dominates short calls."""
    rows = []
    print(
        f"{'workload':26s} {'plain':>8s} | {'tracemalloc':>11s} {'memray':>7s} {'memray+py':>9s} | "
        f"{'tracemalloc':>11s} {'memray':>7s}  (whole profile_memory, s)"
    )
    for name, fn in WORKLOADS.items():
        fn()  # warm
        runs: dict[str, list[float]] = {
            k: [] for k in ("plain", "tracemalloc", "memray", "memray_py", "memray_profile")
        }
        for _ in range(reps):
            runs["plain"].append(timed(fn))
            runs["tracemalloc"].append(timed(lambda fn=fn: profile_memory(fn, tracer="tracemalloc")))
            runs["memray"].append(bare_tracker(fn, python_allocators=False))
            runs["memray_py"].append(bare_tracker(fn, python_allocators=True))
            runs["memray_profile"].append(timed(lambda fn=fn: profile_memory(fn, tracer="memray")))
        med = {k: statistics.median(v) for k, v in runs.items()}
        ratios = {k: med[k] / med["plain"] for k in med if k != "plain"}
        rows.append({"workload": name, "plain_s": med["plain"], **{f"{k}_ratio": r for k, r in ratios.items()}})
        rows[-1].update(tracemalloc_s=med["tracemalloc"], memray_profile_s=med["memray_profile"])
        print(
            f"{name:26s} {med['plain'] * 1e3:6.1f}ms | {ratios['tracemalloc']:10.1f}x {ratios['memray']:6.1f}x "
            f"{ratios['memray_py']:8.1f}x | {med['tracemalloc']:10.2f}s {med['memray_profile']:6.2f}s"
        )
    return rows


# --------------------------------------------------------------------------- known answers


def holds_eight_mb() -> int:
    buffer = bytearray(8 * MB)
    return int(nothing_allocated(len(buffer)))


def nothing_allocated(n: int) -> bool:
    return n > 0


def program() -> int:
    return holds_eight_mb()


def noop() -> None:
    pass


def calls_noop() -> None:
    for _ in range(20_000):
        noop()


def keeps_one() -> None:
    KEEP.append(bytearray(3 * MB))


def _fn(profile: MemoryProfile, name: str) -> tuple[int, int]:
    for f in profile.functions:
        if f.function.rsplit(".", 1)[-1] == name:
            return f.self_net, f.inclusive_peak
    return 0, 0


def correctness() -> list[dict[str, Any]]:
    rows = []
    for tracer in ("memray", "tracemalloc"):
        eight = profile_memory(program, tracer=tracer)
        own, inclusive = _fn(eight, "holds_eight_mb")
        figure = inclusive if tracer == "tracemalloc" else own  # the hook's "self (net)" also keeps it
        rows.append({"tracer": tracer, "case": "8 MB held by holds_eight_mb at the peak", "answer": 8 * MB,
                     "measured": figure, "error_pct": 100 * (figure - 8 * MB) / (8 * MB)})  # fmt: skip
        rows.append({"tracer": tracer, "case": "own bytes of nothing_allocated", "answer": 0,
                     "measured": _fn(eight, "nothing_allocated")[0]})  # fmt: skip
        noops = profile_memory(calls_noop, tracer=tracer)
        rows.append({"tracer": tracer, "case": "own bytes of noop (20,000 calls)", "answer": 0,
                     "measured": _fn(noops, "noop")[0]})  # fmt: skip
        rows.append({"tracer": tracer, "case": "own bytes of noop's caller", "answer": 0,
                     "measured": _fn(noops, "calls_noop")[0]})  # fmt: skip
        leak = profile_memory(keeps_one, tracer=tracer)
        KEEP.clear()
        top = leak.leaks[0] if leak.leaks else None
        rows.append({"tracer": tracer, "case": "leak candidate #1: 3 MB kept in a global", "answer": 3 * MB,
                     "measured": top.size if top else 0,
                     "at": top.stack[-1].split(os.sep)[-1] if top else ""})  # fmt: skip
    for row in rows:
        print(f"{row['tracer']:12s} {row['case']:44s} answer {row['answer']:>9d}  measured {row['measured']:>9d}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    rows = cost(args.reps)
    known = correctness()
    print(f"written: {write_result('evidence_memory', {'reps': args.reps, 'cost': rows, 'correctness': known})}")


if __name__ == "__main__":
    main()
