"""What a counted run costs against the suite's own run, measured in one sitting (alternated, so
the machine's load falls on both alike): per project, ``--pairs`` times the plain suite (its
pytest-benchmark rounds, perfgate installed but not counting) then the counted suite
(``--perfgate-instructions``), wall time of each; the median ratio.

    python bench/instructions/cost.py --pairs 3 [--project fastjsonschema]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from public import SRC, SUITES


def wall(python: str, tree: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}."}
    started = time.monotonic()
    proc = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: pytest exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/perfgate-ab-public"))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--project", action="append", choices=sorted(SUITES))
    args = parser.parse_args()
    python = str(args.work / "venv" / "bin" / "python")
    for name in args.project or sorted(SUITES):
        suite, _ = SUITES[name]
        tree = args.work / name / "repo"
        plain, counted = [], []
        with tempfile.TemporaryDirectory() as out:
            for i in range(args.pairs):
                plain.append(wall(python, tree, suite))
                save = f"--perfgate-save={out}/{i}.json"
                counted.append(wall(python, tree, [*suite, "--perfgate-instructions", save]))
        ratios = [c / p for p, c in zip(plain, counted, strict=True)]
        print(
            f"{name}: plain {statistics.median(plain):.1f} s, counted {statistics.median(counted):.1f} s (medians of "
            f"{args.pairs}); counted / plain {statistics.median(ratios):.2f} (pairs: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + ")"
        )


if __name__ == "__main__":
    main()
