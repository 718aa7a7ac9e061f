"""The paired A/B gate's judgement: each test's paired blocks -> :class:`~pytest_perfgate.gate.GateReport`.

Pure (no I/O, no pytest): the same thresholds, suite-level correction and verdicts as the
stored-baseline gate (:mod:`pytest_perfgate.gate`), on per-block ratios measured side by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .. import stats
from ..config import GateSettings
from ..gate import Comparison, GateReport, GateVerdict, _decide_all, _Pending, budget_breaches, compare, ordered
from ..metrics import TIME_SERIES as TIME
from ..model import RunResult
from ..units import Kind
from .schedule import BASE, PairedTest


def compare_paired(
    tests: Sequence[PairedTest],
    settings: GateSettings | None = None,
    *,
    base_run: RunResult | None = None,
    current_run: RunResult | None = None,
    subject: str = "",
    notices: Sequence[str] = (),
) -> GateReport:
    """The paired A/B gate: each test's ``time`` judged on its per-block ratios (sign test, the
    suite-level correction, the same thresholds and verdicts as :func:`compare`); the other
    metrics the two sides recorded (memory, queries, custom figures) compared as one base run
    against the current run; budget breaches from the current side."""
    settings = settings or GateSettings()
    specs = {t.nodeid: t.spec for t in current_run.tests} if current_run else {}
    done: list[Comparison] = []
    pending: list[_Pending] = []
    for test in sorted(tests, key=lambda t: t.nodeid):
        warn_r, max_r = settings.thresholds_for(test.nodeid, specs.get(test.nodeid))
        base: dict[str, Any] = dict(
            nodeid=test.nodeid,
            metric=TIME,
            kind=Kind.TIME,
            statistic="median",
            warn_threshold=max(warn_r, settings.min_effect),
            max_threshold=max(max_r, settings.min_effect),
            baseline=stats.percentile(test.base, 50) if test.base else None,
            current=stats.percentile(test.current, 50) if test.current else None,
            baseline_runs=test.blocks,
        )
        if test.only:
            verdict = GateVerdict.MISSING if test.only == BASE else GateVerdict.NEW
            done.append(Comparison(verdict=verdict, reason=test.problem or f"on the {test.only} side only", **base))
        elif test.problem or not test.log_ratios:
            done.append(Comparison(verdict=GateVerdict.INSUFFICIENT, reason=test.problem or "no paired rounds", **base))
        else:
            result = stats.compare_pairs((test.log_ratios, *test.extra_pairs))
            pending.append(_Pending((test.nodeid, TIME), base, result, result.p_worse, result.p_better, 1.0))
    done += _decide_all(pending, settings)
    all_notices = list(notices)
    left_out = sum(t.disturbed for t in tests if not t.disturbed_judged)
    if left_out:
        total = sum(t.blocks + sum(map(len, t.extra_pairs)) for t in tests) + left_out
        all_notices.append(
            f"{left_out} of {total} blocks were disturbed (another process preempted a worker on the shared CPU) "
            "and left out"
        )
    confirmed = [t for t in tests if t.extra_pairs]
    if confirmed:
        shown = "; ".join(
            f"{t.nodeid} " + ", ".join(f"{math.expm1(shift):+.1%}" for shift in t.pair_shifts) for t in confirmed[:5]
        )
        all_notices.append(
            f"{len(confirmed)} test{'s' if len(confirmed) != 1 else ''} with a large change "
            f"{'was' if len(confirmed) == 1 else 'were'} measured again in "
            f"fresh pairs of workers and judged on the median change over the pairs (each pair of processes has "
            f"its own small offset): {shown}"
        )
    for corrected, how in (
        (True, "their preempted rounds counted as CPU time plus the side's usual off-CPU time"),
        (False, "as measured (less reliable: the platform gives no thread CPU time)"),
    ):
        crowded = sorted(t.nodeid for t in tests if t.disturbed_judged and t.disturbed_corrected == corrected)
        if crowded:
            all_notices.append(
                f"{len(crowded)} test{'s' if len(crowded) != 1 else ''} had too few undisturbed blocks, so "
                f"disturbed ones were judged too, {how}: {', '.join(crowded[:5])}"
            )
    if base_run is not None and current_run is not None and set(base_run.by_nodeid()) & set(current_run.by_nodeid()):
        others = [c for c in compare([_without(base_run, TIME)], _without(current_run, TIME), settings).comparisons
                  if c.metric != TIME]
        if others:
            done += others
            all_notices.append(
                "metrics other than time (memory, queries, custom figures) are compared as one base run "
                "against the current run, with an assumed run-to-run spread: only large changes fail"
            )
    breaches = budget_breaches(current_run) if current_run is not None else ()
    return GateReport(
        tuple(ordered(done)), breaches, tuple(all_notices), 1, (subject,) if subject else (), settings,
        mode="paired", subject=subject,
    )


def _without(run: RunResult, metric: str) -> RunResult:
    tests = tuple(replace(t, series={k: v for k, v in t.series.items() if k != metric}) for t in run.tests)
    return replace(run, tests=tests)
