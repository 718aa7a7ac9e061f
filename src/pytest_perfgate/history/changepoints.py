"""Change points in one series of per-run figures: where its level moved (pure: no I/O).

The method, deterministic (in the manner of E-divisive means as Apache Otava/Hunter runs it: a
t test in place of the permutation test):

1. **Transform.** A series of positive figures is judged on ``log(value / first value)``: run-to-run
   noise on a shared machine is multiplicative, a step is a ratio, and the result does not depend
   on the unit (scaling every value by a constant changes nothing). A series with a value <= 0 is
   judged on ``value - first value`` (also scale- and shift-free).
2. **Best split of a segment.** For a segment of ``n`` points, every split leaving at least
   ``min_segment`` points on each side is a candidate; the best is the one with the largest
   divergence between the two sides' means, ``n1 * n2 / n * (mean1 - mean2) ** 2`` (the between-
   segments sum of squares: the split that maximises it maximises Student's pooled t).
3. **Significance.** The best split's two-sided t-test p-value, multiplied by the number of
   candidates ``C = n - 2 * min_segment + 1`` (Bonferroni: the best of ``C`` splits was picked), is
   compared with ``alpha``. With no step in the segment, a split is accepted with probability at
   most ``alpha`` (for normal noise; a bound, the measured rate is lower: bench/RESULTS-history.md).
   A step smaller than ``min_change`` (relative) is never accepted, however certain.
4. **Recurse** on both sides of an accepted split (binary segmentation), then **re-check** every
   split against its neighbouring segments (the p-value of the split between the segment before it
   and the one after it, with that merged segment's ``C``); the weakest split that no longer passes
   is dropped, and the re-check repeats until every split passes.

:func:`detect` judges a whole series; :class:`Tracker` keeps a series' state and, on
:meth:`Tracker.append`, examines only the points after its last accepted change point (at most
``window`` of them): one append costs ``O(window)``, whatever the series' length.

:func:`min_detectable_step` is the smallest relative step a series can show at ``alpha`` given its
noise (:func:`noise`): the step whose expected t equals the critical t, with ``runs_after`` runs at
the new level and as many before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import accumulate
from operator import mul, sub

from ..stats import t_isf, t_sf

#: the default significance level per tested segment (Bonferroni-corrected over its candidates)
ALPHA = 0.001
#: the fewest points on each side of an accepted split
MIN_SEGMENT = 3
#: relative steps smaller than this are never reported (counters' run-to-run spread between
#: environments is up to 0.34%; with one environment 0-0.05%)
MIN_CHANGE = 0.001
#: the most points after the last accepted change point a :class:`Tracker` re-examines per append
WINDOW = 250
#: the runs at the new level (and before it) :func:`min_detectable_step` assumes
RUNS_AFTER = 10
#: a :class:`Tracker` judges its last change point again while it is younger than this many runs
YOUNG = 30
#: the window sizes of the local scan of a segment whose best split is not significant
SCALES = (16, 64, 256)
#: an excursion is judged on the runs up to HALF on each side of it (MIN_SEGMENT - 1: a shorter
#: departure cannot be a level) ...
HALF = MIN_SEGMENT - 1
#: ... and is further from their median than this many times the series' noise
EXCURSION = 5.0
#: a step's size in the medians of its two sides must be at least this share of its size in the means
MEDIAN_SHARE = 0.5


@dataclass(frozen=True)
class Settings:
    """The detector's settings (the defaults are the documented ones: docs/history.md)."""

    alpha: float = ALPHA
    min_segment: int = MIN_SEGMENT
    min_change: float = MIN_CHANGE

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_segment < 1:
            raise ValueError(f"min_segment must be at least 1, got {self.min_segment}")
        if self.min_change < 0:
            raise ValueError(f"min_change must be >= 0, got {self.min_change}")


#: the documented settings
DEFAULT = Settings()


