"""The gate's rule for counters (instructions, estimated cycles, allocations) and the environment
fingerprint, on synthetic results shaped like the counting core's (docs/instructions.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_perfgate.budgets import BudgetSpec, parse_marker
from pytest_perfgate.config import CounterSettings, GateOverride, GateSettings, parse_config
from pytest_perfgate.gate import Comparison, GateMode, GateReport, GateStatus, GateVerdict, NoticeKind, compare
from pytest_perfgate.model import RunResult, Series, TestResult, run_from_dict, run_to_dict
from pytest_perfgate.reports.gate_terminal import counter_line, format_terminal, gate_rule
from pytest_perfgate.reports.gate_text import environment_changes, headline, notice_texts
from pytest_perfgate.store.files import DirectoryStore
from pytest_perfgate.units import Kind

FP = {
    "python": "3.11.7 (main, Dec  4 2023) [GCC 12.2.0]",
    "implementation": "cpython",
    "platform": "Linux-6.1-x86_64",
    "valgrind": "valgrind-3.19.0",
    "distributions": "9f2c",
    "hashseed": "0",
}
M40 = 40_000_000.0


def counted(
    counts: Mapping[str, Sequence[float]] | None = None,
    *,
    nodeid: str = "tests/perf/test_a.py::test_sort",
    fingerprint: Mapping[str, str] | None = FP,
    time: float = 1e-3,
    spec: BudgetSpec | None = None,
    outcome: str = "passed",
) -> RunResult:
    """One test's run: a time series and counter series as the counting core records them."""
    counts = {"instructions": [M40]} if counts is None else counts
    series = {"time": Series("time", Kind.TIME, (time,) * 9)}
    for name, values in counts.items():
        kind = Kind.SIZE if name == "alloc_bytes" else Kind.COUNT
        source = "callgrind" if name in ("instructions", "est_cycles") else "allocations"
        series[name] = Series(name, kind, tuple(values), source=source)
    test = TestResult(nodeid=nodeid, outcome=outcome, mode="perf", series=series, spec=spec or BudgetSpec())
    metadata = {"fingerprint": dict(fingerprint)} if fingerprint is not None else {}
    return RunResult(metadata=metadata, tests=(test,))


def gate(current: RunResult, stored: Sequence[RunResult] | None = None, **settings: object) -> GateReport:
    base = stored if stored is not None else [counted() for _ in range(3)]
    return compare(base, current, GateSettings(**settings))  # type: ignore[arg-type]


def one(report: GateReport, metric: str = "instructions") -> Comparison:
    (c,) = [c for c in report.comparisons if c.metric == metric]
    return c


# --------------------------------------------------------------------------- the rule


def test_unchanged_counts_pass_with_no_p_value_and_an_exact_interval() -> None:
    report = gate(counted())
    c = one(report)
    assert (c.verdict, c.change, c.ci, c.p_value, c.counter) == (GateVerdict.UNCHANGED, 0.0, (0.0, 0.0), None, True)
    assert c.spread == 0.0 and not c.nondeterministic and c.statistic == "median"
    assert report.status is GateStatus.PASSED and report.exit_code == 0


@pytest.mark.parametrize(
    ("factor", "verdict", "exit_code"),
    [
        (1.02, GateVerdict.REGRESSION, 1),
        (1.011, GateVerdict.REGRESSION, 1),
        (1.009, GateVerdict.WARNING, 0),
        (1.007, GateVerdict.WARNING, 0),
        (1.004, GateVerdict.UNCHANGED, 0),
        (0.996, GateVerdict.UNCHANGED, 0),
        (0.994, GateVerdict.IMPROVEMENT, 0),
        (0.98, GateVerdict.IMPROVEMENT, 0),
    ],
)
def test_counter_defaults_fail_above_1_percent_warn_above_half_improve_below(
    factor: float, verdict: GateVerdict, exit_code: int
) -> None:
    report = gate(counted({"instructions": [M40 * factor]}))
    assert one(report).verdict is verdict
    assert report.exit_code == exit_code


