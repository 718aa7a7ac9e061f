"""The ``gate`` section of perfgate.yml: parsing, validation, errors naming the key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_perfgate.config import GateSettings, parse_config
from pytest_perfgate.errors import ConfigError


def test_defaults() -> None:
    gate = parse_config("").gate
    assert gate == GateSettings()
    assert (gate.max_regression, gate.warn_regression, gate.alpha, gate.correction) == (0.10, 0.05, 0.01, "holm")


def test_every_key() -> None:
    gate = parse_config(
        "gate: {metric: p95, max_regression: 20%, warn_regression: 8%, min_effect: 2%, min_improvement: 15%,"
        " alpha: 0.05, correction: BH, min_baseline_runs: 5, assumed_spread: 12%, confidence: 90%,"
        " overrides: [{match: 'io/*', max_regression: 40%}]}"
    ).gate
    assert gate.metric == "p95" and gate.correction == "bh" and gate.min_baseline_runs == 5
    assert gate.min_improvement == pytest.approx(0.15) and gate.confidence == pytest.approx(0.9)
    assert gate.thresholds_for("io/test_a.py::t") == (pytest.approx(0.08), pytest.approx(0.40))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gate: {min_improvement: 100%}", "gate.min_improvement: '100%' must be above 0 and below 100%"),
        ("gate: {min_improvement: 250%}", "gate.min_improvement: '250%' must be above 0 and below 100%"),
        ("gate: {min_improvement: -5%}", "gate.min_improvement: '-5%' is not a valid ratio"),
        ("gate: {min_improvement: 0}", "gate.min_improvement: 0 must be above 0"),
        ("gate: {max_regression: ten}", "gate.max_regression: 'ten' is not a valid ratio"),
        ("gate: {correction: bonferroni}", "gate.correction: unknown correction 'bonferroni'; accepted: holm, bh"),
        ("gate: {min_baseline_runs: 1}", "gate.min_baseline_runs: expected a whole number of at least 2"),
        ("gate: {alpha: 60%}", "gate.alpha: '60%' must be above 0 and below 50%"),
        ("gate: {warn_regression: 20%, max_regression: 10%}", "warn_regression (20%) is above max_regression"),
        ("gate: {min_efect: 2%}", "unknown key(s) min_efect; accepted: metric"),
    ],
)
def test_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "perfgate.yml")
    assert message in str(info.value) and str(info.value).startswith("perfgate.yml: ")


@given(st.integers(1, 99))
def test_any_percentage_below_100_is_a_valid_improvement_threshold(pct: int) -> None:
    assert parse_config(f"gate: {{min_improvement: {pct}%}}").gate.min_improvement == pytest.approx(pct / 100)


@given(st.one_of(st.text(max_size=12), st.floats(allow_nan=True), st.integers()))
def test_junk_thresholds_are_config_errors_or_valid(value: object) -> None:
    import yaml

    text = yaml.safe_dump({"gate": {"max_regression": value, "min_improvement": value}})
    try:
        gate = parse_config(text).gate
    except ConfigError:
        return
    assert 0 < gate.min_improvement < 1 and gate.max_regression > 0


# --------------------------------------------------------------------------- gate.counters


def test_counter_defaults_and_every_counter_key() -> None:
    from pytest_perfgate.config import CounterSettings

    assert parse_config("").gate.counters == CounterSettings(0.01, 0.005, 0.005, 0.001)
    counters = parse_config(
        "gate: {counters: {max_regression: 2%, warn_regression: 1%, min_improvement: 1.5%, max_spread: 0.2%}}"
    ).gate.counters
    assert (counters.max_regression, counters.warn_regression) == (pytest.approx(0.02), pytest.approx(0.01))
    assert (counters.min_improvement, counters.max_spread) == (pytest.approx(0.015), pytest.approx(0.002))
    # a failure threshold alone pulls the default warning down with it, as at the top of gate
    assert parse_config("gate: {counters: {max_regression: 0.3%}}").gate.counters.warn_regression == pytest.approx(
        0.003
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "gate: {counters: {fail: 1%}}",
            "gate.counters: unknown key(s) fail; accepted: max_regression, warn_regression",
        ),
        (
            "gate: {counters: {max_regression: 1%, warn_regression: 2%}}",
            "warn_regression (2.00%) is above max_regression",
        ),
        ("gate: {counters: {max_spread: 0}}", "gate.counters.max_spread: 0 must be above 0"),
        ("gate: {counters: [1%]}", "gate.counters: expected a mapping of counter settings, got list"),
        (
            "gate: {overrides: [{match: '*', metric: instructions, warn_regression: 2%}]}",
            "warn_regression (2%) is above max_regression (gate.counters.max_regression) (1%)",
        ),
        (
            "gate: {overrides: [{match: '*', metric: [a, b]}]}",
            "gate.overrides[0].metric: expected the name of one metric",
        ),
        ("gate: {overrides: [{match: '*', metrics: x}]}", "unknown key(s) metrics; accepted: match, metric"),
    ],
)
def test_bad_counter_settings_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value)


def test_an_override_naming_a_counter_is_checked_against_the_counter_thresholds() -> None:
    gate = parse_config(
        "gate: {counters: {max_regression: 4%}, overrides: [{match: '*', metric: instructions, warn_regression: 3%}]}"
    ).gate
    assert gate.thresholds_for("t::a", None, "instructions") == (pytest.approx(0.03), pytest.approx(0.04))
    assert gate.thresholds_for("t::a", None, "time") == (0.05, 0.10)
