"""The gate: a baseline made of several stored runs against a current run -> :class:`GateReport`.

Pure (no I/O apart from :func:`compare_for_session`, which opens a store), no pytest. It returns
typed results (verdicts, :class:`Notice` with a kind and its figures); the headline and the
notices in words are made in :mod:`pytest_perfgate.reports.gate_text`.

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

Counters (:func:`pytest_perfgate.metrics.is_counter`: instructions, estimated cycles, allocations)
are not noisy and take no t test: :func:`_judge_counter` compares the current count with the
median of the stored runs' counts against ``gate.counters`` (1% fail, 0.5% warn by default), only
with stored runs whose environment fingerprint (``metadata["fingerprint"]``) agrees with the
current run's, and widens the thresholds to three times the spread of a counter that varies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING

from . import metrics, stats
from .budgets import BudgetResult, BudgetSpec, Verdict
from .config import CounterSettings, GateSettings
from .errors import GateError, PerfgateError
from .model import Outcome, RunResult, Series, TestResult
from .units import Kind, format_value

if TYPE_CHECKING:
    from .profdiff import ProfileDiff
    from .store import Baseline


def _expm1(x: float) -> float:
    """``exp(x) - 1`` of a log change, infinite past the float range (a figure from 1e-3 to 1e308)."""
    return math.expm1(x) if x < 709.0 else math.inf


#: the gate's exit codes (``perfgate compare`` and ``perfgate ab``; docs/gate.md): passed; a regression
#: or a critical budget breach; incomplete (a selected test or the run was not compared: fails closed);
#: nothing judged (the stored-baseline gate could judge none of its comparisons on this runner)
EXIT_OK, EXIT_FAIL, EXIT_INCOMPLETE, EXIT_NOT_JUDGED = 0, 1, 2, 3


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

    @property
    def changed(self) -> bool:
        return self in (GateVerdict.REGRESSION, GateVerdict.WARNING, GateVerdict.IMPROVEMENT)


_RANK = {verdict: i for i, verdict in enumerate(GateVerdict)}

#: verdicts of comparisons that had a baseline but could not be judged either way
UNJUDGED = (GateVerdict.UNSTABLE, GateVerdict.INSUFFICIENT)


class GateStatus(str, Enum):
    """What a whole report says, in one word; it decides the exit code and each format's mark."""

    FAILED = "failed"  # a regression or a critical budget breach (exit 1)
    INCOMPLETE = "incomplete"  # a selected test, or the run, was not compared (exit 2)
    NOT_JUDGED = "not judged"  # stored baseline: no comparison could be judged on this runner (exit 3)
    NOTHING_COMPARED = "nothing compared"  # e.g. no baseline yet: passes, says so (exit 0)
    PARTLY_JUDGED = "partly judged"  # passed, but some comparisons could not be judged (exit 0)
    PASSED = "passed"  # passed, every comparison with a baseline judged (exit 0)

    @property
    def exit_code(self) -> int:
        return _EXIT[self]

    @property
    def clean(self) -> bool:
        """Only this status earns a green check."""
        return self is GateStatus.PASSED


_EXIT = {
    GateStatus.FAILED: EXIT_FAIL,
    GateStatus.INCOMPLETE: EXIT_INCOMPLETE,
    GateStatus.NOT_JUDGED: EXIT_NOT_JUDGED,
    GateStatus.NOTHING_COMPARED: EXIT_OK,
    GateStatus.PARTLY_JUDGED: EXIT_OK,
    GateStatus.PASSED: EXIT_OK,
}


class GateMode(str, Enum):
    """What a report compared the current run with."""

    BASELINE = "baseline"  # stored runs (``perfgate compare``, ``--perfgate-compare``)
    PAIRED = "paired"  # the base revision measured side by side (``perfgate ab``)


