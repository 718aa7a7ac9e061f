"""Instruction counts on public pytest-benchmark suites as they ship (issue 18, "Measured").

    python bench/instructions/public.py --work /tmp/perfgate-ab-public --aa 20 --out bench/instructions/public

Uses the trees ``bench/ab_public/run.py prepare`` made under ``--work``: per project ``repo`` (the sdist
as shipped) and ``tree-N`` (N ``_perfgate_slow = 0`` statements injected into one hot library function;
``bench/ab_public/runs/prepare/variants.json`` says which N is about +10% and +25% of wall time). Each
run is ``pytest <the suite> --perfgate-instructions --perfgate-save=...`` with this checkout's perfgate
first on ``PYTHONPATH`` and the bench venv's interpreter. Three runs of the unchanged tree are stored
(``perfgate baseline promote``); then ``--aa`` more unchanged runs and one run of each slowed tree are
each judged alone by ``perfgate compare`` against the three. Prints and writes (``--out``) per project:
the spread of every test's count over all unchanged runs, the A/A verdicts, each slowed tree's verdicts
and count changes, and the wall time of a counted run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SRC = HERE.parents[2] / "src"
SUITES = {
    "fastjsonschema": (["tests/benchmarks/test_benchmark.py"], ("tree-8", "tree-56", "tree-140")),
    "cbor2": (
        ["benchmarks/tests/test_vs_json.py", "-k", "composite or complex", "--cov=cbor2", "--cov-report="],
        ("tree-3", "tree-5", "tree-16"),
    ),
}


def counted_run(python: str, tree: Path, args: list[str], save: Path) -> float:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}."}
    start = time.monotonic()
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "--perfgate-instructions",
         f"--perfgate-save={save}"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: pytest exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.monotonic() - start


def compare(python: str, baseline: Path, current: Path) -> tuple[int, dict]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = current.with_suffix(".gate.json")
    proc = subprocess.run(
        [python, "-m", "pytest_perfgate.cli", "compare", str(baseline), str(current), "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads(out.read_text())


def instructions(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    return {
        t["nodeid"]: t["series"]["instructions"]["values"][0] for t in data["tests"] if "instructions" in t["series"]
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/perfgate-ab-public"))
    parser.add_argument("--aa", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE.parent / "public")
    parser.add_argument("--project", action="append", choices=sorted(SUITES))
    args = parser.parse_args()
    python = str(args.work / "venv" / "bin" / "python")
    lines: list[str] = []
    for name in args.project or sorted(SUITES):
        suite, slowed = SUITES[name]
        raw = args.out / name
        raw.mkdir(parents=True, exist_ok=True)
        base = raw / "baseline"
        subprocess.run(["rm", "-rf", str(base)], check=True)
        unchanged: list[Path] = []
        walls = []
        for i in range(3 + args.aa):
            path = raw / f"unchanged-{i:02d}.json"
            walls.append(counted_run(python, args.work / name / "repo", suite, path))
            unchanged.append(path)
            if i < 3:
                env = {**os.environ, "PYTHONPATH": str(SRC)}
                promote = [python, "-m", "pytest_perfgate.cli", "baseline", "promote", str(path), "--to", str(base)]
                subprocess.run(promote, env=env, check=True, capture_output=True)
        counts = [instructions(p) for p in unchanged]
        spreads = {n: (max(c[n] for c in counts) - min(c[n] for c in counts)) / statistics.median(c[n] for c in counts)
                   for n in counts[0]}  # fmt: skip
        aa = [compare(python, base, p) for p in unchanged[3:]]
        failed = sum(1 for code, _ in aa if code == 1)
        warned = sum(1 for _, report in aa for c in report.get("comparisons", []) if c.get("verdict") == "warning")
        lines.append(f"## {name}\n")
        lines.append(f"counted run: median {statistics.median(walls):.1f} s wall ({len(counts[0])} tests)")
        lines.append(f"instruction spread over {len(counts)} unchanged runs: worst {100 * max(spreads.values()):.4f}%, "
                     f"median {100 * statistics.median(spreads.values()):.4f}%")  # fmt: skip
        lines.append(f"A/A: {failed} of {len(aa)} unchanged runs failed; {warned} warnings in all")
        for tree in slowed:
            path = raw / f"{tree}.json"
            counted_run(python, args.work / name / tree, suite, path)
            code, report = compare(python, base, path)
            changes = [c for c in report.get("comparisons", []) if c.get("metric") == "instructions"]
            regressions = sorted(c["nodeid"].split("::")[-1] for c in changes if c.get("verdict") == "regression")
            moved = [c.get("change") for c in changes if c.get("change") is not None]
            lines.append(f"{tree}: exit {code}, {len(regressions)} of {len(changes)} instruction counts regressed; "
                         f"changes {100 * min(moved):+.2f}% to {100 * max(moved):+.2f}%")  # fmt: skip
        lines.append("")
        print("\n".join(lines[-(6 + len(slowed)) :]), flush=True)
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
