"""One process of the determinism bench: count every workload once and print one JSON line.

python bench/instructions/child.py instructions [--toggle] [--repeat=N] [--pymalloc] [--noise=SEED]
    (under valgrind_command; --pymalloc: without the canonical heap; --noise: leave live blocks of
    random sizes, drawn from SEED, before counting, as earlier tests of a session would)
python bench/instructions/child.py allocations
python bench/instructions/child.py time
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import WORKLOADS

from pytest_perfgate.counts.allocations import count_allocations


def main() -> None:
    what = sys.argv[1]
    out: dict[str, object] = {}
    noise_seed = next((a.split("=")[1] for a in sys.argv if a.startswith("--noise=")), None)
    if noise_seed is not None:
        import random

        rng = random.Random(int(noise_seed))
        noise = [b"x" * rng.randrange(1, 2000) for _ in range(rng.randrange(500, 3000))]
        del noise[::3]
    if what == "instructions":
        from pytest_perfgate.counts.callgrind import count_call

        canonical = "--pymalloc" not in sys.argv
        per_call = "--toggle" not in sys.argv
        repeat = int(next((a.split("=")[1] for a in sys.argv if a.startswith("--repeat=")), "1"))
        for name, fn in WORKLOADS.items():
            started = time.perf_counter()
            counts = count_call(fn, name=name, instrument_per_call=per_call, repeat=repeat, canonical_heap=canonical)
            out[name] = {
                "instructions": counts.instructions,
                "first": counts.samples[0],
                "estimated_cycles": counts.estimated_cycles,
                "seconds": time.perf_counter() - started,
            }
    elif what == "allocations":
        for name, fn in WORKLOADS.items():
            counts = count_allocations(fn)
            out[name] = {"blocks": counts.blocks, "bytes": counts.bytes}
    elif what == "time":
        for name, fn in WORKLOADS.items():
            fn()
            started = time.perf_counter()
            fn()
            plain = time.perf_counter() - started
            started = time.perf_counter()
            count_allocations(fn)
            out[name] = {"plain_seconds": plain, "alloc_counted_seconds": time.perf_counter() - started}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