class NoticeKind(str, Enum):
    """What a :class:`Notice` tells; ``reports.gate_text.notice_text`` says it in words."""

    NO_BASELINE = "no baseline"  # where: the store (may be "")
    ASSUMED_SPREAD = "assumed spread"  # count, of (min_baseline_runs), fewest, share (the spread assumed)
    NOISY_BASELINE = "noisy baseline"  # count, spread (low, high), threshold (max_regression)
    TESTS_NOT_IN_RUN = "tests not in run"  # count
    PAIRED_ESTIMATE = "paired estimate"  # paired: Current is Baseline times the paired change
    DISTURBED_BLOCKS = "disturbed blocks"  # count, of (blocks in all), left_out, groups
    CONFIRMED = "confirmed in fresh pairs"  # count, changes (node id, the change of each pair)
    OTHER_METRICS = "other metrics"  # paired: memory, queries, ... compared as one base run
    SKIPPED_AS_EXPECTED = "skipped as expected"  # count, tests ("<node id>: why", the first five)
    ALLOWED_INCOMPLETE = "allowed incomplete"  # count, tests ("<node id>: why", all)
    #: counters compared only with stored runs of the same environment: count (counter comparisons
    #: not made: no stored run matched), left_out (stored runs left out), of (stored runs), differences
    #: (field, stored, current) against the newest stored run left out
    ENVIRONMENT_CHANGED = "environment changed"
    #: counters compared without an environment check: count (comparisons), left_out (stored runs
    #: without a fingerprint), of (1 when the current run has none)
    ENVIRONMENT_UNCHECKED = "environment unchecked"
    #: counters whose values vary: count, spread (low, high), tests (the first five node ids),
    #: threshold (the factor: thresholds are at least this many times the spread)
    NONDETERMINISTIC = "nondeterministic counters"
    TEXT = "text"  # text: told in words by the caller (the paired run's controller)


@dataclass(frozen=True)
class DisturbedGroup:
    """Disturbed blocks that were judged anyway, in tests with too few undisturbed ones."""

    corrected: bool  # each preempted round counted as its CPU time plus its side's usual off-CPU time
    kept: int
    tests: tuple[str, ...]  # node ids, sorted


@dataclass(frozen=True)
class Notice:
    """Something a report says besides its verdicts; the figures each kind uses are listed at
    :class:`NoticeKind`."""

    kind: NoticeKind
    count: int = 0
    of: int = 0
    fewest: int = 0
    left_out: int = 0
    share: float = 0.0
    threshold: float = 0.0
    spread: tuple[float, float] = (0.0, 0.0)
    where: str = ""
    tests: tuple[str, ...] = ()
    changes: tuple[tuple[str, tuple[float, ...]], ...] = ()
    groups: tuple[DisturbedGroup, ...] = ()
    text: str = ""
    #: environment fingerprint fields that differ: (field, stored run's value, current run's value);
    #: a value missing on one side is ""
    differences: tuple[tuple[str, str, str], ...] = ()