@dataclass(frozen=True)
class Split:
    """A change point in a series of values: the level from ``index`` on differs."""

    #: index of the first value at the new level
    index: int
    #: the means of the original values of the segment before and of the segment from ``index``
    #: (up to the next split)
    before: float
    after: float
    #: the Bonferroni-corrected two-sided p-value (<= alpha)
    p_value: float

    @property
    def change(self) -> float:
        """(after - before) / |before|; +-inf when before is 0 and after is not, 0 when both are."""
        if self.before == 0:
            return 0.0 if self.after == 0 else math.copysign(math.inf, self.after)
        return (self.after - self.before) / abs(self.before)


def transform(values: Sequence[float]) -> tuple[list[float], bool]:
    """The values the detector judges and whether they are logs (see the module docstring)."""
    if not values:
        return [], True
    logs = all(v > 0 for v in values)
    ys = _space(values, logs)
    return [y - ys[0] for y in ys], logs


class _Sums:
    """Prefix sums of values and squares: any segment's mean and sum of squares in O(1)."""

    __slots__ = ("q", "s")

    def __init__(self, ys: Sequence[float] = ()) -> None:
        self.s = [0.0, *accumulate(ys)]
        self.q = [0.0, *accumulate(map(mul, ys, ys))]

    def add(self, y: float) -> None:
        self.s.append(self.s[-1] + y)
        self.q.append(self.q[-1] + y * y)

    def best(self, a: int, b: int, m: int) -> tuple[int, float] | None:
        """The best split of ``[a, b)`` (the largest ``n1 * n2 * d**2``) and its |t|; None when the
        segment is too short."""
        n = b - a
        if n < 2 * m:
            return None
        s = self.s
        sa = s[a]
        total = s[b] - sa
        best_t, best_score = -1, -1.0
        for t in range(a + m, b - m + 1):
            n1 = t - a
            left = s[t] - sa
            # n1 * n2 * (mean1 - mean2)**2 * n  ==  (n * left - n1 * total)**2 / (n1 * n2)
            diff = n * left - n1 * total
            score = diff * diff / (n1 * (n - n1))
            if score > best_score:
                best_score, best_t = score, t
        return best_t, self.t(a, best_t, b)

    def t(self, a: int, t: int, b: int) -> float:
        """|Student's pooled t| between ``[a, t)`` and ``[t, b)``."""
        n1, n2 = t - a, b - t
        n = n1 + n2
        s1 = self.s[t] - self.s[a]
        s2 = self.s[b] - self.s[t]
        d = s1 / n1 - s2 / n2
        between = d * d * n1 * n2 / n
        total_ss = (self.q[b] - self.q[a]) - (s1 + s2) ** 2 / n
        within = total_ss - between
        scale = max(self.q[b] - self.q[a], 1e-300)
        if within <= 1e-13 * scale or n <= 2:
            return math.inf if between > 1e-13 * scale else 0.0
        return abs(d) / math.sqrt(within / (n - 2) * (1 / n1 + 1 / n2))


def _candidates(n: int, m: int) -> int:
    return n - 2 * m + 1


def _p_value(t_abs: float, n: int, m: int, windows: int = 1) -> float:
    """Bonferroni-corrected two-sided p of a best split with |t| in a segment of ``n`` points (the
    best of ``windows`` such segments)."""
    if math.isinf(t_abs):
        return 0.0
    return min(1.0, 2.0 * t_sf(t_abs, n - 2) * _candidates(n, m) * windows)


@lru_cache(maxsize=4096)
def critical_t(n: int, settings: Settings, windows: int = 1) -> float:
    """The |t| a best split of a segment of ``n`` points (the best of ``windows`` segments) must
    exceed to be accepted (the same few segment lengths come back for every series: kept)."""
    return t_isf(settings.alpha / (2.0 * _candidates(n, settings.min_segment) * windows), n - 2)


