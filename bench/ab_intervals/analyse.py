"""Judge interval methods offline on the block ratios ``collect.py`` saved, against the truth.

    python bench/ab_intervals/analyse.py /tmp/perfgate-ab-intervals/v1 --truth /tmp/perfgate-ab-intervals/truth.json

* **Calibration** (the ``cal`` runs only: unchanged code, every test that moved by 0.5% measured
  in a second and third pair): the spread of one pair's change around the truth (0), per
  workload, and how much of it the blocks inside the pair show (``within``); the rest is the
  pair effect. These runs fix :data:`pytest_perfgate.stats.PAIR_SPREAD`; they are not evaluated.
* **Evaluation** (the ``aa`` and ``ab`` runs, at ``--max-regression 5%``, as a user runs it):
  for each method, the share of 95% intervals that hold the true change (A/A: 0; A/B: the
  in-process change of ``truth.py``), per kind, workload and number of pairs; the median width;
  the largest error of the estimate; and the gate's verdicts recomputed with each method's
  p-values (Holm over the run's 8 tests, alpha 0.01, regression when ``p_adjusted < alpha`` and
  the change is past 5%), since the p-values change with the model.

Methods: ``old`` (before this change: the pooled blocks' order-statistic interval widened to every
pair's change, sign-test p-values), ``blocks`` (the model with no pair effect: the blocks alone),
and the model of :func:`pytest_perfgate.stats.compare_pairs` at several ``pair_spread`` /
``prior_df``. Uses the ``pytest_perfgate`` on ``sys.path`` (this tree's ``src``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pytest_perfgate import stats

ALPHA, MAX_REGRESSION = 0.01, 0.05


@dataclass(frozen=True)
class Case:
    run: int
    kind: str  # aa, ab, cal
    factor: float
    workload: str
    pairs: tuple[tuple[float, ...], ...]
    load: float


@dataclass(frozen=True)
class Judged:
    shift: float
    low: float
    high: float
    p_worse: float


Method = Callable[[Sequence[Sequence[float]]], Judged]


def load(raw: Path) -> list[Case]:
    cases = []
    for line in (raw / "runs.jsonl").open():
        r = json.loads(line)
        if r["returncode"] not in (0, 1) or not Path(r["blocks"]).exists():
            continue
        for t in json.loads(Path(r["blocks"]).read_text())["tests"]:
            pairs = tuple(tuple(p) for p in (t["log_ratios"], *t["extra_pairs"]) if p)
            if t["problem"] or not pairs:
                continue
            workload = t["nodeid"].split("[")[1].rstrip("]")
            cases.append(Case(r["index"], r["kind"], r["factor"], workload, pairs, r["loadavg_before"][0]))
    return cases


def old_method(pairs: Sequence[Sequence[float]]) -> Judged:
    """Before this change: the pooled blocks' interval widened to every pair's change; sign tests."""
    pooled = [v for p in pairs for v in p]
    shifts = [stats.percentile(p, 50) for p in pairs]
    shift = shifts[0] if len(shifts) == 1 else stats.percentile(shifts, 50)
    low, high = stats.median_interval(pooled, 0.95)
    if len(shifts) > 1:
        low, high = min(low, *shifts), max(high, *shifts)
    above = sum(v > 0 for v in pooled)
    below = sum(v < 0 for v in pooled)
    return Judged(shift, low, high, stats.binom_half_sf(above, above + below))


def model(pair_spread: float, prior_df: float, p: str = "sign", own_floor: bool = True) -> Method:
    """:func:`stats.compare_pairs` at this prior. ``p``: the gate's p-value, ``"sign"`` (the pooled
    blocks' sign test, ``p_worse``) or ``"model"`` (``model_p_worse``, the interval's own);
    ``own_floor=False``: without its rule that the variance is never below the test's own pairs'
    sample variance (the conjugate pooling alone)."""

    def judge(pairs: Sequence[Sequence[float]]) -> Judged:
        c = stats.compare_pairs(pairs, pair_spread=pair_spread, prior_df=prior_df)
        low, high = c.interval(0.95)
        p_worse = c.model_p_worse if p == "model" else c.p_worse
        if not own_floor and len(c.pair_shifts) > 1:
            k = len(c.pair_shifts)
            pooled = (prior_df * (pair_spread**2 + c.within**2) + (k - 1) * stats.stdev(c.pair_shifts) ** 2) / c.df
            scale = math.sqrt(pooled * stats._MEDIAN_EFFICIENCY.get(k, math.pi / 2) / k)
            half = stats.t_isf(0.025, c.df) * scale
            low, high = c.shift - half, c.shift + half
            if p == "model" and scale > 0:
                p_worse = max(c.p_worse, stats.t_sf(c.shift / scale, c.df))
        return Judged(c.shift, low, high, p_worse)

    return judge


#: ``--pooled-truth``: each A/B case's truth is the mean change the *other* runs of the same
#: workload and factor measured (leave one out), keyed by (run, workload)
POOLED: dict[tuple[int, str], float] = {}


def truth_of(case: Case, truth: dict[str, dict[str, float]]) -> float:
    if case.factor == 1.0:
        return 0.0
    if POOLED:
        return POOLED[(case.run, case.workload)]
    return truth[case.workload][f"{case.factor:.2f}"]


def pool_truth(cases: list[Case]) -> None:
    shifts: dict[tuple[str, float], list[tuple[int, float]]] = defaultdict(list)
    for c in cases:
        if c.kind == "ab":
            shifts[(c.workload, c.factor)].append((c.run, stats.compare_pairs(c.pairs).shift))
    for (workload, _), runs in shifts.items():
        for run, _ in runs:
            others = [s for r, s in runs if r != run]
            if others:
                POOLED[(run, workload)] = statistics.fmean(others)


def calibrate(cases: list[Case]) -> None:
    print("## Calibration (cal runs: A/A, every pair a sample of the pair effect)\n")
    by: dict[str, list[tuple[float, float]]] = defaultdict(list)
    diffs: dict[str, list[float]] = defaultdict(list)
    for c in cases:
        if c.kind != "cal":
            continue
        for p in c.pairs:
            by[c.workload].append((stats.percentile(p, 50), stats.median_se(p)))
        if len(c.pairs) > 1:
            m = [stats.percentile(p, 50) for p in c.pairs]
            diffs[c.workload] += [(m[i] - m[j]) ** 2 / 2 for i in range(len(m)) for j in range(i)]
    print(
        "| workload | pairs | rms pair change | rms within (blocks) | pair effect sqrt(rms^2 - within^2) |"
        " within-run pairs: sqrt(mean (d^2/2)) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    effects = []
    for w in sorted(by):
        rows = by[w]
        total = math.sqrt(statistics.fmean(m * m for m, _ in rows))
        within = math.sqrt(statistics.fmean(s * s for _, s in rows))
        effect = math.sqrt(max(0.0, total**2 - within**2))
        effects.append(effect)
        same_run = math.sqrt(statistics.fmean(diffs[w])) if diffs[w] else math.nan
        print(f"| {w} | {len(rows)} | {total:.2%} | {within:.2%} | {effect:.2%} | {same_run:.2%} ({len(diffs[w])}) |")
    all_rows = [r for rows in by.values() for r in rows]
    total = math.sqrt(statistics.fmean(m * m for m, _ in all_rows))
    within = math.sqrt(statistics.fmean(s * s for _, s in all_rows))
    print(f"| all | {len(all_rows)} | {total:.2%} | {within:.2%} | {math.sqrt(max(0, total**2 - within**2)):.2%} | |")
    spread, df = fit_prior(all_rows)
    print(
        f"\nMaximum-likelihood fit of one pair's change = truth + sqrt(pair_spread^2 + within^2) * t(df) over "
        f"these {len(all_rows)} pairs: pair_spread {spread:.2%}, df {df:g}."
    )
    tests = [[(stats.percentile(p, 50), stats.median_se(p)) for p in c.pairs] for c in cases if c.kind == "cal"]
    spread, df = fit_joint(tests)
    print(
        f"Joint fit over {len(tests)} tests (the pairs of one test share their variance, drawn from a scaled "
        f"inverse chi-square: the model of compare_pairs): pair_spread {spread:.2%}, df {df:g}.\n"
    )


def t_logpdf(x: float, df: float) -> float:
    return (
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - (df + 1) / 2 * math.log1p(x * x / df)
    )


SPREADS = [i / 2000 for i in range(1, 101)]  # 0.05% .. 5%
DFS = (1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 1000)


def fit_joint(tests: Sequence[Sequence[tuple[float, float]]]) -> tuple[float, float]:
    """(pair_spread, df) maximising the marginal likelihood of each test's pair changes (truth 0)
    when the pairs of one test share a variance drawn from ``df * s0^2 / chi2(df)``, ``s0^2 =
    pair_spread^2 + the test's mean within^2``: a multivariate t. The confirmation rule (a second
    pair only after a large first change) depends on observed changes only, so it leaves the
    likelihood as it is."""
    best = (-math.inf, 0.0, 0.0)
    for spread in SPREADS:
        for df in DFS:
            ll = 0.0
            for pairs in tests:
                k = len(pairs)
                s0 = spread**2 + statistics.fmean(se * se for _, se in pairs)
                ll += (
                    math.lgamma((df + k) / 2)
                    - math.lgamma(df / 2)
                    - k / 2 * math.log(df * math.pi * s0)
                    - (df + k) / 2 * math.log1p(sum(m * m for m, _ in pairs) / (df * s0))
                )
            best = max(best, (ll, spread, float(df)))
    return best[1], best[2]


def fit_prior(rows: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(pair_spread, df) maximising the likelihood of the pairs' changes (truth 0) with their ``within``."""
    best = (-math.inf, 0.0, 0.0)
    for spread in SPREADS:
        for df in DFS:
            ll = 0.0
            for m, se in rows:
                scale = math.sqrt(spread**2 + se**2)
                ll += t_logpdf(m / scale, df) - math.log(scale)
            best = max(best, (ll, spread, float(df)))
    return best[1], best[2]


