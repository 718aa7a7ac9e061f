"""Round order, calibration and stopping rule of a paired A/B measurement. Pure: the two sides are
anything with ``calibrate(min_round_time)`` and ``round(loops, keep)``, so the rule is tested without processes.

Rounds go in blocks ``A B B A`` then ``B A A B`` (and so on): a drift that is linear within a
block cancels in its ratio ``(B1 + B2) / (A1 + A2)``, and neither side is always first. Both sides
run the same loop count: each calibrates once and the smaller count is used by both, so that the
slower side's rounds last about ``min_round_time`` (longer rounds are preempted more often).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from statistics import median
from typing import Final, Protocol

from ..errors import MeasurementError
from ..stats import percentile


class Side(str, Enum):
    """The two sides of a paired run: the base revision's tree and the current working tree."""

    BASE = "base"
    CURRENT = "current"

    def __str__(self) -> str:
        return self.value

    @property
    def other(self) -> Side:
        return Side.CURRENT if self is Side.BASE else Side.BASE


class Stopped(str, Enum):
    """Why a test's paired rounds stopped."""

    TIME = "time"  # enough undisturbed blocks and the time
    BLOCKS = "blocks"  # the most blocks
    DISTURBED = "disturbed"  # twice the time, too few undisturbed blocks
    WALL_TIME = "wall time"  # the wall-clock cap
    TIME_LIMIT = "time limit"  # the test's time limit


#: shorthands of the two sides
BASE: Final = Side.BASE
CURRENT: Final = Side.CURRENT

#: measuring goes on up to this many times ``max_time`` to collect undisturbed blocks
PATIENCE = 2
#: with fewer undisturbed blocks than this (or than min_blocks), the disturbed ones are judged too
MIN_CLEAN = 8
#: rounds not preempted that a side needs for its own figure of usual off-CPU time
MIN_GAPS = 3
SIDES = tuple(Side)

#: the order of the four rounds of block ``i``: ABBA, then BAAB, alternating
_ORDERS = ((BASE, CURRENT, CURRENT, BASE), (CURRENT, BASE, BASE, CURRENT))


def block_order(index: int) -> tuple[Side, Side, Side, Side]:
    return _ORDERS[index % 2]


@dataclass(frozen=True)
class Round:
    """One round as a worker measured it."""

    ns: int  #: elapsed (wall-clock) nanoseconds
    #: involuntary context switches the worker suffered meanwhile (0 when the platform cannot tell)
    switches: int = 0
    #: the worker thread's CPU nanoseconds (-1 when the platform cannot tell)
    cpu_ns: int = -1


class RoundRunner(Protocol):
    def calibrate(self, min_round_time: float) -> int:
        """The loop count whose round lasts at least ``min_round_time`` seconds."""
        ...

    def round(self, loops: int, keep: bool) -> Round:
        """Run ``loops`` calls."""
        ...


@dataclass(frozen=True)
class PairedSettings:
    """How long a paired measurement lasts. ``max_time`` and ``warmup_time`` are per side."""

    min_blocks: int = 16
    max_blocks: int = 5_000
    max_time: float = 1.0
    warmup_time: float = 0.05
    min_round_time: float = 100e-6
    #: the rounds of one test stop when the next block would end past this (seconds)
    time_limit: float = 120.0

    def __post_init__(self) -> None:
        if self.min_blocks < 1 or self.max_blocks < self.min_blocks:
            raise MeasurementError(
                f"paired blocks: need 1 <= min_blocks ({self.min_blocks}) <= max_blocks ({self.max_blocks})"
            )
        if self.max_time < 0 or self.warmup_time < 0 or self.min_round_time <= 0 or self.time_limit <= 0:
            raise MeasurementError("paired timing: max_time and warmup_time >= 0; min_round_time, time_limit > 0")


