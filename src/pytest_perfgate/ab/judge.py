"""The paired A/B gate's judgement: each test's paired blocks -> :class:`~pytest_perfgate.gate.GateReport`.

Pure (no I/O, no pytest): the same thresholds, suite-level correction and verdicts as the
stored-baseline gate (:mod:`pytest_perfgate.gate`), on per-block ratios measured side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .. import stats
from ..config import GateSettings
from ..gate import (
    Comparison,
    DisturbedGroup,
    GateMode,
    GateReport,
    GateVerdict,
    Notice,
    NoticeKind,
    _decide_all,
    _Pending,
    budget_breaches,
    compare,
    ordered,
)
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
    broken: str = "",
    allow_incomplete: bool = False,
    started: bool = True,
) -> GateReport:
    """The paired A/B gate: each test's ``time`` judged on its per-block ratios (sign test, the
    suite-level correction, the same thresholds and verdicts as :func:`compare`); the other
    metrics the two sides recorded (memory, queries, custom figures) compared as one base run
    against the current run; budget breaches from the current side.

    The run is *incomplete* (exit 2) when it broke off (``broken``: a worker crashed or hung, the
    whole-run limit) or a test selected on both sides was not compared (it failed, was killed,
    timed nothing, ...), unless ``allow_incomplete``: then those tests are listed in a notice. A run
    that could not start at all (``started`` false) is reported with ``broken`` as its reason."""
    settings = settings or GateSettings()
    specs = {t.nodeid: t.spec for t in current_run.tests} if current_run else {}
    done: list[Comparison] = []
    pending: list[_Pending] = []
    for test in sorted(tests, key=lambda t: t.nodeid):
        warn_r, max_r = settings.thresholds_for(test.nodeid, specs.get(test.nodeid))
        template = Comparison(
            nodeid=test.nodeid,
            metric=TIME,
            verdict=GateVerdict.UNCHANGED,
            reason="",
            kind=Kind.TIME,
            statistic="median",
            warn_threshold=max(warn_r, settings.min_effect),
            max_threshold=max(max_r, settings.min_effect),
            baseline=stats.percentile(test.base, 50) if test.base else None,
            baseline_runs=test.blocks + sum(map(len, test.extra_pairs)),
        )
        if test.only:
            verdict = GateVerdict.MISSING if test.only == BASE else GateVerdict.NEW
            done.append(replace(template, verdict=verdict, reason=test.problem or f"on the {test.only} side only"))
        elif test.problem or not test.log_ratios:
            reason = f"not compared: {test.problem or 'no paired rounds'}"
            done.append(replace(template, verdict=GateVerdict.INSUFFICIENT, reason=reason))
        else:
            result = stats.compare_pairs((test.log_ratios, *test.extra_pairs))
            pending.append(_Pending((test.nodeid, TIME), template, result, result.p_worse, result.p_better, 1.0))
    judged = [_estimated(c) for c in _decide_all(pending, settings)]
    done += judged
    # measured, but too few blocks to be judged either way: not a pass
    short = [f"{c.nodeid}: {c.reason}" for c in judged if c.verdict is GateVerdict.INSUFFICIENT]
    all_notices = [Notice(NoticeKind.TEXT, text=text) for text in notices]
    if pending:
        all_notices.append(Notice(NoticeKind.PAIRED_ESTIMATE))
    all_notices += _disturbed_notices(tests)
    confirmed = [t for t in tests if t.extra_pairs]
    if confirmed:
        changes = tuple((t.nodeid, tuple(t.pair_shifts)) for t in confirmed)
        all_notices.append(Notice(NoticeKind.CONFIRMED, count=len(confirmed), changes=changes))
    if base_run is not None and current_run is not None and set(base_run.by_nodeid()) & set(current_run.by_nodeid()):
        others = [
            c
            for c in compare([_without(base_run, TIME)], _without(current_run, TIME), settings).comparisons
            if c.metric != TIME
        ]
        if others:
            done += others
            all_notices.append(Notice(NoticeKind.OTHER_METRICS))
    skipped = [t for t in tests if t.optional]
    if skipped:
        listed = tuple(f"{t.nodeid}: {t.problem}" for t in skipped)
        all_notices.append(Notice(NoticeKind.SKIPPED_AS_EXPECTED, count=len(skipped), tests=listed))
    incomplete = [f"the paired run {'did not finish' if started else 'could not start'}: {broken}"] if broken else []
    not_compared = [
        f"{t.nodeid}: {t.problem or 'no paired rounds'}"
        for t in sorted(tests, key=lambda t: t.nodeid)
        if t.not_compared
    ] + short
    if not broken and not pending and not not_compared and any(not t.only for t in tests):
        # e.g. every selected test skipped on both sides (pytest-benchmark's --benchmark-skip in addopts)
        incomplete.append("no test was compared: every test selected on both sides was skipped or not timed")
    if allow_incomplete and not_compared:
        all_notices.append(Notice(NoticeKind.ALLOWED_INCOMPLETE, count=len(not_compared), tests=tuple(not_compared)))
    else:
        incomplete += not_compared
    breaches = budget_breaches(current_run) if current_run is not None else ()
    return GateReport(
        tuple(ordered(done)),
        breaches,
        tuple(all_notices),
        1,
        (subject,) if subject else (),
        settings,
        mode=GateMode.PAIRED,
        subject=subject,
        incomplete=tuple(incomplete),
    )


def _estimated(comparison: Comparison) -> Comparison:
    """Current = Baseline x the paired change, so that the three columns agree."""
    if comparison.baseline is None or comparison.change is None:
        return comparison
    return replace(comparison, current=comparison.baseline * (1 + comparison.change))


def _disturbed_notices(tests: Sequence[PairedTest]) -> list[Notice]:
    """One notice on disturbed blocks: how many were left out, and which tests judged theirs."""
    disturbed = sum(t.disturbed for t in tests)
    if not disturbed:
        return []
    total = sum(t.blocks + sum(map(len, t.extra_pairs)) for t in tests) + sum(
        t.disturbed - t.disturbed_kept for t in tests
    )
    left_out = disturbed - sum(t.disturbed_kept for t in tests)
    groups = []
    for corrected in (True, False):
        crowded = sorted(t.nodeid for t in tests if t.disturbed_kept and t.disturbed_corrected == corrected)
        if crowded:
            kept = sum(t.disturbed_kept for t in tests if t.disturbed_kept and t.disturbed_corrected == corrected)
            groups.append(DisturbedGroup(corrected, kept, tuple(crowded)))
    return [Notice(NoticeKind.DISTURBED_BLOCKS, count=disturbed, of=total, left_out=left_out, groups=tuple(groups))]


def _without(run: RunResult, metric: str) -> RunResult:
    tests = tuple(replace(t, series={k: v for k, v in t.series.items() if k != metric}) for t in run.tests)
    return replace(run, tests=tests)