def _mean(values: Sequence[float], a: int, b: int) -> float:
    return math.fsum(values[a:b]) / (b - a)


def _median(values: Sequence[float], a: int, b: int) -> float:
    part = sorted(values[a:b])
    mid = len(part) // 2
    return part[mid] if len(part) % 2 else (part[mid - 1] + part[mid]) / 2


def _relative(before: float, after: float) -> float:
    return Split(0, before, after, 0.0).change


def _large_enough(values: Sequence[float], a: int, t: int, b: int, settings: Settings) -> bool:
    """Whether the step at ``t`` is at least ``min_change`` in the means and in the medians of the
    two sides, in the same direction, and the medians' step at least MEDIAN_SHARE of the means'
    (a level is where most of its runs are: one deviant run at the end of a series, which cannot be
    judged an excursion yet, does not make one by moving a mean)."""
    by_mean = _relative(_mean(values, a, t), _mean(values, t, b))
    by_median = _relative(_median(values, a, t), _median(values, t, b))
    return (
        abs(by_mean) >= settings.min_change
        and abs(by_median) >= max(settings.min_change, MEDIAN_SHARE * abs(by_mean))
        and (by_mean > 0) == (by_median > 0)
    )


def _best_global(sums: _Sums, values: Sequence[float], a: int, b: int, settings: Settings) -> tuple[int, float] | None:
    """The best split of ``[a, b)`` and its p when it passes (significant, large enough)."""
    found = sums.best(a, b, settings.min_segment)
    if found is None:
        return None
    t, t_abs = found
    if not t_abs > critical_t(b - a, settings) or not _large_enough(values, a, t, b, settings):
        return None
    return t, _p_value(t_abs, b - a, settings.min_segment)


def _windows(a: int, b: int) -> list[tuple[int, int]]:
    """The overlapping windows of the local scan of ``[a, b)``: every scale shorter than the
    segment, at a stride of half the scale, the last one ending at ``b``."""
    found: list[tuple[int, int]] = []
    for size in SCALES:
        if size >= b - a:
            break
        stride = size // 2
        found.extend((start, min(start + size, b)) for start in range(a, b - stride, stride))
    return found


def _best_local(sums: _Sums, values: Sequence[float], a: int, b: int, settings: Settings) -> tuple[int, float] | None:
    """The most significant split found in a window of ``[a, b)`` (:data:`SCALES`), corrected for
    the number of windows looked at: a step that a longer segment's other steps hide."""
    windows = _windows(a, b)
    best: tuple[int, float] | None = None
    m = settings.min_segment
    for wa, wb in windows:
        found = sums.best(wa, wb, m)
        if found is None:
            continue
        t, t_abs = found
        if not t_abs > critical_t(wb - wa, settings, len(windows)):
            continue
        if not _large_enough(values, wa, t, wb, settings):
            continue
        p = _p_value(t_abs, wb - wa, m, len(windows))
        if best is None or p < best[1]:
            best = (t, p)
    return best


def _recheck(
    sums: _Sums, values: Sequence[float], cuts: list[int], lo: int, hi: int, settings: Settings
) -> list[Split]:
    """Re-check each split of ``[lo, hi)`` against its neighbouring segments; drop the weakest that
    fails, repeat."""
    cuts = sorted(cuts)
    while True:
        bounds = [lo, *cuts, hi]
        judged = []
        for i, t in enumerate(cuts):
            a, b = bounds[i], bounds[i + 2]
            t_abs = sums.t(a, t, b)
            p = _p_value(t_abs, b - a, settings.min_segment)
            ok = t_abs > critical_t(b - a, settings) and _large_enough(values, a, t, b, settings)
            judged.append((ok, p, Split(t, _mean(values, a, t), _mean(values, t, b), p)))
        failing = [(p, i) for i, (ok, p, _) in enumerate(judged) if not ok]
        if not failing:
            return [split for _, _, split in judged]
        _, worst = max(failing)
        del cuts[worst]


