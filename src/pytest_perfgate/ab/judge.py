"""The paired A/B gate's judgement: each test's paired blocks -> :class:`~pytest_perfgate.gate.GateReport`.

Pure (no I/O, no pytest): the same thresholds, suite-level correction and verdicts as the
stored-baseline gate (:mod:`pytest_perfgate.gate`), on per-block ratios measured side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

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
    counter_template,
    ordered,
)
from ..metrics import ALLOC_BLOCKS_SERIES, INSTRUCTIONS_SERIES, is_counter
from ..metrics import TIME_SERIES as TIME
from ..model import Outcome, RunResult, TestResult
from ..units import Kind
from .schedule import BASE, CURRENT, PairedTest, Side

if TYPE_CHECKING:
    from .counted import SideSession


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
    return _paired_report(
        done, all_notices, incomplete, not_compared, settings, subject, current_run, allow_incomplete=allow_incomplete
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


#: the gate's notices that concern counters (the others are about stored runs of timings)
COUNTER_NOTICES = (NoticeKind.ENVIRONMENT_CHANGED, NoticeKind.ENVIRONMENT_UNCHECKED, NoticeKind.NONDETERMINISTIC)
#: why a test that passed on both sides without a counted call is not compared (not a failure)
NOT_COUNTED = "passed on both sides without a counted call (no perf, benchmark or count budget): nothing was counted"
#: the two sides run the same interpreter and distributions: their fingerprints should agree
SAME_ENVIRONMENT = (
    "the two sides ran with the same interpreter, yet their environment fingerprints differ: their counters "
    "are not compared (does the install step or the code under test change the installed distributions?)"
)


def compare_counted(
    sessions: Mapping[Side, SideSession],
    settings: GateSettings | None = None,
    *,
    subject: str = "",
    notices: Sequence[str] = (),
    broken: str = "",
    allow_incomplete: bool = False,
    started: bool = True,
) -> GateReport:
    """The paired gate on counts: each test's counters on the base side (as the one stored run)
    against the current side's, by the counter rule of :func:`~pytest_perfgate.gate.compare`
    (fail +1%, warn +0.5% by default; nondeterministic counters judged against their spread; the
    fingerprints checked).

    Incomplete (exit 2) as the timed mode is, unless ``allow_incomplete`` lists them in a notice:
    a test selected on both sides that failed, was skipped on one side, was counted on one side
    only or could not be judged; and (always) a side whose session broke off (``broken``) or a
    run in which no test was compared. A test new on the current side or gone from it is reported
    as new or missing, as in the timed mode."""
    settings = settings or GateSettings()
    base, current = sessions.get(BASE), sessions.get(CURRENT)
    base_run = base.run if base is not None else None
    current_run = current.run if current is not None else None
    done: list[Comparison] = []
    all_notices = [Notice(NoticeKind.TEXT, text=text) for text in notices]
    for session in (base, current):
        if session is not None:
            all_notices += [Notice(NoticeKind.TEXT, text=text) for text in session.errors]
    not_compared: list[str] = []
    optional: list[str] = []
    judged = 0
    both_sides = False
    if base is not None and current is not None and base_run is not None and current_run is not None:
        base_tests, current_tests = base_run.by_nodeid(), current_run.by_nodeid()
        main = INSTRUCTIONS_SERIES if _has(current_run, INSTRUCTIONS_SERIES) else ALLOC_BLOCKS_SERIES
        specs = {t.nodeid: t.spec for t in current_run.tests}
        on_base, on_current = set(base.nodeids), set(current.nodeids)
        to_judge: list[str] = []
        for nodeid in sorted(on_base | on_current):
            template = counter_template(nodeid, main, settings, specs.get(nodeid))
            if nodeid not in on_base:
                done.append(replace(template, verdict=GateVerdict.NEW, reason="not on the base side (a new test)"))
                continue
            if nodeid not in on_current:
                why = "not on the current side (removed or renamed)"
                done.append(replace(template, verdict=GateVerdict.MISSING, reason=why))
                continue
            both_sides = True
            problem, skipped = _counted_problem(nodeid, base, current, base_tests, current_tests)
            if skipped:
                optional.append(f"{nodeid}: {skipped}")
            elif problem:
                done.append(replace(template, verdict=GateVerdict.INSUFFICIENT, reason=f"not compared: {problem}"))
                not_compared.append(f"{nodeid}: {problem}")
            else:
                to_judge.append(nodeid)
        if to_judge:
            report = compare([_only(base_run, to_judge)], _only(current_run, to_judge), settings)
            counters = [c for c in report.comparisons if c.counter or is_counter(c.metric)]
            done += counters
            judged = sum(1 for c in counters if c.verdict is not GateVerdict.INSUFFICIENT)
            all_notices += [n for n in report.notices if n.kind in COUNTER_NOTICES]
            unjudged = [c for c in counters if c.verdict is GateVerdict.INSUFFICIENT]
            not_compared += [f"{c.nodeid}: {c.metric}: {c.reason}" for c in unjudged]
            if any(c.environment_changed for c in unjudged):
                all_notices.append(Notice(NoticeKind.TEXT, text=SAME_ENVIRONMENT))
    if optional:
        all_notices.append(Notice(NoticeKind.SKIPPED_AS_EXPECTED, count=len(optional), tests=tuple(optional)))
    incomplete = [f"the paired run {'did not finish' if started else 'could not start'}: {broken}"] if broken else []
    if not broken and not judged and not not_compared and both_sides:
        incomplete.append("no test was compared: every test selected on both sides was skipped or not counted")
    return _paired_report(
        done, all_notices, incomplete, not_compared, settings, subject, current_run, allow_incomplete=allow_incomplete
    )


def _counted_problem(
    nodeid: str,
    base: SideSession,
    current: SideSession,
    base_tests: Mapping[str, TestResult],
    current_tests: Mapping[str, TestResult],
) -> tuple[str, str]:
    """(why a test on both sides is not compared, why it is not compared as expected); both ""
    when its counts are judged."""
    sides = ((BASE, base, base_tests), (CURRENT, current, current_tests))
    ended = {side: session.outcomes.get(nodeid) for side, session, _ in sides}
    for side, session, _ in sides:
        if ended[side] is None:
            why = "its session ended before it ran" if not session.finished else "it did not run"
            return f"not run on the {side} side: {why}", ""
    outcomes = {side: end for side, end in ended.items() if end is not None}
    if {outcome for outcome, _ in outcomes.values()} == {"skipped"}:
        reasons = dict.fromkeys(message for _, message in outcomes.values())
        return "", f"skipped on both sides: {'; '.join(reasons)}"
    problems = [
        f"{outcome} on the {side} side: {message}".rstrip(": ")
        for side, (outcome, message) in outcomes.items()
        if outcome != "passed"
    ]
    if problems:
        return "; ".join(problems), ""
    counted = [side for side, _, tests in sides if nodeid in tests and _counts(tests[nodeid])]
    if not counted:
        return "", NOT_COUNTED
    if len(counted) == 1:
        return f"counted on the {counted[0]} side only (the other passed without a counted call)", ""
    for side, _, tests in sides:
        if tests[nodeid].outcome != Outcome.PASSED:
            return f"{tests[nodeid].outcome} on the {side} side", ""
    return "", ""


def _counts(test: TestResult) -> bool:
    return any(is_counter(name) and series.values for name, series in test.series.items())


def _has(run: RunResult, metric: str) -> bool:
    return any(metric in t.series for t in run.tests)


def _only(run: RunResult, nodeids: Sequence[str]) -> RunResult:
    """``run`` with only the tests ``nodeids`` and only their counter series."""
    keep = set(nodeids)
    tests = tuple(
        replace(t, series={k: v for k, v in t.series.items() if is_counter(k)}) for t in run.tests if t.nodeid in keep
    )
    return replace(run, tests=tests)


def _paired_report(
    done: Sequence[Comparison],
    notices: list[Notice],
    incomplete: list[str],
    not_compared: list[str],
    settings: GateSettings,
    subject: str,
    current_run: RunResult | None,
    *,
    allow_incomplete: bool,
) -> GateReport:
    """The paired report: what was not compared makes it incomplete, or is listed in a notice with
    ``allow_incomplete``; the current run's budget breaches come along."""
    if allow_incomplete and not_compared:
        notices.append(Notice(NoticeKind.ALLOWED_INCOMPLETE, count=len(not_compared), tests=tuple(not_compared)))
    else:
        incomplete = incomplete + not_compared
    breaches = budget_breaches(current_run) if current_run is not None else ()
    return GateReport(
        tuple(ordered(done)),
        breaches,
        tuple(notices),
        1,
        (subject,) if subject else (),
        settings,
        mode=GateMode.PAIRED,
        subject=subject,
        incomplete=tuple(incomplete),
    )