def names_test(line: str) -> bool:
    """Whether a line of :attr:`GateReport.incomplete` is about one test (``"<node id>: why"``)
    rather than the whole run."""
    return "::" in line.split(": ", 1)[0]


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
    #: judged by the counter rule (no t test, no p-value): see :func:`_judge_counter`
    counter: bool = False
    #: a counter whose values vary by more than ``gate.counters.max_spread`` (``spread`` says how
    #: much: the relative range); its thresholds are at least three times that spread
    nondeterministic: bool = False
    #: a counter not compared because every stored run's environment fingerprint differs from the
    #: current run's (verdict ``insufficient data``; never a regression)
    environment_changed: bool = False

    def fmt(self, value: float | None) -> str:
        return "-" if value is None else format_value(value, self.kind, self.unit)

    @property
    def worsening(self) -> float:
        """Log change in the "worse" direction (positive = worse); 0 when there is no change."""
        if self.change is None:
            return 0.0
        # a current of 0 (or below) against a positive baseline: infinitely better / worse, not a crash
        shift = math.log1p(self.change) if self.change > -1 else -math.inf
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
    notices: tuple[Notice, ...] = ()
    baseline_runs: int = 0
    baseline_sources: tuple[str, ...] = ()
    settings: GateSettings = field(default_factory=GateSettings)
    mode: GateMode = GateMode.BASELINE
    #: the paired mode's base, e.g. "origin/main (1a2b3c4)"
    subject: str = ""
    #: False when regressions are reported but judged elsewhere (``compare --budgets-only``, with the
    #: paired A/B gate judging them): then only critical budget breaches fail
    regressions_fail: bool = True
    #: what was selected but not compared, one human line each: ``"<node id>: why"`` for a test
    #: (e.g. ``"tests/b.py::test_x: failed on the base side: AssertionError ..."``), or a
    #: run-level reason (``"the paired run did not finish: ..."``). Not empty: the gate is
    #: incomplete (exit 2) unless it failed (exit 1): it never passes what it did not measure
    incomplete: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", GateMode(self.mode))  # also from its value, "paired"

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
    def compared(self) -> list[Comparison]:
        """Comparisons that had something to compare with (not new, not missing)."""
        return [c for c in self.comparisons if c.verdict not in (GateVerdict.NEW, GateVerdict.MISSING)]

    @property
    def unjudged(self) -> list[Comparison]:
        """Comparisons with a baseline that could not be judged (unstable, insufficient data)."""
        return self.by_verdict(*UNJUDGED)

    @property
    def status(self) -> GateStatus:
        if self.failed:
            return GateStatus.FAILED
        if self.incomplete:
            return GateStatus.INCOMPLETE
        compared = len(self.compared)
        if not compared or (self.mode is GateMode.BASELINE and self.baseline_runs == 0):
            return GateStatus.NOTHING_COMPARED
        unjudged = len(self.unjudged) if self.regressions_fail else 0
        if unjudged and unjudged == compared and self.mode is GateMode.BASELINE:
            return GateStatus.NOT_JUDGED
        return GateStatus.PARTLY_JUDGED if unjudged else GateStatus.PASSED

    @property
    def exit_code(self) -> int:
        """0 passed (also partly judged, or no baseline yet), 1 failed, 2 incomplete, 3 nothing judged."""
        return self.status.exit_code

    def counts(self) -> dict[GateVerdict, int]:
        counts = dict.fromkeys(GateVerdict, 0)
        for c in self.comparisons:
            counts[c.verdict] += 1
        return counts

    def unstable_spreads(self) -> list[float]:
        """The measured run-to-run spreads of the unstable comparisons (not assumed, finite)."""
        return [
            c.spread
            for c in self.by_verdict(GateVerdict.UNSTABLE)
            if c.spread is not None and not c.spread_assumed and math.isfinite(c.spread)
        ]

    def would_judge(self) -> tuple[bool, bool]:
        """Whether the paired gate, and whether more stored runs, would judge comparisons this
        gate could not: more runs help when the spread measured here would let them (as many runs
        as you like, the detectable worsening tends to ``z * spread``: above ``max_regression`` no
        number of runs helps)."""
        from statistics import NormalDist

        family = max(1, sum(1 for c in self.comparisons if c.p_value is not None))
        z = NormalDist().inv_cdf(1 - self.settings.alpha / family)
        helps_paired = helps_runs = False
        for c in self.unjudged:
            if c.verdict is GateVerdict.UNSTABLE or c.spread_assumed:
                helps_paired = True
                if c.spread_assumed or (c.spread is not None and _expm1(z * math.log1p(c.spread)) <= c.max_threshold):
                    helps_runs = True
        return helps_paired, helps_runs


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
    if not all(map(math.isfinite, values)):  # rare: drop NaN / inf samples (fsum would overflow near 1e308)
        values = [v for v in values if math.isfinite(v)]
    if values:
        return stats.statistic(values, statistic), ""
    summary = test.evidence.summary
    if summary is not None and summary.has(metric):
        value = summary.statistic(metric, statistic)
        if value is not None:
            return value, ""
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
    template: Comparison  # what is known before the verdict: names, thresholds, figures
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
        notice = Notice(NoticeKind.NO_BASELINE)
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

    notices: list[Notice] = []
    done: list[Comparison] = []
    pending: list[_Pending] = []
    environments = _Environments(baseline, current)
    counter_log = _CounterLog()
    for nodeid, metric in sorted(keys):
        cur_test = current_tests.get(nodeid)
        cur_series = cur_test.series.get(metric) if cur_test else None
        base_series = next(
            (r[nodeid].series[metric] for r in reversed(runs) if nodeid in r and metric in r[nodeid].series), None
        )
        kind, unit, hib = _series_meta(cur_series or base_series)
        warn_r, max_r = settings.thresholds_for(nodeid, cur_test.spec if cur_test else None, metric)
        counter = metrics.is_counter(metric)
        # a counter is exact: its own statistic and thresholds, no minimum effect
        floor = 0.0 if counter else settings.min_effect
        template = Comparison(
            nodeid=nodeid,
            metric=metric,
            verdict=GateVerdict.UNCHANGED,
            reason="",
            kind=kind,
            unit=unit,
            higher_is_better=hib,
            statistic="median" if counter else settings.metric,
            warn_threshold=max(warn_r, floor),
            max_threshold=max(max_r, floor),
            counter=counter,
        )
        if cur_series is None:
            why = "not in the current run" if cur_test is None else f"the test recorded no '{metric}' this time"
            done.append(replace(template, verdict=GateVerdict.MISSING, reason=why))
            continue
        if base_series is None:
            done.append(replace(template, verdict=GateVerdict.NEW, reason="not in the baseline"))
            continue
        assert cur_test is not None
        if counter:
            done.append(_judge_counter(template, cur_test, runs, settings, environments, counter_log))
            continue
        current_value, why = run_statistic(cur_test, metric, settings.metric)
        raw_base = [v for v, _ in (run_statistic(r[nodeid], metric, settings.metric) for r in runs if nodeid in r)]
        base_values = [v for v in raw_base if v is not None and v > 0]
        if current_value == 0 and raw_base and all(v == 0 for v in raw_base) and cur_test.outcome == Outcome.PASSED:
            done.append(
                replace(
                    template,
                    reason="0 in every run",
                    baseline=0.0,
                    current=0.0,
                    change=0.0,
                    baseline_runs=len(raw_base),
                )
            )
            continue
        baseline_value = math.exp(stats.mean([math.log(v) for v in base_values])) if base_values else None
        template = replace(template, baseline_runs=len(base_values), baseline=baseline_value, current=current_value)
        if cur_test.outcome != Outcome.PASSED:
            why = f"the test {cur_test.outcome} in the current run"
        elif current_value is None:
            why = f"current run: {why}"
        elif current_value <= 0:
            why = f"current {settings.metric} is {current_value:g}; a ratio needs positive values"
        elif not base_values:
            why = f"no baseline run has a usable {settings.metric}"
        if why:
            change = current_value / baseline_value - 1 if current_value is not None and baseline_value else None
            done.append(replace(template, verdict=GateVerdict.INSUFFICIENT, reason=why, change=change))
            continue
        assert current_value is not None
        result = stats.compare_runs(
            base_values, current_value, min_runs=settings.min_baseline_runs, assumed_spread=settings.assumed_spread
        )
        sign = -1.0 if hib else 1.0
        p_bad, p_good = (result.p_better, result.p_worse) if hib else (result.p_worse, result.p_better)
        pending.append(_Pending((nodeid, metric), template, result, p_bad, p_good, sign))

    done += _decide_all(pending, settings)

    assumed_runs = [p.result.runs for p in pending if isinstance(p.result, stats.RunComparison) and p.result.assumed]
    assumed = len(assumed_runs)
    if assumed:
        notices.append(
            Notice(
                NoticeKind.ASSUMED_SPREAD,
                count=assumed,
                of=settings.min_baseline_runs,
                fewest=min(assumed_runs),
                share=settings.assumed_spread,
            )
        )
    noisy = [c for c in done if c.verdict is GateVerdict.UNSTABLE and c.spread is not None and not c.spread_assumed]
    if noisy:
        spreads = sorted(c.spread for c in noisy if c.spread is not None)
        notices.append(
            Notice(
                NoticeKind.NOISY_BASELINE,
                count=len(noisy),
                spread=(spreads[0], spreads[-1]),
                threshold=settings.max_regression,
            )
        )
    notices += counter_log.notices(environments, settings, done)
    missing_tests = sorted(baseline_ids - set(current_tests))
    if missing_tests:
        notices.append(Notice(NoticeKind.TESTS_NOT_IN_RUN, count=len(missing_tests)))
    return GateReport(tuple(ordered(done)), breaches, tuple(notices), len(baseline), tuple(sources), settings)