def test_a_counter_is_judged_exactly_where_the_timing_gate_could_not_see_the_change() -> None:
    # the time moved 2% (far below the timing gate's 10%), the instructions 2%: only the counter fails
    report = gate(counted({"instructions": [M40 * 1.02]}, time=1.02e-3))
    assert one(report, "time").verdict is GateVerdict.UNCHANGED
    assert one(report).verdict is GateVerdict.REGRESSION
    assert headline(report) == "perfgate: FAILED: 1 regression (1 unchanged); baseline of 3 runs"


def test_the_baseline_is_the_median_of_the_stored_runs_and_a_run_value_the_median_of_its_values() -> None:
    stored = [counted({"instructions": [M40, M40, M40 * 1.5]}) for _ in range(3)]  # one outlier value per run
    report = gate(counted({"instructions": [M40 * 1.5, M40, M40]}), stored, min_effect=0.0)
    c = one(report)
    assert c.baseline == M40 and c.current == M40 and c.change == 0.0
    assert c.nondeterministic  # the values within the runs differ by 50%: said, not hidden
    assert c.ci == (pytest.approx(1 / 1.5 - 1), pytest.approx(0.5))


def test_counters_stay_out_of_the_suite_correction_and_the_timing_thresholds() -> None:
    report = gate(counted({"instructions": [M40 * 1.02]}), max_regression=0.5, min_effect=0.2)
    c = one(report)
    assert c.verdict is GateVerdict.REGRESSION and (c.warn_threshold, c.max_threshold) == (0.005, 0.01)
    assert "over 1 comparison" in gate_rule(report)  # only the time has a p-value in the family
    assert "Counters (instructions, allocations) are exact: a regression is a count up by more than 1%" in (
        gate_rule(report)
    )


def test_global_counter_thresholds_from_perfgate_yml() -> None:
    config = parse_config("gate:\n  counters: {max_regression: 5%, warn_regression: 2%, min_improvement: 3%}\n")
    assert config.gate.counters == CounterSettings(0.05, 0.02, 0.03, 0.001)
    run = counted({"instructions": [M40 * 1.03]})
    assert one(compare([counted()] * 3, run, config.gate)).verdict is GateVerdict.WARNING
    assert one(compare([counted()] * 3, counted({"instructions": [M40 * 0.98]}), config.gate)).verdict is (
        GateVerdict.UNCHANGED
    )
    assert one(compare([counted()] * 3, counted({"instructions": [M40 * 1.06]}), config.gate)).verdict is (
        GateVerdict.REGRESSION
    )


def test_per_metric_and_per_test_overrides_and_their_precedence() -> None:
    config = parse_config(
        "gate:\n"
        "  max_regression: 50%\n"
        "  overrides:\n"
        "    - {match: 'tests/perf/test_a.py::*', metric: alloc_bytes, max_regression: 10%, warn_regression: 5%}\n"
        "    - {match: '*', metric: instructions, max_regression: 3%}\n"
        "    - {match: '*', max_regression: 40%}\n"
    )
    settings = config.gate
    up = {"instructions": [M40 * 1.02], "alloc_bytes": [1e6 * 1.08], "alloc_blocks": [1020.0]}
    stored = [counted({"instructions": [M40], "alloc_bytes": [1e6], "alloc_blocks": [1000.0]})] * 3
    report = compare(stored, counted(up), settings)
    # per metric (a glob over every test): instructions fail above 3%, warn above gate.counters' 0.5%
    assert (one(report).verdict, one(report).max_threshold) == (GateVerdict.WARNING, 0.03)
    # per test and metric: alloc_bytes warn at 5%, fail at 10%
    assert one(report, "alloc_bytes").verdict is GateVerdict.WARNING
    # an override without a metric is for timings only: alloc_blocks keeps the counter default (1%)
    assert one(report, "alloc_blocks").verdict is GateVerdict.REGRESSION
    assert settings.thresholds_for("tests/perf/test_a.py::test_sort", None, "time") == (0.05, 0.4)
    # the marker beats every override
    spec = parse_marker({"counter_max_regression": "2.5%", "counter_warn_regression": "2%"})
    marked = compare(stored, counted(up, spec=spec), settings)
    assert (one(marked).verdict, one(marked).max_threshold, one(marked).warn_threshold) == (
        GateVerdict.WARNING,
        0.025,
        0.02,
    )
    assert one(marked, "alloc_blocks").verdict is GateVerdict.WARNING


