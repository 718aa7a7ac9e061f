"""Pure statistics over samples: no I/O, no pytest."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

_PERCENTILE_STATS = {"median": 50.0, "p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default, Hyndman-Fan type 7)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    if fraction == 0:
        return ordered[low]
    step = ordered[high] - ordered[low]
    if not math.isfinite(step) and math.isfinite(ordered[low]) and math.isfinite(ordered[high]):
        # values of opposite sign near the float range: the difference overflows, the mix does not
        return ordered[low] * (1.0 - fraction) + ordered[high] * fraction
    return ordered[low] + step * fraction


#: below 2**_SAFE_EXPONENT (about 1e150) squares and sums of a sample cannot overflow: the plain
#: formulas are used, unchanged
_SAFE_EXPONENT = 498


def _scale_of(values: Sequence[float]) -> int:
    """The binary exponent of the largest finite magnitude in ``values`` (0 when all are 0)."""
    largest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return math.frexp(largest)[1] if largest else 0


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean, exact (fsum) for ordinary values and overflow-safe near the float
    range: values beyond it are summed scaled down by a power of two (exact for normal floats)."""
    if not values:
        raise ValueError("mean of no values")
    try:
        total = math.fsum(values)
    except OverflowError:  # "intermediate overflow": finite values whose sum passes 1.8e308
        total = math.inf
    if math.isfinite(total) or not all(map(math.isfinite, values)):
        return total / len(values)
    shift = _scale_of(values)
    scaled = math.fsum(math.ldexp(v, -shift) for v in values) / len(values)
    try:
        return math.ldexp(scaled, shift)
    except OverflowError:  # cannot happen for a mean of finite values; kept for rounding at the edge
        return math.copysign(math.inf, scaled)


def stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0 for fewer than two values. Overflow-safe: samples
    whose squares would pass the float range are scaled by a power of two first; a spread that is
    itself beyond the float range is ``inf``."""
    if len(values) < 2:
        return 0.0
    if not all(map(math.isfinite, values)):
        return math.nan
    shift = _scale_of(values)
    if shift < _SAFE_EXPONENT:
        centre = mean(values)
        return math.sqrt(math.fsum((v - centre) ** 2 for v in values) / (len(values) - 1))
    scaled = [math.ldexp(v, -shift) for v in values]
    centre = math.fsum(scaled) / len(scaled)
    spread = math.sqrt(math.fsum((v - centre) ** 2 for v in scaled) / (len(scaled) - 1))
    try:
        return math.ldexp(spread, shift)
    except OverflowError:
        return math.inf


def statistic(values: Sequence[float], name: str) -> float:
    """The named statistic (``min``, ``mean``, ``median``/``p50``, ``p90`` .. ``max``)."""
    if name in _PERCENTILE_STATS:
        return percentile(values, _PERCENTILE_STATS[name])
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if name == "mean":
        return mean(values)
    if name == "stdev":
        return stdev(values)
    raise ValueError(f"unknown statistic {name!r}")


# --------------------------------------------------------------------------- distributions
# Student's t and the normal distribution without scipy (the core stays importable without it);
# tests check these against scipy.


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def norm_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (``df=inf``: the normal)."""
    if math.isinf(df):
        return norm_sf(t)
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isnan(t):
        return math.nan
    if not math.isfinite(t):
        tail = 0.0
    elif t * t < df:  # near 0: the complementary form keeps the precision
        tail = 0.5 - 0.5 * betainc(0.5, df / 2.0, t * t / (df + t * t))
    else:
        tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


@functools.lru_cache(maxsize=256)
def t_isf(p: float, df: float) -> float:
    """The t with P(T > t) = p (inverse survival function), by bisection; cached."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability {p} outside (0, 1)")
    if p > 0.5:
        return -t_isf(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_sf(high, df) > p:
        high *= 2.0
        if high > 1e12:
            return math.inf
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_sf(mid, df) > p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


# --------------------------------------------------------------------------- multiple testing


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (controls the family-wise error rate under any dependence).

    A test is rejected at level alpha when its adjusted p-value is below alpha. NaN stays NaN and
    does not count towards the family size.
    """
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (controls the false discovery rate)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 1.0
    for rank in range(m - 1, -1, -1):
        p, i = indexed[rank]
        running = min(running, m * p / (rank + 1))
        adjusted[i] = running
    return adjusted


