"""Change-point detection on synthetic series with steps of known size and position (issue 20).

Noise from the run-to-run spreads measured here: timings 7-32% relative sd (lognormal; a variant
with slow episodes: 5% of runs 1.2-1.9x slower), counts < 0.1% (0.005-0.1% relative sd, and a
share of exactly constant series). Writes a JSON of every figure (``--out``) and prints a summary.

    python bench/history/detect.py --series 400 --out bench/out/history_detect.json

Parts (each can be skipped): ``accuracy`` (detection rate and position error per step size, the
whole series judged, and the delay of the incremental tracker), ``false`` (false change points per
1,000 runs without a step, judged whole and incrementally), ``incremental`` (time to append one
run to 1,000 series of 1,000 runs), ``size`` (history file size for 1,000 runs), ``command``
(``perfgate history`` itself on 1,000 tests x 1,000 runs: judged whole, then continued from its
judged state after each appended run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_perfgate.history import changepoints as cp

TIMING_SD = (0.07, 0.32)
COUNT_SD = (0.00005, 0.001)


def timing_noise(rng: random.Random, sd: float, *, episodes: bool) -> float:
    factor = math.exp(rng.gauss(0.0, sd))
    if episodes and rng.random() < 0.05:
        factor *= rng.uniform(1.2, 1.9)
    return factor


def count_noise(rng: random.Random, sd: float) -> float:
    return 1.0 + rng.gauss(0.0, sd)


def series(rng: random.Random, kind: str, n: int, at: int | None, step: float) -> list[float]:
    """``n`` runs; from index ``at`` the level is ``1 + step`` times the old one."""
    base = rng.uniform(1e-4, 1.0) if kind != "count" else float(rng.randint(10_000, 50_000_000))
    if kind == "count":
        sd = 0.0 if rng.random() < 0.2 else rng.uniform(*COUNT_SD)
        values = [base * count_noise(rng, sd) for _ in range(n)]
        values = [round(v) for v in values]
    else:
        sd = rng.uniform(*TIMING_SD)
        values = [base * timing_noise(rng, sd, episodes=kind == "timing-episodes") for _ in range(n)]
    if at is not None:
        values = [v * (1 + step) if i >= at else v for i, v in enumerate(values)]
    return values


def accuracy(rng: random.Random, kind: str, step: float, count: int, n: int) -> dict[str, object]:
    """Steps at a random position in the middle of ``n`` runs: found (a change point within 2 runs,
    within 10 runs, anywhere, in the step's direction) by the whole-series detector; the delay of
    the tracker (runs after the step until it reports a change point within 10 runs of it)."""
    within2 = within10 = anywhere = extra = 0
    errors: list[int] = []
    delays: list[int] = []
    missed_online = 0
    for _ in range(count):
        at = rng.randint(n // 4, 3 * n // 4)
        values = series(rng, kind, n, at, step)
        found = cp.detect(values)
        right = [s for s in found if (s.change > 0) == (step > 0)]
        nearest = min(right, key=lambda s: abs(s.index - at), default=None)
        if nearest is not None:
            anywhere += 1
            error = abs(nearest.index - at)
            errors.append(error)
            within2 += error <= 2
            within10 += error <= 10
        extra += len(found) - (1 if nearest is not None and abs(nearest.index - at) <= 10 else 0)
        tracker = cp.Tracker.of(values[:at])
        delay = None
        for k, value in enumerate(values[at:], 1):
            tracker.append(value)
            if any(abs(s.index - at) <= 10 and (s.change > 0) == (step > 0) for s in tracker.splits[-2:]):
                delay = k
                break
        if delay is None:
            missed_online += 1
        else:
            delays.append(delay)
    return {
        "kind": kind,
        "step": step,
        "series": count,
        "runs": n,
        "found_within_2": within2 / count,
        "found_within_10": within10 / count,
        "found_anywhere": anywhere / count,
        "position_error_median": statistics.median(errors) if errors else None,
        "position_error_p90": sorted(errors)[int(0.9 * (len(errors) - 1))] if errors else None,
        "other_change_points_per_series": extra / count,
        "online_found": (count - missed_online) / count,
        "online_delay_median": statistics.median(delays) if delays else None,
        "online_delay_p90": sorted(delays)[int(0.9 * (len(delays) - 1))] if delays else None,
    }


def false_rate(rng: random.Random, kind: str, count: int, n: int) -> dict[str, object]:
    """Change points in series of ``n`` runs without a step, per 1,000 runs per series: the
    whole series judged once, and the tracker fed one run at a time (what an alert would see)."""
    whole = online = reports = 0
    with_any = 0
    for _ in range(count):
        reported: list[int] = []
        values = series(rng, kind, n, None, 0.0)
        found = len(cp.detect(values))
        whole += found
        with_any += found > 0
        tracker = cp.Tracker()
        for value in values:
            split = tracker.append(value)
            # a report: an append that revealed a change point not within 10 runs of one reported
            if split is not None and all(abs(split.index - i) > 10 for i in reported):
                reported.append(split.index)
        online += len(tracker.splits)
        reports += len(reported)
    runs = count * n
    return {
        "kind": kind,
        "series": count,
        "runs_per_series": n,
        "false_per_1000_runs_whole": 1000 * whole / runs,
        "series_with_any_whole": with_any / count,
        "false_per_1000_runs_online": 1000 * online / runs,
        "false_reports_per_1000_runs_online": 1000 * reports / runs,
    }


def incremental(rng: random.Random, tests: int, runs: int, appends: int) -> dict[str, object]:
    """Trackers for ``tests`` series of ``runs`` runs (10% with a step in their last 100 runs, so
    some are re-judged), then ``appends`` runs appended to every series: seconds per appended run."""
    start = time.perf_counter()
    trackers = []
    for i in range(tests):
        kind = "count" if i % 3 == 0 else "timing"
        at = runs - rng.randint(5, 100) if i % 10 == 0 else None
        trackers.append((kind, cp.Tracker.of(series(rng, kind, runs, at, 0.5))))
    built = time.perf_counter() - start
    times = []
    for _ in range(appends):
        values = [t.values[-1] * (count_noise(rng, 0.0005) if k == "count" else timing_noise(rng, 0.2, episodes=False))
                  for k, t in trackers]  # fmt: skip
        begin = time.perf_counter()
        for (_, tracker), value in zip(trackers, values, strict=True):
            tracker.append(value)
        times.append(time.perf_counter() - begin)
    return {
        "tests": tests,
        "runs": runs,
        "state_built_s": built,
        "append_s_median": statistics.median(times),
        "append_s_max": max(times),
        "appends": appends,
    }


def _name(i: int) -> str:
    return f"tests/test_mod{i // 20}.py::test_case_{i}[param-{i % 7}]"


class Suite:
    """A synthetic suite promoted run after run into a history file (what ``promote`` appends):
    each test a ``time`` series of 7 rounds, a share of them also an ``instructions`` counter;
    one test in ten steps (+50% time, +2% instructions) at a run drawn in the middle of ``runs``."""

    def __init__(self, rng: random.Random, tests: int, runs: int, counted_share: float) -> None:
        self.rng = rng
        self.tests = tests
        self.counted = int(counted_share * tests)
        self.levels = [rng.uniform(1e-5, 0.1) for _ in range(tests)]
        self.counts = [float(rng.randint(10_000, 50_000_000)) for _ in range(tests)]
        self.steps = {i: rng.randrange(runs // 4, runs) for i in range(0, tests, 10)}
        self.done = 0

    def append(self, folder: str) -> float:
        """Append the next run; the seconds the append took."""
        from pytest_perfgate.history.log import append
        from pytest_perfgate.model import RunResult, Series, TestResult
        from pytest_perfgate.units import Kind

        rng, r = self.rng, self.done
        results = []
        for i in range(self.tests):
            stepped = i in self.steps and r >= self.steps[i]
            rounds = tuple((1.5 if stepped else 1.0) * self.levels[i] * timing_noise(rng, 0.1, episodes=False)
                           for _ in range(7))  # fmt: skip
            series_ = {"time": Series("time", Kind.TIME, rounds, unit="s")}
            if i < self.counted:
                count = round(self.counts[i] * (1.02 if stepped else 1.0))
                series_["instructions"] = Series("instructions", Kind.COUNT, (float(count),) * 3, source="callgrind")
            results.append(TestResult(_name(i), series=series_))
        metadata = {
            "created": f"2026-12-06T{r // 3600 % 24:02d}:{r // 60 % 60:02d}:{r % 60:02d}+00:00",
            "ci": {"CI_COMMIT_SHA": f"{rng.getrandbits(160):040x}", "CI_COMMIT_REF_NAME": "main"},
            "cpu": "Intel Xeon", "cpu_count": 2, "platform": "Linux-6.1-x86_64", "python": "3.11.7",
            "fingerprint": {"python": "3.11.7", "valgrind": "3.19.0", "distributions": "abc1234", "hash_seed": "0"},
        }  # fmt: skip
        begin = time.perf_counter()
        append(folder, RunResult(metadata, tuple(results)), stored_run=r + 1)
        self.done += 1
        return time.perf_counter() - begin


def size(rng: random.Random, tests: int, runs: int, counted_share: float) -> dict[str, object]:
    """The history file(s) after ``runs`` promotions of a :class:`Suite` of ``tests`` tests."""
    from pytest_perfgate.history.analyse import judge
    from pytest_perfgate.history.log import parts, parts_size, read_log

    suite = Suite(rng, tests, runs, counted_share)
    with tempfile.TemporaryDirectory() as folder:
        append_times = [suite.append(folder) for _ in range(runs)]
        total = parts_size(folder)
        begin = time.perf_counter()
        log = read_log(folder)
        read_s = time.perf_counter() - begin
        assert log is not None and len(log.runs) == runs
        begin = time.perf_counter()
        history = judge(log)
        judge_s = time.perf_counter() - begin
        return {
            "tests": tests,
            "runs": runs,
            "series": len(log.series),
            "bytes": total,
            "bytes_per_series_run": total / (len(log.series) * runs),
            "parts": len(parts(folder)),
            "append_s_median": statistics.median(append_times),
            "append_s_max": max(append_times),
            "read_s": read_s,
            "judge_s": judge_s,
            "change_points": sum(len(s.change_points) for s in history.series),
        }


def _history_command(folder: str, *extra: str) -> tuple[float, str]:
    """``perfgate history FOLDER`` in a process of its own, as a job runs it: wall seconds and output."""
    import subprocess

    begin = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest_perfgate.cli", "history", folder, *extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - begin, done.stdout


def command(rng: random.Random, tests: int, runs: int, appends: int) -> dict[str, object]:
    """``perfgate history`` on a history of ``tests`` tests x ``runs`` runs: judged whole (no state
    yet), then continued from its judged state after each of ``appends`` runs appended one at a
    time; last, the change points of the continued judging against judging the whole again."""
    suite = Suite(rng, tests, runs + appends, 0.3)
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(runs):
            suite.append(folder)
        whole_s, _ = _history_command(folder)
        continued = []
        for _ in range(appends):
            suite.append(folder)
            seconds, out = _history_command(folder)
            assert "judged whole" not in out, out
            continued.append(seconds)
        with tempfile.TemporaryDirectory() as other:
            for name in os.listdir(folder):
                if name.startswith("history"):
                    Path(other, name).write_bytes(Path(folder, name).read_bytes())
            full_s, _ = _history_command(other, "--full", "--json", str(Path(other, "whole.json")))
            _, _ = _history_command(folder, "--json", str(Path(other, "continued.json")))
            from pytest_perfgate.history.model import load_history

            def found(path: Path) -> set[tuple[str, str, int]]:
                return {(c.key.test, c.key.metric, c.run) for c in load_history(path).change_points()}

            whole, cont = found(Path(other, "whole.json")), found(Path(other, "continued.json"))
        stepped = {
            (f"tests/test_mod{i // 20}.py::test_case_{i}[param-{i % 7}]", at + 1) for i, at in suite.steps.items()
        }
        return {
            "tests": tests,
            "runs": runs,
            "whole_s": whole_s,
            "continued_s_median": statistics.median(continued),
            "continued_s_max": max(continued),
            "appends": appends,
            "full_again_s": full_s,
            "change_points_whole": len(whole),
            "change_points_continued": len(cont),
            "only_whole": sorted(whole - cont),
            "only_continued": sorted(cont - whole),
            "steps_found_whole": sum(1 for t, r in stepped if (t, "median", r) in whole),
            "steps": len(stepped),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=400, help="series per accuracy cell (default 400)")
    parser.add_argument("--runs", type=int, default=200, help="runs per accuracy series (default 200)")
    parser.add_argument("--false-series", type=int, default=100, help="series of 1,000 runs per kind for false CPs")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument(
        "--skip", action="append", default=[], choices=["accuracy", "false", "incremental", "size", "command"]
    )
    parser.add_argument("--size-tests", type=int, action="append", help="suite sizes for the size part (1000, 50)")
    parser.add_argument("--out", default="bench/out/history_detect.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    settings = {"alpha": cp.ALPHA, "min_segment": cp.MIN_SEGMENT, "min_change": cp.MIN_CHANGE, "window": cp.WINDOW}
    out: dict[str, object] = {"settings": {**settings, "young": cp.YOUNG, "scales": cp.SCALES}, "seed": args.seed}
    if "accuracy" not in args.skip:
        cells = [("count", s) for s in (0.005, 0.01, 0.02, -0.02, 0.05)]
        cells += [(k, s) for k in ("timing", "timing-episodes") for s in (0.1, 0.2, 0.3, -0.3, 0.5)]
        rows = []
        for kind, step in cells:
            row = accuracy(rng, kind, step, args.series, args.runs)
            rows.append(row)
            print(json.dumps(row), flush=True)
        out["accuracy"] = rows
    if "false" not in args.skip:
        rows = []
        for kind in ("count", "timing", "timing-episodes"):
            row = false_rate(rng, kind, args.false_series, 1000)
            rows.append(row)
            print(json.dumps(row), flush=True)
        out["false"] = rows
    if "incremental" not in args.skip:
        row = incremental(rng, 1000, 1000, 20)
        print(json.dumps(row), flush=True)
        out["incremental"] = row
    if "size" not in args.skip:
        rows = []
        for tests in args.size_tests or [50, 1000]:
            row = size(rng, tests, 1000, 0.3)
            rows.append(row)
            print(json.dumps(row), flush=True)
        out["size"] = rows
    if "command" not in args.skip:
        row = command(rng, 1000, 1000, 10)
        print(json.dumps(row), flush=True)
        out["command"] = row
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {args.out} (load average {os.getloadavg()[0]:.1f})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
