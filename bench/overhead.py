"""Plugin overhead: a generated suite of N trivial tests, run as separate pytest processes.

Configurations, alternated round by round (so machine drift hits all alike):
  off      -p no:perfgate (the plugin not loaded at all)
  loaded   the plugin loaded, no budgets
  budgeted a perf_budget marker on every test (whole-call mode: one timing sample per test)

Bytecode (--bytecode): "cached" (default) runs the children with PYTHONPYCACHEPREFIX in the
temporary directory and bytecode writing on, so after the warm-up run every module (and pytest's
assertion-rewritten plugins and test files) loads from cache, as where packages are installed
normally, and nothing is written outside the temporary directory. "env" keeps the inherited
environment as is: with PYTHONDONTWRITEBYTECODE=1 (as on this project's VMs) every process compiles
perfgate's (editable) sources and re-rewrites every pytest plugin, which costs the plugin-free
baseline about 1 s of CPU too.

Usage: python bench/overhead.py [--tests 2000] [--rounds 7] [--bytecode cached|env] [--instructions]
Prints the median wall time of each and the ratios (per-round ratios to "off", on wall time and on
the children's CPU time, with a 95% interval of the median) and the load average before and after;
writes bench/out/overhead.json.

--instructions runs each configuration once under valgrind's callgrind instead (PYTHONHASHSEED=0)
and compares the instructions executed: the same count on a busy machine as on an idle one, where
CPU time on a shared VM moves by +-20% between identical runs. Takes ~4 minutes per configuration.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
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
    parser.add_argument("--bytecode", choices=("cached", "env"), default="cached")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:benchmark"]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        env = None
        if args.bytecode == "cached":
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        plain = make_suite(Path(tmp), args.tests, budgeted=False)
        budgeted = make_suite(Path(tmp), args.tests, budgeted=True)
        configs = {
            "off": ([*base, "-p", "no:perfgate"], plain),
            "loaded": (base, plain),
            "budgeted": ([*base, f"--perfgate-save={tmp}/r.json"], budgeted),
        }
        times: dict[str, list[float]] = {k: [] for k in configs}
        cpu: dict[str, list[float]] = {k: [] for k in configs}
        for name in configs:  # warm the file system and bytecode caches (also the rewritten test files)
            run_measured(*configs[name], env)
        if args.instructions:
            count_instructions(args, configs, env)
            return
        for r in range(args.rounds):
            order = list(configs) if r % 2 == 0 else list(reversed(configs))
            for name in order:
                wall, used = run_measured(*configs[name], env)
                times[name].append(wall)
                cpu[name].append(used)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))

    def ratios(data: dict[str, list[float]], name: str) -> list[float]:
        # per-round ratios: each round measures the configurations within seconds of each other
        return [a / b for a, b in zip(data[name], data["off"], strict=True)]

    def ratio(data: dict[str, list[float]], name: str) -> float:
        return median(ratios(data, name))

    def interval(data: dict[str, list[float]], name: str) -> str:
        low, high = median_interval(ratios(data, name))
        return f"[{100 * (low - 1):+.1f}%, {100 * (high - 1):+.1f}%]"

    load_after = os.getloadavg()
    print(f"\n{args.tests} trivial tests, {args.rounds} rounds, bytecode {args.bytecode}, median wall time (CPU time):")
    for k in configs:
        print(f"  {k:9s} {median(times[k]):.2f}s ({median(cpu[k]):.2f}s CPU)")
    for name, text in (("loaded", "plugin loaded, no budgets"), ("budgeted", "budget on every test + results file")):
        goal = " (goal <= 3%)" if name == "loaded" else ""
        print(
            f"{text}: wall {100 * (ratio(times, name) - 1):+.1f}% {interval(times, name)}, "
            f"CPU {100 * (ratio(cpu, name) - 1):+.1f}% {interval(cpu, name)}{goal}"
        )
    print("(median of the per-round ratios to off, [95% interval of that median])")
    print(f"load average (1, 5, 15 min): before {_load(load_before)}, after {_load(load_after)}")
    path = write_result(
        "overhead",
        {
            "tests": args.tests,
            "rounds": args.rounds,
            "bytecode": args.bytecode,
            "times": times,
            "cpu": cpu,
            "loaded_ratio": ratio(times, "loaded"),
            "loaded_cpu_ratio": ratio(cpu, "loaded"),
            "budgeted_ratio": ratio(times, "budgeted"),
            "budgeted_cpu_ratio": ratio(cpu, "budgeted"),
            "loaded_interval": median_interval(ratios(times, "loaded")),
            "loaded_cpu_interval": median_interval(ratios(cpu, "loaded")),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
    )
    print(f"written: {path}")


def count_instructions(
    args: argparse.Namespace, configs: dict[str, tuple[list[str], Path]], env: dict[str, str] | None
) -> None:
    counts = {}
    for name, (command, cwd) in configs.items():
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
            cwd=cwd,
            env={**(env if env is not None else os.environ), "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            check=False,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode not in (0, 1) or found is None:
            raise SystemExit(f"{name}: valgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
        counts[name] = int(found.group(1))
        print(f"{name}: {counts[name]:,} instructions")
    print(f"\n{args.tests} trivial tests, bytecode {args.bytecode}, instructions (callgrind, PYTHONHASHSEED=0):")
    for name, text in (("loaded", "plugin loaded, no budgets"), ("budgeted", "budget on every test + results file")):
        goal = " (goal <= 3%)" if name == "loaded" else ""
        print(f"{text}: {100 * (counts[name] / counts['off'] - 1):+.2f}%{goal}")
    path = write_result(
        "overhead-instructions", {"tests": args.tests, "bytecode": args.bytecode, "instructions": counts}
    )
    print(f"written: {path}")


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median (order statistics, binomial): the whole range
    when there are too few values for the confidence asked."""
    xs = sorted(values)
    n = len(xs)
    below = 0.0
    k = 0  # the largest k with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2
    while k < n and below + math.comb(n, k) / 2**n <= (1 - confidence) / 2:
        below += math.comb(n, k) / 2**n
        k += 1
    if k == 0:
        return xs[0], xs[-1]
    return xs[k - 1], xs[n - k]


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