def no_correction(p_values: Sequence[float]) -> list[float]:
    return list(p_values)


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg, "none": no_correction}


def adjust(p_values: Sequence[float], method: str) -> list[float]:
    try:
        return list(CORRECTIONS[method](p_values))
    except KeyError:
        raise ValueError(f"unknown correction {method!r}; accepted: {', '.join(CORRECTIONS)}") from None


# --------------------------------------------------------------------------- between-run comparison


@dataclass(frozen=True)
class RunComparison:
    """A current run's statistic against the statistics of several baseline runs, in log space.

    ``shift`` is log(current / baseline centre), where the centre is the geometric mean of the
    baseline runs' statistics. Under "no change" the current run is one more draw from the runs'
    distribution, so ``shift`` has variance ``spread**2 * (1 + 1/runs)`` (a prediction interval):
    ``p_worse`` / ``p_better`` are the one-sided p-values of a t-test with ``df`` degrees of freedom.
    """

    centre: float
    runs: int
    spread: float  # standard deviation of the log statistic between runs (as used)
    measured_spread: float  # the same, as measured (0 for one run)
    df: float
    shift: float
    scale: float  # spread * sqrt(1 + 1/runs)
    p_worse: float
    p_better: float
    assumed: bool  # the spread is (partly) the assumed prior, too few runs to measure it

    def interval(self, confidence: float) -> tuple[float, float]:
        """Two-sided interval for the log shift."""
        q = t_isf((1.0 - confidence) / 2.0, self.df) * self.scale
        return self.shift - q, self.shift + q

    def detectable(self, alpha: float) -> float:
        """Smallest log shift that would be significant at one-sided level ``alpha``."""
        return t_isf(alpha, self.df) * self.scale


def compare_runs(
    baseline: Sequence[float], current: float, *, min_runs: int = 3, assumed_spread: float = 0.10
) -> RunComparison:
    """Compare one current statistic with one statistic per baseline run (all positive).

    With fewer than ``min_runs`` baseline runs the run-to-run spread cannot be measured reliably:
    the spread used is the larger of the measured one and ``assumed_spread`` (a relative figure,
    e.g. 0.10 for 10%), with normal quantiles: a conservative rule that fails only large changes.
    """
    if not baseline:
        raise ValueError("no baseline runs")
    if current <= 0 or any(v <= 0 for v in baseline):
        raise ValueError("run statistics must be positive to compare ratios")
    logs = [math.log(v) for v in baseline]
    k = len(logs)
    centre_log = mean(logs)
    measured = stdev(logs)
    if k >= max(min_runs, 2):
        spread, df, assumed = measured, float(k - 1), False
    else:
        spread, df, assumed = max(measured, math.log1p(assumed_spread)), math.inf, True
    shift = math.log(current) - centre_log
    scale = spread * math.sqrt(1.0 + 1.0 / k)
    if scale > 0:
        t = shift / scale
        p_worse, p_better = t_sf(t, df), t_sf(-t, df)
    else:  # identical baseline runs: any change is "certain", no change is not
        p_worse = 0.0 if shift > 0 else 1.0
        p_better = 0.0 if shift < 0 else 1.0
    return RunComparison(
        centre=math.exp(centre_log),
        runs=k,
        spread=spread,
        measured_spread=measured,
        df=df,
        shift=shift,
        scale=scale,
        p_worse=p_worse,
        p_better=p_better,
        assumed=assumed,
    )


# --------------------------------------------------------------------------- paired comparison


def binom_half_sf(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): the one-sided p-value of a sign test."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return betainc(float(k), float(n - k + 1), 0.5)


