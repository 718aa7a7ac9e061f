"""Awaited timing (issue 15): perfgate's ``perf`` on coroutines next to what users write by hand.

Workloads, each a coroutine function: pure CPU (a loop of ~10 us, 100 us, 1 ms, 10 ms) and a
loopback socket (connect to an echo server on 127.0.0.1 in another thread, send 64 bytes, read them
back, close). Methods, each run ``--runs`` times, alternated run by run:

  perf          perfgate's path in a sync test: one asyncio loop, aio.measure (calibrated rounds of
                awaited calls), max-time --max-time
  perf-in-loop  perfgate's path in an async test: aio.measure awaited inside a running loop
  bare-await    the floor: one loop, a hand-written ``for`` of awaited calls timed around it
  run-per-call  ``loop.run_until_complete(fn())`` per call on one loop, each call timed
  asyncio.run   ``asyncio.run(fn())`` per call (a new loop per call), each call timed

Each run gives a median time per call; the table gives the median over runs, its spread
(max/min - 1 over runs) and the difference to bare-await. Also perfgate's own measured basis
(an empty coroutine awaited, one loop turn). Writes bench/out/async_perf.json.

Usage: python bench/async_perf.py [--runs 5] [--max-time 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import socketserver
import statistics
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pytest_perfgate.measure import aio, timing

OUT = Path(__file__).resolve().parent / "out"


def _cpu(n: int) -> Callable[[], Coroutine[Any, Any, int]]:
    async def cpu() -> int:
        total = 0
        for i in range(n):
            total += i * i
        return total

    return cpu


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = self.request.recv(64)
        self.request.sendall(data)


def _socket(port: int) -> Callable[[], Coroutine[Any, Any, bytes]]:
    async def roundtrip() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * 64)
        await writer.drain()
        data = await reader.readexactly(64)
        writer.close()
        await writer.wait_closed()
        return data

    return roundtrip


def _iterations_for(seconds: float) -> int:
    probe = _cpu(100_000)
    fastest = []
    for _ in range(7):  # the fastest of 7: the machine's speed when it is not preempted
        start = time.perf_counter()
        asyncio.run(probe())
        fastest.append(time.perf_counter() - start)
    return max(1, int(seconds / (min(fastest) / 100_000)))


def _calls_for(seconds: float, max_time: float) -> int:
    return max(5, min(2000, int(max_time / max(seconds, 1e-6))))


def perf_own_loop(fn: Callable[[], Any], settings: timing.TimingSettings) -> float:
    loop = aio.OwnLoop()
    try:
        return statistics.median(loop.run(aio.measure(fn, settings)).samples)
    finally:
        loop.close()


def perf_in_loop(fn: Callable[[], Any], settings: timing.TimingSettings) -> float:
    async def main() -> float:
        return statistics.median((await aio.measure(fn, settings)).samples)

    return asyncio.run(main())


def bare_await(fn: Callable[[], Any], calls: int) -> float:
    async def main() -> float:
        for _ in range(3):
            await fn()
        rounds = []
        for _ in range(max(5, calls // 20)):
            start = time.perf_counter_ns()
            for _ in range(20):
                await fn()
            rounds.append((time.perf_counter_ns() - start) / 20)
        return statistics.median(rounds) * 1e-9

    return asyncio.run(main())


def run_per_call(fn: Callable[[], Any], calls: int) -> float:
    loop = asyncio.new_event_loop()
    try:
        times = []
        for _ in range(calls):
            start = time.perf_counter_ns()
            loop.run_until_complete(fn())
            times.append(time.perf_counter_ns() - start)
        return statistics.median(times) * 1e-9
    finally:
        loop.close()


def asyncio_run(fn: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        asyncio.run(fn())
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) * 1e-9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-time", type=float, default=0.3)
    args = parser.parse_args()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    socket.setdefaulttimeout(5)
    workloads: list[tuple[str, Callable[[], Any], float]] = [
        (f"cpu {label}", _cpu(_iterations_for(seconds)), seconds)
        for label, seconds in (("10us", 10e-6), ("100us", 100e-6), ("1ms", 1e-3), ("10ms", 10e-3))
    ]
    workloads.append(("loopback socket", _socket(port), 150e-6))
    settings = timing.TimingSettings(max_time=args.max_time, warmup_time=0.02)
    methods: dict[str, Callable[[Callable[[], Any], float], float]] = {
        "perf": lambda fn, s: perf_own_loop(fn, settings),
        "perf-in-loop": lambda fn, s: perf_in_loop(fn, settings),
        "bare-await": lambda fn, s: bare_await(fn, _calls_for(s, args.max_time)),
        "run-per-call": lambda fn, s: run_per_call(fn, _calls_for(s, args.max_time)),
        "asyncio.run": lambda fn, s: asyncio_run(fn, _calls_for(s, args.max_time)),
    }
    load_before = os.getloadavg()
    results: dict[str, dict[str, list[float]]] = {}
    for name, fn, seconds in workloads:
        results[name] = {method: [] for method in methods}
        for _ in range(args.runs):
            for method, run in methods.items():
                results[name][method].append(run(fn, seconds))
    basis = {
        "own loop": asyncio.new_event_loop().run_until_complete(aio.basis("asyncio", "own loop")).to_dict(),
    }
    load_after = os.getloadavg()
    server.shutdown()

    def us(value: float) -> str:
        return f"{value * 1e6:.1f}us" if value < 1e-3 else f"{value * 1e3:.3f}ms"

    print(f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}; {args.runs} runs per method")
    print(
        f"perfgate's basis: empty await {us(basis['own loop']['overhead'])}/call, "
        f"loop turn {us(basis['own loop']['turn'])}"
    )
    header = f"{'workload':<16}" + "".join(f"{m:>26}" for m in methods)
    print(header)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name, by_method in results.items():
        floor = statistics.median(by_method["bare-await"])
        cells = []
        summary[name] = {}
        for method, values in by_method.items():
            median = statistics.median(values)
            spread = max(values) / min(values) - 1
            summary[name][method] = {"median": median, "spread": spread, "vs_bare": median - floor}
            cells.append(f"{us(median)} ±{spread:.0%} ({'+' if median >= floor else '-'}{us(abs(median - floor))})")
        print(f"{name:<16}" + "".join(f"{c:>26}" for c in cells))
    OUT.mkdir(exist_ok=True)
    (OUT / "async_perf.json").write_text(
        json.dumps(
            {
                "runs": args.runs,
                "max_time": args.max_time,
                "load": [load_before, load_after],
                "basis": basis,
                "raw": results,
                "summary": summary,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
