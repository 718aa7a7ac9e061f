"""Collect ``perfgate ab`` block ratios once (``--save-blocks``), to judge interval methods offline.

    python bench/ab_intervals/collect.py --revision 8b94d7d --label v1 --minutes 45

Runs ``perfgate ab`` on the fixture repository of ``bench/ab/fixture.py`` (8 workloads, 2 us to
15 ms per call) with the perfgate of ``--revision`` (a ``git archive`` snapshot, so edits made
meanwhile do not leak in), workers pinned to ``--cpu`` (0: another benchmark uses CPU 1). Runs
come in chunks of four, shuffled within the chunk (seeded):

* ``aa`` twice: unchanged code (factor 1.0), ``--max-regression 5%`` (the setting that catches a
  10% slowdown); most tests get one pair of workers;
* ``ab`` once: factor 1.05, 1.10, 1.25 in turn (21, 22, 25 units instead of 20), same settings;
* ``cal`` once: unchanged code with a config whose ``min_effect`` 0.5% and ``warn_regression`` 1%
  make every test that moved by 0.5% get a second and third pair: samples of the pair effect.

Each run writes ``<raw>/<label>/run-NNNN-<kind>-fF.{blocks,gate}.json`` and a line in
``<raw>/<label>/runs.jsonl`` (factor, kind, load average before and after, wall time, exit code).
Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "ab"))

import fixture  # noqa: E402
from run import snapshot_perfgate  # noqa: E402

CAL_CONFIG = "gate:\n  min_effect: 0.5%\n  warn_regression: 1%\n  max_regression: 2%\n"
AB_FACTORS = (1.05, 1.10, 1.25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revision", default="HEAD")
    parser.add_argument("--label", default="v1")
    parser.add_argument("--raw", default="/tmp/perfgate-ab-intervals")
    parser.add_argument("--minutes", type=float, default=45.0, help="start no run after this many minutes")
    parser.add_argument("--cpu", default="0")
    parser.add_argument("--max-time", default="0.5s")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    raw = Path(args.raw) / args.label
    raw.mkdir(parents=True, exist_ok=True)
    stop_at = time.time() + args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="perfgate-ab-intervals-"))
    rng = random.Random(args.seed)
    try:
        commit = snapshot_perfgate(work / "perfgate", args.revision)
        src = work / "perfgate" / "src"
        repo = work / "repo"
        base = fixture.make_repo(repo)
        config = work / "cal.yml"
        config.write_text(CAL_CONFIG)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PERFGATE_"))}
        env["PYTHONPATH"] = str(src)
        meta = {
            "perfgate_commit": commit,
            "cpu": args.cpu,
            "max_time": args.max_time,
            "seed": args.seed,
            "started": time.time(),
            "python": sys.version.split()[0],
        }
        (raw / "meta.jsonl").open("a").write(json.dumps(meta) + "\n")
        index = sum(1 for _ in (raw / "runs.jsonl").open()) if (raw / "runs.jsonl").exists() else 0
        chunk_no = 0
        with open(raw / "runs.jsonl", "a", encoding="utf-8") as log:
            while time.time() < stop_at:
                chunk = [("aa", 1.0), ("aa", 1.0), ("ab", AB_FACTORS[chunk_no % 3]), ("cal", 1.0)]
                rng.shuffle(chunk)
                chunk_no += 1
                for kind, factor in chunk:
                    if time.time() >= stop_at:
                        break
                    fixture.set_factor(repo, factor)
                    name = f"run-{index:04d}-{kind}-f{factor:.2f}"
                    blocks, gate = raw / f"{name}.blocks.json", raw / f"{name}.gate.json"
                    cmd = [
                        "nice",
                        "-n",
                        "10",
                        sys.executable,
                        "-m",
                        "pytest_perfgate.cli",
                        "ab",
                        "--base",
                        base,
                        "--cpu",
                        args.cpu,
                        "--max-time",
                        args.max_time,
                        "--save-blocks",
                        str(blocks),
                        "--json",
                        str(gate),
                    ]
                    cmd += ["--config", str(config)] if kind == "cal" else ["--max-regression", "5%"]
                    cmd += ["--", "tests"]
                    load = os.getloadavg()
                    start = time.time()
                    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
                    (raw / f"{name}.log").write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
                    record = {
                        "index": index,
                        "name": name,
                        "kind": kind,
                        "factor": factor,
                        "start": start,
                        "wall": time.time() - start,
                        "returncode": proc.returncode,
                        "loadavg_before": load,
                        "loadavg_after": os.getloadavg(),
                        "blocks": str(blocks),
                        "gate": str(gate),
                    }
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    print(f"{name} rc={proc.returncode} wall={record['wall']:.1f}s load={load[0]:.2f}", flush=True)
                    index += 1
        fixture.set_factor(repo, 1.0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
