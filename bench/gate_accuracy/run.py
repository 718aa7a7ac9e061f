"""Run the workload suite many times as separate pytest processes (A/A and A/B runs).

    python bench/gate_accuracy/run.py --condition idle --blocks 18 --out bench/gate_accuracy/runs
    python bench/gate_accuracy/run.py --condition busy --blocks 18 --out bench/gate_accuracy/runs

Each block is 3 unchanged runs (factor 1.0) and one run at each slowdown (1.05, 1.10, 1.25), in a
seeded random order, so slow drifts of the machine hit A and B runs alike. ``busy`` keeps the other
core busy with a niced spin loop for the duration. Every run writes perfgate's results file and
pytest-benchmark's JSON; ``manifest.jsonl`` records order, factor, wall time and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FACTORS = (1.0, 1.0, 1.0, 1.05, 1.10, 1.25)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--condition", choices=("idle", "busy"), required=True)
    parser.add_argument("--blocks", type=int, default=18)
    parser.add_argument("--out", default=str(HERE / "runs"))
    parser.add_argument("--max-time", default="0.5")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", help="output sub-folder (default: the condition)")
    args = parser.parse_args()
    out = Path(args.out) / (args.label or args.condition)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    hog = None
    if args.condition == "busy":
        hog = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
    try:
        with open(out / "manifest.jsonl", "a", encoding="utf-8") as manifest:
            index = len(list(out.glob("run-*.json")))
            for _block in range(args.blocks):
                order = list(FACTORS)
                rng.shuffle(order)
                for factor in order:
                    name = f"run-{index:04d}-f{factor:.2f}"
                    env = dict(os.environ, PERFGATE_BENCH_FACTOR=str(factor), PYTHONHASHSEED="0")
                    cmd = [
                        "nice",
                        "-n",
                        str(args.nice),
                        sys.executable,
                        "-m",
                        "pytest",
                        str(HERE / "test_workloads.py"),
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        f"--perfgate-save={out / (name + '.json')}",
                        f"--benchmark-json={out / (name + '.benchmark.json')}",
                        f"--benchmark-max-time={args.max_time}",
                    ]
                    load_before = os.getloadavg()
                    start = time.time()
                    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
                    record = {
                        "index": index,
                        "name": name,
                        "factor": factor,
                        "condition": args.condition,
                        "start": start,
                        "wall": time.time() - start,
                        "returncode": proc.returncode,
                        "loadavg_before": load_before,
                        "loadavg_after": os.getloadavg(),
                    }
                    manifest.write(json.dumps(record) + "\n")
                    manifest.flush()
                    if proc.returncode != 0:
                        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
                    index += 1
    finally:
        if hog is not None:
            hog.terminate()
            hog.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
