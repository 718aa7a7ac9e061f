"""The true change of each slowed workload, measured independently of ``perfgate ab``.

    python bench/ab_intervals/truth.py --cpu 0 --processes 3 --seconds 3 > /tmp/perfgate-ab-intervals/truth.json

In one process (pinned to ``--cpu``), the unchanged (20 units) and the slowed workload (21, 22,
25 units: factors 1.05, 1.10, 1.25) of ``bench/gate_accuracy/workloads.py`` are timed in rounds
of ``loops`` calls (calibrated to >= 1 ms, as ``perf`` does), alternated ``A B B A`` / ``B A A B``
for ``--seconds`` per workload and factor; the change is the median over the blocks of
``log((B1 + B2) / (A1 + A2))``, in thread CPU time (the sleeping workload: wall time over the
blocks in which the thread was not preempted). Each of ``--processes`` fresh processes (each with an environment
of a different size, which moves its stack) measures every workload; the truth is the mean of
their log changes, and their spread is printed too. This is not how ``perfgate ab`` measures
(two processes, two trees): one process holds both versions, so no pair of processes adds its
offset. Output: JSON ``{"workload": {"1.05": log change, ...}, ...}`` plus per-process figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FACTORS = (1.05, 1.10, 1.25)


def measure(seconds: float) -> dict[str, dict[str, float]]:
    """Each workload's log change per factor in this process. A block in which this thread was
    preempted (an involuntary context switch: ``getrusage(RUSAGE_THREAD)``) holds another process's
    time slice and is left out, as ``perfgate ab`` does; on a loaded machine few blocks are clean,
    so CPU-bound workloads are timed in thread CPU time (``time.thread_time``), which a preemption
    does not inflate, and only the sleeping one in wall time over its undisturbed blocks."""
    sys.path.insert(0, str(HERE.parent / "gate_accuracy"))
    from workloads import UNITS, make

    def switches() -> int:
        return resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw

    out: dict[str, dict[str, float]] = {}
    for name in sorted(UNITS):
        out[name] = {}
        clock = time.perf_counter if name.startswith("sleep") else time.thread_time
        for factor in FACTORS:
            a, b = make(name, 1.0), make(name, factor)
            loops = 1
            while True:
                start = time.perf_counter()
                for _ in range(loops):
                    a()
                if time.perf_counter() - start >= 1e-3:
                    break
                loops *= 2

            def batch(fn, loops=loops, clock=clock):  # type: ignore[no-untyped-def]
                start = clock()
                for _ in range(loops):
                    fn()
                return clock() - start

            for _ in range(5):
                batch(a)
                batch(b)
            ratios: list[float] = []
            end = time.monotonic() + seconds
            flip = False
            while time.monotonic() < end:
                before = switches()
                if flip:
                    b1, a1, a2, b2 = batch(b), batch(a), batch(a), batch(b)
                else:
                    a1, b1, b2, a2 = batch(a), batch(b), batch(b), batch(a)
                flip = not flip
                if clock is time.perf_counter and switches() != before:
                    continue
                if a1 + a2 > 0 and b1 + b2 > 0:
                    ratios.append(math.log((b1 + b2) / (a1 + a2)))
            out[name][f"{factor:.2f}"] = statistics.median(ratios)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per workload and factor, per process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.sched_setaffinity(0, {args.cpu})
        print(json.dumps(measure(args.seconds)))
        return 0
    runs = []
    for i in range(args.processes):
        env = dict(os.environ, PERFGATE_TRUTH_PAD="x" * (97 * i))
        done = subprocess.run(
            [
                "nice",
                "-n",
                "10",
                sys.executable,
                __file__,
                "--child",
                "--cpu",
                str(args.cpu),
                "--seconds",
                str(args.seconds),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(done.stdout))
        print(f"process {i + 1}/{args.processes} done", file=sys.stderr, flush=True)
    truth = {name: {f: statistics.mean(r[name][f] for r in runs) for f in runs[0][name]} for name in runs[0]}
    print(json.dumps({"truth": truth, "processes": runs, "loadavg": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
