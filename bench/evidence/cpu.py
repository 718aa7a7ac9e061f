"""CPU evidence, measured: correctness on constructed programs with known answers, and each
profiler's slowdown on the catalog example's workloads.

Correctness (pyinstrument with each clock, and the cProfile fallback), over --reps profiles each:

* two callers: ``a -> shared -> fast`` and ``b -> shared -> slow``: does the tree hold a path that
  never ran (``a -> shared -> slow``)? does a child ever take more time than its parent?
* a 70/30 split: ``hot_part`` and ``cold_part`` spin 0.7 and 0.3 ms (their real wall and CPU time
  is measured by the program itself, the known answer even on a busy machine): the error of the
  profile's own-time share of ``hot_part``, in points.

Slowdown: per workload, calls of ``examples/catalog`` timed plain, under pyinstrument (interval
as profile_cpu uses it; wall clock, and CPU-time clock) and under cProfile, alternated, the median
of --reps runs of --time seconds each. The ratio is time per call under the profiler over plain.

Naming (--ab N): a project whose handler spends its time in three functions, with ``checksum``
made twice as slow in the working tree (tests/harness/ab.py's HANDLER), run N times through
``perfgate ab``: how often is ``checksum`` the top changed function of the profile diff, and the
CPU time per call each side's profile gives it.

Usage: python bench/evidence/cpu.py [--reps 5] [--time 0.3] [--ab 0]
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "examples" / "catalog"))

from _common import write_result  # noqa: E402
from catalog import Catalog  # noqa: E402

from pytest_perfgate.evidence import CallNode, CpuProfile  # noqa: E402
from pytest_perfgate.measure.cpuprofile import DEFAULT_INTERVAL, profile_cpu  # noqa: E402

# --------------------------------------------------------------------------- constructed programs


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def fast() -> None:
    _spin(0.0002)


def slow() -> None:
    _spin(0.0008)


def shared(leaf: Callable[[], None]) -> None:
    leaf()


def a() -> None:
    shared(fast)


def b() -> None:
    shared(slow)


def two_callers() -> None:
    a()
    b()


SPENT = {"hot_part": [0.0, 0.0], "cold_part": [0.0, 0.0]}  # wall, CPU seconds


def _part(name: str, seconds: float) -> None:
    wall, cpu = time.perf_counter(), time.thread_time()
    end = wall + seconds
    while time.perf_counter() < end:
        pass
    SPENT[name][0] += time.perf_counter() - wall
    SPENT[name][1] += time.thread_time() - cpu


def hot_part() -> None:
    _part("hot_part", 0.0007)


def cold_part() -> None:
    _part("cold_part", 0.0003)


def split_70_30() -> None:
    hot_part()
    cold_part()


def _paths(nodes: tuple[CallNode, ...], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for node in nodes:
        path = (*prefix, node.function)
        yield path
        yield from _paths(node.children, path)


def _child_over_parent(nodes: tuple[CallNode, ...]) -> int:
    return sum(
        sum(1 for c in n.children if c.cumulative > n.cumulative * (1 + 1e-9)) + _child_over_parent(n.children)
        for n in nodes
    )


def _cumulative(profile: CpuProfile, name: str) -> float:
    """A function's time, summed over its nodes (its subtree: its own time and the clock calls it makes)."""

    def walk(nodes: tuple[CallNode, ...]) -> float:
        return sum(n.cumulative if n.function == name else walk(n.children) for n in nodes)

    return walk(profile.tree)


PROFILERS: dict[str, dict[str, Any]] = {
    "pyinstrument (wall)": {"profiler": "pyinstrument", "clock": "wall"},
    "pyinstrument (cpu)": {"profiler": "pyinstrument", "clock": "cpu"},
    "cProfile": {"profiler": "cProfile"},
}


def correctness(reps: int) -> list[dict[str, Any]]:
    rows = []
    for label, kwargs in PROFILERS.items():
        phantom = over = 0
        errors = []
        for _ in range(reps):
            profile = profile_cpu(two_callers, min_time=0.2, **kwargs)
            phantom += any(p[:4] == ("two_callers", "a", "shared", "slow") for p in _paths(profile.tree))
            over += _child_over_parent(profile.tree)
            for part in SPENT.values():
                part[:] = [0.0, 0.0]
            profile = profile_cpu(split_70_30, min_time=0.5, **kwargs)
            truth_index = 1 if kwargs.get("clock") == "cpu" else 0
            hot, cold = SPENT["hot_part"][truth_index], SPENT["cold_part"][truth_index]
            truth = hot / (hot + cold)
            seen_hot, seen_cold = _cumulative(profile, "hot_part"), _cumulative(profile, "cold_part")
            errors.append(100 * (seen_hot / (seen_hot + seen_cold) - truth))
        row = {
            "profiler": label,
            "profiles": reps,
            "with_a_path_that_never_ran": phantom,
            "children_over_parent": over,
            "share_error_median_points": statistics.median(errors),
            "share_error_max_abs_points": max(abs(e) for e in errors),
        }
        rows.append(row)
        print(
            f"{label:20s} phantom path in {phantom}/{reps}, children over parent {over}, 70/30 share error "
            f"median {row['share_error_median_points']:+.1f} pts, max |{row['share_error_max_abs_points']:.1f}| pts"
        )
    return rows