def median_interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
    """Distribution-free interval for the median: order statistics ``x(j)`` and ``x(n+1-j)``
    with the largest ``j`` whose coverage ``1 - 2 P(Bin(n, 1/2) < j)`` is at least ``confidence``.
    With too few values for that coverage it is the whole range."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("interval of no values")
    j = _median_rank(n, confidence)
    return ordered[j], ordered[n - 1 - j]


@functools.lru_cache(maxsize=1024)
def _median_rank(n: int, confidence: float) -> int:
    """How many order statistics :func:`median_interval` cuts from each end of ``n`` values."""
    tail = (1.0 - confidence) / 2.0
    j = 0
    while j + 1 <= (n - 1) // 2 and 1.0 - binom_half_sf(j + 2, n) <= tail:  # P(X <= j + 1) <= tail
        j += 1
    return j


#: The spread (standard deviation, log scale) of the offset each pair of worker processes adds to a
#: test's change: memory layout, alignment, the loop count each pair calibrates, what the two
#: processes' start-ups left behind. No number of blocks inside one pair averages it out, and one
#: pair cannot show it. Measured on this project's 2-vCPU machine (bench/ab_intervals/RESULTS.md,
#: perfgate ab at 8b94d7d, 8 workloads of 2 us to 15 ms per call, load average 1.5-8.6): the
#: standard deviation of one pair's change is 0.2-3.9% by workload in A/A (1.9% over all), up to
#: 4.6% at a 25% slowdown. 2% with PAIR_PRIOR_DF 20 was chosen on half of the A/B runs (95%
#: coverage there) and gives 96.2% coverage over all 184 A/B and 99.5% over 368 A/A comparisons.
PAIR_SPREAD = 0.02
#: How many pairs' worth of evidence :data:`PAIR_SPREAD` counts as, next to a test's own pairs
#: (the degrees of freedom of the prior in a conjugate normal model): a test measured in k pairs
#: has a t interval with ``PAIR_PRIOR_DF + k - 1`` degrees of freedom.
PAIR_PRIOR_DF = 20.0
#: var(median of k standard normals) * k: the median of k pairs' changes is less efficient than the mean
_MEDIAN_EFFICIENCY = {1: 1.0, 2: 1.0, 3: 1.3461, 4: 1.1951, 5: 1.4384}


def median_se(values: Sequence[float]) -> float:
    """Standard error of the median of ``values``, from the distribution-free 95% interval
    (order statistics; half its width over 1.96): no assumption about the blocks' distribution."""
    if len(values) < 3:
        return abs(max(values) - min(values)) if values else 0.0
    low, high = median_interval(values, 0.95)
    return (high - low) / (2 * 1.959964)


@dataclass(frozen=True)
class PairedComparison:
    """A test's per-block log ratios (current over base, measured in the same window), from one
    or more pairs of worker processes, summarised.

    ``shift`` is the change: the median block log ratio of one pair; over several pairs the
    median of the pairs' medians (of two, their mean). Its uncertainty has two parts: the blocks'
    noise inside each pair (``within``: the standard error of a pair's median) and the offset each
    pair of processes adds (``pair_spread``, between pairs), which one pair cannot show: a prior
    (:data:`PAIR_SPREAD`, measured) pooled with the spread of the test's own pairs. ``scale`` is
    the standard error of ``shift`` and ``df`` the degrees of freedom of its t interval.
    ``p_worse`` / ``p_better`` are one-sided sign tests over the pooled blocks (ties dropped): they
    assume only that blocks are independent and, under "no change", as likely to favour either
    side, so they ask whether *these pairs'* blocks favour one side, not where the true change is;
    the pair offset is left to the gate's confirmation pairs and thresholds. ``model_p_worse`` /
    ``model_p_better`` are the one-sided p-values of the interval's model (a t test of ``shift /
    scale``, never below the sign test's): the 95% interval lies above 0 exactly when
    ``model_p_worse < 0.025``. ``spread`` is the robust (MAD) spread of the blocks.
    """

    ratios: tuple[float, ...]  # log ratios, one per block, every pair's pooled
    shift: float
    spread: float
    p_worse: float
    p_better: float
    #: measured in several pairs of processes: each pair's median log ratio (``shift`` is then theirs)
    pair_shifts: tuple[float, ...] = ()
    #: standard error of ``shift`` (log scale) and the degrees of freedom of its t interval
    scale: float = 0.0
    df: float = math.inf
    #: the spread of one pair's change around the true change (between pairs, within included)
    pair_spread: float = 0.0
    #: the typical standard error of one pair's median from its own blocks
    within: float = 0.0
    #: one-sided p-values of the interval's model (pair offsets included)
    model_p_worse: float = 1.0
    model_p_better: float = 1.0

    @property
    def runs(self) -> int:
        return len(self.ratios)

    @property
    def pairs(self) -> int:
        return max(1, len(self.pair_shifts))

    @property
    def smallest_p(self) -> float:
        """The smallest one-sided p-value this many blocks can give (all on one side)."""
        return 0.5 ** len(self.ratios)

    def interval(self, confidence: float) -> tuple[float, float]:
        """``shift`` +- the t quantile times ``scale``: it holds the true change (the one an endless
        number of fresh pairs would show) with about ``confidence``."""
        if self.scale <= 0:
            return self.shift, self.shift
        half = t_isf((1.0 - confidence) / 2.0, self.df) * self.scale
        return self.shift - half, self.shift + half