# --------------------------------------------------------------------------- counters

#: the run metadata key of the environment fingerprint: a flat object of strings (python,
#: implementation, platform, valgrind, distributions, hashseed, ...), written by the counting core
FINGERPRINT_KEY = "fingerprint"
#: the fingerprint fields of the callgrind counters (instructions, estimated cycles): valgrind's
#: version and how perfgate counted. Missing on one side is a difference for those counters (a
#: run from before the canonical heap has no ``method``), not for the allocation counters
CALLGRIND_FIELDS = ("valgrind", "method")
#: the order fingerprint differences are told in (other fields after these, by name)
FINGERPRINT_ORDER = (
    "python", "implementation", "python_build", "build_flags", "machine", "platform", "libc", *CALLGRIND_FIELDS,
    "distributions", "hash_seed",
)  # fmt: skip


def fingerprint(run: RunResult) -> dict[str, str] | None:
    """The run's environment fingerprint (``metadata["fingerprint"]``), or None when it has none
    (a results file from before counters, an import, or a malformed value)."""
    raw = run.metadata.get(FINGERPRINT_KEY)
    if not isinstance(raw, dict) or not raw:
        return None
    return {str(k): str(v) for k, v in raw.items() if v is not None}


def fingerprint_differences(
    stored: dict[str, str], current: dict[str, str], *, valgrind: bool
) -> tuple[tuple[str, str, str], ...]:
    """The fields that make counters incomparable (in :data:`FINGERPRINT_ORDER`): every field present in both with
    different values, and a :data:`CALLGRIND_FIELDS` field present on one side only when
    ``valgrind`` (the callgrind counters are compared). A field missing on one side is "" in the result."""
    names = set(stored) & set(current)
    if valgrind:
        names.update(name for name in CALLGRIND_FIELDS if (name in stored) != (name in current))
    order = {name: i for i, name in enumerate(FINGERPRINT_ORDER)}
    return tuple(
        (name, stored.get(name, ""), current.get(name, ""))
        for name in sorted(names, key=lambda n: (order.get(n, len(order)), n))
        if stored.get(name, "") != current.get(name, "")
    )


