"""Explore schedules under a budget, judge each one, shrink and verify a failure (pure)."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from ..errors import RaceError
from ..errors import RaceFailure as RaceFailure  # the race package exports it from here
from .faults import Fault
from .history import OpCall, format_history, serial_order
from .scheduler import Execution, Schedule, Timing
from .strategies import STRATEGIES, Chooser, Exhaustive, Guided, Replay, make_strategy
from .token import Choice, ReplayToken, check_of
from .trace import START, StepKind


@dataclass(frozen=True)
class RaceConfig:
    """How to explore. ``seconds=None`` means no time budget."""

    strategy: str = "random"
    schedules: int = 300
    seconds: float | None = 60.0
    seed: int = 0
    depth: int = 3
    preemption_bound: int | None = 2
    timing: Timing = field(default_factory=Timing)
    shrink: bool = True
    shrink_schedules: int = 400
    shrink_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RaceError(f"strategy {self.strategy!r} is not known; accepted: {', '.join(STRATEGIES)}")
        if not isinstance(self.schedules, int) or self.schedules < 1:
            raise RaceError(f"schedules {self.schedules!r}: accepted a whole number >= 1")
        if self.seconds is not None and self.seconds <= 0:
            raise RaceError(f"seconds {self.seconds!r}: accepted a positive number of seconds, or None")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise RaceError(f"depth {self.depth!r}: accepted a whole number >= 1")


class FailureKind(str, Enum):
    """What a failing schedule showed; ``sentence`` says it in a sentence."""

    sentence: str

    def __new__(cls, value: str, sentence: str) -> FailureKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.sentence = sentence
        return member

    EXCEPTION = "exception", "an unexpected exception"
    INVARIANT = "invariant", "an invariant violation"
    HISTORY = "history", "a history no serial order explains"
    HANG = "hang", "a hang"
    ESCAPED = "escaped", "a database call outside the scheduler's control"
    UNSCHEDULED = "unscheduled", "an operation the scheduler never interleaved"


class Stop(str, Enum):
    """Why the exploration of schedules stopped."""

    SCHEDULE_BUDGET = "schedule budget"
    TIME_BUDGET = "time budget"
    SPACE_EXHAUSTED = "space exhausted"
    FAILURE = "failure"
    REPLAY = "replay"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    summary: str
    detail: str
    schedule: int  # 1-based index of the schedule that found it (0: a replay)
    execution: Execution
    history: str
    token: str
    found_preemptions: int
    minimal: bool  # no schedule with fewer preemptions fails (proved by bounded exhaustive search)
    shrink_schedules: int
    replay_verified: bool

    @property
    def preemptions(self) -> int:
        return self.execution.trace.preemptions


@dataclass(frozen=True)
class RaceReport:
    strategy: str
    seed: int
    schedules: int
    budget: int
    distinct: int
    complete: bool
    bounded: bool
    elapsed: float
    stopped: Stop
    failure: Failure | None
    preemption_bound: int | None = None
    history_checked: bool = False
    invariant_checked: bool = True
    replayed: str | None = None
    note: str | None = None

    def summary(self) -> str:
        if self.replayed is not None:
            head = f"replayed schedule {self.replayed}"
            return head + (f": it fails ({self.failure.kind.sentence})" if self.failure else ": it passes now")
        if self.failure is not None:
            return (
                f"{self.failure.kind.sentence} found by {self.strategy} at schedule {self.failure.schedule} "
                f"of {self.budget} ({self.distinct} distinct schedules explored)"
            )
        if self.complete:
            bound = f" with at most {self.preemption_bound} preemption(s)" if self.bounded else ""
            checks = ["the invariant holds in every one"] if self.invariant_checked else []
            if self.history_checked:
                checks.append("a serial order explains every history")
            holds = " and ".join(checks) or "no operation failed in any"
            return f"all {self.distinct} interleavings{bound} explored; {holds} ({self.strategy})"
        return f"{self.distinct} distinct schedules explored ({self.strategy}; stopped: {self.stopped}); no failure"

    def evidence(self) -> dict[str, Any]:
        """Plain JSON-ready values for the results file's per-test ``evidence`` mapping."""
        data: dict[str, Any] = {
            "strategy": self.strategy,
            "seed": self.seed,
            "schedules": self.schedules,
            "distinct_schedules": self.distinct,
            "exhaustive_complete": self.complete,
            "preemption_bound": self.preemption_bound,
            "bound_left_interleavings_out": self.bounded,
            "stopped": self.stopped.value,
            "elapsed_s": round(self.elapsed, 4),
            "summary": self.summary(),
        }
        if self.replayed is not None:
            data["replayed"] = self.replayed
        if self.failure is not None:
            data["failure"] = {
                "kind": self.failure.kind.value,
                "summary": self.failure.summary,
                "schedule": self.failure.schedule,
                "preemptions": self.failure.preemptions,
                "preemptions_before_shrinking": self.failure.found_preemptions,
                "minimal": self.failure.minimal,
                "replay_token": self.failure.token,
                "replay_verified": self.failure.replay_verified,
                "trace": self.failure.execution.trace.format(),
                "history": self.failure.history,
            }
        return data


