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
from _common import median, run_timed, write_result

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
        run_timed(configs["loaded"][0], configs["loaded"][1])  # warm the file system and bytecode caches
        for r in range(args.rounds):
            order = list(configs) if r % 2 == 0 else list(reversed(configs))
            for name in order:
                cmd, cwd = configs[name]
                times[name].append(run_timed(cmd, cwd))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    med = {k: median(v) for k, v in times.items()}
    # per-round ratios: each round measures the configurations within seconds of each other
    loaded_ratio = median([a / b for a, b in zip(times["loaded"], times["off"], strict=True)])
    budget_ratio = median([a / b for a, b in zip(times["budgeted"], times["off"], strict=True)])
    print(f"\n{args.tests} trivial tests, {args.rounds} rounds, median wall time:")
    for k, v in med.items():
        print(f"  {k:9s} {v:.2f}s")
    print(f"plugin loaded, no budgets: {100 * (loaded_ratio - 1):+.1f}% (median of per-round ratios; goal <= 3%)")
    print(f"budget on every test + results file: {100 * (budget_ratio - 1):+.1f}%")
    path = write_result(
        "overhead",
        {
            "tests": args.tests,
            "rounds": args.rounds,
            "times": times,
            "loaded_ratio": loaded_ratio,
            "budgeted_ratio": budget_ratio,
        },
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