class _Environments:
    """Which stored runs a counter may be compared with: those whose fingerprint agrees with the
    current run's (or either has none: compared, and the report says the check was not made)."""

    def __init__(self, baseline: Sequence[RunResult], current: RunResult) -> None:
        self.current = fingerprint(current)
        self.stored = [fingerprint(run) for run in baseline]
        self._known: dict[tuple[int, bool], tuple[tuple[str, str, str], ...]] = {}

    def differences(self, index: int, metric: str) -> tuple[tuple[str, str, str], ...]:
        stored = self.stored[index]
        if stored is None or self.current is None:
            return ()
        key = (index, metric in metrics.CALLGRIND_SERIES)
        if key not in self._known:
            self._known[key] = fingerprint_differences(stored, self.current, valgrind=key[1])
        return self._known[key]

    def checked(self, index: int) -> bool:
        return self.stored[index] is not None and self.current is not None


@dataclass
class _CounterLog:
    """What the counter comparisons of one report saw, for its notices."""

    not_compared: int = 0
    left_out_runs: set[int] = field(default_factory=set)
    differences: dict[int, tuple[tuple[str, str, str], ...]] = field(default_factory=dict)
    unchecked: int = 0
    unchecked_runs: set[int] = field(default_factory=set)

    def notices(self, environments: _Environments, settings: GateSettings, done: Sequence[Comparison]) -> list[Notice]:
        notices = []
        if self.differences:
            newest = max(self.differences)
            notices.append(
                Notice(
                    NoticeKind.ENVIRONMENT_CHANGED,
                    count=self.not_compared,
                    left_out=len(self.left_out_runs),
                    of=len(environments.stored),
                    differences=self.differences[newest],
                )
            )
        if self.unchecked:
            notices.append(
                Notice(
                    NoticeKind.ENVIRONMENT_UNCHECKED,
                    count=self.unchecked,
                    left_out=len(self.unchecked_runs),
                    of=int(environments.current is None),
                )
            )
        varying = sorted((c for c in done if c.nondeterministic), key=lambda c: (c.nodeid, c.metric))
        if varying:
            spreads = sorted(c.spread or 0.0 for c in varying)
            notices.append(
                Notice(
                    NoticeKind.NONDETERMINISTIC,
                    count=len(varying),
                    spread=(spreads[0], spreads[-1]),
                    tests=tuple(dict.fromkeys(f"{c.nodeid} ({c.metric})" for c in varying))[:5],
                    threshold=settings.counters.SPREAD_FACTOR,
                    share=settings.counters.max_spread,
                )
            )
        return notices


