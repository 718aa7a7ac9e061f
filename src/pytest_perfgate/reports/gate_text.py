"""The gate's words, the same in every report format: the one-line headline and the notices."""

from __future__ import annotations

import math

from ..gate import UNJUDGED, GateMode, GateReport, GateStatus, GateVerdict, Notice, NoticeKind, names_test


def _s(n: int, word: str, plural: str = "s") -> str:
    return f"{n} {word}{plural if n != 1 else ''}"


def counted(verdict: GateVerdict, n: int) -> str:
    """``n`` comparisons with ``verdict``, in words: "1 warning", "3 improvements", "2 unchanged"."""
    plural = n != 1 and verdict in (GateVerdict.REGRESSION, GateVerdict.WARNING, GateVerdict.IMPROVEMENT)
    return f"{n} {verdict.value}{'s' if plural else ''}"


def percent_range(low: float, high: float) -> str:
    """Two fractions as one range of whole percentages: ``"12-32%"``, ``"13%"``."""
    lo, hi = f"{low:.0%}", f"{high:.0%}"
    return hi if lo == hi else f"{lo[:-1]}-{hi}"


def notice_text(notice: Notice) -> str:
    """One notice in words."""
    n, kind = notice.count, notice.kind
    if kind is NoticeKind.NO_BASELINE:
        at = f" at {notice.where}" if notice.where else ""
        return f"no baseline{at}: nothing to compare with, the gate passes (promote a run to create one)"
    if kind is NoticeKind.ASSUMED_SPREAD:
        return (
            f"{_s(n, 'comparison')} had fewer than {notice.of} baseline runs (fewest: {notice.fewest}): their "
            f"run-to-run spread is unknown, so a spread of {notice.share:.0%} is assumed and only large changes "
            "can fail; promote more runs"
        )
    if kind is NoticeKind.NOISY_BASELINE:
        return (
            f"{_s(n, 'comparison')} could not be judged: the baseline's runs vary by "
            f"{percent_range(*notice.spread)} on this runner, too much for a change of {notice.threshold:.0%} to "
            "be told from noise; the paired gate (perfgate ab) measures both versions in the same time window and "
            "judges such tests"
        )
    if kind is NoticeKind.TESTS_NOT_IN_RUN:
        return f"{_s(n, 'baseline test')} not in this run"
    if kind is NoticeKind.PAIRED_ESTIMATE:
        return (
            "Baseline is the base side's median time per call; Current is Baseline times the paired change "
            "(the median ratio of blocks measured side by side), not the current side's own median"
        )
    if kind is NoticeKind.DISTURBED_BLOCKS:
        text = (
            f"{n} of {notice.of} blocks were disturbed (a worker was preempted by another process on the shared "
            f"CPU during one of their rounds)"
        )
        parts = [f"{notice.left_out} of them were left out" if notice.left_out else ""]
        for group in notice.groups:
            how = (
                "each preempted round counted as its CPU time plus its side's usual off-CPU time"
                if group.corrected
                else "as measured: the platform gives no thread CPU time, so these are less reliable"
            )
            parts.append(
                f"{group.kept} were judged, {how}, in {_s(len(group.tests), 'test')} that had too "
                f"few undisturbed blocks: {', '.join(group.tests[:5])}"
            )
        return text + ": " + "; ".join(p for p in parts if p)
    if kind is NoticeKind.CONFIRMED:
        shown = "; ".join(
            f"{nodeid} " + ", ".join(f"{math.expm1(shift):+.1%}" for shift in shifts)
            for nodeid, shifts in notice.changes[:5]
        )
        return (
            f"{_s(n, 'test')} with a large change {'was' if n == 1 else 'were'} measured again in fresh pairs of "
            "workers and judged on the median change over the pairs (each pair of processes has its own small "
            f"offset): {shown}"
        )
    if kind is NoticeKind.OTHER_METRICS:
        return (
            "metrics other than time (memory, queries, custom figures) are compared as one base run "
            "against the current run, with an assumed run-to-run spread: only large changes fail"
        )
    if kind is NoticeKind.SKIPPED_AS_EXPECTED:
        return f"{_s(n, 'test')} not compared, as expected: " + "; ".join(notice.tests[:5])
    if kind is NoticeKind.ALLOWED_INCOMPLETE:
        return f"{_s(n, 'test')} not compared (allowed by --allow-incomplete): " + "; ".join(notice.tests)
    if kind is NoticeKind.ENVIRONMENT_CHANGED:
        changed = environment_changes(notice.differences)
        if n:
            return (
                f"environment changed: counters not compared: {changed} ({_s(n, 'counter comparison')} not made, "
                "not counted as regressions; timings were compared as usual; store runs made in this "
                "environment to compare counters again)"
            )
        return (
            f"environment changed in {notice.left_out} of {notice.of} stored runs ({changed}): counters were "
            f"compared only with the {_s(notice.of - notice.left_out, 'stored run')} of this run's environment"
        )
    if kind is NoticeKind.ENVIRONMENT_UNCHECKED:
        whose = []
        if notice.of:
            whose.append("the current run")
        if notice.left_out:
            whose.append(_s(notice.left_out, "stored run"))
        carry = "carries" if len(whose) == 1 and notice.left_out <= 1 else "carry"
        return (
            f"{_s(n, 'counter comparison')} made without checking the environment: {' and '.join(whose)} {carry} "
            "no fingerprint (results from before perfgate recorded one, or imported): a change of interpreter, "
            "valgrind or installed packages would show as a change of counts"
        )
    if kind is NoticeKind.NONDETERMINISTIC:
        shown = ", ".join(notice.tests)
        more = f" and {n - len(notice.tests)} more" if n > len(notice.tests) else ""
        return (
            f"{_s(n, 'counter')} nondeterministic (spread {counter_percent_range(*notice.spread)}): "
            f"{'its values vary' if n == 1 else 'their values vary'} between runs or within this run by more "
            f"than {counter_percent(notice.share)}, so each is judged against at least {notice.threshold:g}x its "
            f"spread: {shown}{more}"
        )
    return notice.text


