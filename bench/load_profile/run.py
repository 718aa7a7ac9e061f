"""What profiling costs the service under load: rps without profiling, with ``--profile cpu``
(py-spy attached during the measured window) and with ``--profile memory`` (the service under
memray), on the example API, back to back on the same machine.

Each round runs the three modes in turn (the order rotates from round to round, so a slow
stretch of a shared machine does not always hit the same mode), every run a fresh service
started by ``perfgate load --serve``; the figure is perfgate's total rps (mean of the per-second
counts of the measured window) and the cost is each profiled run's rps against the unprofiled
run of the same round.

    python bench/load_profile/run.py --rounds 3 --run-time 20 --warmup 5 --users 10
    python bench/load_profile/run.py --analytics ...   # the mix with the CPU and memory hogs

Writes bench/out/load-profile[-analytics].json (every run's command and figures).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
ROOT = HERE.parents[1]
EXAMPLE = ROOT / "examples" / "api_service"

from _common import machine, write_result  # noqa: E402

MODES = ("none", "cpu", "memory", "cpu-nonblocking")


def serve_command() -> str:
    words = [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLE), "--no-access-log"]
    return shlex.join(words) + " --port {port}"


def command(mode: str, args: argparse.Namespace, out: Path) -> list[str]:
    cmd = [
        sys.executable, "-m", "pytest_perfgate.cli", "load", str(EXAMPLE / "locustfile.py"),
        "--serve", serve_command(), "-u", str(args.users), "-t", f"{args.run_time}s", "--warmup", f"{args.warmup}s",
        "--progress", "never", "--error-rate", "none", "--save", str(out / "load.json"),
    ]  # fmt: skip
    if args.analytics:
        cmd.append("--locust-arg=--analytics")
    if mode != "none":
        kind, _, variant = mode.partition("-")
        cmd += ["--profile", kind, "--profile-dir", str(out / "profile"), "--profile-rate", str(args.rate)]
        if variant == "nonblocking":
            cmd.append("--profile-nonblocking")
    return cmd


def figures(out: Path) -> dict[str, Any]:
    data = json.loads((out / "load.json").read_text())
    total = next(t for t in data["tests"] if t["nodeid"].endswith("::total"))
    load = total["evidence"]["load"]
    service = total["evidence"].get("service", {})
    cpu = service.get("cpu") or {}
    memory = service.get("memory") or {}
    return {
        "rps": load["rps"],
        "requests": load["requests"],
        "failures": load["failures"],
        "p50": load.get("p50"),
        "p95": load.get("p95"),
        "cpu_samples": cpu.get("samples"),
        "cpu_seconds": cpu.get("seconds"),
        "cpu_top": (cpu.get("top") or [{}])[0].get("function"),
        "memory_peak": memory.get("peak"),
        "memory_top_own": max(memory.get("functions") or [{}], key=lambda f: f.get("self_net", 0)).get("function"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run-time", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--analytics", action="store_true", help="the mix with the ranking and report endpoints")
    parser.add_argument("--modes", default="none,cpu,memory", help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--name", default=None, help="the result file's name (default: load-profile[-analytics])")
    args = parser.parse_args()
    modes = tuple(args.modes.split(","))
    if modes[0] != "none" or not set(modes) <= set(MODES):
        parser.error(f"--modes: 'none' first, then any of {', '.join(MODES[1:])}")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="perfgate-load-profile-") as tmp:
        for round_ in range(args.rounds):
            order = modes[round_ % len(modes) :] + modes[: round_ % len(modes)]
            for mode in order:
                out = Path(tmp) / f"r{round_}-{mode}"
                cmd = command(mode, args, out)
                started = time.monotonic()
                done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
                if done.returncode not in (0, 1):
                    print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"run failed ({done.returncode}): {shlex.join(cmd)}")
                run = {"round": round_, "mode": mode, "wall": time.monotonic() - started, **figures(out)}
                run["command"] = shlex.join(cmd).replace(tmp, "$TMP")
                runs.append(run)
                p95 = 1000 * (run["p95"] or 0)
                print(f"round {round_} {mode:>6}: {run['rps']:.1f} rps, p95 {p95:.1f} ms", flush=True)
    summary: dict[str, Any] = {}
    for mode in modes:
        rps = [r["rps"] for r in runs if r["mode"] == mode]
        summary[mode] = {"rps": rps, "median_rps": statistics.median(rps)}
    for mode in modes[1:]:
        ratios = []
        for round_ in range(args.rounds):
            base = next(r["rps"] for r in runs if r["round"] == round_ and r["mode"] == "none")
            profiled = next(r["rps"] for r in runs if r["round"] == round_ and r["mode"] == mode)
            ratios.append(profiled / base)
        summary[mode]["ratio_per_round"] = ratios
        summary[mode]["median_ratio"] = statistics.median(ratios)
        shown = ", ".join(f"{r:.3f}" for r in ratios)
        print(f"{mode}: rps / unprofiled per round {shown}; median {statistics.median(ratios):.3f}")
    name = args.name or ("load-profile-analytics" if args.analytics else "load-profile")
    path = write_result(name, {"args": vars(args), "runs": runs, "summary": summary, "machine_after": machine()})
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