def test_an_override_that_names_another_metric_does_not_apply() -> None:
    settings = GateSettings(overrides=(GateOverride("*", max_regression=0.5, metric="alloc_bytes"),))
    assert settings.thresholds_for("t::a", None, "instructions") == (0.005, 0.01)
    assert settings.thresholds_for("t::a", None, "time") == (0.05, 0.1)
    assert settings.thresholds_for("t::a", None, "alloc_bytes") == (0.005, 0.5)


def test_the_marker_counter_thresholds_survive_the_results_file() -> None:
    import json

    spec = parse_marker({"counter_max_regression": "3%"})
    back = run_from_dict(json.loads(json.dumps(run_to_dict(counted(spec=spec)))), "r.json")
    assert back.tests[0].spec.counter_max_regression == 0.03
    assert back.metadata["fingerprint"] == FP
    assert "counter_max_regression" not in json.dumps(run_to_dict(counted()))


def test_zero_allocations_before_and_some_now_is_a_regression() -> None:
    stored = [counted({"alloc_blocks": [0.0]})] * 3
    assert one(gate(counted({"alloc_blocks": [0.0]}), stored), "alloc_blocks").verdict is GateVerdict.UNCHANGED
    c = one(gate(counted({"alloc_blocks": [3.0]}), stored), "alloc_blocks")
    assert c.verdict is GateVerdict.REGRESSION and "0 in the baseline, 3 now" in c.reason


def test_a_failed_test_s_counter_is_not_judged() -> None:
    c = one(gate(counted({"instructions": [M40 * 2]}, outcome="failed")))
    assert c.verdict is GateVerdict.INSUFFICIENT and "failed" in c.reason


# --------------------------------------------------------------------------- nondeterminism


def test_a_counter_that_does_not_vary_is_never_unstable() -> None:
    stored = [counted(time=t) for t in (0.7e-3, 1.3e-3, 1.0e-3, 0.8e-3, 1.2e-3)]  # timings 30% apart
    report = gate(counted({"instructions": [M40 * 1.02]}, time=1.4e-3), stored)
    assert one(report, "time").verdict is GateVerdict.UNSTABLE
    assert one(report).verdict is GateVerdict.REGRESSION


def test_a_nondeterministic_counter_is_judged_against_three_times_its_spread_and_said_so() -> None:
    stored = [counted({"instructions": [M40 * f]}) for f in (1.0, 1.004, 0.998)]  # spread 0.6%
    spread = 1.004 / 0.998 - 1
    quiet = one(gate(counted({"instructions": [M40 * 1.015]}), stored))
    assert quiet.nondeterministic and quiet.spread == pytest.approx(spread)
    assert quiet.max_threshold == pytest.approx(3 * spread)  # 1.8%, above the 1% default
    assert quiet.verdict is GateVerdict.WARNING  # +1.5%: beyond the (raised) warning, not the failure
    assert "nondeterministic (spread 0.6%): judged against 1.8% (3x the spread)" in quiet.reason
    report = gate(counted({"instructions": [M40 * 1.03]}), stored)
    assert one(report).verdict is GateVerdict.REGRESSION
    (notice,) = [n for n in report.notices if n.kind is NoticeKind.NONDETERMINISTIC]
    assert notice_texts(report)[report.notices.index(notice)] == (
        "1 counter nondeterministic (spread 0.6%): its values vary between runs or within this run by more "
        "than 0.1%, so each is judged against at least 3x its spread: tests/perf/test_a.py::test_sort (instructions)"
    )


def test_a_counter_that_varies_within_the_current_run_is_nondeterministic_too() -> None:
    c = one(gate(counted({"instructions": [M40, M40 * 1.01, M40 * 1.02]})))
    assert c.nondeterministic and c.spread == pytest.approx(0.02)
    assert c.verdict is GateVerdict.UNCHANGED and c.max_threshold == pytest.approx(0.06)


def test_a_spread_below_max_spread_keeps_the_configured_thresholds() -> None:
    stored = [counted({"instructions": [M40 * f]}) for f in (1.0, 1.0005, 0.9998)]  # 0.07%: deterministic enough
    c = one(gate(counted({"instructions": [M40 * 1.012]}), stored))
    assert not c.nondeterministic and c.max_threshold == 0.01 and c.verdict is GateVerdict.REGRESSION