def counter_percent(value: float) -> str:
    """A counter's small percentages readably: ``0.05%``, ``0.4%``, ``1%``, ``12.5%``."""
    if not math.isfinite(value):
        return "unbounded" if value > 0 else "-"
    text = f"{value:.2%}" if abs(value) < 0.1 else f"{value:.1%}"
    number = text[:-1].rstrip("0").rstrip(".")
    return f"{number}%"


def counter_percent_range(low: float, high: float) -> str:
    lo, hi = counter_percent(low), counter_percent(high)
    return hi if lo == hi else f"{lo} to {hi}"


#: fingerprint fields whose values are hashes: named, not shown
_HASHED = ("distributions", "build_flags", "python_build")


def environment_changes(differences: tuple[tuple[str, str, str], ...]) -> str:
    """The fingerprint differences in words: ``"python 3.11.7 -> 3.11.8, distributions changed"``."""
    parts = []
    for name, stored, current in differences:
        if not stored or not current:
            parts.append(f"{name} {'only in the current run' if current else 'only in the stored runs'}")
        elif name in _HASHED:
            parts.append(f"{name} changed")
        else:
            old, new = _short_pair(stored, current)
            parts.append(f"{name} {old} -> {new}")
    return ", ".join(parts) or "no field named"


def _short_pair(stored: str, current: str, limit: int = 40) -> tuple[str, str]:
    """Two values shortened for a line: their first words when those differ (``3.11.7`` of a
    ``sys.version``), else the whole values cut to ``limit`` characters."""
    first_old, first_new = stored.split(" ", 1)[0], current.split(" ", 1)[0]
    if first_old != first_new:
        stored, current = first_old, first_new

    def cut(text: str) -> str:
        return text if len(text) <= limit else text[: limit - 3] + "..."

    return cut(stored), cut(current)


def notice_texts(report: GateReport) -> list[str]:
    """Every notice of ``report`` in words, in order."""
    return [notice_text(n) for n in report.notices]


