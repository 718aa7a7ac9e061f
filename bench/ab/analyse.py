"""Tables of the paired A/B gate's accuracy and cost from the runs of ``run.py``.

    python bench/ab/analyse.py bench/ab/runs/main [more run folders] [--json bench/ab/runs/main/analysis.json]

Per condition (and all conditions together):

* suite-level false positives on A/A (factor 1.0): a suite *fails* when any workload is a
  ``regression``; warnings (no failure, but a flag in the report) are counted separately; with
  95% Clopper-Pearson intervals;
* detection per workload of 5 / 10 / 25% slowdowns: ``regression`` (what fails the gate), and
  ``regression`` or ``warning``;
* both under the default thresholds (max_regression 10%, warn 5%: the verdicts ``perfgate ab``
  printed) and under ``--max-regression 5%`` (``max5``: verdicts recomputed by ``summarise.py``
  from the same rounds);
* the measured change against the true factor (bias), the A/A changes, and the cost: wall time
  and CPU time per run and per test.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from pytest_perfgate.stats import percentile

FACTORS = (1.05, 1.10, 1.25)
FAIL = "regression"
WARN = "warning"


def load(folders: list[str]) -> list[dict[str, Any]]:
    runs = []
    for folder in folders:
        for line in (Path(folder) / "runs.jsonl").read_text().splitlines():
            if line.strip():
                runs.append(json.loads(line))
    return runs


def _binom_cdf(k: int, n: int, p: float) -> float:
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion k/n."""
    if n == 0:
        return (math.nan, math.nan)
    tail = (1 - confidence) / 2

    def solve(f: Any) -> float:  # f decreasing in p: the p where f(p) = tail
        low, high = 0.0, 1.0
        for _ in range(60):
            mid = (low + high) / 2
            if f(mid) > tail:
                low = mid
            else:
                high = mid
        return (low + high) / 2

    lower = 0.0 if k == 0 else _solve_lower(k, n, tail)
    upper = 1.0 if k == n else solve(lambda p: _binom_cdf(k, n, p))
    return lower, upper


