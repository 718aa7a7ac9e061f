"""Pure statistics: distributions against scipy, multiple-testing corrections, the run comparison."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from pytest_perfgate import stats


@settings(max_examples=200, deadline=None)
@given(st.floats(-50, 50), st.floats(0.5, 200))
def test_t_sf_matches_scipy(t: float, df: float) -> None:
    assert stats.t_sf(t, df) == pytest.approx(scipy_stats.t.sf(t, df), rel=1e-9, abs=1e-14)


@settings(max_examples=100, deadline=None)
@given(st.floats(1e-6, 0.999999), st.integers(1, 60))
def test_t_isf_inverts_t_sf_and_matches_scipy(p: float, df: int) -> None:
    q = stats.t_isf(p, float(df))
    assert q == pytest.approx(scipy_stats.t.isf(p, df), rel=1e-7, abs=1e-9)
    assert stats.t_sf(q, float(df)) == pytest.approx(p, rel=1e-7)


def test_normal_limit() -> None:
    assert stats.t_sf(1.96, math.inf) == pytest.approx(0.0249979, rel=1e-5)
    assert stats.t_isf(0.025, math.inf) == pytest.approx(1.959964, rel=1e-6)


def test_holm_and_bh_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 with running max
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: m*p/rank from the top with running min
    assert stats.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert math.isnan(stats.holm([0.1, math.nan])[1]) and stats.holm([0.1, math.nan])[0] == 0.1
    with pytest.raises(ValueError, match="unknown correction"):
        stats.adjust(p, "bonferonni")


@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_adjusted_p_values_are_valid_and_ordered(p: list[float]) -> None:
    holm, bh = stats.holm(p), stats.benjamini_hochberg(p)
    for raw, h, b in zip(p, holm, bh, strict=True):
        assert raw - 1e-12 <= b <= h + 1e-12  # BH is never stricter than Holm
        assert h <= 1.0
    order = sorted(range(len(p)), key=lambda i: p[i])
    assert [holm[i] for i in order] == sorted(holm[i] for i in order)


def test_compare_runs_is_a_prediction_t_test() -> None:
    base = [1.0, 1.1, 0.9, 1.05, 0.95]
    r = stats.compare_runs(base, 1.5)
    logs = [math.log(v) for v in base]
    s = stats.stdev(logs)
    t = (math.log(1.5) - stats.mean(logs)) / (s * math.sqrt(1 + 1 / 5))
    assert not r.assumed and r.df == 4
    assert r.p_worse == pytest.approx(scipy_stats.t.sf(t, 4))
    assert r.p_worse + r.p_better == pytest.approx(1.0)
    low, high = r.interval(0.95)
    assert low < r.shift < high
    assert high - r.shift == pytest.approx(scipy_stats.t.isf(0.025, 4) * s * math.sqrt(1.2))


def test_compare_runs_with_too_few_runs_assumes_the_spread() -> None:
    r = stats.compare_runs([1.0], 1.2, min_runs=3, assumed_spread=0.10)
    assert r.assumed and math.isinf(r.df) and r.spread == pytest.approx(math.log(1.1))
    assert r.p_worse > 0.05  # 20% is not significant with one run and a 10% assumed spread
    tight = stats.compare_runs([1.0, 1.0001], 1.2, min_runs=3, assumed_spread=0.10)
    assert tight.spread == pytest.approx(math.log(1.1))  # never below the assumed spread


def test_compare_runs_rejects_non_positive() -> None:
    with pytest.raises(ValueError):
        stats.compare_runs([1.0, 0.0], 1.0)
    with pytest.raises(ValueError):
        stats.compare_runs([], 1.0)


@given(st.lists(st.floats(1e-6, 1e3), min_size=2, max_size=10))
def test_current_equal_to_the_centre_is_never_significant(base: list[float]) -> None:
    centre = math.exp(stats.mean([math.log(v) for v in base]))
    r = stats.compare_runs(base, centre)
    assert r.p_worse >= 0.49 or r.scale == 0
