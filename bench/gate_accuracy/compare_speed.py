"""Time ``perfgate compare`` on a large suite: 10,000 tests x 100 samples.

    python bench/gate_accuracy/compare_speed.py [--tests 10000] [--samples 100] [--runs 5]

Writes synthetic results files (one current run, and ``--runs`` baseline runs promoted into a
directory store, which keeps a summary of each) to a temporary folder, then times the real
command (a subprocess: interpreter start, JSON parsing, statistics, every report written)
against a single baseline file and against the directory of stored runs.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_perfgate.model import RunResult, Series, TestResult, save_results
from pytest_perfgate.store.files import DirectoryStore
from pytest_perfgate.units import Kind


def make_run(rng: random.Random, tests: int, samples: int, factor: float) -> RunResult:
    out = []
    for i in range(tests):
        level = 1e-4 * (1 + i % 97) * factor * rng.lognormvariate(0, 0.03)
        values = tuple(level * rng.lognormvariate(0, 0.05) for _ in range(samples))
        out.append(
            TestResult(
                nodeid=f"tests/perf/test_m{i // 100}.py::test_{i}",
                mode="perf",
                series={"time": Series("time", Kind.TIME, values)},
            )
        )
    return RunResult({"created": "2026-01-01T00:00:00+00:00"}, tuple(out))


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = DirectoryStore(str(root / "baselines"))
        for _ in range(args.runs):
            store.promote(make_run(rng, args.tests, args.samples, 1.0), keep=args.runs)
        save_results(root / "current.json", make_run(rng, args.tests, args.samples, 1.0))
        size = (root / "current.json").stat().st_size / 1e6
        perfgate = [sys.executable, "-m", "pytest_perfgate.cli", "compare"]
        reports = [
            "--markdown",
            str(root / "r.md"),
            "--junit",
            str(root / "j.xml"),
            "--metrics",
            str(root / "m.txt"),
            "--json",
            str(root / "g.json"),
        ]
        print(f"{args.tests} tests x {args.samples} samples; results file {size:.1f} MB")
        for label, baseline in (
            ("1 baseline file", root / "baselines" / "run-000001.json"),
            (f"directory of {args.runs} runs", root / "baselines"),
        ):
            for with_reports in (False, True):
                wall, cpu, code = timed(
                    [*perfgate, str(baseline), str(root / "current.json"), *(reports if with_reports else [])]
                )
                what = "all four reports" if with_reports else "terminal only"
                print(
                    f"  {label}, {what}: {wall:.2f} s wall, {cpu:.2f} s CPU (exit {code}); "
                    f"load average {os.getloadavg()[0]:.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