def calibration_coverage(cases: list[Case], methods: dict[str, Method]) -> None:
    """Coverage of 0 on the calibration runs themselves (where the method is chosen, not reported)."""
    cal = [c for c in cases if c.kind == "cal"]
    print(
        f"## Coverage on the calibration runs ({len(cal)} A/A comparisons, {sum(len(c.pairs) > 1 for c in cal)} "
        "of them in 2-3 pairs): for choosing, not for reporting\n"
    )
    print("| method | all | 1 pair | 2+ pairs | median width |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, method in methods.items():
        judged = [(c, method(c.pairs)) for c in cal]
        hits = [(len(c.pairs), j.low <= 0 <= j.high) for c, j in judged]

        def share(sel: list[bool]) -> str:
            return f"{sum(sel) / len(sel):.1%} ({len(sel)})" if sel else "-"

        width = statistics.median(j.high - j.low for _, j in judged)
        print(
            f"| {name} | {share([h for _, h in hits])} | {share([h for k, h in hits if k == 1])} |"
            f" {share([h for k, h in hits if k > 1])} | {width:.1%} |"
        )
    print()


def evaluate(cases: list[Case], truth: dict[str, dict[str, float]], methods: dict[str, Method]) -> None:
    evals = [c for c in cases if c.kind in ("aa", "ab") and (c.factor == 1.0 or c.workload in truth)]
    runs = sorted({c.run for c in evals})
    print(
        f"## Evaluation: {sum(c.kind == 'aa' for c in evals)} A/A and {sum(c.kind == 'ab' for c in evals)} A/B "
        f"comparisons from {len(runs)} runs (load average {min(c.load for c in evals):.1f}-"
        f"{max(c.load for c in evals):.1f}, median {statistics.median(c.load for c in evals):.1f})\n"
    )
    print(
        "| method | A/A coverage | A/B coverage | all | 1 pair | 2+ pairs | worst workload | median width |"
        " A/A fails | 1.05 / 1.10 / 1.25 caught |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |")
    for name, method in methods.items():
        judged = {id(c): method(c.pairs) for c in evals}
        hit = {id(c): judged[id(c)].low <= truth_of(c, truth) <= judged[id(c)].high for c in evals}

        def share(sel: list[Case], hit: dict[int, bool] = hit) -> str:
            return f"{sum(hit[id(c)] for c in sel) / len(sel):.1%} ({len(sel)})" if sel else "-"

        per_w = {w: [c for c in evals if c.workload == w] for w in sorted({c.workload for c in evals})}
        worst = min(per_w, key=lambda w: sum(hit[id(c)] for c in per_w[w]) / len(per_w[w]))
        widths = [judged[id(c)].high - judged[id(c)].low for c in evals]
        # the gate: Holm over each run's tests
        caught: dict[float, list[bool]] = defaultdict(list)
        for run in runs:
            in_run = [c for c in evals if c.run == run]
            adjusted = stats.holm([judged[id(c)].p_worse for c in in_run])
            for c, p in zip(in_run, adjusted, strict=True):
                caught[c.factor].append(p < ALPHA and math.expm1(judged[id(c)].shift) > MAX_REGRESSION)
        fails = f"{sum(caught[1.0])}/{len(caught[1.0])}"
        detect = " / ".join(f"{sum(caught[f])}/{len(caught[f])}" for f in (1.05, 1.10, 1.25))
        aa, ab = share([c for c in evals if c.kind == "aa"]), share([c for c in evals if c.kind == "ab"])
        print(
            f"| {name} | {aa} | {ab}"
            f" | {share(evals)} | {share([c for c in evals if len(c.pairs) == 1])} |"
            f" {share([c for c in evals if len(c.pairs) > 1])} | {worst} {share(per_w[worst])} |"
            f" {statistics.median(widths):.1%} | {fails} | {detect} |"
        )
    print()


def per_workload(cases: list[Case], truth: dict[str, dict[str, float]], method: Method, name: str) -> None:
    evals = [c for c in cases if c.kind in ("aa", "ab") and (c.factor == 1.0 or c.workload in truth)]
    print(f"## Per workload, method {name}\n")
    print("| workload | A/A coverage | A/B coverage | largest error | median width | truth 1.05 / 1.10 / 1.25 |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    worst_error = (0.0, "")
    for w in sorted({c.workload for c in evals}):
        sel = [c for c in evals if c.workload == w]
        judged = [(c, method(c.pairs)) for c in sel]
        cover = {k: [j.low <= truth_of(c, truth) <= j.high for c, j in judged if c.kind == k] for k in ("aa", "ab")}
        errors = [abs(math.expm1(j.shift) - math.expm1(truth_of(c, truth))) for c, j in judged]
        widths = [j.high - j.low for _, j in judged]
        worst_error = max(worst_error, (max(errors), f"{w} x{sel[errors.index(max(errors))].factor:.2f}"))
        shares = [f"{sum(v) / len(v):.1%} ({len(v)})" if v else "-" for v in cover.values()]
        if POOLED:  # the mean over the runs of each factor
            by_f = {f: [truth_of(c, truth) for c in sel if c.factor == f] for f in (1.05, 1.10, 1.25)}
            truths = " / ".join(f"{math.expm1(statistics.fmean(v)):+.1%}" if v else "-" for v in by_f.values())
        else:
            factors = ("1.05", "1.10", "1.25")
            truths = " / ".join(f"{math.expm1(truth[w][f]):+.1%}" for f in factors) if w in truth else "-"
        print(f"| {w} | {shares[0]} | {shares[1]} | {max(errors):.1%} | {statistics.median(widths):.1%} | {truths} |")
    print(f"\nLargest error of the estimate against the truth: {worst_error[0]:.1%} ({worst_error[1]}).\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw", type=Path, nargs="+", help="collect.py output directories")
    parser.add_argument("--truth", type=Path, required=True, help="truth.py output")
    parser.add_argument(
        "--ab-half",
        choices=("odd", "even"),
        help="only the A/B runs of odd / even run index (tune on one half, report the other)",
    )
    parser.add_argument(
        "--pooled-truth",
        action="store_true",
        help="A/B truth: the mean change of the other runs of the same workload and factor",
    )
    parser.add_argument("--prior", type=float, nargs=2, metavar=("SPREAD", "DF"), help="also judge this prior")
    args = parser.parse_args()
    truth = json.loads(args.truth.read_text())["truth"]
    cases = [c for raw in args.raw for c in load(raw)]
    if args.pooled_truth:
        pool_truth(cases)  # from every A/B run: the truth does not depend on the half judged
    if args.ab_half:
        cases = [c for c in cases if c.kind != "ab" or c.run % 2 == (args.ab_half == "odd")]
    if args.pooled_truth:
        cases = [c for c in cases if c.factor == 1.0 or (c.run, c.workload) in POOLED]
    calibrate(cases)
    methods: dict[str, Method] = {"old": old_method, "blocks": model(0.0, 0.0)}
    for spread in (0.0075, 0.01, 0.0125, 0.015, 0.02):
        for df in (2.0, 3.0, 6.0, 20.0):
            methods[f"model {spread:.2%} df {df:g}"] = model(spread, df)
    if args.prior:
        spread, df = args.prior
        methods[f"fitted {spread:.2%} df {df:g}"] = model(spread, df)
        methods[f"fitted {spread:.2%} df {df:g}, no own floor"] = model(spread, df, own_floor=False)
        methods[f"fitted {spread:.2%} df {df:g}, model p"] = model(spread, df, p="model")
    methods["default"] = model(stats.PAIR_SPREAD, stats.PAIR_PRIOR_DF)
    methods["default, no own floor"] = model(stats.PAIR_SPREAD, stats.PAIR_PRIOR_DF, own_floor=False)
    methods["default, model p"] = model(stats.PAIR_SPREAD, stats.PAIR_PRIOR_DF, p="model")
    calibration_coverage(cases, methods)
    evaluate(cases, truth, methods)
    per_workload(cases, truth, methods["default"], f"default ({stats.PAIR_SPREAD:.2%}, df {stats.PAIR_PRIOR_DF:g})")
    per_workload(cases, truth, methods["old"], "old")
    return 0


if __name__ == "__main__":
    sys.exit(main())
