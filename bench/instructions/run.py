"""Determinism and cost of instruction and allocation counts (bench/RESULTS-instructions.md).

    PYTHONPATH=src python bench/instructions/run.py [--runs 20] [--out bench/out/instructions.json]

Each condition runs ``--runs`` separate processes (child.py), one after the other; "busy" runs a
pure-Python busy loop on the other CPU meanwhile. Prints a Markdown table of spreads:
(max - min) / median in %, per workload.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_perfgate.counts.callgrind import valgrind_command

HERE = Path(__file__).resolve().parent
CHILD = str(HERE / "child.py")


@contextmanager
def busy(on: bool) -> Any:
    if not on:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def run_child(
    what: str,
    *,
    seed: int,
    callgrind: bool,
    toggle: bool = False,
    cache_sim: bool = False,
    repeat: int = 1,
    flags: tuple[str, ...] = (),
) -> Any:
    argv = [sys.executable, CHILD, what, *(["--toggle"] if toggle else []), f"--repeat={repeat}", *flags]
    env = os.environ | {"PYTHONHASHSEED": str(seed)}
    with tempfile.TemporaryDirectory(prefix="perfgate-cg-") as out:
        if callgrind:
            command = valgrind_command(argv, out_dir=out, cache_sim=cache_sim, hash_seed=seed)
            argv, env = command.argv, os.environ | command.env
        started = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr[-2000:]}")
    return {"wall": wall, "counts": json.loads(proc.stdout)}


CONDITIONS: dict[str, dict[str, Any]] = {
    "instructions, seed 0, idle": {"what": "instructions", "callgrind": True},
    "instructions, seed 0, other CPU busy": {"what": "instructions", "callgrind": True, "busy": True},
    "instructions, seeds 1..N, idle": {"what": "instructions", "callgrind": True, "seeds": True},
    "instructions, seed 0, idle, instrumentation left on (toggle only)": {
        "what": "instructions",
        "callgrind": True,
        "toggle": True,
    },
    "instructions, seed 0, idle, median of 5 calls": {"what": "instructions", "callgrind": True, "repeat": 5},
    "estimated cycles (cache sim), seed 0, idle": {"what": "instructions", "callgrind": True, "cache_sim": True},
    # each process leaves a different heap before counting (--noise: live blocks of random sizes)
    "instructions, seed 0, heap noise, canonical heap": {"what": "instructions", "callgrind": True, "noise": True},
    "instructions, seed 0, heap noise, pymalloc": {
        "what": "instructions",
        "callgrind": True,
        "noise": True,
        "flags": ("--pymalloc",),
    },
    "instructions, seed 0, idle, pymalloc": {"what": "instructions", "callgrind": True, "flags": ("--pymalloc",)},
    "allocations, seed 0, idle": {"what": "allocations", "callgrind": False},
    "allocations, seed 0, other CPU busy": {"what": "allocations", "callgrind": False, "busy": True},
    "allocations, seeds 1..N, idle": {"what": "allocations", "callgrind": False, "seeds": True},
    "plain process (time)": {"what": "time", "callgrind": False},
}


def spread(values: list[int]) -> float:
    return 100.0 * (max(values) - min(values)) / statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", default="bench/out/instructions.json")
    parser.add_argument("--only", default="", help="comma-separated parts of the condition labels to run")
    args = parser.parse_args()
    results: dict[str, list[Any]] = {}
    for label, spec in CONDITIONS.items():
        if args.only and not any(part in label for part in args.only.split(",")):
            continue
        runs = []
        with busy(spec.get("busy", False)):
            for i in range(args.runs):
                seed = i + 1 if spec.get("seeds") else 0
                runs.append(
                    run_child(
                        spec["what"],
                        seed=seed,
                        callgrind=spec["callgrind"],
                        toggle=spec.get("toggle", False),
                        cache_sim=spec.get("cache_sim", False),
                        repeat=spec.get("repeat", 1),
                        flags=(*spec.get("flags", ()), *((f"--noise={i + 1}",) if spec.get("noise") else ())),
                    )
                )
        results[label] = runs
        print(f"done: {label}", file=sys.stderr, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(report(results))


def report(results: dict[str, list[Any]]) -> str:
    lines = []
    for label, runs in results.items():
        if "time" in label:
            continue
        first = runs[0]["counts"]
        sample = next(iter(first.values()))
        keys = [k for k in sample if k not in ("seconds", "first") and sample[k] is not None]
        wall = statistics.median(r["wall"] for r in runs)
        lines.append(f"\n**{label}** ({len(runs)} processes, process wall median {wall:.2f} s)\n")
        lines.append("| workload | " + " | ".join(f"{k} median | {k} spread %" for k in keys) + " |")
        lines.append("| --- |" + " ---: | ---: |" * len(keys))
        for name in first:
            cells = []
            for k in keys:
                values = [r["counts"][name][k] for r in runs]
                cells.append(f"{statistics.median(values):,.0f} | {spread(values):.4f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
