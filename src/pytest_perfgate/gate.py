"""The gate: a baseline made of several stored runs against a current run -> :class:`GateReport`.

Pure (no I/O apart from :func:`compare_for_session`, which opens a store), no pytest.

The model, per (test, metric), documented with its reasons in docs/gate.md:

* each run is summarised by one statistic of its samples (``gate.metric``, the median by default);
* the baseline is the geometric mean of that statistic over the stored runs, and its run-to-run
  spread is the standard deviation of the log statistic over those runs;
* under "no change" the current run is one more run, so the log shift has a t distribution with
  ``runs - 1`` degrees of freedom and scale ``spread * sqrt(1 + 1/runs)`` (a prediction interval);
  the one-sided p-values of every comparison are adjusted over the suite (Holm by default);
* a regression needs the change above ``max_regression`` (and above ``min_effect``) **and** an
  adjusted p-value below ``alpha``; with fewer than ``min_baseline_runs`` runs the spread is not
  measured but assumed (``assumed_spread``, conservative), and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from . import stats
from .budgets import BudgetResult, Verdict
from .config import GateSettings
from .errors import GateError, PerfgateError
from .model import RunResult, Series, TestResult
from .units import Kind, format_value

if TYPE_CHECKING:
    from .store import Baseline

EXIT_OK, EXIT_FAIL = 0, 1

#: TestResult.evidence key holding summary statistics of series imported without samples
SUMMARY_KEY = "summary"


class GateVerdict(str, Enum):
    REGRESSION = "regression"
    WARNING = "warning"
    UNSTABLE = "unstable"
    INSUFFICIENT = "insufficient data"
    IMPROVEMENT = "improvement"
    NEW = "new"
    MISSING = "missing"
    UNCHANGED = "unchanged"

    @property
    def rank(self) -> int:
        """Report order: what needs attention first."""
        return _RANK[self]

    def counted(self, n: int) -> str:
        """``n`` comparisons with this verdict, in words: "1 warning", "3 improvements", "2 unchanged"."""
        plural = n != 1 and self in (GateVerdict.REGRESSION, GateVerdict.WARNING, GateVerdict.IMPROVEMENT)
        return f"{n} {self.value}{'s' if plural else ''}"

    @property
    def changed(self) -> bool:
        return self in (GateVerdict.REGRESSION, GateVerdict.WARNING, GateVerdict.IMPROVEMENT)


_RANK = {verdict: i for i, verdict in enumerate(GateVerdict)}


@dataclass(frozen=True)
class Comparison:
    """One (test, metric) of the gate. Relative figures are fractions (0.12 is +12%)."""

    nodeid: str
    metric: str
    verdict: GateVerdict
    reason: str
    kind: Kind = Kind.NUMBER
    unit: str = ""
    higher_is_better: bool = False
    statistic: str = "median"
    baseline: float | None = None  # geometric mean of the baseline runs' statistic
    current: float | None = None
    baseline_runs: int = 0
    spread: float | None = None  # run-to-run spread used (relative standard deviation)
    spread_assumed: bool = False
    change: float | None = None  # current / baseline - 1
    ci: tuple[float, float] | None = None  # interval of the change
    p_value: float | None = None  # one-sided, towards "worse" (towards "better" for an improvement), uncorrected
    p_adjusted: float | None = None
    detectable: float | None = None  # smallest worsening this comparison could show in this suite
    warn_threshold: float = 0.0
    max_threshold: float = 0.0

    def fmt(self, value: float | None) -> str:
        return "-" if value is None else format_value(value, self.kind, self.unit)

    @property
    def worsening(self) -> float:
        """Log change in the "worse" direction (positive = worse); 0 when there is no change."""
        if self.change is None:
            return 0.0
        shift = math.log1p(self.change)
        return -shift if self.higher_is_better else shift


@dataclass(frozen=True)
class BudgetBreach:
    """A budget of the current run past its target (warn) or critical (fail) level."""

    nodeid: str
    result: BudgetResult

    @property
    def critical(self) -> bool:
        return self.result.verdict is Verdict.FAIL


@dataclass(frozen=True)
class GateReport:
    comparisons: tuple[Comparison, ...]
    breaches: tuple[BudgetBreach, ...] = ()
    notices: tuple[str, ...] = ()
    baseline_runs: int = 0
    baseline_sources: tuple[str, ...] = ()
    settings: GateSettings = field(default_factory=GateSettings)
    #: "baseline" (a run against stored runs) or "paired" (perfgate ab: both measured side by side)
    mode: str = "baseline"
    #: the paired mode's base, e.g. "origin/main (1a2b3c4)"
    subject: str = ""
    #: False when regressions are reported but judged elsewhere (``compare --budgets-only``, with the
    #: paired A/B gate judging them): then only critical budget breaches fail
    regressions_fail: bool = True

    def by_verdict(self, *verdicts: GateVerdict) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict in verdicts]

    @property
    def regressions(self) -> list[Comparison]:
        return self.by_verdict(GateVerdict.REGRESSION)

    @property
    def critical_breaches(self) -> list[BudgetBreach]:
        return [b for b in self.breaches if b.critical]

    @property
    def failed(self) -> bool:
        return bool((self.regressions and self.regressions_fail) or self.critical_breaches)

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.failed else EXIT_OK

    def counts(self) -> dict[GateVerdict, int]:
        counts = dict.fromkeys(GateVerdict, 0)
        for c in self.comparisons:
            counts[c.verdict] += 1
        return counts

    def headline(self) -> str:
        """The one-line verdict."""
        regressions, breaches = len(self.regressions), len(self.critical_breaches)
        parts = []
        if regressions and self.regressions_fail:
            parts.append(f"{regressions} regression{'s' if regressions != 1 else ''}")
        if breaches:
            parts.append(f"{breaches} critical budget breach{'es' if breaches != 1 else ''}")
        head = ("FAILED: " + " and ".join(parts)) if parts else "PASSED"
        counts = self.counts()
        rest = [v.counted(n) for v, n in counts.items() if n and v is not GateVerdict.REGRESSION]
        if regressions and not self.regressions_fail:
            judged_elsewhere = "not failing here: the paired A/B gate judges them"
            rest.insert(0, f"{GateVerdict.REGRESSION.counted(regressions)} {judged_elsewhere}")
        if self.mode == "paired":
            against = f"paired A/B against {self.subject or 'the base'}"
        else:
            against = f"baseline of {self.baseline_runs} run{'s' if self.baseline_runs != 1 else ''}"
        return f"perfgate: {head}" + (f" ({', '.join(rest)})" if rest else "") + f"; {against}"


# --------------------------------------------------------------------------- run statistics


def budget_breaches(run: RunResult) -> tuple[BudgetBreach, ...]:
    """Every budget of ``run`` past its target or critical level, in test order."""
    return tuple(
        BudgetBreach(t.nodeid, v)
        for t in sorted(run.tests, key=lambda t: t.nodeid)
        for v in t.verdicts
        if v.verdict in (Verdict.FAIL, Verdict.WARN)
    )


def run_statistic(test: TestResult, metric: str, statistic: str) -> tuple[float | None, str]:
    """The statistic of one run for one metric, or (None, why not)."""
    series = test.series.get(metric)
    if series is None:
        return None, f"no '{metric}' recorded"
    values: Sequence[float] = series.values
    if not math.isfinite(math.fsum(values)):  # rare: drop NaN / inf samples (one C pass otherwise)
        values = [v for v in values if math.isfinite(v)]
    if values:
        return stats.statistic(values, statistic), ""
    summary = test.evidence.get(SUMMARY_KEY)
    if isinstance(summary, Mapping):
        figures = summary.get(metric)
        if isinstance(figures, Mapping):
            value = figures.get(statistic)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return float(value), ""
            return None, f"imported without samples, and its summary has no '{statistic}'"
    return None, "no finite samples"


def _series_meta(series: Series | None) -> tuple[Kind, str, bool]:
    if series is None:
        return Kind.NUMBER, "", False
    return series.kind, series.unit, series.higher_is_better


# --------------------------------------------------------------------------- the comparison


@dataclass
class _Pending:
    """A comparison with a statistical test, waiting for the suite-level correction."""

    key: tuple[str, str]
    base: dict[str, Any]
    result: stats.RunComparison | stats.PairedComparison
    p_bad: float
    p_good: float
    bad_sign: float


def compare(
    baseline: Sequence[RunResult],
    current: RunResult,
    settings: GateSettings | None = None,
    *,
    sources: Sequence[str] = (),
) -> GateReport:
    """Compare ``current`` with the stored ``baseline`` runs (oldest first, any number >= 0)."""
    settings = settings or GateSettings()
    breaches = budget_breaches(current)
    current_tests = current.by_nodeid()
    if not baseline:
        comparisons = tuple(
            Comparison(
                nodeid=t.nodeid,
                metric=m,
                verdict=GateVerdict.NEW,
                reason="no baseline",
                kind=s.kind,
                unit=s.unit,
                higher_is_better=s.higher_is_better,
                statistic=settings.metric,
            )
            for t in sorted(current.tests, key=lambda t: t.nodeid)
            for m, s in sorted(t.series.items())
        )
        notice = "no baseline: nothing to compare with, the gate passes (promote a run to create one)"
        return GateReport(comparisons, breaches, (notice,), 0, tuple(sources), settings)

    runs = [r.by_nodeid() for r in baseline]
    baseline_ids = set().union(*runs)
    if not current_tests or not baseline_ids & set(current_tests):
        raise GateError(
            "the baseline and the current run have no test in common "
            f"(baseline: {_sample_ids(baseline_ids)}; current: {_sample_ids(current_tests)}); "
            "is this the right baseline?"
        )

    keys: set[tuple[str, str]] = set()
    for tests in [*runs, current_tests]:
        keys.update((nodeid, m) for nodeid, t in tests.items() for m in t.series)

    notices: list[str] = []
    done: list[Comparison] = []
    pending: list[_Pending] = []
    for nodeid, metric in sorted(keys):
        cur_test = current_tests.get(nodeid)
        cur_series = cur_test.series.get(metric) if cur_test else None
        base_series = next(
            (r[nodeid].series[metric] for r in reversed(runs) if nodeid in r and metric in r[nodeid].series), None
        )
        kind, unit, hib = _series_meta(cur_series or base_series)
        warn_r, max_r = settings.thresholds_for(nodeid, cur_test.spec if cur_test else None)
        base: dict[str, Any] = dict(
            nodeid=nodeid,
            metric=metric,
            kind=kind,
            unit=unit,
            higher_is_better=hib,
            statistic=settings.metric,
            warn_threshold=max(warn_r, settings.min_effect),
            max_threshold=max(max_r, settings.min_effect),
        )
        if cur_series is None:
            why = "not in the current run" if cur_test is None else f"the test recorded no '{metric}' this time"
            done.append(Comparison(verdict=GateVerdict.MISSING, reason=why, **base))  # type: ignore[arg-type]
            continue
        if base_series is None:
            done.append(Comparison(verdict=GateVerdict.NEW, reason="not in the baseline", **base))  # type: ignore[arg-type]
            continue
        assert cur_test is not None
        current_value, why = run_statistic(cur_test, metric, settings.metric)
        raw_base = [v for v, _ in (run_statistic(r[nodeid], metric, settings.metric) for r in runs if nodeid in r)]
        base_values = [v for v in raw_base if v is not None and v > 0]
        if current_value == 0 and raw_base and all(v == 0 for v in raw_base) and cur_test.outcome == "passed":
            done.append(
                Comparison(
                    verdict=GateVerdict.UNCHANGED,
                    reason="0 in every run",
                    baseline=0.0,
                    current=0.0,
                    change=0.0,
                    baseline_runs=len(raw_base),
                    **base,
                )
            )  # type: ignore[arg-type]
            continue
        base["baseline_runs"] = len(base_values)
        if base_values:
            base["baseline"] = math.exp(stats.mean([math.log(v) for v in base_values]))
        base["current"] = current_value
        if cur_test.outcome != "passed":
            why = f"the test {cur_test.outcome} in the current run"
        elif current_value is None:
            why = f"current run: {why}"
        elif current_value <= 0:
            why = f"current {settings.metric} is {current_value:g}; a ratio needs positive values"
        elif not base_values:
            why = f"no baseline run has a usable {settings.metric}"
        if why:
            if current_value is not None and base_values:
                base["change"] = current_value / float(base["baseline"]) - 1  # type: ignore[arg-type]
            done.append(Comparison(verdict=GateVerdict.INSUFFICIENT, reason=why, **base))  # type: ignore[arg-type]
            continue
        assert current_value is not None
        result = stats.compare_runs(
            base_values, current_value, min_runs=settings.min_baseline_runs, assumed_spread=settings.assumed_spread
        )
        sign = -1.0 if hib else 1.0
        p_bad, p_good = (result.p_better, result.p_worse) if hib else (result.p_worse, result.p_better)
        pending.append(_Pending((nodeid, metric), base, result, p_bad, p_good, sign))

    done += _decide_all(pending, settings)

    assumed_runs = [p.result.runs for p in pending if isinstance(p.result, stats.RunComparison) and p.result.assumed]
    assumed = len(assumed_runs)
    if assumed:
        fewest = min(assumed_runs)
        notices.append(
            f"{assumed} comparison{'s' if assumed != 1 else ''} had fewer than {settings.min_baseline_runs} baseline "
            f"runs (fewest: {fewest}): their run-to-run spread is unknown, so a spread of "
            f"{settings.assumed_spread:.0%} is assumed and only large changes can fail; promote more runs"
        )
    missing_tests = sorted(baseline_ids - set(current_tests))
    if missing_tests:
        notices.append(f"{len(missing_tests)} baseline test{'s' if len(missing_tests) != 1 else ''} not in this run")
    return GateReport(tuple(ordered(done)), breaches, tuple(notices), len(baseline), tuple(sources), settings)


def _decide_all(pending: Sequence[_Pending], settings: GateSettings) -> list[Comparison]:
    """The suite-level correction over every pending comparison, then each one's verdict."""
    adjusted_bad = stats.adjust([p.p_bad for p in pending], settings.correction)
    adjusted_good = stats.adjust([p.p_good for p in pending], settings.correction)
    family = max(1, len(pending))
    suite_alpha = settings.alpha / family if settings.correction != "none" else settings.alpha
    return [
        _decide(p, adj_bad, adj_good, settings, suite_alpha)
        for p, adj_bad, adj_good in zip(pending, adjusted_bad, adjusted_good, strict=True)
    ]