def _segment(sums: _Sums, values: Sequence[float], lo: int, hi: int, settings: Settings, *, local: bool) -> list[Split]:
    """The change points of ``values[lo:hi]`` (binary segmentation, then the re-check)."""
    cuts: list[int] = []
    stack = [(lo, hi)]
    while stack:
        a, b = stack.pop()
        found = _best_global(sums, values, a, b, settings)
        if found is None and local:
            found = _best_local(sums, values, a, b, settings)
        if found is None:
            continue
        t, _ = found
        cuts.append(t)
        stack.extend(((a, t), (t, b)))
    return _recheck(sums, values, cuts, lo, hi, settings) if cuts else []


def _scale(values: Sequence[float]) -> float:
    """The run-to-run noise of ``values`` in their own unit: a robust standard deviation from the
    median absolute difference of consecutive values (a step between levels is one difference
    among many, so it hardly moves it)."""
    return _scale_of(list(map(abs, map(sub, values[1:], values[:-1]))))


def _scale_of(diffs: Sequence[float]) -> float:
    ordered = sorted(diffs)
    if not ordered:
        return 0.0
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return float(median) * 1.4826 / math.sqrt(2.0)


def _space(values: Sequence[float], logs: bool | None = None) -> list[float]:
    """The values in the space the detector judges them in: logs for a positive series (its
    noise is relative), else as they are (:func:`transform`)."""
    if logs is None:
        logs = all(v > 0 for v in values)
    return [math.log(v) for v in values] if logs else list(values)


def _kept(ys: Sequence[float], i: int, limit: float) -> int:
    """The index of the value kept at ``i``: ``i``, or that of the median of its neighbourhood
    when it is an excursion (further than ``limit`` from that median in the judged space ``ys``;
    see :func:`without_excursions`)."""
    h = min(HALF, i, len(ys) - 1 - i)
    if h == 0:
        return i
    j = sorted(range(i - h, i + h + 1), key=ys.__getitem__)[h]
    return j if abs(ys[i] - ys[j]) > limit else i


def _excursions(ys: Sequence[float]) -> dict[int, int]:
    """The excursions of ``ys`` (the judged space): position -> the position of the median it is
    judged as."""
    diffs = list(map(abs, map(sub, ys[1:], ys[:-1])))
    limit = EXCURSION * _scale_of(diffs[-(WINDOW - 1) :])
    # only a value further than the limit from a neighbour can be one: were both neighbours within
    # it, three of the values around it would be, and so would their median
    big = [k for k, d in enumerate(diffs) if d > limit]  # between positions k and k + 1
    found = {}
    for i in sorted({*big, *(k + 1 for k in big)}):
        if 0 < i < len(ys) - 1 and (j := _kept(ys, i, limit)) != i:
            found[i] = j
    return found


def without_excursions(values: Sequence[float], *, logs: bool | None = None) -> list[float]:
    """The series the detector judges: each value, except an **excursion**, a run or two away
    from the runs on both sides of it: further from the median of its neighbourhood (the HALF runs
    on each side) than EXCURSION times the series' noise (:func:`_scale` of its last WINDOW
    values; in logs for a positive series, or ``logs`` says; in a series whose consecutive runs
    are mostly equal, any distance). An excursion is replaced by that median. Such a run cannot
    start a level (a level has at least MIN_SEGMENT runs), but left in it would add its whole
    deviation to the variance a step is tested against: one regression undone by the next commit
    would hide every other step near it. The neighbourhood is cut symmetrically at the ends: the
    last value is never replaced (whether it is an excursion shows with the next runs), the one
    before it is judged on its two neighbours."""
    kept = list(values)
    for i, j in _excursions(_space(values, logs)).items():
        kept[i] = values[j]
    return kept