# --------------------------------------------------------------------------- the environment


def test_a_changed_environment_compares_no_counter_and_still_compares_timings() -> None:
    moved = {**FP, "python": "3.11.8 (main, Feb  1 2024) [GCC 12.2.0]", "distributions": "77aa"}
    report = gate(counted({"instructions": [M40 * 1.2], "alloc_bytes": [5e6]}, fingerprint=moved, time=1.3e-3))
    assert not report.regressions or [c.metric for c in report.regressions] == ["time"]
    assert one(report, "time").verdict is GateVerdict.REGRESSION  # timings judged as before
    for metric in ("instructions",):
        c = one(report, metric)
        assert c.verdict is GateVerdict.INSUFFICIENT and c.change is None
        assert c.reason == "environment changed (python, distributions): counters not compared"
    (notice,) = [n for n in report.notices if n.kind is NoticeKind.ENVIRONMENT_CHANGED]
    assert notice.count == 1 and notice.left_out == 3
    assert notice_texts(report)[report.notices.index(notice)].startswith(
        "environment changed: counters not compared: python 3.11.7 -> 3.11.8, distributions changed "
        "(1 counter comparison not made, not counted as regressions"
    )


def test_only_a_counter_change_with_a_changed_environment_does_not_fail() -> None:
    moved = {**FP, "hashseed": "1"}
    report = gate(counted({"instructions": [M40 * 1.5]}, fingerprint=moved))
    assert report.exit_code != 1 and not report.regressions
    assert headline(report) == (
        "perfgate: PASSED (1 of 2 judged: 1 unchanged; 1 counter not compared: environment changed); baseline of 3 runs"
    )
    assert one(report).environment_changed


def _counters_only(instructions: float, fingerprint: Mapping[str, str]) -> RunResult:
    series = {"instructions": Series("instructions", Kind.COUNT, (instructions,), source="callgrind")}
    test = TestResult(nodeid="t::c", outcome="passed", mode="perf", series=series, spec=BudgetSpec())
    return RunResult(metadata={"fingerprint": dict(fingerprint)}, tests=(test,))


def test_a_gate_of_counters_only_in_a_changed_environment_judges_nothing_and_does_not_fail() -> None:
    report = compare([_counters_only(M40, FP)] * 3, _counters_only(M40 * 2, {**FP, "platform": "Linux-6.5-x86_64"}))
    assert report.status is GateStatus.NOT_JUDGED and report.exit_code == 3
    assert headline(report) == (
        "perfgate: NOT JUDGED: the one comparison could not be judged (1 counter not compared: environment "
        "changed); baseline of 3 runs"
    )


def test_stored_runs_of_another_environment_are_left_out_and_the_others_used() -> None:
    old = {**FP, "valgrind": "valgrind-3.18.1"}
    stored = [counted({"instructions": [M40 * 2]}, fingerprint=old), counted(), counted()]
    report = gate(counted(), stored)
    c = one(report)
    assert (c.verdict, c.baseline, c.baseline_runs) == (GateVerdict.UNCHANGED, M40, 2)
    (notice,) = [n for n in report.notices if n.kind is NoticeKind.ENVIRONMENT_CHANGED]
    assert (notice.count, notice.left_out, notice.of) == (0, 1, 3)
    assert notice_texts(report)[report.notices.index(notice)] == (
        "environment changed in 1 of 3 stored runs (valgrind valgrind-3.18.1 -> valgrind-3.19.0): counters were "
        "compared only with the 2 stored runs of this run's environment"
    )


def test_valgrind_missing_on_one_side_matters_for_instructions_only() -> None:
    no_valgrind = {k: v for k, v in FP.items() if k != "valgrind"}
    stored = [counted({"instructions": [M40], "alloc_blocks": [100.0]}, fingerprint=no_valgrind)] * 3
    report = gate(counted({"instructions": [M40], "alloc_blocks": [100.0]}), stored)
    assert one(report).verdict is GateVerdict.INSUFFICIENT
    assert one(report, "alloc_blocks").verdict is GateVerdict.UNCHANGED
    (notice,) = [n for n in report.notices if n.kind is NoticeKind.ENVIRONMENT_CHANGED]
    assert notice.differences == (("valgrind", "", "valgrind-3.19.0"),)
    assert environment_changes(notice.differences) == "valgrind only in the current run"


