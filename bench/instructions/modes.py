"""Two questions the determinism bench does not answer, one process each under callgrind:

1. instrumentation switched on and off around each measured call (``instrument_per_call=True``)
   or switched on once and only collection toggled: wall time of a suite-like process (10
   measured calls with a fixed piece of uncounted Python between them, 300 small json.dumps,
   as pytest's own work between tests), and the counts;
2. does what ran *before* the measured call change its count (the heap's state: a test run alone
   or after others)? The same workload counted after keeping 0, 1,000, 10,000 or 100,000 small
   objects alive.

    PYTHONPATH=src python bench/instructions/modes.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_perfgate.counts.callgrind import valgrind_command

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from workloads import WORKLOADS
from pytest_perfgate.counts.callgrind import count_call

mode, prefix = sys.argv[2], int(sys.argv[3])
keep = [object() for _ in range(prefix)] + [str(i) for i in range(prefix)]

def between():
    for _ in range(300):
        json.dumps({"a": list(range(50))})

out = {}
started = time.perf_counter()
if mode == "none":
    for i in range(10):
        between()
        WORKLOADS["json_encode"]()
else:
    for i in range(10):
        between()
        c = count_call(WORKLOADS["json_encode"], name="j", instrument_per_call=(mode == "per_call"))
        out.setdefault("json_encode", []).append(c.instructions)
for name, fn in WORKLOADS.items():
    if mode != "none" and name != "json_encode":
        out[name] = count_call(fn, name=name, instrument_per_call=(mode == "per_call")).instructions
out["seconds"] = time.perf_counter() - started
print(json.dumps(out))
"""


def run(mode: str, prefix: int, *, callgrind: bool = True) -> dict[str, object]:
    here = str(Path(__file__).resolve().parent)
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-c", CHILD, here, mode, str(prefix)]
        env = dict(os.environ, PYTHONHASHSEED="0")
        if callgrind:
            command = valgrind_command(argv, out_dir=out)
            argv, env = command.argv, os.environ | command.env
        started = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=True)
        result: dict[str, object] = json.loads(proc.stdout)
        result["process_seconds"] = time.perf_counter() - started
        return result


def main() -> None:
    rows = {}
    rows["plain (no valgrind), 10 calls"] = run("none", 0, callgrind=False)
    rows["valgrind, nothing counted, 10 calls"] = run("none", 0)
    for mode in ("per_call", "toggle"):
        for prefix in (0, 1_000, 10_000, 100_000):
            rows[f"{mode}, {prefix} objects kept before"] = run(mode, prefix)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
