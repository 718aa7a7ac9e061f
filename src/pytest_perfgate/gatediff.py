"""What changed in the profile of each test a gate judged slower on time: evidence next to the
gate's decisions, never part of them (:mod:`pytest_perfgate.gate` stays decisions only).

Pure (no I/O, no pytest). ``perfgate ab`` profiles both sides itself; the stored-baseline gate
(``perfgate compare``) diffs the ``cpu_profile`` the current run's test carries against the one
the most recent stored run that has one carries (:func:`stored_diffs`), and says in a notice which
slower tests had no profile on a side (:meth:`StoredDiffs.notice`). The diffs go into the
current run's evidence (:func:`with_diffs`, key ``cpu_diff``), where the Markdown, HTML and Code
Quality reports read them, and into the JSON report (``cpu_diffs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from .evidence import INSTRUCTIONS_CLOCK, CpuProfile, Evidence
from .gate import GateReport, GateVerdict, Notice, NoticeKind, SessionGate
from .metrics import TIME_SERIES
from .model import RunResult
from .profdiff import ProfileDiff, diff_profiles

#: the evidence key of a test's profile diff in the current run's results (kept as written)
DIFF_KEY = "cpu_diff"

#: how a run gets a CPU profile for every timed test (docs/evidence.md)
HOW_TO_PROFILE = "pytest --perfgate-evidence cpu"
#: ... and a counted run its instructions by function
HOW_TO_COUNT_BY_FUNCTION = "pytest --perfgate-instructions --perfgate-evidence instructions"
#: the counted series a profile of instructions by function explains
COUNTED_WORK = ("instructions", "est_cycles")


def slower_on_time(report: GateReport) -> list[str]:
    """The tests judged a regression or a warning on time, each once, in the report's order."""
    slower = report.by_verdict(GateVerdict.REGRESSION, GateVerdict.WARNING)
    return list(dict.fromkeys(c.nodeid for c in slower if c.metric == TIME_SERIES))


def slower_on_work(report: GateReport) -> list[str]:
    """The tests judged a regression or a warning on time or on counted instructions (or
    estimated cycles), each once, in the report's order."""
    slower = report.by_verdict(GateVerdict.REGRESSION, GateVerdict.WARNING)
    return list(dict.fromkeys(c.nodeid for c in slower if c.metric in (TIME_SERIES, *COUNTED_WORK)))


def _counted(profile: CpuProfile) -> bool:
    return profile.clock == INSTRUCTIONS_CLOCK


def with_diffs(current: RunResult | None, diffs: Mapping[str, ProfileDiff], *, only: bool = False) -> RunResult | None:
    """The current run with each diffed test's diff in its evidence (``cpu_diff``). With ``only``,
    a ``cpu_diff`` the run already carried for another test is dropped (a results file saved by
    ``perfgate ab`` diffs against another base than the stored runs)."""
    if current is None or not (diffs or only):
        return current

    def evidence(nodeid: str, ev: Evidence) -> Evidence | None:
        if nodeid in diffs:
            return Evidence.from_json({**ev.to_json(), DIFF_KEY: diffs[nodeid].to_json()})
        if only and ev.get(DIFF_KEY) is not None:
            return Evidence.from_json({k: v for k, v in ev.to_json().items() if k != DIFF_KEY})
        return None

    tests = []
    for t in current.tests:
        changed = evidence(t.nodeid, t.evidence)
        tests.append(t if changed is None else replace(t, evidence=changed))
    return replace(current, tests=tuple(tests))


def cpu_profile_of(run: RunResult, nodeid: str) -> CpuProfile | None:
    test = run.by_nodeid().get(nodeid)
    return test.evidence.cpu_profile if test is not None else None


