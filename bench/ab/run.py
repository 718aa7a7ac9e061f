"""Run ``perfgate ab`` many times on a fixture repository (A/A and A/B), under several conditions.

    python bench/ab/run.py --blocks 40 --seed 1 --label main

The fixture repository (``fixture.py``, made in a temporary directory) holds the 8 workloads of
``bench/gate_accuracy/workloads.py`` as library code; its base commit has slowdown factor 1.0.
Each *block* is one condition and 6 runs in a seeded random order: 3 unchanged (factor 1.0 in the
working tree: A/A) and one each at 1.05, 1.10, 1.25 (A/B: 21, 22, 25 units instead of 20). The
conditions cycle (``--cycle``, shuffled within each cycle) so slow drifts of the machine hit every
condition and every factor alike:

* ``idle``: nothing of ours runs besides the measurement (the neighbours' load is what it is);
* ``busy-other``: a ``nice -n 19`` spin loop pinned to the CPU the workers are *not* pinned to;
* ``busy-same``: the same spin loop pinned to the workers' CPU.

Each run is one ``nice -n 10 perfgate ab --base <base commit> --max-time 0.5s --json ...
--save-base ... --save-current ... -- tests`` in the fixture repository, with the perfgate of
this repository's HEAD (a snapshot made with ``git archive``, first on PYTHONPATH) so that edits
made meanwhile to ``src/`` do not leak into the measurement. Raw outputs go to ``--raw`` (outside
the repository); a small per-run summary (``summarise.py``) goes to ``runs/<label>/runs.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import fixture  # noqa: E402

FACTORS = (1.0, 1.0, 1.0, 1.05, 1.10, 1.25)
CONDITIONS = ("idle", "busy-other", "busy-same")


def snapshot_perfgate(dest: Path, revision: str = "HEAD") -> str:
    """Extract ``src/pytest_perfgate`` of ``revision`` of this repository into ``dest``; the commit id."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", revision], check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src/pytest_perfgate"],
        check=True,
        capture_output=True,
    ).stdout
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return commit


def worker_cpu() -> tuple[int, int | None]:
    """The CPU perfgate ab pins its workers to by default (the last allowed one) and another one."""
    allowed = sorted(os.sched_getaffinity(0))
    other = allowed[0] if len(allowed) > 1 else None
    return allowed[-1], other


def start_hog(cpu: int | None) -> subprocess.Popen[bytes] | None:
    if cpu is None:
        return None
    hog = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
    os.sched_setaffinity(hog.pid, {cpu})
    return hog


def stop_hog(hog: subprocess.Popen[bytes] | None) -> None:
    if hog is not None:
        hog.terminate()
        hog.wait()


def condition_order(cycle: list[str], blocks: int, rng: random.Random) -> list[str]:
    order: list[str] = []
    while len(order) < blocks:
        chunk = list(cycle)
        rng.shuffle(chunk)
        order += chunk
    return order[:blocks]