def detect(
    values: Sequence[float], settings: Settings = DEFAULT, *, local: bool = True, judged: Sequence[float] | None = None
) -> list[Split]:
    """The change points of a whole series, oldest first (``local``: with the local scan of a
    segment whose best split is not significant; a :class:`Tracker` does without it). Judged on
    the series :func:`without_excursions` (``judged``, when the caller has it): the levels of a
    split are the means of those values."""
    kept = without_excursions(values) if judged is None else judged
    ys, _ = transform(kept)
    return _segment(_Sums(ys), kept, 0, len(ys), settings, local=local)


def noise(
    values: Sequence[float],
    splits: Sequence[Split] = (),
    *,
    offset: int = 0,
    judged: tuple[Sequence[float], bool] | None = None,
) -> float:
    """A robust estimate of the run-to-run noise as a relative standard deviation (in log space for
    a positive series, else relative to the mean |value|): the median absolute difference of
    consecutive values within levels (a step between levels is left out), times 1.4826 / sqrt(2).
    ``offset``: the index of ``values[0]`` in the series the splits index (a series' last runs);
    ``judged``: the values in the judged space and whether it is logs, when the caller has them."""
    if judged is None:
        logs = all(v > 0 for v in values)
        ys = _space(values, logs)
    else:
        ys, logs = list(judged[0]), judged[1]
    diffs = list(map(abs, map(sub, ys[1:], ys[:-1])))
    for cut in sorted({s.index - offset - 1 for s in splits if 0 < s.index - offset < len(ys)}, reverse=True):
        del diffs[cut]  # the difference between two levels
    sd = _scale_of(diffs)
    if logs:
        return sd
    scale = math.fsum(abs(v) for v in values) / len(values)
    return sd / scale if scale else 0.0


