"""Plugin overhead: a generated suite of N trivial tests, run as separate pytest processes.

Configurations, alternated round by round (so machine drift hits all alike):
  off      -p no:perfgate (the plugin not loaded at all)
  loaded   the plugin loaded, no budgets
  budgeted a perf_budget marker on every test (whole-call mode: one timing sample per test)

Usage: python bench/overhead.py [--tests 2000] [--rounds 7]
Prints the median wall time of each and the ratios; writes bench/out/overhead.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, run_measured, write_result

PLAIN = "def test_{i}():\n    assert {i} + 1 > {i}\n\n"
BUDGETED = "@pytest.mark.perf_budget(max='10s')\ndef test_{i}():\n    assert {i} + 1 > {i}\n\n"


def make_suite(root: Path, n: int, budgeted: bool) -> Path:
    folder = root / ("budgeted" if budgeted else "plain")
    folder.mkdir()
    per_file = 100
    for f in range(0, n, per_file):
        body = "import pytest\n\n" + "".join(
            (BUDGETED if budgeted else PLAIN).format(i=i) for i in range(f, min(n, f + per_file))
        )
        (folder / f"test_gen_{f // per_file:03d}.py").write_text(body)
    (folder / "pytest.ini").write_text("[pytest]\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:benchmark"]
    with tempfile.TemporaryDirectory() as tmp:
        plain = make_suite(Path(tmp), args.tests, budgeted=False)
        budgeted = make_suite(Path(tmp), args.tests, budgeted=True)
        configs = {
            "off": ([*base, "-p", "no:perfgate"], plain),
            "loaded": (base, plain),
            "budgeted": ([*base, f"--perfgate-save={tmp}/r.json"], budgeted),
        }
        times: dict[str, list[float]] = {k: [] for k in configs}
        cpu: dict[str, list[float]] = {k: [] for k in configs}
        run_measured(*configs["loaded"])  # warm the file system and bytecode caches
        for r in range(args.rounds):
            order = list(configs) if r % 2 == 0 else list(reversed(configs))
            for name in order:
                wall, used = run_measured(*configs[name])
                times[name].append(wall)
                cpu[name].append(used)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))

    def ratio(data: dict[str, list[float]], name: str) -> float:
        # per-round ratios: each round measures the configurations within seconds of each other
        return median([a / b for a, b in zip(data[name], data["off"], strict=True)])

    print(f"\n{args.tests} trivial tests, {args.rounds} rounds, median wall time (CPU time):")
    for k in configs:
        print(f"  {k:9s} {median(times[k]):.2f}s ({median(cpu[k]):.2f}s CPU)")
    for name, text in (("loaded", "plugin loaded, no budgets"), ("budgeted", "budget on every test + results file")):
        goal = " (goal <= 3%)" if name == "loaded" else ""
        print(f"{text}: wall {100 * (ratio(times, name) - 1):+.1f}%, CPU {100 * (ratio(cpu, name) - 1):+.1f}%{goal}")
    path = write_result(
        "overhead",
        {
            "tests": args.tests,
            "rounds": args.rounds,
            "times": times,
            "cpu": cpu,
            "loaded_ratio": ratio(times, "loaded"),
            "loaded_cpu_ratio": ratio(cpu, "loaded"),
            "budgeted_ratio": ratio(times, "budgeted"),
            "budgeted_cpu_ratio": ratio(cpu, "budgeted"),
        },
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