def _decide(p: _Pending, adj_bad: float, adj_good: float, settings: GateSettings, suite_alpha: float) -> Comparison:
    r = p.result
    worse = p.bad_sign * r.shift  # log change towards worse
    low, high = r.interval(settings.confidence)
    base = dict(p.base)
    max_t, warn_t = float(base["max_threshold"]), float(base["warn_threshold"])  # type: ignore[arg-type]
    paired = isinstance(r, stats.PairedComparison)
    if isinstance(r, stats.PairedComparison):
        detectable, assumed = None, False
    else:
        detectable, assumed = (math.expm1(r.detectable(suite_alpha)) if r.scale > 0 else 0.0), r.assumed
    base.update(
        spread=math.expm1(r.spread),
        spread_assumed=assumed,
        change=math.expm1(r.shift),
        ci=(math.expm1(low), math.expm1(high)),
        p_value=p.p_bad,
        p_adjusted=adj_bad,
        detectable=detectable,
    )
    alpha = settings.alpha
    significant = adj_bad < alpha
    label = (
        "Holm-adjusted"
        if settings.correction == "holm"
        else ("BH-adjusted" if settings.correction == "bh" else "uncorrected")
    )
    if isinstance(r, stats.PairedComparison) and r.smallest_p >= suite_alpha:
        verdict = GateVerdict.INSUFFICIENT
        reason = (
            f"{r.runs} paired block{'s' if r.runs != 1 else ''} cannot show p < {suite_alpha:.2g} "
            "(alpha over the suite); give the test more time or blocks"
        )
    elif significant and worse > math.log1p(max_t):
        verdict, reason = GateVerdict.REGRESSION, f"worse by more than {max_t:.0%}, {label} p < {alpha:g}"
    elif significant and worse > math.log1p(warn_t):
        verdict, reason = GateVerdict.WARNING, f"worse by more than {warn_t:.0%}, {label} p < {alpha:g}"
    elif adj_good < alpha and -worse >= max(-math.log1p(-settings.min_improvement), math.log1p(settings.min_effect)):
        verdict = GateVerdict.IMPROVEMENT
        reason = f"better by at least {settings.min_improvement:.0%}, {label} p < {alpha:g}"
    elif worse > math.log1p(warn_t):
        if paired:
            verdict = GateVerdict.UNSTABLE
            reason = f"worse by {math.expm1(worse):.0%}, not significant over {r.runs} paired blocks"
        elif assumed:
            verdict = GateVerdict.INSUFFICIENT
            reason = f"worse by {math.expm1(worse):.0%}, not significant with {r.runs} baseline run(s)"
        else:
            verdict = GateVerdict.UNSTABLE
            reason = f"worse by {math.expm1(worse):.0%}, within the run-to-run spread ({math.expm1(r.spread):.0%})"
    elif detectable is not None and not assumed and detectable > max_t:
        verdict = GateVerdict.UNSTABLE
        factor = 1 + detectable  # as a slowdown factor once it is past +100%: "3.2x", not "+220%"
        smallest = f"{detectable:.0%}" if detectable < 1 else f"{factor:.1f}x" if factor < 100 else "100x"
        reason = f"too noisy to judge: spread {math.expm1(r.spread):.0%} between runs, detects only >= {smallest}"
    else:
        verdict, reason = GateVerdict.UNCHANGED, "within thresholds"
    if verdict is GateVerdict.IMPROVEMENT:  # its p-values are those of the "better" direction
        base.update(p_value=p.p_good, p_adjusted=adj_good)
    return Comparison(verdict=verdict, reason=reason, **base)  # type: ignore[arg-type]