@dataclass(frozen=True)
class _Verdict:
    kind: FailureKind
    summary: str
    detail: str
    signature: tuple[object, ...]


_OWN_FRAMES = str(Path(__file__).parent) + os.sep


def _error_text(exc: BaseException) -> str:
    """The exception's traceback without the scheduler's and the interception's own frames."""
    error = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    error.stack = traceback.StackSummary.from_list([f for f in error.stack if not f.filename.startswith(_OWN_FRAMES)])
    return "".join(error.format()).rstrip()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass(frozen=True)
class Problem:
    """The operations and checks of one ``race.run`` call."""

    calls: tuple[OpCall, ...]
    invariant: Callable[[], object] | None = None
    setup: Callable[[], object] | None = None
    model: Callable[[], object] | None = None
    expected: tuple[type[BaseException], ...] = ()
    faults: tuple[Fault, ...] = ()

    def execute(self, chooser: Chooser, timing: Timing) -> Execution:
        if self.setup is not None:
            self.setup()
        operations = [(call.name, call) for call in self.calls]
        return Schedule(operations, chooser, faults=self.faults, timing=timing).run()

    def judge(self, execution: Execution) -> _Verdict | None:
        if execution.hang is not None:
            return _Verdict(FailureKind.HANG, execution.hang.reason, execution.hang.format(), ("hang",))
        if execution.escapes:
            first = execution.escapes[0]
            more = len(execution.escapes) - 1
            summary = f"a database call escaped the scheduler: {first.describe()}" + (
                f" (and {more} more)" if more else ""
            )
            detail = "\n".join([f"escaped: {e.describe()}" for e in execution.escapes[:10]] + [ESCAPE_HELP])
            return _Verdict(FailureKind.ESCAPED, summary, detail, ("escaped",))
        errors = [o for o in execution.outcomes if o.error is not None]
        tracebacks = "\n".join(
            f"--- T{o.thread} {o.name}\n{_error_text(o.error)}" for o in errors if o.error is not None
        )
        if self.model is None:
            for outcome in errors:
                assert outcome.error is not None
                if not isinstance(outcome.error, self.expected + self.calls[outcome.thread].expected):
                    summary = f"T{outcome.thread} {outcome.name} raised {_one_line(outcome.error)}"
                    signature = ("exception", outcome.thread, type(outcome.error).__name__)
                    return _Verdict(FailureKind.EXCEPTION, summary, tracebacks, signature)
        if self.invariant is not None:
            try:
                held = self.invariant()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # pytest.fail / pytest.skip too: the interleaving is the evidence
                if isinstance(exc, AssertionError) or type(exc).__name__ == "Failed":
                    summary = f"invariant violated: {_one_line(exc)}"
                else:
                    summary = (
                        f"the invariant raised {_one_line(exc)} (not an AssertionError: an error in the check "
                        "itself, or a state it did not expect)"
                    )
                return _Verdict(FailureKind.INVARIANT, summary, _error_text(exc), ("invariant", type(exc).__name__))
            if held is False:
                summary = "invariant violated: it returned False"
                return _Verdict(FailureKind.INVARIANT, summary, "", ("invariant", "False"))
        if self.model is not None and serial_order(self.calls, execution.outcomes, self.model) is None:
            return _Verdict(
                FailureKind.HISTORY,
                "no serial order of the operations explains their results (not linearizable)",
                tracebacks,
                ("history",),
            )
        return None

    def token_for(self, run: int, execution: Execution) -> str:
        return ReplayToken(run, len(self.calls), execution.choices, _check(execution)).encode()


#: what to do about a call that escaped the scheduler
ESCAPE_HELP = (
    "a race run cannot interleave a call it does not see: the call was made in a thread or task that does not "
    "carry the race operation (its context); start that work with contextvars.copy_context().run(...), "
    "asyncio.to_thread or anyio.to_thread.run_sync (they carry it), or call it from the operation itself "
    "(docs/race.md: races through an API)"
)


def _unscheduled(problem: Problem, reached: set[int], count: int) -> str:
    """Why an operation never reached a scheduling point in any schedule ("" when all did)."""
    missed = [f"T{i} {call.name}" for i, call in enumerate(problem.calls) if i not in reached and not call.atomic]
    if not missed:
        return ""
    return (
        f"{', '.join(missed)} never reached a scheduling point in {count} schedule{'s' if count != 1 else ''}: "
        f"{'it' if len(missed) == 1 else 'each'} ran as one atomic step, so no interleaving of "
        f"{'its' if len(missed) == 1 else 'their'} database calls was tried (no intercepted pymongo or "
        "mongomock call, no race.point, seen on its behalf); an operation meant as one step: "
        "race.op(name, fn, atomic=True)"
    )


