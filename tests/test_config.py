from __future__ import annotations

from pathlib import Path

import pytest

from pytest_perfgate.config import Correction, GateSettings, find_config, load_config, parse_config
from pytest_perfgate.errors import BudgetError, ConfigError

GOOD = """
kpis:
  api_response_time: {p95: {target: 200ms, critical: 500ms}, p99: {target: 500ms, critical: 1s}}
  db_query_time: {p95: [50ms, 200ms]}
  bundle: {page_weight: 2MB}
metrics:
  page_weight: {kind: size}
  hit_ratio: {kind: ratio, higher_is_better: true}
gate:
  metric: median
  max_regression: 10%
  warn_regression: 5%
  alpha: 0.01
  overrides:
    - {match: "tests/slow/*", max_regression: 25%}
"""


def test_good_config() -> None:
    config = parse_config(GOOD, "perfgate.yml")
    api = config.kpis["api_response_time"].spec()
    assert api.kpi == "api_response_time"
    assert {b.metric: (b.target, b.critical) for b in api.budgets} == {"p95": (0.2, 0.5), "p99": (0.5, 1.0)}
    assert config.kpis["bundle"].budgets[0].critical == 2e6
    assert config.metrics["hit_ratio"].higher_is_better
    assert config.gate.thresholds_for("tests/slow/test_x.py::t") == (0.05, 0.25)
    assert config.gate.thresholds_for("tests/test_x.py::t") == (0.05, 0.10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kpis: [1, 2", "perfgate.yml: invalid YAML (line 1, column 12: expected ',' or ']', but got '<stream end>')"),
        ("- a\n- b\n", "perfgate.yml: the top level must be a mapping of sections, got list"),
        ("kpi: {}\n", "perfgate.yml: unknown section(s) kpi; accepted: gate, kpis, metrics"),
        (
            "kpis: {api: {p95: 2 parsecs}}",
            "perfgate.yml: kpis.api.p95: '2 parsecs' is not a valid time (unknown unit 'parsecs'); accepted: ",
        ),
        ("kpis: {api: {p97: 1ms}}", "perfgate.yml: kpis.api.p97: unknown metric 'p97'; accepted: "),
        ("kpis: {api: {p95: [5ms, 1ms]}}", "perfgate.yml: kpis.api.p95: target 5ms is above critical 1ms"),
        ("kpis: {api: {}}", "perfgate.yml: kpis.api: a KPI needs at least one metric level"),
        ("kpis: {api: 3}", "perfgate.yml: kpis.api: expected a mapping of metric names to levels, got int"),
        ("metrics: {p95: {kind: time}}", "perfgate.yml: metrics.p95: 'p95' is a built-in metric"),
        ("metrics: {x: {kind: parsec}}", "perfgate.yml: metrics.x.kind: unknown kind 'parsec'; accepted: time, size"),
        ("gate: {max_regression: lots}", "perfgate.yml: gate.max_regression: 'lots' is not a valid ratio"),
        ("gate: {max_regression: 5%, warn_regression: 10%}", "warn_regression (10%) is above max_regression (5%)"),
        ("gate: {metric: p42}", "perfgate.yml: gate.metric: unknown statistic 'p42'"),
        ("gate: {alpha: 0.7}", "perfgate.yml: gate.alpha: 0.7 must be above 0"),
        ("gate: {overrides: [{max_regression: 5%}]}", "gate.overrides[0]: 'match' (a test-id glob"),
    ],
)
def test_bad_config_names_file_key_and_accepted(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "perfgate.yml")
    assert message in str(info.value)


def test_empty_file_is_the_defaults() -> None:
    assert parse_config("", "p.yml").kpis == {}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yml: no such file"):
        load_config(tmp_path / "nope.yml")


def test_unknown_kpi_lists_the_known_ones() -> None:
    config = parse_config(GOOD, "perfgate.yml")
    with pytest.raises(
        BudgetError, match=r"unknown KPI 'api'; KPIs in perfgate.yml: api_response_time, bundle, db_query_time"
    ):
        config.kpi("api")


def test_find_config_walks_up_to_the_rootdir(tmp_path: Path) -> None:
    (tmp_path / "perfgate.yml").write_text("")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert find_config(sub, tmp_path) == tmp_path / "perfgate.yml"
    (sub / "perfgate.yaml").write_text("")
    assert find_config(sub, tmp_path) == sub / "perfgate.yaml"
    assert find_config(tmp_path / "a", tmp_path / "a") is None


@pytest.mark.parametrize(("text", "expected"), [("", Correction.HOLM), ("gate: {correction: BH}", Correction.BH),
                                                ("gate: {correction: none}", Correction.NONE)])  # fmt: skip
def test_the_correction_is_a_mode(text: str, expected: Correction) -> None:
    correction = parse_config(text).gate.correction
    assert correction is expected and correction == expected.value  # an enum that is still its string
    assert GateSettings().correction is Correction.HOLM


def test_unknown_section_lists_the_sections() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("mongo: {}\n")
    assert str(info.value) == "perfgate.yml: unknown section(s) mongo; accepted: gate, kpis, metrics"