def ordered(comparisons: Iterable[Comparison]) -> list[Comparison]:
    """Deterministic report order: verdict (regressions first), then the biggest worsening, then name."""
    return sorted(comparisons, key=lambda c: (c.verdict.rank, -round(c.worsening, 12), c.nodeid, c.metric))


def _sample_ids(ids: Iterable[str], n: int = 3) -> str:
    ids = sorted(ids)
    if not ids:
        return "no tests"
    shown = ", ".join(repr(i) for i in ids[:n])
    return f"{len(ids)} tests, e.g. {shown}"


# --------------------------------------------------------------------------- entry points


def compare_baseline(
    baseline: Baseline | None, current: RunResult, settings: GateSettings | None = None, *, location: str = ""
) -> GateReport:
    """Compare with a loaded :class:`~pytest_perfgate.store.Baseline` (``None``: there is none
    at ``location``)."""
    if baseline is None or not baseline.runs:
        report = compare((), current, settings)
        where = baseline.location if baseline is not None else location
        notices = (
            tuple(n.replace("no baseline:", f"no baseline at {where}:") for n in report.notices)
            if where
            else (report.notices)
        )
        return GateReport(report.comparisons, report.breaches, notices, 0, (), report.settings)
    return compare(baseline.runs, current, settings, sources=baseline.sources)


@dataclass(frozen=True)
class SessionGate:
    """The gate as the plugin runs it at the end of a session (``--perfgate-compare``)."""

    code: int  # 0 pass, 1 regression or critical budget breach, 2 bad input
    lines: tuple[str, ...]  # for the terminal
    report: GateReport | None = None  # None when the baseline could not be read
    baseline_runs: tuple[RunResult, ...] = ()


def compare_for_session(current: RunResult, baseline_path: str, settings: GateSettings) -> SessionGate:
    """Never raises a :class:`PerfgateError`: bad input gives code 2 and an ``error: ...`` line."""
    from .reports.gate_terminal import format_terminal
    from .store import open_store

    try:
        baseline = open_store(baseline_path).load()
        report = compare_baseline(baseline, current, settings, location=baseline_path)
    except PerfgateError as exc:
        return SessionGate(exc.exit_code, (f"error: {exc}",))
    return SessionGate(report.exit_code, tuple(format_terminal(report)), report, baseline.runs if baseline else ())