def _counter_value(test: TestResult, metric: str) -> tuple[float, ...]:
    """A counter's finite values in one run (one per separate measurement of the call); of a
    stored run read from its summary (no samples), its min, median and max (the same median and
    spread)."""
    series = test.series.get(metric)
    if series is not None and series.values:
        return tuple(v for v in series.values if math.isfinite(v) and v >= 0)
    summary = test.evidence.summary
    if summary is None or not summary.has(metric):
        return ()
    figures = (summary.statistic(metric, statistic) for statistic in ("min", "median", "max"))
    return tuple(v for v in figures if v is not None and v >= 0)


def _relative_range(values: Sequence[float]) -> float:
    """``max / min - 1`` of counts (0 for one value or all equal; infinite from 0 to more)."""
    low, high = min(values), max(values)
    if high == low:
        return 0.0
    return high / low - 1 if low > 0 else math.inf


def _percent(value: float) -> str:
    """A small percentage for a reason (``0.5%``, ``1.49%``); the reports' words are in
    :mod:`pytest_perfgate.reports.gate_text`."""
    if not math.isfinite(value):
        return "inf%"
    text = f"{value:.2%}" if abs(value) < 0.1 else f"{value:.1%}"
    return text[:-1].rstrip("0").rstrip(".") + "%"


def _counter_interval(stored: Sequence[float], current: Sequence[float], change: float) -> tuple[float, float]:
    """The exact interval of a counter's change: from the smallest current value against the
    largest stored one to the largest against the smallest (the change itself when every value
    agrees)."""
    low, high = min(stored), max(stored)
    if low <= 0:
        return (change, change)
    return (min(min(current) / high - 1, change), max(max(current) / low - 1, change))


def _judge_counter(
    template: Comparison,
    test: TestResult,
    baseline: Sequence[Mapping[str, TestResult]],
    settings: GateSettings,
    environments: _Environments,
    log: _CounterLog,
) -> Comparison:
    """One counter: the current run's count (the median of its values) against the median of the
    stored runs' counts, from the stored runs of the same environment only; no p-value."""
    nodeid, metric = template.nodeid, template.metric
    current_values = _counter_value(test, metric)
    stored: list[tuple[int, tuple[float, ...]]] = []
    for index, run in enumerate(baseline):
        stored_test = run.get(nodeid)
        values = _counter_value(stored_test, metric) if stored_test is not None else ()
        if values:
            stored.append((index, values))
    if test.outcome != Outcome.PASSED:
        return replace(template, verdict=GateVerdict.INSUFFICIENT, reason=f"the test {test.outcome} in the current run")
    if not current_values:
        return replace(template, verdict=GateVerdict.INSUFFICIENT, reason="current run: no finite count")
    if not stored:
        return replace(template, verdict=GateVerdict.INSUFFICIENT, reason="no baseline run has a usable count")
    current = stats.statistic(current_values, "median")
    same: list[tuple[int, tuple[float, ...]]] = []
    for index, values in stored:
        differences = environments.differences(index, metric)
        if differences:
            log.left_out_runs.add(index)
            log.differences[index] = differences
        else:
            same.append((index, values))
            if environments.stored[index] is None:
                log.unchecked_runs.add(index)
    if not same:
        log.not_compared += 1
        newest = max(index for index, _ in stored)
        changed = ", ".join(name for name, _, _ in log.differences[newest])
        return replace(
            template,
            verdict=GateVerdict.INSUFFICIENT,
            reason=f"environment changed ({changed}): counters not compared",
            environment_changed=True,
            current=current,
            baseline=stats.statistic([stats.statistic(v, "median") for _, v in stored], "median"),
            baseline_runs=0,
        )
    if any(not environments.checked(index) for index, _ in same):
        log.unchecked += 1
    return decide_counter(template, [values for _, values in same], current_values, settings.counters)