@dataclass(frozen=True)
class PairedTest:
    """What the paired measurement of one test gave (or why it gave nothing)."""

    nodeid: str
    loops: int = 0
    #: seconds per call of every kept round, per side, in the order run
    base: tuple[float, ...] = ()
    current: tuple[float, ...] = ()
    #: log((B1 + B2) / (A1 + A2)) of each judged block: positive means the current side is slower
    log_ratios: tuple[float, ...] = ()
    #: blocks in which a worker was preempted (left out when enough others are undisturbed)
    disturbed: int = 0
    #: how many of them were judged all the same (too few undisturbed blocks), over all pairs
    disturbed_kept: int = 0
    #: ... with each preempted round counted as its CPU time plus its side's usual off-CPU time
    #: (:func:`corrected_rounds`), not as the wall time that holds the other process's time slice
    disturbed_corrected: bool = False
    #: the block log ratios of the same test measured again in fresh pairs of workers
    extra_pairs: tuple[tuple[float, ...], ...] = ()
    stopped: Stopped | None = None  # why the rounds stopped
    #: set when the test is not judged: failed on a side, nothing timed, one side only, ...
    problem: str = ""
    #: not comparing it is expected (skipped on both sides, whole calls turned off): it does not
    #: make the run incomplete
    optional: bool = False
    #: the side the test exists on, when only on one
    only: Side | None = None
    elapsed: float = 0.0

    @property
    def blocks(self) -> int:
        return len(self.log_ratios)

    @property
    def disturbed_judged(self) -> bool:
        """Too few undisturbed blocks (in some pair): disturbed ones were judged too."""
        return self.disturbed_kept > 0

    @property
    def not_compared(self) -> bool:
        """Selected on both sides, but not judged: the run is incomplete without it."""
        return (bool(self.problem) or not self.log_ratios) and not self.only and not self.optional

    @property
    def pair_shifts(self) -> tuple[float, ...]:
        """The median block log ratio of each pair of workers that measured the test, first pair first."""
        return tuple(percentile(pair, 50) for pair in (self.log_ratios, *self.extra_pairs) if pair)


def measure_paired(
    nodeid: str,
    sides: dict[Side, RoundRunner],
    settings: PairedSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[int], None] | None = None,
) -> PairedTest:
    """Calibrate, warm up and run ABBA blocks on both sides until the stopping rule holds: at
    least ``min_blocks`` undisturbed blocks and ``2 * max_time`` of rounds on the two sides
    together (so a side made 20x slower does not make the test 20x longer).

    A block in which a worker was preempted (an involuntary context switch during one of its
    rounds: another process ran on the shared CPU) is *disturbed*: a preempted round holds the
    other process's time slice, several milliseconds, and would bias the ratio towards the side
    with the longer rounds. Only undisturbed blocks are judged, when there are ``min_blocks`` of
    them; measuring goes on past ``max_time`` (up to :data:`PATIENCE` times it) to collect them.
    """
    started = clock()
    # always calibrated: a slow first call (a cold cache) says nothing about the calls after it
    loops = min(sides[side].calibrate(settings.min_round_time) for side in SIDES)
    spent = dict.fromkeys(SIDES, 0)
    warm = dict.fromkeys(SIDES, 0)
    while min(warm.values()) < settings.warmup_time * 1e9 or not all(warm.values()):
        for side in SIDES:
            warm[side] += max(1, sides[side].round(loops, False).ns)
        if clock() - started > settings.time_limit:
            break
    kept: dict[Side, list[float]] = {side: [] for side in SIDES}
    clean: list[float] = []
    clean_rounds: list[tuple[Side, Round]] = []
    disturbed: list[list[tuple[Side, Round]]] = []  # the rounds of each, to correct them if judged
    stopped = Stopped.BLOCKS
    last_block = 0.0
    while len(clean) + len(disturbed) < settings.max_blocks:
        now = clock()
        if clean or disturbed:
            if now - started + last_block > settings.time_limit:
                stopped = Stopped.TIME_LIMIT
                break
            total = sum(spent.values())
            if len(clean) >= settings.min_blocks and total >= 2 * settings.max_time * 1e9:
                stopped = Stopped.TIME
                break
            if total >= 2 * PATIENCE * settings.max_time * 1e9 and len(clean) + len(disturbed) >= settings.min_blocks:
                stopped = Stopped.DISTURBED
                break
            wall = now - started
            if (wall >= 4 * PATIENCE * settings.max_time and len(clean) >= settings.min_blocks) or (
                wall >= 16 * PATIENCE * settings.max_time and len(clean) + len(disturbed) >= settings.min_blocks
            ):
                # rounds whose untimed part (pytest-benchmark's setup, the messages, a busy machine's
                # waits) dwarfs the timed one: enough undisturbed blocks, or far past the budget
                stopped = Stopped.WALL_TIME
                break
        rounds = []
        for side in block_order(len(clean) + len(disturbed)):
            measured = sides[side].round(loops, True)
            rounds.append((side, measured))
            spent[side] += measured.ns
            kept[side].append(measured.ns * 1e-9 / loops)
        if any(measured.switches for _, measured in rounds):
            disturbed.append(rounds)
        else:
            clean.append(block_ratio(rounds))
            clean_rounds += rounds
        last_block = clock() - now
        if progress is not None:
            progress(len(clean))
    use_all = len(clean) < min(settings.min_blocks, MIN_CLEAN) and bool(disturbed)
    judged = clean
    corrected = False
    if use_all:
        every_round = [r for block in disturbed for r in block]
        corrected = all(measured.cpu_ns >= 0 for _, measured in every_round)
        fixed = corrected_rounds(every_round, clean_rounds) if corrected else every_round
        judged = clean + [block_ratio(fixed[i : i + 4]) for i in range(0, len(fixed), 4)]
    return PairedTest(
        nodeid=nodeid,
        loops=loops,
        base=tuple(kept[BASE]),
        current=tuple(kept[CURRENT]),
        log_ratios=tuple(judged),
        disturbed=len(disturbed),
        disturbed_kept=len(disturbed) if use_all else 0,
        disturbed_corrected=corrected,
        stopped=stopped,
        elapsed=clock() - started,
    )


