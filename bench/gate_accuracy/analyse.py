"""Judge the harness's runs with perfgate's gate and pytest-benchmark's percentage rules.

    python bench/gate_accuracy/analyse.py bench/gate_accuracy/runs/idle bench/gate_accuracy/runs/busy

For each condition, in the order the runs were made:

* perfgate's stored-baseline gate: the baseline is the K unchanged runs made just before the
  current run (as a default branch that promotes every run would hold), default settings
  (10% / 5%, min effect 3%, alpha 0.01 with Holm over the suite), statistic median (and min);
* pytest-benchmark's ``--benchmark-compare-fail`` rules (``mean:5%``, ``min:10%``, ``median:10%``):
  current statistic / baseline statistic - 1 > threshold, against the one unchanged run made just
  before (pytest-benchmark compares with one saved run), computed from the very same rounds.

A/A: unchanged current runs; suite-level false positive = anything in the suite fails.
A/B: slowed current runs; detection per workload = that workload fails.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from pytest_perfgate import stats
from pytest_perfgate.config import GateSettings
from pytest_perfgate.gate import GateVerdict, compare
from pytest_perfgate.importers import load_run
from pytest_perfgate.model import RunResult, Series, TestResult, load_results
from pytest_perfgate.units import Kind

STATISTICS = ("median", "mean", "min")
PB_RULES = (("mean", 0.05), ("min", 0.10), ("median", 0.10))
KS = (5, 10)


def summarise(folder: Path) -> list[dict[str, Any]]:
    """Per run: factor, order, and per test the statistics of its rounds (cached in summary.json)."""
    cache = folder / "summary.json"
    manifest = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line]
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    cached = {k: v for k, v in cached.items() if v}  # drop runs summarised as empty
    fallback: list[str] = []
    out = []
    for record in manifest:
        name = record["name"]
        if name not in cached:
            path = folder / f"{name}.json"
            if record["returncode"] != 0 or not path.exists():
                continue
            run = load_results(path)
            if not run.tests:  # the plugin recorded nothing: use pytest-benchmark's file of the same run
                run = load_run(folder / f"{name}.benchmark.json")
                fallback.append(name)
            cached[name] = {
                t.nodeid.split("[")[-1].rstrip("]"): {
                    s: stats.statistic(t.series["time"].values, s) for s in STATISTICS
                }
                | {"rounds": len(t.series["time"].values)}
                for t in run.tests
                if "time" in t.series
            }
        out.append({**record, "tests": cached[name]})
    cache.write_text(json.dumps(cached))
    if fallback:
        print(
            f"{folder}: {len(fallback)} perfgate results files held no tests; their pytest-benchmark JSON "
            f"(the same rounds) was imported instead: {fallback[0]} .. {fallback[-1]}",
            file=sys.stderr,
        )
    return out


def as_run(run: dict[str, Any], statistic: str) -> RunResult:
    """A run reduced to one value per test (the gate only uses each run's statistic)."""
    return RunResult(
        {},
        tuple(
            TestResult(nodeid=name, series={"time": Series("time", Kind.TIME, (figures[statistic],))})
            for name, figures in sorted(run["tests"].items())
        ),
    )


def judge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    workloads = sorted(runs[0]["tests"])
    results: dict[str, Any] = {"workloads": workloads, "runs": len(runs), "rules": {}}
    unchanged = [r for r in runs if r["factor"] == 1.0]
    # the run-to-run spread of each workload, over every unchanged run of the condition
    results["spread"] = {
        w: {s: math.expm1(stats.stdev([math.log(r["tests"][w][s]) for r in unchanged])) for s in STATISTICS}
        for w in workloads
    }
    results["rounds"] = {
        w: round(stats.percentile([r["tests"][w]["rounds"] for r in unchanged], 50)) for w in workloads
    }
    results["load"] = [r["loadavg_before"][0] for r in runs]
    results["false_alarms"] = _false_alarms(runs, k=10, statistic="median")
    for k in KS:
        for statistic in ("median", "min"):
            name = f"perfgate K={k} {statistic}"
            results["rules"][name] = _tally(
                runs, workloads, lambda cur, prev, k=k, s=statistic: _gate(cur, prev[-k:], s), need=k
            )
    for statistic, threshold in PB_RULES:
        name = f"pytest-benchmark {statistic}:{threshold:.0%}"

        def rule(
            cur: dict[str, Any], prev: list[dict[str, Any]], s: str = statistic, t: float = threshold
        ) -> dict[str, str]:
            base = prev[-1]["tests"]
            return {w: ("regression" if cur["tests"][w][s] / base[w][s] - 1 > t else "pass") for w in cur["tests"]}

        results["rules"][name] = _tally(runs, workloads, rule, need=1)
    return results


def _false_alarms(runs: list[dict[str, Any]], *, k: int, statistic: str) -> list[dict[str, Any]]:
    """Every regression the gate reports on an unchanged run, with what the run looked like."""
    walls = sorted(r["wall"] for r in runs)
    typical = walls[len(walls) // 2]
    events, history = [], []
    for run in runs:
        if run["factor"] == 1.0:
            if len(history) >= k:
                prev = history[-k:]
                report = compare(
                    [as_run(r, statistic) for r in prev], as_run(run, statistic), GateSettings(metric=statistic)
                )
                for c in report.regressions:
                    events.append(
                        {
                            "run": run["name"],
                            "workload": c.nodeid,
                            "change": c.change,
                            "baseline_range": [
                                min(r["tests"][c.nodeid][statistic] for r in prev),
                                max(r["tests"][c.nodeid][statistic] for r in prev),
                            ],
                            "current": run["tests"][c.nodeid][statistic],
                            "wall": run["wall"],
                            "typical_wall": typical,
                            "load": run["loadavg_before"][0],
                        }
                    )
            history.append(run)
    return events


def _gate(cur: dict[str, Any], prev: list[dict[str, Any]], statistic: str) -> dict[str, str]:
    report = compare([as_run(r, statistic) for r in prev], as_run(cur, statistic), GateSettings(metric=statistic))
    return {c.nodeid: c.verdict.value for c in report.comparisons}


def _tally(runs: list[dict[str, Any]], workloads: list[str], rule: Any, *, need: int) -> dict[str, Any]:
    history: list[dict[str, Any]] = []
    pairs: dict[float, int] = defaultdict(int)
    suite_fail: dict[float, int] = defaultdict(int)
    fails: dict[float, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    flagged: dict[float, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for run in runs:
        if len(history) >= need:
            verdicts = rule(run, history)
            f = run["factor"]
            pairs[f] += 1
            suite_fail[f] += any(v == GateVerdict.REGRESSION.value for v in verdicts.values())
            for w, v in verdicts.items():
                fails[f][w] += v == GateVerdict.REGRESSION.value
                flagged[f][w] += v in (GateVerdict.UNSTABLE.value, GateVerdict.INSUFFICIENT.value)
        if run["factor"] == 1.0:
            history.append(run)
    return {
        str(f): {"pairs": pairs[f], "suite_fail": suite_fail[f], "fails": dict(fails[f]), "flagged": dict(flagged[f])}
        for f in sorted(pairs)
    }


def smallest_detectable(spread: float, k: int, m: int, alpha: float = 0.01) -> float:
    """Smallest slowdown the K-run gate can call significant for one workload in a suite of m."""
    s = math.log1p(spread)
    return math.expm1(stats.t_isf(alpha / m, k - 1) * s * math.sqrt(1 + 1 / k))


def markdown(condition: str, r: dict[str, Any]) -> str:
    lines = [f"### {condition}: {r['runs']} runs", ""]
    load = r["load"]
    lines.append(
        f"Load average (1 min) before each run: min {min(load):.2f}, median {stats.percentile(load, 50):.2f}, "
        f"max {max(load):.2f}."
    )
    lines += [
        "",
        "Suite-level false positives (A/A: share of unchanged runs where any workload fails):",
        "",
        "| rule | A/A pairs | suites failing | rate |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, tally in r["rules"].items():
        aa = tally.get("1.0", {"pairs": 0, "suite_fail": 0})
        rate = aa["suite_fail"] / aa["pairs"] if aa["pairs"] else math.nan
        lines.append(f"| {name} | {aa['pairs']} | {aa['suite_fail']} | {rate:.0%} |")
    for factor in ("1.05", "1.1", "1.25"):
        lines += [
            "",
            f"Detection of a {float(factor) - 1:.0%} slowdown (share of slowed runs where the workload "
            "fails; perfgate: flagged unstable/insufficient in brackets):",
            "",
        ]
        names = list(r["rules"])
        lines.append("| workload | " + " | ".join(names) + " |")
        lines.append("| --- |" + " ---: |" * len(names))
        for w in r["workloads"]:
            cells = []
            for name in names:
                t = r["rules"][name].get(factor)
                if not t or not t["pairs"]:
                    cells.append("-")
                    continue
                cell = f"{t['fails'].get(w, 0)}/{t['pairs']}"
                if name.startswith("perfgate"):
                    cell += f" ({t['flagged'].get(w, 0)})"
                cells.append(cell)
            lines.append(f"| {w} | " + " | ".join(cells) + " |")
    lines += ["", "Every regression perfgate K=10 (median) reported on an unchanged run:", ""]
    for e in r["false_alarms"]:
        low, high = e["baseline_range"]
        lines.append(
            f"- {e['run']} {e['workload']}: {e['change']:+.0%} (median {e['current'] * 1e3:.3g} ms; the 10 "
            f"baseline runs {low * 1e3:.3g}-{high * 1e3:.3g} ms); run wall time {e['wall']:.1f} s "
            f"(median {e['typical_wall']:.1f} s), load {e['load']:.1f}"
        )
    m = len(r["workloads"])
    lines += [
        "",
        "Measured run-to-run spread (relative standard deviation of each run's statistic over the "
        "unchanged runs) and the smallest slowdown the median gate can show at alpha 0.01 with Holm over "
        f"{m} workloads:",
        "",
        "| workload | rounds/run | spread median | spread mean | spread min | detectable K=5 | detectable K=10 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in r["workloads"]:
        sp = r["spread"][w]
        lines.append(
            f"| {w} | {r['rounds'][w]} | {sp['median']:.1%} | {sp['mean']:.1%} | {sp['min']:.1%} | "
            f"{smallest_detectable(sp['median'], 5, m):.0%} | {smallest_detectable(sp['median'], 10, m):.0%} |"
        )
    return "\n".join(lines) + "\n"


def main(folders: list[str]) -> int:
    for folder in folders:
        runs = summarise(Path(folder))
        result = judge(runs)
        (Path(folder) / "analysis.json").write_text(json.dumps(result, indent=1))
        print(markdown(Path(folder).name, result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