def counter_template(
    nodeid: str, metric: str, settings: GateSettings, spec: BudgetSpec | None = None, *, kind: Kind = Kind.COUNT
) -> Comparison:
    """A counter comparison before its verdict, with the thresholds that apply to this test and
    metric (marker, override naming the metric, ``gate.counters``): for callers that judge counts
    they measured themselves, e.g. the paired gate on counts, with :func:`decide_counter`."""
    warn_r, max_r = settings.thresholds_for(nodeid, spec, metric)
    return Comparison(
        nodeid=nodeid,
        metric=metric,
        verdict=GateVerdict.UNCHANGED,
        reason="",
        kind=kind,
        statistic="median",
        warn_threshold=warn_r,
        max_threshold=max_r,
        counter=True,
    )


def decide_counter(
    template: Comparison,
    stored: Sequence[Sequence[float]],
    current_values: Sequence[float],
    counters: CounterSettings,
) -> Comparison:
    """The counter rule (docs/gate.md, "Counters"): the median of ``current_values`` against the
    median of the per-run medians of ``stored`` (one sequence of values per stored run, or per
    base side), with ``template``'s thresholds, widened for a nondeterministic counter. Pure; every
    sequence must be non-empty, values finite and >= 0."""
    c = counters
    current = stats.statistic(current_values, "median")
    per_run = [stats.statistic(values, "median") for values in stored]
    base = stats.statistic(per_run, "median")
    pooled = [v for values in stored for v in values]
    spread = max(_relative_range(pooled), _relative_range(current_values))
    figures = replace(template, baseline=base, current=current, baseline_runs=len(stored), spread=spread)
    nondeterministic = spread > c.max_spread
    floor = c.SPREAD_FACTOR * spread if nondeterministic else 0.0
    # the failure threshold raised to 3x the spread; the warning keeps its share of it; an
    # improvement must be beyond 3x the spread too
    scale = max(1.0, floor / template.max_threshold) if template.max_threshold > 0 else 1.0
    warn_t, max_t = template.warn_threshold * scale, template.max_threshold * scale
    better_t = max(c.min_improvement, floor)
    figures = replace(figures, warn_threshold=warn_t, max_threshold=max_t, nondeterministic=nondeterministic)
    note = ""
    if nondeterministic:
        widened = f" ({c.SPREAD_FACTOR:g}x the spread)" if scale > 1 else ""
        note = f"; nondeterministic (spread {_percent(spread)}): judged against {_percent(max_t)}{widened}"
    if not math.isfinite(spread):  # 0 in some runs and not in others: no ratio to judge against
        return replace(
            figures,
            verdict=GateVerdict.INSUFFICIENT,
            reason="nondeterministic: 0 in some runs and not in others, cannot be judged",
            warn_threshold=template.warn_threshold,
            max_threshold=template.max_threshold,
        )
    if base == current:
        interval = _counter_interval(pooled, current_values, 0.0)
        return replace(figures, change=0.0, ci=interval, detectable=floor, reason="the same count" + note)
    # every counter is lower-is-better (the registry's four): more instructions or allocations is worse
    if base == 0 or current == 0:
        # from nothing to something (or back): no ratio; any allocation where there was none is news
        return replace(
            figures,
            verdict=GateVerdict.REGRESSION if current > base else GateVerdict.IMPROVEMENT,
            reason=f"{template.fmt(base)} in the baseline, {template.fmt(current)} now" + note,
            change=math.inf if current > base else -1.0,
            detectable=floor,
        )
    change = current / base - 1
    figures = replace(figures, change=change, ci=_counter_interval(pooled, current_values, change), detectable=floor)
    if change > max_t:
        verdict, reason = GateVerdict.REGRESSION, f"count up by more than {_percent(max_t)}"
    elif change > warn_t:
        verdict, reason = GateVerdict.WARNING, f"count up by more than {_percent(warn_t)}"
    elif -change >= better_t:
        verdict, reason = GateVerdict.IMPROVEMENT, f"count down by at least {_percent(better_t)}"
    else:
        verdict, reason = GateVerdict.UNCHANGED, f"within {_percent(warn_t)}"
    return replace(figures, verdict=verdict, reason=reason + note)


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
    max_t, warn_t = p.template.max_threshold, p.template.warn_threshold
    paired = isinstance(r, stats.PairedComparison)
    if isinstance(r, stats.PairedComparison):
        detectable, assumed = None, False
    else:
        detectable, assumed = (_expm1(r.detectable(suite_alpha)) if r.scale > 0 else 0.0), r.assumed
    figures = replace(
        p.template,
        spread=_expm1(r.spread),
        spread_assumed=assumed,
        change=_expm1(r.shift),
        ci=(_expm1(low), _expm1(high)),
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
            reason = f"worse by {_expm1(worse):.0%}, not significant over {r.runs} paired blocks"
        elif assumed:
            verdict = GateVerdict.INSUFFICIENT
            reason = f"worse by {_expm1(worse):.0%}, not significant with {r.runs} baseline run(s)"
        else:
            verdict = GateVerdict.UNSTABLE
            reason = (
                f"worse by {_expm1(worse):.0%}, not significant: {_runs_vary(r)} (t test, {label} p = {adj_bad:.2g})"
            )
    elif detectable is not None and not assumed and detectable > max_t:
        verdict = GateVerdict.UNSTABLE
        reason = (
            f"too noisy to judge: {_runs_vary(r)}; only a worsening of {format_detectable(detectable)} "
            "could be significant here"
        )
    else:
        verdict, reason = GateVerdict.UNCHANGED, "within thresholds"
    if verdict is GateVerdict.IMPROVEMENT:  # its p-values are those of the "better" direction
        return replace(figures, verdict=verdict, reason=reason, p_value=p.p_good, p_adjusted=adj_good)
    return replace(figures, verdict=verdict, reason=reason)


def _runs_vary(r: stats.RunComparison | stats.PairedComparison) -> str:
    return f"the baseline's {r.runs} runs vary by {_expm1(r.spread):.0%}"


def format_detectable(detectable: float) -> str:
    """:attr:`Comparison.detectable` (a fraction, like ``change``: 3.23 is +323%) in words: the
    percentage, and past +100% the factor too: ``"at least +45%"``, ``"at least +323% (4.2x)"``;
    ``"+9900% (100x)"`` and above reads ``"more than 100x"``."""
    if detectable < 1:
        return f"at least +{detectable:.0%}"
    factor = 1 + detectable
    return f"at least +{detectable:.0%} ({factor:.1f}x)" if factor < 100 else "more than 100x"


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
        notices = tuple(replace(n, where=where) if n.kind is NoticeKind.NO_BASELINE else n for n in report.notices)
        return replace(report, notices=notices, baseline_runs=0, baseline_sources=())
    return compare(baseline.runs, current, settings, sources=baseline.sources)


@dataclass(frozen=True)
class SessionGate:
    """The gate as the plugin runs it at the end of a session (``--perfgate-compare``)."""

    #: 0 pass (also when nothing could be judged: the headline says so, the tests decide the
    #: session), 1 regression or critical budget breach, 2 bad input
    code: int
    report: GateReport | None = None  # None when the baseline could not be read
    baseline_runs: tuple[RunResult, ...] = ()
    error: str = ""  # why there is no report
    #: where each of ``baseline_runs`` was read from
    baseline_sources: tuple[str, ...] = ()
    #: what changed in the profile of each test judged slower (``gatediff.explain_session``)
    diffs: Mapping[str, ProfileDiff] = field(default_factory=dict)


def compare_for_session(current: RunResult, baseline_path: str, settings: GateSettings) -> SessionGate:
    """Never raises a :class:`PerfgateError`: bad input gives code 2 and the reason in ``error``."""
    from .store import open_store

    try:
        baseline = open_store(baseline_path).load()
        report = compare_baseline(baseline, current, settings, location=baseline_path)
    except PerfgateError as exc:
        return SessionGate(exc.exit_code, error=str(exc))
    code = EXIT_OK if report.exit_code == EXIT_NOT_JUDGED else report.exit_code
    return SessionGate(
        code, report, baseline.runs if baseline else (), baseline_sources=baseline.sources if baseline else ()
    )
