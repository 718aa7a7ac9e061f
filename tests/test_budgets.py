from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_perfgate.budgets import BudgetSpec, Verdict, evaluate, level_verdict, parse_level, parse_marker
from pytest_perfgate.errors import BudgetError, UnitError
from pytest_perfgate.metrics import custom
from pytest_perfgate.model import Series
from pytest_perfgate.units import Kind


def test_single_value_is_the_critical_level() -> None:
    spec = parse_marker({"p95": "2ms"})
    (budget,) = spec.budgets
    assert (budget.metric, budget.target, budget.critical) == ("p95", None, 0.002)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"p95": ("1ms", "3ms")},
        {"p95": ["1ms", "3ms"]},
        {"p95": {"target": "1ms", "critical": "3ms"}},
        {"p95": "1ms", "critical_p95": "3ms"},
        {"target_p95": "1ms", "critical_p95": "3ms"},
    ],
)
def test_level_forms_agree(kwargs: dict[str, object]) -> None:
    (budget,) = parse_marker(kwargs).budgets
    assert budget.target == pytest.approx(0.001)
    assert budget.critical == pytest.approx(0.003)


def test_p50_is_an_alias_of_median() -> None:
    assert parse_marker({"p50": "1ms"}).metrics == ("median",)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"p97": "1ms"}, "unknown metric 'p97'; accepted: "),
        ({"p95": "2 parsecs"}, "'p95': '2 parsecs' is not a valid time (unknown unit 'parsecs')"),
        ({"p95": "-1ms"}, "'p95': '-1ms' is not a valid time (negative)"),
        ({"p95": ("5ms", "1ms")}, "'p95': target 5ms is above critical 1ms"),
        ({"p95": ("1ms", "2ms", "3ms")}, "3 values given; a pair is (target, critical)"),
        ({"p95": {"warn": "1ms"}}, "unknown key(s) 'warn'"),
        ({"mem_peak": "50 MBs"}, "unknown unit 'MBs'"),
        ({"p95": ("1ms", "2ms"), "critical_p95": "3ms"}, "gives both levels already"),
        ({"p95": "1ms", "target_p95": "1ms", "critical_p95": "2ms"}, "both set the target level"),
        ({"median": "1ms", "p50": "2ms"}, "metric 'median' given twice"),
        ({"kpi": 3}, "kpi= must be the name of a KPI"),
        ({"max_regression": "-5%"}, "max_regression: "),
        ({"max_regression": 0}, "max_regression: 0 must be above 0"),
        ({"metrics": ["a"]}, "metrics= must be a dict"),
        ({"metrics": {"p95": "1ms"}}, "'p95' is a built-in metric"),
    ],
)
def test_bad_marker_arguments_are_clear(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises((BudgetError, UnitError)) as info:
        parse_marker(kwargs)
    assert fragment in str(info.value)


def test_positional_arguments_are_rejected() -> None:
    with pytest.raises(BudgetError, match="positional arguments are not accepted"):
        parse_marker({}, ("200ms",))


def test_higher_is_better_levels_must_be_ordered_the_other_way() -> None:
    with pytest.raises(BudgetError, match="higher-is-better"):
        parse_level((0.5, 0.9), "hit", Kind.RATIO, higher_is_better=True)
    budget = parse_level((0.9, 0.5), "hit", Kind.RATIO, higher_is_better=True)
    assert (budget.target, budget.critical) == (0.9, 0.5)


def test_custom_metric_kind_is_inferred_from_its_unit() -> None:
    spec = parse_marker({"metrics": {"bundle_js": ("400kB", "500kB"), "hits": 3}})
    js, hits = spec.budgets
    assert js.kind is Kind.SIZE and js.critical == 500e3
    assert hits.kind is None and hits.critical == 3.0


def test_declared_custom_metric_is_a_keyword() -> None:
    declared = {"page_weight": custom("page_weight", Kind.SIZE)}
    (budget,) = parse_marker({"page_weight": "1MB"}, declared=declared).budgets
    assert budget.kind is Kind.SIZE and budget.critical == 1e6


def _time(values: list[float]) -> dict[str, Series]:
    return {"time": Series("time", Kind.TIME, tuple(values))}


def test_evaluate_pass_warn_fail() -> None:
    series = _time([0.001] * 19 + [0.010])  # p95 ~ 1.45ms, max 10ms
    spec = parse_marker({"median": ("2ms", "5ms"), "p95": ("1ms", "5ms"), "max": "5ms"})
    verdicts = {v.metric: v.verdict for v in evaluate(spec, series)}
    assert verdicts == {"median": Verdict.PASS, "p95": Verdict.WARN, "max": Verdict.FAIL}


def test_strict_turns_a_warning_into_a_failure() -> None:
    (result,) = evaluate(parse_marker({"median": ("1ms", "5ms")}), _time([0.002] * 5), strict=True)
    assert result.verdict is Verdict.FAIL


def test_failure_message_names_metric_value_level_and_samples() -> None:
    (result,) = evaluate(parse_marker({"p95": ("5ms", "10ms")}), _time([0.0123] * 57))
    assert result.message() == "p95 12.3ms exceeds critical 10ms (target 5ms; 57 rounds)"


def test_higher_is_better_custom_metric_fails_below_critical() -> None:
    series = {"hit": Series("hit", Kind.RATIO, (0.85, 0.4), higher_is_better=True, source="record")}
    (result,) = evaluate(parse_marker({"metrics": {"hit": ("90%", "50%")}}), series)
    assert result.verdict is Verdict.FAIL  # judged by its worst value, 40%
    assert result.message() == "hit 40% is below critical 50% (target 90%; 2 samples)"


def test_budget_on_unrecorded_metric_is_an_error() -> None:
    with pytest.raises(
        BudgetError, match=r"budget on 'bundle_js' but the test recorded no such metric \(recorded: time\)"
    ):
        evaluate(parse_marker({"metrics": {"bundle_js": "1MB"}}), _time([0.1]))


def test_custom_metric_unit_mismatch_is_an_error() -> None:
    series = {"js": Series("js", Kind.TIME, (0.1,), source="record")}
    with pytest.raises(BudgetError, match="is a size but the test recorded a time"):
        evaluate(parse_marker({"metrics": {"js": "1MB"}}), series)


def test_not_checked_is_never_a_pass() -> None:
    (result,) = evaluate(parse_marker({"p95": "1ms"}), {}, not_checked={"p95": "needs a real server"})
    assert result.verdict is Verdict.NOT_CHECKED
    assert result.message() == "p95 not checked: needs a real server"


def test_merge_closest_wins_per_metric() -> None:
    module = parse_marker({"p95": "10ms", "median": "5ms", "max_regression": "20%"})
    test = parse_marker({"p95": "1ms"})
    merged = test.merged_over(module)
    assert {b.metric: b.critical for b in merged.budgets} == {"median": 0.005, "p95": 0.001}
    assert merged.max_regression == pytest.approx(0.2)
    assert BudgetSpec().merged_over(module) == BudgetSpec(
        module.budgets, None, module.max_regression, module.warn_regression
    )


levels = st.floats(min_value=0, max_value=10, allow_nan=False)


@given(measured=levels, a=levels, b=levels, hib=st.booleans())
def test_judge_is_monotonic_in_the_measured_value(measured: float, a: float, b: float, hib: bool) -> None:
    target, critical = (max(a, b), min(a, b)) if hib else (min(a, b), max(a, b))
    verdict = level_verdict(measured, target, critical, hib)
    worse = measured * 2 + 1 if not hib else measured / 2 - 1
    assert level_verdict(worse, target, critical, hib).rank <= verdict.rank
    assert level_verdict(measured, target, critical, hib, strict=True) in (Verdict.PASS, Verdict.FAIL)


# --------------------------------------------------------------------------- budgets on counts


def _counts(instructions: tuple[float, ...], alloc_bytes: tuple[float, ...] = (4e6,)) -> dict[str, Series]:
    return {
        "instructions": Series("instructions", Kind.COUNT, instructions, source="callgrind"),
        "alloc_bytes": Series("alloc_bytes", Kind.SIZE, alloc_bytes, source="allocations"),
    }


def test_budgets_on_counts_parse_with_multipliers_and_sizes() -> None:
    spec = parse_marker({"instructions": "40M", "alloc_bytes": "5MB", "target_alloc_blocks": "1.5k"})
    levels = {b.metric: (b.kind, b.target, b.critical) for b in spec.budgets}
    assert levels == {
        "instructions": (Kind.COUNT, None, 40_000_000.0),
        "alloc_bytes": (Kind.SIZE, None, 5_000_000.0),
        "alloc_blocks": (Kind.COUNT, 1500.0, None),
    }


@pytest.mark.parametrize(
    ("counts", "verdict", "message"),
    [
        ((39_000_000.0,), Verdict.PASS, "instructions 39M within budget (1 counted call)"),
        ((41_000_000.0,), Verdict.WARN, "instructions 41M exceeds target 40M (critical 44M; 1 counted call)"),
        ((44_500_000.0,), Verdict.FAIL, "instructions 44.5M exceeds critical 44M (target 40M; 1 counted call)"),
        # several counted calls: their median is the measured figure, and the basis says so
        (
            (39_000_000.0, 45_000_000.0, 39_500_000.0),
            Verdict.PASS,
            "instructions 39.5M within budget (median of 3 counted calls)",
        ),
    ],
)
def test_an_instruction_budget_passes_warns_and_fails(
    counts: tuple[float, ...], verdict: Verdict, message: str
) -> None:
    spec = parse_marker({"instructions": ("40M", "44M")})
    (result,) = evaluate(spec, _counts(counts))
    assert (result.verdict, result.message()) == (verdict, message)


def test_an_allocation_budget_in_bytes() -> None:
    (result,) = evaluate(parse_marker({"alloc_bytes": "5MB"}), _counts((1.0,), (5_200_000.0,)))
    assert result.verdict is Verdict.FAIL
    assert result.message() == "alloc_bytes 5.2MB exceeds critical 5MB (1 counted call)"


def test_a_count_budget_in_perfgate_yml() -> None:
    from pytest_perfgate.config import parse_config

    config = parse_config("kpis:\n  hot_path: {instructions: {target: 40M, critical: 50M}, alloc_blocks: 2k}\n")
    spec = config.kpi("hot_path").spec()
    assert {b.metric: (b.target, b.critical) for b in spec.budgets} == {
        "instructions": (40e6, 50e6),
        "alloc_blocks": (None, 2000.0),
    }


def test_a_bad_count_budget_names_the_metric_and_the_accepted_forms() -> None:
    with pytest.raises(BudgetError, match=r"'instructions': '40m' is not a valid count \(unknown multiplier 'm'"):
        parse_marker({"instructions": "40m"})


def test_counter_gate_thresholds_on_the_marker() -> None:
    spec = parse_marker({"counter_max_regression": "2%", "counter_warn_regression": "1%", "max_regression": "20%"})
    assert (spec.counter_max_regression, spec.counter_warn_regression, spec.max_regression) == (0.02, 0.01, 0.2)
    merged = BudgetSpec().merged_over(spec)
    assert merged.counter_max_regression == 0.02
    with pytest.raises(BudgetError, match=r"counter_warn_regression \(3.0%\) is above counter_max_regression"):
        parse_marker({"counter_max_regression": "2%", "counter_warn_regression": "3%"})


def test_the_terminal_budget_table_shows_counts_readably() -> None:
    from pytest_perfgate.model import TestResult
    from pytest_perfgate.reports.terminal import format_budget_table

    spec = parse_marker({"instructions": ("40M", "44M")})
    results = evaluate(spec, _counts((41_234_567.0,)))
    test = TestResult(
        nodeid="t::a", outcome="passed", mode="perf", series=_counts((41_234_567.0,)), spec=spec, verdicts=results
    )
    text = "\n".join(format_budget_table([test]))
    assert "41.2M" in text and "40M" in text and "44M" in text and "41234567" not in text