def min_detectable_step(
    sd: float, n: int, settings: Settings = DEFAULT, *, runs_after: int = RUNS_AFTER
) -> float | None:
    """The smallest relative step detectable at ``settings.alpha`` in a series of ``n`` points with
    relative noise ``sd``, with ``runs_after`` runs at the new level and as many before (fewer when
    the series is shorter); None when ``n`` is too short to judge (< 2 * min_segment)."""
    m = settings.min_segment
    k = min(runs_after, n // 2)
    if n < 2 * m or k < m:
        return None
    delta = critical_t(2 * k, settings) * sd * math.sqrt(2.0 / k)
    return max(math.expm1(delta), settings.min_change)


@dataclass
class Tracker:
    """One series judged as it grows: :meth:`append` adds a run's value and examines the points
    after the last change point (the last ``window`` of them) for a new one, and judges them again
    (:func:`detect` without the local scan) when there is one; while the last change point is
    younger than :data:`YOUNG` runs, the points from the change point before it (at most
    ``window``) are judged again, so its position is revised as runs at the new level arrive. One
    append costs ``O(window)``, whatever the series' length. Only the last ``window`` values (and
    the :data:`HALF` before them an excursion is judged on) are ever looked at again: a tracker
    resumed from a series' last values (``offset``: the index of the first of them) judges as one
    holding them all."""

    settings: Settings = field(default_factory=Settings)
    window: int = WINDOW
    #: the values held (the series from index ``offset`` on) as measured, and as judged
    #: (:func:`without_excursions`)
    raw: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    splits: list[Split] = field(default_factory=list)
    offset: int = 0
    _first: float | None = None
    _logs: bool = True
    #: ``raw`` and ``values`` in the judged space (:func:`_space`)
    _raw_ys: list[float] = field(default_factory=list)
    _ys: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: Sequence[float], settings: Settings = DEFAULT, *, window: int = WINDOW) -> Tracker:
        """A tracker holding ``values``, its change points those :func:`detect` finds in them (the
        state a history read from its file starts from)."""
        return cls.resume(values, detect(values, settings) if values else [], settings, window=window)

    @classmethod
    def resume(
        cls,
        values: Sequence[float],
        splits: Sequence[Split],
        settings: Settings = DEFAULT,
        *,
        window: int = WINDOW,
        offset: int = 0,
        first: float | None = None,
        logs: bool | None = None,
    ) -> Tracker:
        """A tracker holding ``values`` whose change points were judged before (``splits``, kept as
        they are: nothing is detected again), ready for :meth:`extend` with the runs since.
        ``values`` may be the series' last values only (at least ``window + 2 * HALF`` of them, or
        all): ``offset`` is then the index of the first, ``first`` the series' first value and
        ``logs`` whether it is judged in logs (:func:`transform` of the whole series)."""
        if offset and (first is None or logs is None or len(values) < window + 2 * HALF):
            raise ValueError("a tracker resumed from a series' last values needs its first value, logs and a window")
        tracker = cls(settings, window, offset=offset)
        if values:
            tracker.raw = list(values)
            whole_first = values[0] if first is None else first
            tracker._logs = transform([whole_first, *values])[1] if logs is None else logs
            tracker._first = math.log(whole_first) if tracker._logs else whole_first
            tracker._judge_all()
            tracker.splits = list(splits)
        return tracker

    @property
    def logs(self) -> bool:
        """Whether the series is judged in logs (every value so far > 0)."""
        return self._logs

    @property
    def judged(self) -> tuple[list[float], bool]:
        """The values held as judged, in the judged space, and whether that is logs."""
        return self._ys, self._logs

    def _judge_all(self) -> None:
        """The values held as judged (:func:`without_excursions`), and both in the judged space."""
        self._raw_ys = _space(self.raw, self._logs)
        self.values, self._ys = list(self.raw), list(self._raw_ys)
        for i, j in _excursions(self._raw_ys).items():
            self.values[i], self._ys[i] = self.raw[j], self._raw_ys[j]

    def _sums(self, start: int) -> _Sums:
        """Prefix sums of the transformed values held from ``start`` (local index) on."""
        origin = self._first
        assert origin is not None
        return _Sums([y - origin for y in self._ys[start:]])

    def append(self, value: float) -> Split | None:
        """Add a run's value; the newest change point when this run added or moved it."""
        if self._first is None:
            self._logs = value > 0
            self._first = math.log(value) if self._logs else value
        self.raw.append(value)
        if self._logs and value <= 0:
            # a value <= 0 in a positive series: judge it on differences from now on
            self._logs = False
            self._first = math.exp(self._first)
            self._judge_all()
        else:
            y = math.log(value) if self._logs else value
            self._raw_ys.append(y)
            self.values.append(value)
            self._ys.append(y)
            held = len(self.raw)
            ys = self._raw_ys
            limit = EXCURSION * _scale(ys[-self.window :])
            for i in range(max(0, held - 1 - HALF), held):  # the values whose neighbourhood now reaches it
                j = _kept(ys, i, limit)
                self.values[i], self._ys[i] = self.raw[j], ys[j]
        held = len(self.raw)
        base = self.offset
        n = base + held
        last = self.splits[-1] if self.splits else None
        young = last is not None and n - last.index < YOUNG
        if young:
            # judge again from the change point before the last one (at most a window back)
            start = max(self.splits[-2].index if len(self.splits) > 1 else 0, n - self.window)
        else:
            start = max(last.index if last is not None else 0, n - self.window)
        local = self.values[start - base :]
        sums = self._sums(start - base)
        if not young and _best_global(sums, local, 0, n - start, self.settings) is None:
            return None
        kept = [s for s in self.splits if s.index <= start]
        recent = _segment(sums, local, 0, n - start, self.settings, local=False)
        self.splits = kept + [replace(s, index=s.index + start) for s in recent]
        newest = self.splits[-1] if self.splits else None
        if newest is None or (last is not None and newest.index == last.index):
            return None
        return newest

    def extend(self, values: Sequence[float]) -> None:
        for value in values:
            self.append(value)