# --------------------------------------------------------------------------- slowdown on the catalog


def workloads() -> dict[str, Callable[[], Any]]:
    catalog = Catalog.generate(20_000)
    return {
        "search": lambda: catalog.search("health", limit=20),
        "render_page": lambda: catalog.render_page("garden"),
        "export_csv": catalog.export_csv,
        "search_text": lambda: catalog.search_text("organic"),
        "details x100": lambda: [catalog.details(i % 50) for i in range(100)],
    }


def _per_call(fn: Callable[[], Any], seconds: float) -> float:
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def plain(fn: Callable[[], Any], seconds: float) -> float:
    return _per_call(fn, seconds)


def under_pyinstrument(fn: Callable[[], Any], seconds: float, clock: str = "wall") -> float:
    import pyinstrument
    from pyinstrument.stack_sampler import get_stack_sampler

    stacks = get_stack_sampler()
    if clock == "cpu":
        stacks.timer_func = time.thread_time
    profiler = pyinstrument.Profiler(interval=DEFAULT_INTERVAL, async_mode="disabled")
    profiler.start()
    try:
        return _per_call(fn, seconds)
    finally:
        profiler.stop()
        stacks.timer_func = None


def under_cprofile(fn: Callable[[], Any], seconds: float) -> float:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return _per_call(fn, seconds)
    finally:
        profiler.disable()


def slowdown(reps: int, seconds: float) -> list[dict[str, Any]]:
    ways: dict[str, Callable[[Callable[[], Any], float], float]] = {
        "plain": plain,
        "pyinstrument (wall)": under_pyinstrument,
        "pyinstrument (cpu)": lambda fn, s: under_pyinstrument(fn, s, "cpu"),
        "cProfile": under_cprofile,
    }
    rows = []
    print(f"{'workload':14s} {'plain':>10s} " + " ".join(f"{w:>20s}" for w in list(ways)[1:]))
    for name, fn in workloads().items():
        times: dict[str, list[float]] = {way: [] for way in ways}
        fn()
        for _ in range(reps):
            for way, run in ways.items():  # alternated: drift on the machine hits every way alike
                times[way].append(run(fn, seconds))
        medians = {way: statistics.median(values) for way, values in times.items()}
        row = {"workload": name, "plain_per_call_s": medians["plain"]}
        row.update({f"{way} ratio": medians[way] / medians["plain"] for way in list(ways)[1:]})
        rows.append(row)
        print(
            f"{name:14s} {medians['plain'] * 1e3:8.2f}ms "
            + " ".join(f"{medians[way] / medians['plain']:19.2f}x" for way in list(ways)[1:])
        )
    return rows


# --------------------------------------------------------------------------- naming through perfgate ab


def naming(runs: int) -> dict[str, Any]:
    import json
    import tempfile

    sys.path.insert(0, str(ROOT / "tests"))
    from harness.ab import HANDLER, ab, make_repository

    tops, rows = [], []
    with tempfile.TemporaryDirectory(prefix="perfgate-bench-cpu-") as scratch:
        repo = make_repository(
            Path(scratch) / "project",
            {
                "src/shop/__init__.py": HANDLER.format(loops="n"),
                "tests/test_shop.py": "import shop\n\n\ndef test_handle(perf):\n    assert perf(shop.handle)\n",
                "pytest.ini": "[pytest]\nperfgate_max_time = 0.1s\nperfgate_warmup = 0.01s\n",
            },
        )
        (repo / "src" / "shop" / "__init__.py").write_text(HANDLER.format(loops="n * 2"))
        for i in range(runs):
            report = Path(scratch) / f"ab-{i}.json"
            done = ab(repo, "--base", "main", "--min-blocks", "12", "--json", str(report), "--", "tests")
            data = json.loads(report.read_text()) if report.exists() else {}
            diff = data.get("cpu_diffs", {}).get("tests/test_shop.py::test_handle")
            top = diff["changes"][0] if diff else None
            tops.append(top["function"] if top else None)
            rows.append(top)
            said = (
                f"{top['function']} {top['base_per_call'] * 1e6:.0f}us -> {top['current_per_call'] * 1e6:.0f}us"
                if top
                else ""
            )
            print(f"run {i + 1}: exit {done.returncode}, top changed function: {said or 'no diff'}")
    named = sum(1 for t in tops if t == "checksum")
    print(f"checksum named first in {named} of {runs} runs")
    return {"runs": runs, "named": named, "tops": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--time", type=float, default=0.3, help="seconds of calls per measurement")
    parser.add_argument("--ab", type=int, default=0, metavar="N", help="perfgate ab runs of the naming check")
    args = parser.parse_args()
    print("correctness on constructed programs")
    checked = correctness(args.reps)
    print("\nslowdown on examples/catalog (time per call under the profiler / plain; median of reps)")
    cost = slowdown(args.reps, args.time)
    data = {
        "reps": args.reps,
        "time": args.time,
        "interval": DEFAULT_INTERVAL,
        "correctness": checked,
        "slowdown": cost,
    }
    if args.ab:
        print("\nnaming the slowed function through perfgate ab")
        data["naming"] = naming(args.ab)
    print(f"written: {write_result('evidence_cpu', data)}")


if __name__ == "__main__":
    main()