def _sign_tests(values: Sequence[float]) -> tuple[float, float]:
    above = sum(1 for v in values if v > 0)
    below = sum(1 for v in values if v < 0)
    n = above + below
    return (binom_half_sf(above, n), binom_half_sf(below, n)) if n else (1.0, 1.0)


def compare_one_pair(
    log_ratios: Sequence[float], *, pair_spread: float = PAIR_SPREAD, prior_df: float = PAIR_PRIOR_DF
) -> PairedComparison:
    """Summarise the per-block log ratios of one pair of worker processes (positive: the current
    side took longer): :func:`compare_pairs` of that one pair."""
    if not log_ratios:
        raise ValueError("no paired blocks")
    return compare_pairs([log_ratios], pair_spread=pair_spread, prior_df=prior_df)


def compare_pairs(
    pairs: Sequence[Sequence[float]], *, pair_spread: float = PAIR_SPREAD, prior_df: float = PAIR_PRIOR_DF
) -> PairedComparison:
    """One test measured in one or more pairs of worker processes (each pair's block log ratios,
    first pair first).

    The change is the median of the pairs' median changes (of two, their mean; of one, its
    median), so that no single pair's process offset decides it. Each pair's change is the true
    change plus the pair's offset plus its blocks' noise: its variance ``sigma^2`` is the prior
    ``pair_spread^2`` plus the pairs' mean squared ``within`` (the standard error of their medians),
    held as ``prior_df`` pseudo-observations and pooled with the test's own pairs' sample variance
    (``k - 1`` degrees of freedom). The change's standard error is ``sigma / sqrt(k)`` (the
    median's efficiency for ``k >= 3``), and the interval and the p-values are Student t with
    ``prior_df + k - 1`` degrees of freedom; the variance is never below the test's own pairs'
    sample variance. ``p_worse`` / ``p_better`` are sign tests over the pooled blocks (as the gate
    has always judged); ``model_p_worse`` / ``model_p_better`` are the interval's own (see
    :class:`PairedComparison`). ``pair_spread=0`` with ``prior_df=0`` and one pair gives the
    blocks' own interval (it under-covers: bench/ab_intervals/RESULTS.md)."""
    kept = [tuple(float(v) for v in pair) for pair in pairs if pair]
    if not kept:
        raise ValueError("no paired blocks")
    pooled = tuple(v for pair in kept for v in pair)
    centre = percentile(pooled, 50)
    mad = percentile([abs(v - centre) for v in pooled], 50) * 1.4826
    shifts = tuple(percentile(pair, 50) for pair in kept)
    k = len(kept)
    shift = shifts[0] if k == 1 else percentile(shifts, 50)
    within = math.sqrt(mean([median_se(pair) ** 2 for pair in kept]))
    prior_var = pair_spread**2 + within**2
    own_df = k - 1
    df = prior_df + own_df
    if df <= 0:  # no prior and one pair: the blocks alone
        variance, df = within**2, math.inf
    else:
        own_var = stdev(shifts) ** 2 if k > 1 else 0.0
        variance = (prior_df * prior_var + own_df * own_var) / df
    efficiency = _MEDIAN_EFFICIENCY.get(k, math.pi / 2)
    # never narrower than the test's own pairs alone say: pairs that disagree by far more than the
    # prior allows are a test whose pairs differ that much
    variance = max(variance, stdev(shifts) ** 2 if k > 1 else 0.0)
    scale = math.sqrt(variance * efficiency / k)
    sign_worse, sign_better = _sign_tests(pooled)
    if scale > 0:
        model_worse, model_better = t_sf(shift / scale, df), t_sf(-shift / scale, df)
    else:
        model_worse, model_better = (0.0, 1.0) if shift > 0 else (1.0, 0.0) if shift < 0 else (1.0, 1.0)
    return PairedComparison(
        ratios=pooled,
        shift=shift,
        spread=mad,
        p_worse=sign_worse,
        p_better=sign_better,
        pair_shifts=shifts if k > 1 else (),
        scale=scale,
        df=df,
        pair_spread=math.sqrt(variance),
        within=within,
        model_p_worse=max(sign_worse, model_worse),
        model_p_better=max(sign_better, model_better),
    )