def _solve_lower(k: int, n: int, tail: float) -> float:
    """The p where P(X >= k) = tail (P(X >= k) increases with p)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        if 1 - _binom_cdf(k - 1, n, mid) < tail:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def rate(k: int, n: int) -> str:
    if n == 0:
        return "-"
    low, high = clopper_pearson(k, n)
    return f"{k}/{n} = {k / n:.1%} [{low:.1%}, {high:.1%}]"


def verdict(test: dict[str, Any], rule: str) -> str:
    if rule == "default":
        return str(test.get("verdict", "?"))
    return str(test.get("recomputed", {}).get(rule, "?"))


def valid(run: dict[str, Any]) -> bool:
    return run["returncode"] in (0, 1) and len(run.get("tests", {})) == 8


def describe(runs: list[dict[str, Any]], title: str) -> tuple[str, dict[str, Any]]:
    ok = [r for r in runs if valid(r)]
    bad = [r for r in runs if not valid(r)]
    workloads = sorted({w for r in ok for w in r["tests"]})
    result: dict[str, Any] = {"title": title, "runs": len(runs), "valid": len(ok), "invalid": [r["name"] for r in bad]}
    lines = [f"### {title}: {len(ok)} runs" + (f" ({len(bad)} more did not finish: see below)" if bad else ""), ""]
    if not ok:
        return "\n".join(lines), result
    load = [r["loadavg_before"][0] for r in ok]
    walls = [r["wall"] for r in ok]
    cpus = [r["cpu"] for r in ok]
    first, last = min(r["start"] for r in ok), max(r["start"] + r["wall"] for r in ok)
    result["load"] = {"min": min(load), "median": statistics.median(load), "max": max(load)}
    result["wall"] = {"min": min(walls), "median": statistics.median(walls), "max": max(walls)}
    result["cpu_median"] = statistics.median(cpus)
    lines += [
        f"Spread over {(last - first) / 60:.0f} min. Load average (1 min) before each run: min {min(load):.2f}, "
        f"median {statistics.median(load):.2f}, max {max(load):.2f}.",
        f"Wall time per run (8 tests): median {statistics.median(walls):.1f} s (min {min(walls):.1f}, max "
        f"{max(walls):.1f}), i.e. {statistics.median(walls) / 8:.2f} s per test; CPU time (controller and both "
        f"workers) median {statistics.median(cpus):.1f} s per run.",
    ]
    timed = [r for r in ok if all("progress" in t for t in r["tests"].values())]
    if timed:

        def progress(r: dict[str, Any], w: str, key: str) -> float:
            return float(r["tests"][w]["progress"][key])

        fixed = [r["wall"] - sum(progress(r, w, "elapsed") for w in workloads) for r in timed]
        result["fixed_overhead_median"] = statistics.median(fixed)
        per_w = {w: statistics.median(progress(r, w, "elapsed") for r in timed) for w in workloads}
        loops = {w: statistics.median(progress(r, w, "loops") for r in timed) for w in workloads}
        left_out = {w: statistics.median(progress(r, w, "disturbed_left_out") for r in timed) for w in workloads}
        result["per_test_elapsed_median"] = per_w
        lines.append(
            "Of a run's wall time, the 8 tests' paired measurements took median "
            f"{statistics.median(sum(progress(r, w, 'elapsed') for w in workloads) for r in timed):.1f} s "
            "(per test: "
            + ", ".join(f"{w} {per_w[w]:.2f} s ({loops[w]:.0f} loops/round)" for w in workloads)
            + "); the rest (git worktree, two pytest start-ups and collections, reports, clean-up) median "
            f"{statistics.median(fixed):.1f} s per run."
        )
        if any(left_out.values()):
            judged_all = sum(any("disturbed ones were judged" in n for n in r.get("notices", [])) for r in timed)
            lines.append(
                "Disturbed blocks left out per test (median): "
                + ", ".join(f"{w} {left_out[w]:.0f}" for w in workloads)
                + f"; runs where a test had too few undisturbed blocks (all judged): {judged_all}/{len(timed)}."
            )
    lines.append("")
    # suite level, A/A
    aa = [r for r in ok if r["factor"] == 1.0]
    lines += [
        "Suite-level false positives on A/A (share of unchanged suites with at least one such verdict; "
        "95% Clopper-Pearson interval):",
        "",
        "| thresholds | suites with a regression (gate fails) | suites with a warning "
        "| suites with unstable / insufficient |",
        "| --- | --- | --- | --- |",
    ]
    result["aa"] = {}
    for rule, label in (("default", "default (10% / warn 5%)"), ("max5", "--max-regression 5%")):
        fails = sum(any(verdict(t, rule) == FAIL for t in r["tests"].values()) for r in aa)
        warns = sum(any(verdict(t, rule) == WARN for t in r["tests"].values()) for r in aa)
        flags = sum(any(verdict(t, rule) in ("unstable", "insufficient data") for t in r["tests"].values()) for r in aa)
        result["aa"][rule] = {"n": len(aa), "fail": fails, "warn": warns, "flagged": flags}
        lines.append(f"| {label} | {rate(fails, len(aa))} | {rate(warns, len(aa))} | {rate(flags, len(aa))} |")
    # the sign test alone, whatever the thresholds: how often is an unchanged workload "significantly" worse?
    significant = [[w for w, t in r["tests"].items() if (t.get("p_adj") or 1.0) < 0.01] for r in aa]
    n_sig = sum(len(s) for s in significant)
    result["aa"]["significant"] = {"suites": sum(bool(s) for s in significant), "comparisons": n_sig}
    lines += [
        "",
        f'Sign test alone (Holm-adjusted p < 0.01 for "worse", whatever the change): '
        f"{rate(sum(bool(s) for s in significant), len(aa))} of A/A suites, {n_sig} of {8 * len(aa)} A/A comparisons.",
    ]
    tests_aa = [t for r in aa for t in r["tests"].values() if t.get("ci")]
    excl = sum(t["ci"][0] > 0 or t["ci"][1] < 0 for t in tests_aa)
    p01 = sum((t.get("p") or 1.0) < 0.01 for t in tests_aa)
    result["aa"]["ci_excludes_0"] = {"n": len(tests_aa), "k": excl, "p_unadjusted_below_0.01": p01}
    lines.append(
        f"A/A comparisons whose 95% interval of the change excludes 0: {rate(excl, len(tests_aa))} "
        f'(a calibrated interval: about 5%); unadjusted one-sided p < 0.01 for "worse": {p01} of {len(tests_aa)}.'
    )
    changes_aa = [t["change"] for t in tests_aa]
    tails = {
        f"{sign}{cut:.0%}": sum((c > cut) if sign == ">" else (c < -cut) for c in changes_aa)
        for sign in (">", "<")
        for cut in (0.03, 0.05, 0.10)
    }
    result["aa"]["tails"] = tails
    half = statistics.median((t["ci"][1] - t["ci"][0]) / 2 for t in tests_aa) if tests_aa else math.nan
    sd = statistics.pstdev(math.log1p(c) for c in changes_aa) if len(changes_aa) > 1 else math.nan
    result["aa"]["ci_half_width_median"] = half
    result["aa"]["sd_between_runs"] = sd
    lines.append(
        f"A/A changes (all workloads pooled, n = {len(changes_aa)}): above +3% / +5% / +10%: "
        f"{tails['>3%']} / {tails['>5%']} / {tails['>10%']}; below -3% / -5% / -10%: {tails['<3%']} / "
        f"{tails['<5%']} / {tails['<10%']}. Their spread between runs (SD of log change) is {sd:.1%}, while the "
        f"median half-width of a run's own 95% interval is {half:.1%}."
    )
    events = [
        (r["name"], w, t["change"], verdict(t, rule), rule)
        for r in aa
        for w, t in sorted(r["tests"].items())
        for rule in ("default", "max5")
        if verdict(t, rule) in (FAIL, WARN)
    ]
    if events:
        lines += ["", "Every A/A regression or warning (run, workload, change, verdict, thresholds):", ""]
        lines += [f"- {n} {w}: {c:+.1%} {v} ({rule})" for n, w, c, v, rule in events]
    # detection
    result["detect"] = {}
    for factor in FACTORS:
        slow = [r for r in ok if abs(r["factor"] - factor) < 1e-9]
        lines += [
            "",
            f"Detection of a {factor - 1:.0%} slowdown ({len(slow)} runs; per workload: runs with that verdict):",
            "",
            "| workload | regression (default) | regression or warning (default) | regression (--max-regression 5%) "
            "| measured change: median [min, max] |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        det: dict[str, Any] = {}
        for w in workloads:
            tests = [r["tests"][w] for r in slow]
            fail = sum(verdict(t, "default") == FAIL for t in tests)
            flag = sum(verdict(t, "default") in (FAIL, WARN) for t in tests)
            fail5 = sum(verdict(t, "max5") == FAIL for t in tests)
            changes = [t["change"] for t in tests if t.get("change") is not None]
            det[w] = {
                "n": len(tests),
                "fail": fail,
                "fail_or_warn": flag,
                "fail_max5": fail5,
                "change_median": statistics.median(changes) if changes else None,
            }
            spread = f"{statistics.median(changes):+.1%} [{min(changes):+.1%}, {max(changes):+.1%}]" if changes else "-"
            lines.append(f"| {w} | {fail}/{len(tests)} | {flag}/{len(tests)} | {fail5}/{len(tests)} | {spread} |")
        every = sum(all(verdict(r["tests"][w], "default") == FAIL for w in workloads) for r in slow)
        every5 = sum(all(verdict(r["tests"][w], "max5") == FAIL for w in workloads) for r in slow)
        lines += [
            "",
            f"Runs where all 8 workloads failed: {every}/{len(slow)} (default), "
            f"{every5}/{len(slow)} (--max-regression 5%).",
        ]
        result["detect"][str(factor)] = det
    # A/A changes and bias
    lines += [
        "",
        "Measured change per workload (median over runs [5th, 95th percentile]); A/A should be 0; the "
        "achieved factor of the knob (bench/RESULTS-gate.md, verify_ratio.py) is within 2.5 points of nominal:",
        "",
        "| workload | A/A | 5% | 10% | 25% | blocks per test (median) |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    result["changes"] = {}
    for w in workloads:
        cells = []
        result["changes"][w] = {}
        for factor in (1.0, *FACTORS):
            changes = sorted(
                r["tests"][w]["change"]
                for r in ok
                if abs(r["factor"] - factor) < 1e-9 and r["tests"][w].get("change") is not None
            )
            if not changes:
                cells.append("-")
                continue
            lo, hi = percentile(changes, 5), percentile(changes, 95)
            result["changes"][w][str(factor)] = {"median": statistics.median(changes), "p5": lo, "p95": hi}
            cells.append(f"{statistics.median(changes):+.1%} [{lo:+.1%}, {hi:+.1%}]")
        blocks = statistics.median(r["tests"][w]["blocks"] for r in ok)
        lines.append(f"| {w} | " + " | ".join(cells) + f" | {blocks:.0f} |")
    if bad:
        lines += ["", "Runs that did not finish (exit code, last lines of stderr):", ""]
        lines += [
            f"- {r['name']} ({r['condition']}): exit {r['returncode']}: {' / '.join(r['stderr_tail'])}" for r in bad
        ]
    return "\n".join(lines) + "\n", result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+", help="run folders of run.py (one perfgate version each)")
    parser.add_argument("--json", help="write the figures as JSON here (one key per folder)")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    for folder in args.folders:
        runs = load([folder])
        meta = json.loads((Path(folder) / "meta.jsonl").read_text().splitlines()[0])
        name = Path(folder).name
        commit, max_time = meta["perfgate_commit"][:10], meta["max_time"]
        print(f"## {name}: perfgate {commit}, --max-time {max_time}, nice {meta['nice']}\n")
        by_condition: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in runs:
            by_condition[r["condition"]].append(r)
        out[name] = {"meta": meta}
        for condition in ("idle", "busy-other", "busy-same"):
            if by_condition.get(condition):
                text, out[name][condition] = describe(by_condition[condition], condition)
                print(text)
        text, out[name]["all"] = describe(runs, "all conditions together")
        print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