@dataclass(frozen=True)
class StoredDiffs:
    """The profile diffs of the tests judged slower on time, and those that could not be diffed."""

    diffs: dict[str, ProfileDiff]
    #: slower tests whose current run carries no CPU profile
    no_current: tuple[str, ...] = ()
    #: slower tests with a current profile that no stored run has
    no_stored: tuple[str, ...] = ()
    #: stored runs whose profiles could not be read: "<where>: why"
    unread: tuple[str, ...] = ()

    def notice(self) -> Notice | None:
        """One notice naming the slower tests without a diff and how to get one; ``None`` when
        every slower test has its diff."""
        parts = []
        if self.no_current:
            parts.append(
                f"no CPU profile in this run for {_tests(self.no_current)} (run the tests with "
                f"{HOW_TO_PROFILE}, or --perfgate-compare, to profile every timed test; a counted run with "
                f"{HOW_TO_COUNT_BY_FUNCTION})"
            )
        if self.no_stored:
            parts.append(
                f"no profile of the same kind in the stored runs for {_tests(self.no_stored)} (promote runs made "
                f"with {HOW_TO_PROFILE} --perfgate-save, or counted with {HOW_TO_COUNT_BY_FUNCTION}: the default "
                "branch's baseline job)"
            )
        if self.unread:
            parts.append(f"stored runs not read for their profiles: {'; '.join(self.unread[:3])}")
        if not parts:
            return None
        return Notice(NoticeKind.TEXT, text="what changed is not shown: " + "; ".join(parts))


def _tests(nodeids: Sequence[str], shown: int = 5) -> str:
    names = ", ".join(nodeids[:shown]) + (f" and {len(nodeids) - shown} more" if len(nodeids) > shown else "")
    return f"{len(nodeids)} slower test{'s' if len(nodeids) != 1 else ''}: {names}"


def stored_diffs(report: GateReport, current: RunResult, stored_newest_first: Iterable[RunResult | str]) -> StoredDiffs:
    """What changed in each test ``report`` judged slower on time or on counted instructions: its
    ``cpu_profile`` in ``current`` against the one of the same kind (counted instructions, or
    time) in the most recent stored run that has one. The stored runs are read one by one, newest
    first, and only while a profile is still missing (a run is given as a :class:`RunResult`, or as
    the text of why it could not be read)."""
    slower = slower_on_work(report)
    profiled = {nodeid: p for nodeid in slower if (p := cpu_profile_of(current, nodeid)) is not None}
    no_current = tuple(n for n in slower if n not in profiled)
    found: dict[str, CpuProfile] = {}
    unread: list[str] = []
    if profiled:
        for run in stored_newest_first:
            if isinstance(run, str):
                unread.append(run)
                continue
            for nodeid in profiled.keys() - found.keys():
                stored = cpu_profile_of(run, nodeid)
                if stored is not None and _counted(stored) == _counted(profiled[nodeid]):
                    found[nodeid] = stored
            if len(found) == len(profiled):
                break
    diffs = {nodeid: diff_profiles(found[nodeid], profile) for nodeid, profile in profiled.items() if nodeid in found}
    no_stored = tuple(n for n in profiled if n not in found)
    return StoredDiffs(diffs, no_current, no_stored, tuple(unread))


def explain_session(
    gate: SessionGate, current: RunResult, stored_newest_first: Iterable[RunResult | str]
) -> tuple[SessionGate, RunResult]:
    """The gate of a pytest session (``--perfgate-compare``, ``perfgate report --html
    --baseline``) with what changed for each test it judged slower (:func:`stored_diffs`, the
    notice of those without a diff), and the current run with the diffs in its evidence."""
    if gate.report is None:
        return gate, current
    found = stored_diffs(gate.report, current, stored_newest_first)
    explained = replace(gate, report=with_notice(gate.report, found.notice()), diffs=found.diffs)
    return explained, with_diffs(current, found.diffs, only=True) or current


def with_notice(report: GateReport, notice: Notice | None) -> GateReport:
    """``report`` with ``notice`` added (evidence said next to the decisions; the verdicts unchanged)."""
    return report if notice is None else replace(report, notices=(*report.notices, notice))
