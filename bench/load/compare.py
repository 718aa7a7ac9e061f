"""perfgate's load driver vs plain ``locust --headless``, and ``--processes 2`` vs 1.

Both drivers run the same locustfile against the same example API (uvicorn on 127.0.0.1) with
the same users and duration, in the same session, rounds alternated A B B A so a slow stretch
of the shared machine hits both. For each run:

* rps and p95 as *locust itself* computes them (``--json-file``: requests / (last request -
  start), p95 from its histogram, rounded to 2 significant digits), the same formula for both
  drivers, so the only difference is perfgate's listener;
* the load generator's CPU time per request (user + sys of the locust process tree, from
  ``getrusage(RUSAGE_CHILDREN)``), which shows the listener's cost even when the service, not the
  generator, is the bottleneck; perfgate's driver runs in this process (``run_load``, what
  ``perfgate load`` and the fixture call), so its own CPU (polling, reading every row, computing
  the figures) is measured apart;
* for perfgate runs, its own rps (mean of per-second counts) and exact p95.

    python bench/load/compare.py --users 20 --run-time 10 --rounds 2 [--workload mix|health]

Writes bench/out/load-<workload>.json (or --out NAME) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
EXAMPLE = ROOT / "examples" / "api_service"
OUT = ROOT / "bench" / "out"

HEALTH_LOCUSTFILE = """
from locust import FastHttpUser, task, constant
class Probe(FastHttpUser):
    wait_time = constant(0)
    @task
    def health(self):
        self.client.get("/health")