def test_a_field_missing_on_one_side_other_than_valgrind_is_no_difference() -> None:
    fewer = {k: v for k, v in FP.items() if k != "hashseed"}
    assert one(gate(counted(fingerprint=fewer))).verdict is GateVerdict.UNCHANGED


def test_runs_without_a_fingerprint_are_compared_and_the_report_says_the_environment_was_not_checked() -> None:
    report = gate(counted({"instructions": [M40 * 1.02]}), [counted(fingerprint=None), counted(), counted()])
    assert one(report).verdict is GateVerdict.REGRESSION
    (notice,) = [n for n in report.notices if n.kind is NoticeKind.ENVIRONMENT_UNCHECKED]
    assert notice_texts(report)[report.notices.index(notice)].startswith(
        "1 counter comparison made without checking the environment: 1 stored run carries no fingerprint"
    )
    current_none = gate(counted(fingerprint=None))
    assert "the current run carries no fingerprint" in " ".join(notice_texts(current_none))
    assert not [n for n in gate(counted()).notices if n.kind is NoticeKind.ENVIRONMENT_UNCHECKED]


# --------------------------------------------------------------------------- words


def test_the_terminal_shows_counts_readably_next_to_timings() -> None:
    report = gate(counted({"instructions": [40_200_000 * 1.1]}), [counted({"instructions": [40_200_000]})] * 3)
    text = "\n".join(format_terminal(report, max_unchanged=5))
    assert "40.2M" in text and "44.2M" in text and "+10.0%" in text
    assert counter_line(one(report)) == "instructions 40.2M -> 44.2M (+10.0%)"
    small = one(gate(counted({"instructions": [M40 * 1.0007]})))
    assert counter_line(small) == "instructions 40M -> 40M (+0.07%)"


def test_the_markdown_note_shows_each_test_s_counts_next_to_its_time() -> None:
    from pytest_perfgate.reports.markdown import format_markdown

    stored = [counted({"instructions": [40_200_000.0], "alloc_blocks": [1200.0]}) for _ in range(3)]
    report = gate(counted({"instructions": [44_300_000.0], "alloc_blocks": [1200.0]}), stored)
    text = format_markdown(report)
    assert "#### Counted next to timed (1 test)" in text
    assert "| Test | time | instructions | alloc\\_blocks |" in text
    row = next(line for line in text.splitlines() if line.startswith("| tests/perf/test") and "→" in line)
    assert "40.2M → 44.3M (+10.2%) **regression**" in row and "1200 → 1200 (+0.00%)" in row
    assert "1ms → 1ms" in row
    assert "Counted next to timed" not in format_markdown(compare([counted({})] * 3, counted({})))


# --------------------------------------------------------------------------- properties


@given(
    count=st.integers(min_value=1, max_value=10**12),
    runs=st.integers(min_value=1, max_value=10),
)
def test_an_unchanged_count_is_always_unchanged_whatever_the_size_and_the_number_of_runs(count: int, runs: int) -> None:
    report = gate(counted({"instructions": [float(count)]}), [counted({"instructions": [float(count)]})] * runs)
    assert one(report).verdict is GateVerdict.UNCHANGED and report.exit_code == 0


_ORDER = [GateVerdict.IMPROVEMENT, GateVerdict.UNCHANGED, GateVerdict.WARNING, GateVerdict.REGRESSION]


@given(
    base=st.integers(min_value=1000, max_value=10**10),
    low=st.floats(min_value=0.5, max_value=2.0),
    high=st.floats(min_value=0.5, max_value=2.0),
)
def test_a_larger_count_never_gets_a_milder_verdict(base: int, low: float, high: float) -> None:
    low, high = sorted((low, high))
    stored = [counted({"instructions": [float(base)]})] * 3
    verdicts = [one(gate(counted({"instructions": [round(base * f) * 1.0]}), stored)).verdict for f in (low, high)]
    assert _ORDER.index(verdicts[0]) <= _ORDER.index(verdicts[1])
    change = round(base * high) / base - 1
    assert (verdicts[1] is GateVerdict.REGRESSION) == (change > 0.01)


