"""Does the length of the environment move a count? The bench child under callgrind, one process per
length of an extra variable PADX (0 to 44 bytes), counts printed per workload. Before the canonical
heap this moved json_encode and classes in steps of 16 bytes (bench/RESULTS-instructions.md).

    python bench/instructions/environment.py [--pymalloc]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_perfgate.counts.callgrind import valgrind_command

CHILD = str(Path(__file__).resolve().parent / "child.py")


def main() -> None:
    flags = ["--pymalloc"] if "--pymalloc" in sys.argv else []
    for pad in range(0, 48, 4):
        with tempfile.TemporaryDirectory(prefix="perfgate-env-") as out:
            command = valgrind_command([sys.executable, CHILD, "instructions", *flags], out_dir=out, hash_seed=0)
            env = os.environ | command.env | {"PADX": "x" * pad}
            proc = subprocess.run(command.argv, env=env, capture_output=True, text=True, timeout=600, check=True)
        counts = json.loads(proc.stdout.strip().splitlines()[-1])
        print(pad, {name: value["instructions"] for name, value in counts.items()}, flush=True)


if __name__ == "__main__":
    main()