"""


def _server():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("api_service_server", EXAMPLE / "server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def locust_figures(json_file: Path) -> dict[str, float]:
    """rps and p95 the way locust reports them, from its --json-file (one entry per endpoint)."""
    entries = json.loads(json_file.read_text())
    requests = sum(e["num_requests"] for e in entries)
    failures = sum(e["num_failures"] for e in entries)
    start = min(e["start_time"] for e in entries)
    last = max(e["last_request_timestamp"] for e in entries)
    histogram: dict[int, int] = {}
    for e in entries:
        for ms, count in e["response_times"].items():
            histogram[int(float(ms))] = histogram.get(int(float(ms)), 0) + count
    seen, p95 = 0, 0.0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= 0.95 * requests:
            p95 = float(ms)
            break
    return {"requests": requests, "failures": failures, "rps": requests / (last - start), "p95_ms": p95}


def run_plain(locustfile: Path, url: str, users: int, seconds: int, processes: int, work: Path) -> dict[str, Any]:
    out = work / "plain"  # locust adds ".json"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "--host", url, "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
        "--stop-timeout", "0", "--exit-code-on-error", "0", "--json-file", str(out),
    ]  # fmt: skip
    if processes != 1:
        cmd += ["--processes", str(processes)]
    before, started = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, cwd=locustfile.parent, check=True, capture_output=True, timeout=seconds + 90)
    wall, cpu = time.perf_counter() - started, _children_cpu() - before
    figures = locust_figures(out.with_suffix(".json"))
    per_request = cpu / figures["requests"] * 1e6
    return {"driver": "locust", **figures, "cpu_s": cpu, "wall_s": wall, "cpu_us_per_request": per_request}


def run_perfgate(locustfile: Path, url: str, users: int, seconds: int, processes: int, work: Path) -> dict[str, Any]:
    """perfgate's driver (run_load: checks, locust + listener, figures) in this process, so its
    locust tree is a direct child like plain locust's; perfgate's own CPU (polling, reading the
    rows, computing every figure) is measured apart."""
    from pytest_perfgate import stats
    from pytest_perfgate.load.run import run_load
    from pytest_perfgate.load.runner import LoadSettings

    out = work / "perfgate-locust"
    settings = LoadSettings(
        locustfile=str(locustfile), host=url, users=users, spawn_rate=float(users), run_time=seconds,
        processes=processes, locust_args=(f"--json-file={out}",),
    )  # fmt: skip
    before, own_before, started = _children_cpu(), time.process_time(), time.perf_counter()
    run = run_load(settings)
    total = run.stats.total
    figures_own = {
        "perfgate_rps": total.rps,
        "perfgate_p95_ms": total.statistic("p95") * 1000,
        "perfgate_requests": total.requests,
    }
    wall, cpu = time.perf_counter() - started, _children_cpu() - before
    own = time.process_time() - own_before
    figures = locust_figures(out.with_suffix(".json"))
    assert stats.mean(total.series()["rps"].values) == total.rps
    return {"driver": "perfgate", **figures, **figures_own, "cpu_s": cpu, "perfgate_cpu_s": own, "wall_s": wall,
            "cpu_us_per_request": cpu / figures["requests"] * 1e6}  # fmt: skip


def paired_ratios(b: list[dict[str, Any]], a: list[dict[str, Any]], key: str) -> list[float]:
    """Per ABBA round (A, B, B, A): (B1 + B2) / (A1 + A2)."""
    return [(b[i][key] + b[i + 1][key]) / (a[i][key] + a[i + 1][key]) for i in range(0, len(a) - 1, 2)]


def summarise(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the server is stopped on kill
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--run-time", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds per comparison (default 2)")
    parser.add_argument("--workload", choices=("mix", "health"), default="mix")
    parser.add_argument("--skip-processes", action="store_true", help="only perfgate vs plain locust")
    parser.add_argument("--out", default=None, help="result name in bench/out (default load-<workload>)")
    args = parser.parse_args()
    server_mod = _server()
    results: dict[str, Any] = {"users": args.users, "run_time": args.run_time, "workload": args.workload,
                               "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = Path(tmp)
        if args.workload == "health":
            locustfile = work / "locustfile_health.py"
            locustfile.write_text(HEALTH_LOCUSTFILE)
        else:
            locustfile = EXAMPLE / "locustfile.py"
        with server_mod.serve() as server:
            drivers = {"locust": run_plain, "perfgate": run_perfgate}
            runs: dict[str, list[dict[str, Any]]] = {"locust": [], "perfgate": []}
            for _ in range(args.rounds):
                for name in ("locust", "perfgate", "perfgate", "locust"):
                    runs[name].append(drivers[name](locustfile, server.url, args.users, args.run_time, 1, work))
                    print(json.dumps(runs[name][-1]), flush=True)
            results["driver"] = runs
            if not args.skip_processes:
                procs: dict[str, list[dict[str, Any]]] = {"1": [], "2": []}
                for _ in range(args.rounds):
                    for n in ("1", "2", "2", "1"):
                        procs[n].append(run_perfgate(locustfile, server.url, args.users, args.run_time, int(n), work))
                        print(json.dumps({"processes": n, **procs[n][-1]}), flush=True)
                results["processes"] = procs
    results["loadavg_end"] = os.getloadavg()[0]
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{args.out or 'load-' + args.workload}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")

    lines = ["| driver | runs | rps (locust's formula, median) | p95 (locust, 2 digits) | p95 (perfgate, exact) "
             "| locust CPU per request | perfgate's own CPU per request |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, rs in results["driver"].items():
        perfgate = name == "perfgate"
        exact = f"{summarise(rs, 'perfgate_p95_ms'):.2f} ms" if perfgate else "-"
        own = f"{statistics.median(r['perfgate_cpu_s'] / r['requests'] * 1e6 for r in rs):.0f} us" if perfgate else "-"
        lines.append(f"| {name} | {len(rs)} | {summarise(rs, 'rps'):.1f} | {summarise(rs, 'p95_ms'):.0f} ms | {exact} "
                     f"| {summarise(rs, 'cpu_us_per_request'):.0f} us | {own} |")  # fmt: skip
    ratios = paired_ratios(results["driver"]["perfgate"], results["driver"]["locust"], "rps")
    results["rps_ratio_per_round"] = ratios
    lines.append(f"\nperfgate / plain locust rps, per ABBA round: {', '.join(f'{r:.1%}' for r in ratios)}; "
                 f"median {statistics.median(ratios):.1%}")  # fmt: skip
    if "processes" in results:
        lines += ["", "| perfgate --processes | runs | rps (median) | p95 (exact) | locust CPU per request |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for n, rs in results["processes"].items():
            lines.append(f"| {n} | {len(rs)} | {summarise(rs, 'rps'):.1f} | {summarise(rs, 'perfgate_p95_ms'):.2f} ms "
                         f"| {summarise(rs, 'cpu_us_per_request'):.0f} us |")  # fmt: skip
        two = paired_ratios(results["processes"]["2"], results["processes"]["1"], "rps")
        results["processes_rps_ratio_per_round"] = two
        lines.append(f"\n--processes 2 / 1 rps, per ABBA round: {', '.join(f'{r:.1%}' for r in two)}")
    path.write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
    print(f"\nraw: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
