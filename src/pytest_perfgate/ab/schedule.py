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
from dataclasses import dataclass
from typing import Protocol

from ..errors import MeasurementError

BASE, CURRENT = "base", "current"

#: measuring goes on up to this many times ``max_time`` to collect undisturbed blocks
PATIENCE = 2
#: with fewer undisturbed blocks than this (or than min_blocks), the disturbed ones are judged too
MIN_CLEAN = 8
SIDES = (BASE, CURRENT)

#: the order of the four rounds of block ``i``: ABBA, then BAAB, alternating
_ORDERS = ((BASE, CURRENT, CURRENT, BASE), (CURRENT, BASE, BASE, CURRENT))


def block_order(index: int) -> tuple[str, str, str, str]:
    return _ORDERS[index % 2]


class RoundRunner(Protocol):
    def calibrate(self, min_round_time: float) -> int:
        """The loop count whose round lasts at least ``min_round_time`` seconds."""
        ...

    def round(self, loops: int, keep: bool) -> tuple[int, int]:
        """Run ``loops`` calls: the elapsed nanoseconds, and the involuntary context switches the
        worker suffered meanwhile (0 when the platform cannot tell)."""
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
    #: too few undisturbed blocks: the disturbed ones are judged too (less reliable)
    disturbed_judged: bool = False
    #: the block log ratios of the same test measured again in fresh pairs of workers
    extra_pairs: tuple[tuple[float, ...], ...] = ()
    stopped: str = ""  # why the rounds stopped ("time", "blocks", "time limit")
    #: set when the test is not judged: failed on a side, no perf call, one side only, ...
    problem: str = ""
    #: BASE or CURRENT when the test exists on that side only
    only: str = ""
    elapsed: float = 0.0

    @property
    def blocks(self) -> int:
        return len(self.log_ratios)



def measure_paired(
    nodeid: str,
    sides: dict[str, RoundRunner],
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
            warm[side] += max(1, sides[side].round(loops, False)[0])
        if clock() - started > settings.time_limit:
            break
    kept: dict[str, list[float]] = {side: [] for side in SIDES}
    clean: list[float] = []
    disturbed: list[float] = []
    stopped = "blocks"
    last_block = 0.0
    while len(clean) + len(disturbed) < settings.max_blocks:
        now = clock()
        if clean or disturbed:
            if now - started + last_block > settings.time_limit:
                stopped = "time limit"
                break
            total = sum(spent.values())
            if len(clean) >= settings.min_blocks and total >= 2 * settings.max_time * 1e9:
                stopped = "time"
                break
            if total >= 2 * PATIENCE * settings.max_time * 1e9 and len(clean) + len(disturbed) >= settings.min_blocks:
                stopped = "disturbed"
                break
        block: dict[str, int] = dict.fromkeys(SIDES, 0)
        switches = 0
        for side in block_order(len(clean) + len(disturbed)):
            elapsed, preempted = sides[side].round(loops, True)
            block[side] += elapsed
            spent[side] += elapsed
            switches += preempted
            kept[side].append(elapsed * 1e-9 / loops)
        ratio = math.log(max(block[CURRENT], 1) / max(block[BASE], 1))
        (disturbed if switches else clean).append(ratio)
        last_block = clock() - now
        if progress is not None:
            progress(len(clean))
    use_all = len(clean) < min(settings.min_blocks, MIN_CLEAN)
    return PairedTest(
        nodeid=nodeid,
        loops=loops,
        base=tuple(kept[BASE]),
        current=tuple(kept[CURRENT]),
        log_ratios=tuple(clean + disturbed if use_all else clean),
        disturbed=len(disturbed),
        disturbed_judged=use_all and bool(disturbed),
        stopped=stopped,
        elapsed=clock() - started,
    )
