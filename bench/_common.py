"""Helpers shared by the bench scripts: subprocess timing, medians, result files."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def run_timed(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Wall time of one command (seconds); raises if it fails unexpectedly."""
    return run_measured(args, cwd, env)[0]


def run_measured(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall time, CPU time user+system) of one command, in seconds. CPU time is far less
    sensitive to other processes on a shared machine than wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):
        raise SystemExit(
            f"command failed ({done.returncode}): {' '.join(args)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return elapsed, cpu


def machine() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "loadavg_1m": load1, "loadavg_5m": load5}


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_result(name: str, data: dict[str, Any]) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=1) + "\n")
    return path