def _check(execution: Execution) -> str:
    return check_of(s.point.describe() for s in execution.trace.steps if s.kind is not StepKind.RELEASE)


def explore(problem: Problem, config: RaceConfig, *, run: int = 0, replay: ReplayToken | None = None) -> RaceReport:
    """Explore schedules until a failure, the budget, or (exhaustive) the end of the space."""
    if not problem.calls:
        raise RaceError("race.run needs at least one operation (a callable)")
    timing = config.timing
    started = time.monotonic()
    if replay is not None:
        return _replay(problem, config, run, replay, started)
    strategy = make_strategy(
        config.strategy,
        seed=config.seed,
        threads=len(problem.calls),
        depth=config.depth,
        preemption_bound=config.preemption_bound,
    )
    seen: set[tuple[Choice, ...]] = set()
    reached: set[int] = set()  # operations that reached a scheduling point besides their start
    count = 0
    stopped = Stop.SCHEDULE_BUDGET
    failure: Failure | None = None
    execution: Execution | None = None
    while True:
        if count >= config.schedules:
            break
        if config.seconds is not None and time.monotonic() - started >= config.seconds:
            stopped = Stop.TIME_BUDGET
            break
        chooser = strategy.schedule(count)
        if chooser is None:
            stopped = Stop.SPACE_EXHAUSTED
            break
        execution = problem.execute(chooser, timing)
        strategy.finished(chooser, len(execution.choices))
        count += 1
        seen.add(execution.choices)
        reached.update(s.thread for s in execution.trace.steps if s.point is not START)
        verdict = problem.judge(execution)
        if verdict is not None:
            failure = _evidence(problem, config, run, count, execution, verdict)
            stopped = Stop.FAILURE
            break
    unscheduled = _unscheduled(problem, reached, count) if failure is None and execution is not None else ""
    if unscheduled and execution is not None:
        failure = Failure(
            FailureKind.UNSCHEDULED, unscheduled, "", count, execution,
            format_history(problem.calls, execution.outcomes), problem.token_for(run, execution),
            execution.trace.preemptions, False, 0, False,
        )  # fmt: skip
        stopped = Stop.FAILURE
    return RaceReport(
        strategy=strategy.describe(),
        seed=config.seed,
        schedules=count,
        budget=config.schedules,
        distinct=len(seen),
        complete=strategy.complete and failure is None,
        bounded=strategy.bounded,
        elapsed=time.monotonic() - started,
        stopped=stopped,
        failure=failure,
        preemption_bound=config.preemption_bound if config.strategy == "exhaustive" else None,
        history_checked=problem.model is not None,
        invariant_checked=problem.invariant is not None,
    )


def _replay(problem: Problem, config: RaceConfig, run: int, token: ReplayToken, started: float) -> RaceReport:
    if token.threads != len(problem.calls):
        raise RaceError(
            f"replay token is for {token.threads} operations but this race.run has {len(problem.calls)}; "
            "was it printed by another test?"
        )
    execution = problem.execute(Replay(token.choices), config.timing)
    note = None
    if _check(execution) != token.check:
        note = "the operations differ from those seen when the token was printed (the code changed?)"
    verdict = problem.judge(execution)
    failure = None
    if verdict is not None:
        failure = Failure(
            verdict.kind, verdict.summary, verdict.detail, 0, execution,
            format_history(problem.calls, execution.outcomes), token.encode(),
            execution.trace.preemptions, False, 0, True,
        )  # fmt: skip
    return RaceReport(
        strategy="replay", seed=config.seed, schedules=1, budget=1, distinct=1, complete=False, bounded=False,
        elapsed=time.monotonic() - started, stopped=Stop.REPLAY, failure=failure, replayed=token.encode(), note=note,
    )  # fmt: skip


def _evidence(
    problem: Problem, config: RaceConfig, run: int, index: int, execution: Execution, verdict: _Verdict
) -> Failure:
    found = execution.trace.preemptions
    best, best_verdict, minimal, tried = execution, verdict, False, 0
    if config.shrink and execution.hang is None:
        best, best_verdict, minimal, tried = _shrink(problem, config, execution, verdict)
    token = problem.token_for(run, best)
    verified = False
    if best.hang is None:
        again = problem.execute(Replay(best.choices), config.timing)
        again_verdict = problem.judge(again)
        verified = (
            again_verdict is not None
            and again_verdict.signature == best_verdict.signature
            and _check(again) == _check(best)
        )
    return Failure(
        best_verdict.kind, best_verdict.summary, best_verdict.detail, index, best,
        format_history(problem.calls, best.outcomes), token, found, minimal, tried, verified,
    )  # fmt: skip