def test_a_count_of_zero_in_some_runs_only_cannot_be_judged_and_says_so() -> None:
    stored = [counted({"alloc_blocks": [n]}) for n in (0.0, 0.0, 4.0)]
    report = gate(counted({"alloc_blocks": [4.0]}), stored)
    c = one(report, "alloc_blocks")
    assert c.verdict is GateVerdict.INSUFFICIENT and c.nondeterministic
    assert c.reason == "nondeterministic: 0 in some runs and not in others, cannot be judged"
    assert report.exit_code == 0
    assert "counter nondeterministic (spread unbounded)" in " ".join(notice_texts(report))


def test_the_counter_rule_is_usable_on_its_own_for_counts_measured_elsewhere() -> None:
    from pytest_perfgate.gate import counter_template, decide_counter

    settings = parse_config("gate: {overrides: [{match: 'ab::*', metric: instructions, max_regression: 2%}]}").gate
    template = counter_template("ab::t", "instructions", settings)
    assert (template.warn_threshold, template.max_threshold, template.counter) == (0.005, 0.02, True)
    base_side = [[1_000_000.0]]
    assert decide_counter(template, base_side, [1_015_000.0], settings.counters).verdict is GateVerdict.WARNING
    assert decide_counter(template, base_side, [1_025_000.0], settings.counters).verdict is GateVerdict.REGRESSION
    c = decide_counter(template, base_side, [990_000.0], settings.counters)
    assert (c.verdict, c.baseline_runs, c.p_value) == (GateVerdict.IMPROVEMENT, 1, None)


def test_counters_are_judged_against_runs_stored_as_summaries(tmp_path: Path) -> None:
    """A directory store keeps summaries (no samples): a counter's stored count is its median, its
    spread the summary's min and max."""
    store = DirectoryStore(str(tmp_path / "baseline"))
    for values in ([M40, M40, M40], [M40 * 1.0001] * 3, [M40] * 3):
        store.promote(counted({"instructions": [values[0]], "alloc_blocks": values}))
    stored = store.load().runs
    assert all(not run.tests[0].series["instructions"].values for run in stored)  # summaries
    unchanged = gate(counted({"instructions": [M40], "alloc_blocks": [M40] * 3}), stored)
    assert {c.metric: c.verdict for c in unchanged.comparisons if c.counter} == {
        "instructions": GateVerdict.UNCHANGED,
        "alloc_blocks": GateVerdict.UNCHANGED,
    }
    slower = gate(counted({"instructions": [M40 * 1.02], "alloc_blocks": [M40] * 3}), stored)
    assert one(slower).verdict is GateVerdict.REGRESSION and slower.exit_code == 1


def test_the_rule_sentence_of_a_report_of_counts_only_is_the_counter_rule() -> None:
    report = gate(counted())
    assert gate_rule(report).startswith("Gate on the median: a regression is worse by more than 10%")
    counts_only = dataclasses.replace(report, comparisons=tuple(c for c in report.comparisons if c.counter))
    assert gate_rule(counts_only).startswith("Gate on counts. Counters (instructions, allocations) are exact")
    paired = dataclasses.replace(counts_only, mode=GateMode.PAIRED)
    assert gate_rule(paired).startswith("Paired A/B on counts: the base and the current code each ran their tests once")
    assert "ABBA" not in gate_rule(paired)


def test_counts_from_before_the_canonical_heap_are_not_compared_with_counts_made_with_it() -> None:
    from pytest_perfgate.counts.callgrind import METHOD

    older = {k: v for k, v in FP.items() if k != "method"}
    now = {**older, "method": METHOD}
    stored = [counted({"instructions": [M40], "alloc_blocks": [100.0]}, fingerprint=older)] * 3
    report = gate(counted({"instructions": [M40 * 1.07], "alloc_blocks": [100.0]}, fingerprint=now), stored)
    assert one(report).verdict is GateVerdict.INSUFFICIENT and report.exit_code != 1
    assert one(report, "alloc_blocks").verdict is GateVerdict.UNCHANGED  # allocations are counted the same way
    (notice,) = [n for n in report.notices if n.kind is NoticeKind.ENVIRONMENT_CHANGED]
    assert notice.differences == (("method", "", METHOD),)
    assert environment_changes(notice.differences) == "method only in the current run"