def block_ratio(rounds: list[tuple[Side, Round]]) -> float:
    """``log((B1 + B2) / (A1 + A2))`` of one block: positive when the current side is slower."""
    total = dict.fromkeys(SIDES, 0)
    for side, measured in rounds:
        total[side] += measured.ns
    return math.log(max(total[CURRENT], 1) / max(total[BASE], 1))


def corrected_rounds(
    rounds: list[tuple[Side, Round]], clean_rounds: list[tuple[Side, Round]]
) -> list[tuple[Side, Round]]:
    """``rounds`` with each preempted one's time replaced by its CPU time plus its side's usual
    off-CPU time (never more than it measured).

    A preempted round's wall time holds another process's time slice (milliseconds, landing on
    either side at random); its CPU time does not. A side's usual off-CPU time (waiting on I/O, on
    a server, on a sleep: what the code under test does besides computing) is the median of
    ``wall - CPU`` over its rounds that were not preempted, so that a change in it between the
    sides is still seen. A side with too few such rounds gets the figure of both sides' together;
    with too few on both, the smallest ``wall - CPU`` of any round, for both sides alike: a
    side's own smallest holds its own preemptions, and one side preempted in every round would
    otherwise look slower by them."""
    gaps: dict[Side, list[int]] = {side: [] for side in SIDES}
    for side, m in (*rounds, *clean_rounds):
        if not m.switches:
            gaps[side].append(m.ns - m.cpu_ns)
    pooled = [gap for side in SIDES for gap in gaps[side]]
    least = min((m.ns - m.cpu_ns for _, m in rounds), default=0)
    shared = median(pooled) if len(pooled) >= MIN_GAPS else least
    usual = {side: max(0, int(median(gaps[side]) if len(gaps[side]) >= MIN_GAPS else shared)) for side in SIDES}
    return [
        (side, replace(m, ns=min(m.ns, m.cpu_ns + usual[side]), switches=0) if m.switches else m) for side, m in rounds
    ]