def _candidates(choices: Sequence[Choice], preempted: Sequence[bool]) -> list[list[Choice]]:
    """Schedules with one preemption taken out: the preempted thread keeps running instead, for
    its next run of steps, or to its end, or everything after runs without preemption."""
    out = []
    for i in range(len(choices) - 1, 0, -1):
        if not preempted[i]:
            continue
        kept = choices[i - 1].thread
        later = [j for j in range(i, len(choices)) if choices[j].thread == kept]
        if later:
            j = later[0]
            k = j
            while k < len(choices) and choices[k].thread == kept:
                k += 1
            out.append([*choices[:i], *choices[j:k], *choices[i:j], *choices[k:]])
            rest = [c for c in choices[i:] if c.thread != kept]
            out.append([*choices[:i], *(choices[j] for j in later), *rest])
        out.append([*choices[:i], replace(choices[i], thread=kept)])
    return out


def _preempted(execution: Execution) -> list[bool]:
    return [s.preemption for s in execution.trace.steps if s.kind is not StepKind.RELEASE]


def _shrink(
    problem: Problem, config: RaceConfig, execution: Execution, verdict: _Verdict
) -> tuple[Execution, _Verdict, bool, int]:
    """Fewest preemptions that still fail the same way: greedy removal, then a bounded exhaustive
    search below the best count, which (when it completes) proves the result minimal."""
    deadline = time.monotonic() + config.shrink_seconds
    budget = config.shrink_schedules
    tried = 0
    best, best_verdict = execution, verdict

    def attempt(chooser: Chooser) -> tuple[Execution, _Verdict] | None:
        nonlocal tried
        tried += 1
        candidate = problem.execute(chooser, config.timing)
        found = problem.judge(candidate)
        if found is not None and found.signature == verdict.signature and candidate.hang is None:
            return candidate, found
        return None

    improved = True
    while improved and best.trace.preemptions > 0:
        improved = False
        for choices in _candidates(best.choices, _preempted(best)):
            if tried >= budget or time.monotonic() >= deadline:
                return best, best_verdict, False, tried
            result = attempt(Guided(choices))
            if result is not None and result[0].trace.preemptions < best.trace.preemptions:
                best, best_verdict = result
                improved = True
                break
    while best.trace.preemptions > 0:
        search = Exhaustive(best.trace.preemptions - 1)
        found_lower = False
        while (chooser := search.schedule(tried)) is not None:
            if tried >= budget or time.monotonic() >= deadline:
                return best, best_verdict, False, tried
            result = attempt(chooser)
            search.finished(chooser, 0)
            if result is not None:
                best, best_verdict = result
                found_lower = True
                break
        if not found_lower:
            return best, best_verdict, True, tried
    return best, best_verdict, True, tried


def format_failure(report: RaceReport, replay_command: str | None = None) -> str:
    failure = report.failure
    assert failure is not None
    lines = [f"race: {failure.summary}"]
    if failure.kind is FailureKind.UNSCHEDULED:
        lines.append(
            f"  {report.distinct} distinct schedule(s) of {report.schedules} tried ({report.strategy}); the race "
            "cannot pass what it did not interleave"
        )
        lines.append(ESCAPE_HELP)
        return "\n".join(lines)
    if report.replayed is not None:
        lines.append(f"  replayed from token {report.replayed}")
    else:
        lines.append(
            f"  found by {report.strategy} at schedule {failure.schedule} of a budget of {report.budget} "
            f"({report.elapsed:.2f}s, shrinking included)"
        )
    if failure.execution.hang is None:
        shrink = f"{failure.preemptions} preemption(s)"
        if failure.preemptions == 0:
            shrink = "no preemption needed: the operations fail even one after another in this order"
        elif failure.found_preemptions != failure.preemptions:
            shrink = f"shrunk from {failure.found_preemptions} to {failure.preemptions} preemption(s)"
        if failure.minimal and failure.preemptions:
            shrink += "; minimal: no schedule with fewer preemptions fails this way"
        lines.append(f"interleaving ({shrink}):")
    else:
        lines.append("interleaving (until the hang):")
    lines.append(failure.execution.trace.format())
    lines.append("history (invoke / result per operation; @ = step):")
    lines.append(failure.history)
    if failure.detail:
        lines.append(failure.detail)
    if report.note:
        lines.append(f"note: {report.note}")
    verified = "reproduced on re-run" if failure.replay_verified else "NOT reproduced on re-run"
    if failure.execution.hang is not None:
        verified = "a hang is not re-run"
    lines.append(f"replay token ({verified}): {failure.token}")
    if replay_command:
        lines.append(f"replay: {replay_command}")
    return "\n".join(lines)