def one_run(
    repo: Path, base: str, factor: float, args: argparse.Namespace, raw: Path, name: str, env: dict[str, str]
) -> dict[str, Any]:
    fixture.set_factor(repo, factor)
    if factor == 1.0 and not fixture.is_clean(repo):
        raise SystemExit("the fixture's working tree should equal its base commit for an A/A run")
    paths = {k: raw / f"{name}.{k}.json" for k in ("gate", "base", "current")}
    cmd = [
        "nice",
        "-n",
        str(args.nice),
        sys.executable,
        "-m",
        "pytest_perfgate.cli",
        "ab",
        "--base",
        base,
        "--max-time",
        args.max_time,
        "--json",
        str(paths["gate"]),
        "--save-base",
        str(paths["base"]),
        "--save-current",
        str(paths["current"]),
        *args.ab_arg,
        "--",
        "tests",
    ]
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=args.run_timeout)
        returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, stdout, stderr = -999, str(exc.stdout or ""), str(exc.stderr or "")
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (raw / f"{name}.log").write_text(f"$ {' '.join(cmd)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    elapsed = re.search(r"perfgate ab: \d+ test\(s\) in ([0-9.]+)s", stderr)
    return {
        "name": name,
        "factor": factor,
        "start": start,
        "wall": wall,
        "ab_elapsed": float(elapsed.group(1)) if elapsed else None,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "returncode": returncode,
        "stdout_head": stdout.splitlines()[:1],
        "stderr_tail": stderr.splitlines()[-3:] if returncode not in (0, 1) else [],
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "files": {k: str(v) for k, v in paths.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=40, help="blocks of 6 runs (one condition each)")
    parser.add_argument(
        "--cycle",
        default="idle,busy-other,idle,busy-other,busy-same",
        help="conditions, one per block, cycled (shuffled within each cycle)",
    )
    parser.add_argument("--label", default="main", help="output sub-folder of bench/ab/runs")
    parser.add_argument(
        "--raw",
        default=str(Path(tempfile.gettempdir()) / "perfgate-ab-bench"),
        help="where the raw JSON outputs go (outside the repository)",
    )
    parser.add_argument("--max-time", default="0.5s", help="perfgate ab --max-time (per side and test)")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--run-timeout", type=float, default=600.0)
    parser.add_argument("--ab-arg", action="append", default=[], help="an extra argument for perfgate ab")
    parser.add_argument("--stop-at", type=float, help="start no block after this Unix time")
    args = parser.parse_args()
    cycle = [c.strip() for c in args.cycle.split(",") if c.strip()]
    if not set(cycle) <= set(CONDITIONS):
        parser.error(f"--cycle: conditions are {', '.join(CONDITIONS)}")

    out = HERE / "runs" / args.label
    out.mkdir(parents=True, exist_ok=True)
    raw = Path(args.raw) / args.label
    raw.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="perfgate-ab-bench-"))
    try:
        commit = snapshot_perfgate(work / "perfgate")
        perfgate_src = work / "perfgate" / "src"
        sys.path.insert(0, str(perfgate_src))
        import summarise

        repo = work / "repo"
        base = fixture.make_repo(repo)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PERFGATE_"))}
        env["PYTHONPATH"] = str(perfgate_src)
        cpu, other = worker_cpu()
        meta = {
            "perfgate_commit": commit,
            "base_commit": base,
            "max_time": args.max_time,
            "nice": args.nice,
            "seed": args.seed,
            "cycle": cycle,
            "worker_cpu": cpu,
            "other_cpu": other,
            "ab_args": args.ab_arg,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "started": time.time(),
        }
        (out / "meta.jsonl").open("a").write(json.dumps(meta) + "\n")
        rng = random.Random(args.seed)
        conditions = condition_order(cycle, args.blocks, rng)
        index = sum(1 for _ in (out / "runs.jsonl").open()) if (out / "runs.jsonl").exists() else 0
        with open(out / "runs.jsonl", "a", encoding="utf-8") as runs:
            for block, condition in enumerate(conditions):
                if args.stop_at is not None and time.time() > args.stop_at:
                    print(f"stop time reached after {block} blocks", flush=True)
                    break
                hog = start_hog(other if condition == "busy-other" else cpu if condition == "busy-same" else None)
                try:
                    if hog is not None:
                        time.sleep(1.0)  # let the spin loop start
                    order = list(FACTORS)
                    rng.shuffle(order)
                    for factor in order:
                        name = f"run-{index:04d}-f{factor:.2f}"
                        record = one_run(repo, base, factor, args, raw, name, env)
                        record.update(index=index, block=block, condition=condition, seed=args.seed)
                        record["tests"] = summarise.summarise_run(record)
                        runs.write(json.dumps(record) + "\n")
                        runs.flush()
                        verdicts = [t.get("verdict", "?")[:4] for t in record["tests"].values()]
                        print(
                            f"{name} {condition:10s} rc={record['returncode']} wall={record['wall']:.1f}s "
                            f"load={record['loadavg_before'][0]:.2f} {' '.join(verdicts)}",
                            flush=True,
                        )
                        index += 1
                finally:
                    stop_hog(hog)
        fixture.set_factor(repo, 1.0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