def headline(report: GateReport) -> str:
    """The one-line verdict, the same in every report format."""
    status = report.status
    regressions, breaches = len(report.regressions), len(report.critical_breaches)
    failures = []
    if regressions and report.regressions_fail:
        failures.append(_s(regressions, "regression"))
    if breaches:
        failures.append(_s(breaches, "critical budget breach", "es"))
    heads = ["FAILED: " + " and ".join(failures)] if failures else []
    if report.incomplete:
        heads.append("INCOMPLETE: " + _not_compared(report))
    counts = report.counts()
    compared = report.compared
    advice = ""
    if status is GateStatus.NOT_JUDGED:
        what = "time comparisons" if all(c.metric == "time" for c in compared) else "comparisons"
        one = len(compared) == 1
        none = f"the one {what[:-1]} could not" if one else f"none of the {len(compared)} {what} could"
        heads.append(f"NOT JUDGED: {none} be judged")
        advice = _what_would_judge(report).replace(" them", " it" if one else " them")
    elif not heads:
        heads.append("PASSED without a comparison" if status is GateStatus.NOTHING_COMPARED else "PASSED")
    rest = _counted(report, counts)
    if report.mode is GateMode.PAIRED:
        against = f"paired A/B against {report.subject or 'the base'}"
    elif report.baseline_runs == 0:
        against = "no baseline yet"
    else:
        against = f"baseline of {_s(report.baseline_runs, 'run')}"
    return (
        f"perfgate: {'; '.join(heads)}"
        + (f" ({rest})" if rest else "")
        + (f"; {advice}" if advice else "")
        + f"; {against}"
    )


def _counted(report: GateReport, counts: dict[GateVerdict, int]) -> str:
    """The parenthesis of the headline: the verdicts counted; with comparisons that could not
    be judged, how many of those with a baseline were judged, and why the others were not."""
    unjudged = report.unjudged if report.regressions_fail else []
    baseline_mode = report.mode is GateMode.BASELINE
    unjudged_words = {
        GateVerdict.UNSTABLE: "too noisy to judge on this runner" if baseline_mode else "unstable",
        GateVerdict.INSUFFICIENT: "with insufficient data",
    }
    first = []
    regressions = counts[GateVerdict.REGRESSION]
    if regressions and not report.regressions_fail:
        elsewhere = "not failing here: the paired A/B gate judges them"
        first.append(f"{counted(GateVerdict.REGRESSION, regressions)} {elsewhere}")
    listed = [v for v, n in counts.items() if n and v is not GateVerdict.REGRESSION]
    if not unjudged:
        return ", ".join(first + [counted(v, counts[v]) for v in listed])
    listing = (GateVerdict.NEW, GateVerdict.MISSING)
    judged = [counted(v, counts[v]) for v in listed if v not in UNJUDGED and v not in listing]
    compared = len(report.compared)
    groups = [first]
    if report.status is not GateStatus.NOT_JUDGED:
        share = f"{compared - len(unjudged)} of {compared} judged"
        groups.append([share + (f": {', '.join(judged)}" if judged else "")])
    words = []
    moved = sum(1 for c in unjudged if c.environment_changed)  # counters of another environment
    for verdict in UNJUDGED:
        n = counts[verdict] - (moved if verdict is GateVerdict.INSUFFICIENT else 0)
        if n:
            spreads = report.unstable_spreads() if verdict is GateVerdict.UNSTABLE and baseline_mode else []
            spread = percent_range(min(spreads), max(spreads)) if spreads else ""
            words.append(f"{n} {unjudged_words[verdict]}" + (f": run-to-run spread {spread}" if spread else ""))
    if moved:
        words.append(f"{_s(moved, 'counter')} not compared: environment changed")
    groups.append(words)
    groups.append([counted(v, counts[v]) for v in listed if v in listing])
    return "; ".join(", ".join(g) for g in groups if g)


def _not_compared(report: GateReport) -> str:
    """``2 tests not compared``; a run-level reason first, by its first clause."""
    tests = sum(1 for line in report.incomplete if names_test(line))
    run_level = [line for line in report.incomplete if not names_test(line)]
    parts = []
    if run_level:
        more = len(run_level) - 1
        parts.append(run_level[0].split(": ", 1)[0] + (f" (and {_s(more, 'more problem')})" if more else ""))
    if tests:
        parts.append(f"{_s(tests, 'test')} not compared")
    return ", ".join(parts)


def _what_would_judge(report: GateReport) -> str:
    helps_paired, helps_runs = report.would_judge()
    if not helps_paired:
        return ""
    if helps_runs:
        return "the paired gate (perfgate ab) or more stored runs would judge them"
    return "the paired gate (perfgate ab) would judge them (more stored runs would not: the spread is too large)"
