"""Measurement stability: perfgate's `perf` fixture vs pytest-benchmark's `benchmark` fixture on
the same functions, in the same pytest run, interleaved test by test.

For each function and tool, R repetitions (separate tests) each give a median; we report
  - within-test CV: the coefficient of variation of the rounds of one test (median over reps),
    and its robust form (IQR-based), which outliers from interrupts do not dominate;
  - between-test CV: the CV of the R medians (what a gate comparing two measurements sees).
Lower is better for both. Both tools get the same --max-time per test.

Usage: python bench/stability.py [--reps 10] [--max-time 0.2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

SUITE = """
import json
import pytest

PAYLOAD = {"id": 1, "tags": list(range(40)), "name": "x" * 50, "nested": {"a": [1.5] * 30}}
DATA = list(range(1000, 0, -1))

def tiny():
    return sum(range(10))

def sort_1k():
    return sorted(DATA)

def json_dumps():
    return json.dumps(PAYLOAD)

def squares_100k():
    return sum(i * i for i in range(100_000))

FUNCS = {"tiny": tiny, "sort_1k": sort_1k, "json_dumps": json_dumps, "squares_100k": squares_100k}
CASES = [(name, rep, tool) for rep in range({reps}) for name in FUNCS for tool in ("perf", "benchmark")]

@pytest.mark.parametrize(("name", "rep", "tool"), CASES, ids=[f"{n}-{r}-{t}" for n, r, t in CASES])
def test_fn(request, name, rep, tool):
    fixture = request.getfixturevalue(tool)
    fixture(FUNCS[name])
"""


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0


def robust_cv(values: list[float]) -> float:
    """IQR / 1.349 / median: the spread of the bulk of the rounds, not of the outliers."""
    if len(values) < 4:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / 1.349 / statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--max-time", type=float, default=0.2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "test_stability.py").write_text(SUITE.replace("{reps}", str(args.reps)))
        (root / "pytest.ini").write_text("[pytest]\n")
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"--perfgate-save={root}/perfgate.json",
            f"--perfgate-max-time={args.max_time}",
            f"--benchmark-max-time={args.max_time}",
            f"--benchmark-json={root}/bench.json",
        ]
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(done.stdout[-3000:] + done.stderr[-2000:])
        perf_data = json.loads((root / "perfgate.json").read_text())
    rounds: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    for test in perf_data["tests"]:
        name, _rep, tool = test["nodeid"].split("[")[1].rstrip("]").split("-")
        rounds[(name, tool)].append(test["series"]["time"]["values"])
    rows = []
    print(
        f"{'function':14s} {'tool':10s} {'median':>10s} {'within CV':>10s} {'within rCV':>11s} "
        f"{'between CV':>11s} {'rounds':>7s}"
    )
    for (name, tool), reps in sorted(rounds.items()):
        medians = [statistics.median(r) for r in reps]
        within = statistics.median(cv(r) for r in reps)
        within_robust = statistics.median(robust_cv(r) for r in reps)
        between = cv(medians)
        n = int(statistics.median(len(r) for r in reps))
        rows.append(
            {
                "function": name,
                "tool": tool,
                "median_s": statistics.median(medians),
                "within_cv": within,
                "within_robust_cv": within_robust,
                "between_cv": between,
                "rounds": n,
            }
        )
        print(
            f"{name:14s} {tool:10s} {statistics.median(medians) * 1e6:9.2f}us {100 * within:9.1f}% "
            f"{100 * within_robust:10.2f}% {100 * between:10.2f}% {n:7d}"
        )
    path = write_result("stability", {"reps": args.reps, "max_time": args.max_time, "rows": rows})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
