"""The gate's model: verdicts, thresholds, suite-level control, budget breaches."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.results import make_run, make_test
from pytest_perfgate.budgets import BudgetResult, BudgetSpec, Verdict
from pytest_perfgate.config import GateOverride, GateSettings
from pytest_perfgate.errors import GateError
from pytest_perfgate.gate import GateStatus, GateVerdict, compare, format_detectable
from pytest_perfgate.model import RunResult, Series, TestResult
from pytest_perfgate.reports.gate_text import headline, notice_texts
from pytest_perfgate.units import Kind


def noisy_run(
    rng: random.Random, names: Sequence[str], *, factor: float = 1.0, spread: float = 0.05, rounds: int = 20
) -> RunResult:
    """One run of a suite: each test's level moves by a log-normal run effect (the between-run
    spread), rounds scatter around it a little (within-run noise)."""
    tests = {}
    for i, name in enumerate(names):
        level = (1e-3 * (1 + i)) * factor * math.exp(rng.gauss(0, spread))
        tests[name] = [level * math.exp(rng.gauss(0, 0.01)) for _ in range(rounds)]
    return make_run(tests)


NAMES = [f"tests/test_perf.py::test_{i}" for i in range(20)]


def verdicts_of(report) -> dict[str, GateVerdict]:  # type: ignore[no-untyped-def]
    return {c.nodeid: c.verdict for c in report.comparisons}


# --------------------------------------------------------------------------- verdicts


def test_big_slowdown_with_enough_runs_is_a_regression() -> None:
    rng = random.Random(1)
    baseline = [noisy_run(rng, NAMES[:5]) for _ in range(8)]
    current = noisy_run(rng, NAMES[:5], factor=1.0)
    slowed = RunResult(
        current.metadata,
        tuple(
            make_test(t.nodeid, [v * (2.0 if t.nodeid == NAMES[0] else 1.0) for v in t.series["time"].values])
            for t in current.tests
        ),
    )
    report = compare(baseline, slowed)
    verdicts = verdicts_of(report)
    assert verdicts[NAMES[0]] is GateVerdict.REGRESSION
    assert [c.nodeid for c in report.regressions] == [NAMES[0]]
    assert report.failed and report.exit_code == 1
    regression = report.regressions[0]
    assert regression.change == pytest.approx(1.0, abs=0.25)
    assert (
        regression.ci is not None
        and regression.ci[0] > 0.10
        and regression.ci[0] < regression.change < regression.ci[1]
    )
    assert regression.p_adjusted is not None and regression.p_value is not None
    assert regression.p_adjusted >= regression.p_value
    assert headline(report).startswith("perfgate: FAILED: 1 regression")


def test_improvement_and_warning_levels() -> None:
    base = [
        make_run({"a": [1.0 * f] * 5, "b": [1.0 * f] * 5, "c": [1.0 * f] * 5}) for f in (0.99, 1.0, 1.01, 1.0, 0.995)
    ]
    current = make_run({"a": [0.5] * 5, "b": [1.07] * 5, "c": [1.2] * 5})
    verdicts = verdicts_of(compare(base, current))
    assert verdicts == {"a": GateVerdict.IMPROVEMENT, "b": GateVerdict.WARNING, "c": GateVerdict.REGRESSION}


def test_change_within_the_run_to_run_spread_is_unstable_not_a_failure() -> None:
    base = [make_run({"a": [f] * 5}) for f in (0.7, 1.0, 1.3, 0.8, 1.2)]
    report = compare(base, make_run({"a": [1.4] * 5}))
    (c,) = report.comparisons
    assert c.verdict is GateVerdict.UNSTABLE and not report.failed
    assert c.spread is not None and c.spread > 0.2
    # what the test compared, not "within the spread" (a 44% change "within" a 30% spread reads as a contradiction)
    assert (
        c.reason == "worse by 44%, not significant: the baseline's 5 runs vary by 30% (t test, Holm-adjusted p = 0.14)"
    )
    assert report.exit_code == 3
    assert headline(report) == (
        "perfgate: NOT JUDGED: the one time comparison could not be judged (1 too noisy to judge on this runner: "
        "run-to-run spread 30%); the paired gate (perfgate ab) would judge it (more stored runs would not: the "
        "spread is too large); baseline of 5 runs"
    )


def test_noisy_metric_that_cannot_detect_its_threshold_is_flagged() -> None:
    base = [make_run({"a": [f] * 5}) for f in (0.9, 1.0, 1.1, 0.95, 1.05)]
    (c,) = compare(base, make_run({"a": [1.0] * 5})).comparisons
    assert c.verdict is GateVerdict.UNSTABLE
    assert c.detectable is not None and c.detectable > 0.10
    # the figure in the words is the JSON's detectable (a fraction, as change is), with its factor past +100%
    assert c.reason == (
        f"too noisy to judge: the baseline's 5 runs vary by 8%; only a worsening of at least "
        f"+{c.detectable:.0%} could be significant here"
    )
    assert c.reason.endswith("at least +38% could be significant here")


def test_detectable_reads_as_a_percentage_and_past_100_percent_as_a_factor_too() -> None:
    assert [format_detectable(d) for d in (0.38, 3.23, 98.0, 99.0, 150.0)] == [
        "at least +38%",
        "at least +323% (4.2x)",
        "at least +9800% (99.0x)",
        "more than 100x",
        "more than 100x",
    ]


def test_min_effect_floors_the_thresholds() -> None:
    base = [make_run({"a": [f] * 5}) for f in (1.0, 1.0001, 0.9999, 1.0, 1.0)]
    current = make_run({"a": [1.02] * 5})
    strict = GateSettings(max_regression=0.01, warn_regression=0.01, min_effect=0.0)
    assert verdicts_of(compare(base, current, strict))["a"] is GateVerdict.REGRESSION
    floored = GateSettings(max_regression=0.01, warn_regression=0.01, min_effect=0.03)
    assert verdicts_of(compare(base, current, floored))["a"] is GateVerdict.UNCHANGED


def test_one_baseline_run_uses_the_conservative_rule_and_says_so() -> None:
    base = [make_run({"a": [1.0] * 50, "b": [1.0] * 50})]
    report = compare(base, make_run({"a": [1.25] * 50, "b": [3.0] * 50}))
    verdicts = verdicts_of(report)
    assert verdicts["a"] is GateVerdict.INSUFFICIENT  # 25% is within what one run cannot rule out
    assert verdicts["b"] is GateVerdict.REGRESSION  # 3x is not
    assert any("fewer than 3 baseline runs" in n for n in notice_texts(report))
    assert all(c.spread_assumed for c in report.comparisons)


def test_marker_and_glob_overrides_change_the_threshold() -> None:
    base = [make_run({"slow/a": [f] * 5, "fast/b": [f] * 5}) for f in (0.99, 1.0, 1.01, 1.0, 1.0)]
    current = make_run(
        [
            make_test("slow/a", [1.15] * 5),
            make_test("fast/b", [1.15] * 5, spec=BudgetSpec(max_regression=0.30, warn_regression=0.20)),
        ]
    )
    assert verdicts_of(compare(base, current)) == {"slow/a": GateVerdict.REGRESSION, "fast/b": GateVerdict.UNCHANGED}
    lenient = GateSettings(overrides=(GateOverride("slow/*", max_regression=0.5, warn_regression=0.4),))
    assert verdicts_of(compare(base, current, lenient))["slow/a"] is GateVerdict.UNCHANGED


def test_higher_is_better_metric_regresses_when_it_drops() -> None:
    def run(value: float) -> RunResult:
        return make_run([make_test("t", [value] * 5, metric="rps", kind=Kind.RATE, higher_is_better=True)])

    base = [run(v) for v in (1000, 1005, 995, 1000, 1002)]
    assert verdicts_of(compare(base, run(700)))["t"] is GateVerdict.REGRESSION
    assert verdicts_of(compare(base, run(1500)))["t"] is GateVerdict.IMPROVEMENT


def test_new_missing_and_insufficient() -> None:
    base = [make_run({"kept": [1.0] * 5, "gone": [1.0] * 5, "failing": [1.0] * 5}) for _ in range(3)]
    current = make_run(
        [
            make_test("kept", [1.0] * 5),
            make_test("added", [1.0] * 5),
            make_test("failing", [1.0] * 5, outcome="failed"),
        ]
    )
    report = compare(base, current)
    assert verdicts_of(report) == {
        "kept": GateVerdict.UNCHANGED,
        "gone": GateVerdict.MISSING,
        "added": GateVerdict.NEW,
        "failing": GateVerdict.INSUFFICIENT,
    }
    assert not report.failed
    assert [c.verdict for c in report.comparisons] == sorted(
        (c.verdict for c in report.comparisons), key=lambda v: v.rank
    )


def test_summary_only_series_uses_the_summary_or_is_insufficient() -> None:
    def summary_run(median: float) -> RunResult:
        t = TestResult(
            nodeid="b",
            mode="benchmark",
            series={"time": Series("time", Kind.TIME, ())},
            evidence={"summary": {"time": {"median": median, "mean": median}}},
        )
        return RunResult({}, (t,))

    base = [summary_run(m) for m in (1.0, 1.01, 0.99)]
    assert verdicts_of(compare(base, summary_run(2.0)))["b"] is GateVerdict.REGRESSION
    (c,) = compare(base, summary_run(2.0), GateSettings(metric="p95")).comparisons
    assert c.verdict is GateVerdict.INSUFFICIENT and "no 'p95'" in c.reason


def test_critical_budget_breach_fails_the_gate_even_without_a_baseline() -> None:
    breach = BudgetResult("p95", Kind.TIME, 0.6, 0.2, 0.5, Verdict.FAIL, 10)
    warn = BudgetResult("median", Kind.TIME, 0.3, 0.2, 0.5, Verdict.WARN, 10)
    current = make_run([make_test("a", [1.0] * 5, verdicts=(breach, warn))])
    report = compare([], current)
    assert report.failed and report.exit_code == 1
    assert [b.critical for b in report.breaches] == [True, False]
    assert headline(report) == "perfgate: FAILED: 1 critical budget breach (1 new); no baseline yet"
    assert notice_texts(report) and "no baseline" in notice_texts(report)[0]
    assert verdicts_of(report) == {"a": GateVerdict.NEW}


def test_missing_baseline_passes_with_a_notice() -> None:
    report = compare([], make_run({"a": [1.0] * 5}))
    assert report.exit_code == 0 and "no baseline" in notice_texts(report)[0]
    assert report.status is GateStatus.NOTHING_COMPARED and not report.status.clean  # passes, not a green check
    assert headline(report) == "perfgate: PASSED without a comparison (1 new); no baseline yet"


def test_no_overlap_is_an_error_naming_both_sides() -> None:
    with pytest.raises(GateError, match=r"no test in common.*'old'.*'new'"):
        compare([make_run({"old": [1.0]})], make_run({"new": [1.0]}))


# --------------------------------------------------------------------------- properties


run_values = st.lists(st.floats(min_value=1e-7, max_value=10.0), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(st.lists(run_values, min_size=1, max_size=6), st.sampled_from(["median", "mean", "min", "p95"]))
def test_identical_baseline_and_current_is_never_a_regression(runs: list[list[float]], metric: str) -> None:
    base = [make_run({"t": v}) for v in runs]
    for current in runs:
        report = compare(base, make_run({"t": current}), GateSettings(metric=metric))
        assert not report.failed


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0.5, max_value=2.0), min_size=5, max_size=10), st.floats(3.0, 20.0))
def test_scaled_up_current_is_always_a_regression_with_enough_runs(levels: list[float], factor: float) -> None:
    # baseline runs within +-... of each other (spread at most log(4)/...), current scaled far beyond it
    base = [make_run({"t": [lv] * 5}) for lv in levels]
    top = max(levels)
    spread = math.log(top / min(levels))
    current = [top * factor * math.exp(8 * spread)] * 5
    report = compare(base, make_run({"t": current}))
    assert report.comparisons[0].verdict is GateVerdict.REGRESSION


def _suite_false_positive_rate(correction: str, *, suites: int, runs: int, spread: float) -> float:
    rng = random.Random(42)
    failing = 0
    gate = GateSettings(correction=correction, max_regression=0.03, warn_regression=0.03, min_effect=0.0, alpha=0.05)
    for _ in range(suites):
        history = [noisy_run(rng, NAMES, spread=spread) for _ in range(runs)]
        current = noisy_run(rng, NAMES, spread=spread)
        failing += compare(history, current, gate).failed
    return failing / suites


def test_suite_level_false_positive_rate_stays_under_alpha_with_holm() -> None:
    # 20 tests, no change, thresholds as low as possible: only the statistics stand between the
    # suite and a false alarm. Holm keeps the share of failing suites at alpha (5%; with 400
    # seeded suites the binomial standard error is 1.1 points, so 8% is a 2.7-sigma bound) ...
    assert _suite_false_positive_rate("holm", suites=400, runs=6, spread=0.08) <= 0.08
    # ... where per-test testing fails most suites: this is what the correction is for
    assert _suite_false_positive_rate("none", suites=100, runs=6, spread=0.08) > 0.3


def test_detection_of_a_large_slowdown_on_a_quiet_suite() -> None:
    rng = random.Random(7)
    detected = 0
    for _ in range(20):
        history = [noisy_run(rng, NAMES, spread=0.02) for _ in range(10)]
        current = noisy_run(rng, NAMES, spread=0.02, factor=1.25)
        detected += len(compare(history, current).regressions)
    assert detected / (20 * len(NAMES)) > 0.9


def test_counts_that_stay_zero_are_unchanged_and_a_new_query_is_a_regression() -> None:
    def run(n: float) -> RunResult:
        return make_run([make_test("t", [n], metric="queries", kind=Kind.COUNT)])

    assert verdicts_of(compare([run(0), run(0), run(0)], run(0)))["t"] is GateVerdict.UNCHANGED
    assert verdicts_of(compare([run(0), run(0), run(0)], run(2)))["t"] is GateVerdict.INSUFFICIENT
    # deterministic counts: no spread, so any change past the thresholds is certain
    assert verdicts_of(compare([run(3), run(3), run(3)], run(4)))["t"] is GateVerdict.REGRESSION
    assert verdicts_of(compare([run(3), run(3), run(3)], run(3)))["t"] is GateVerdict.UNCHANGED


@pytest.mark.parametrize(
    ("base", "current", "verdict"),
    [
        (1e-3, 0.0, GateVerdict.INSUFFICIENT),  # a count that dropped to 0: not a ratio, said so
        (1e-3, -1e-3, GateVerdict.INSUFFICIENT),
        (5e-324, 5e-324, GateVerdict.UNCHANGED),
        (1e308, 1e308, GateVerdict.UNCHANGED),
        (1e-3, 1e308, GateVerdict.REGRESSION),  # a change past the float range: infinite, not a crash
        (1e308, 1e-3, GateVerdict.IMPROVEMENT),
    ],
    ids=["zero", "negative", "tiny", "huge", "huge-current", "huge-baseline"],
)
def test_every_finite_figure_is_compared_or_refused_in_words_and_every_format_renders_it(
    base: float, current: float, verdict: GateVerdict
) -> None:
    from pytest_perfgate.reports.gate_terminal import format_terminal
    from pytest_perfgate.reports.json_report import gate_to_dict
    from pytest_perfgate.reports.junit import format_junit
    from pytest_perfgate.reports.markdown import format_markdown
    from pytest_perfgate.reports.openmetrics import format_openmetrics

    report = compare([make_run({"t::a": [base] * 5}) for _ in range(3)], make_run({"t::a": [current] * 5}))
    (comparison,) = report.comparisons
    assert comparison.verdict is verdict, comparison.reason
    if verdict is GateVerdict.INSUFFICIENT:
        assert comparison.reason.endswith("a ratio needs positive values")
    text = "\n".join(format_terminal(report))
    assert max(len(line) for line in text.splitlines()) < 400  # no 300-digit figures
    format_markdown(report), format_junit(report), format_openmetrics(report)
    json.dumps(gate_to_dict(report), allow_nan=False)
