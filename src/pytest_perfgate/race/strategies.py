"""Exploration strategies: who runs next at each scheduling point (pure, seeded).

A *strategy* hands out one *chooser* per schedule; the chooser makes every decision of that
schedule. ``random`` is a seeded random walk, ``pct`` is probabilistic concurrency testing
(random priorities plus ``depth - 1`` priority change points), ``exhaustive`` enumerates every
interleaving with at most ``preemption_bound`` preemptions (depth-first, stateless: each
schedule re-executes from the initial state). ``Replay`` and ``Guided`` follow given choices.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import RaceError
from .token import Choice

STRATEGIES = ("random", "pct", "exhaustive")


def ordered_options(enabled: Sequence[int], current: int | None) -> tuple[int, ...]:
    """Enabled threads, the non-preemptive choice first (the running thread, else the lowest)."""
    if current is not None and current in enabled:
        return (current, *sorted(t for t in enabled if t != current))
    return tuple(sorted(enabled))


class Chooser(Protocol):
    def choose(self, step: int, enabled: Sequence[int], current: int | None) -> int: ...

    def inject(self, step: int, probability: float) -> bool: ...


class Strategy(Protocol):
    name: str

    def schedule(self, index: int) -> Chooser | None:
        """The chooser for schedule ``index``, or ``None`` when there is nothing left to explore."""

    def finished(self, chooser: Chooser, steps: int) -> None:
        """Feedback once a schedule has run (``steps`` decisions)."""

    @property
    def complete(self) -> bool:
        """True when every schedule in the strategy's space has been explored."""

    @property
    def bounded(self) -> bool:
        """True when a preemption bound left some interleavings out of the space."""

    def describe(self) -> str: ...


def _rng(seed: int, index: int, salt: str) -> random.Random:
    return random.Random(f"{salt}:{seed}:{index}")


# --------------------------------------------------------------------------- random walk


class _RandomChooser:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choose(self, step: int, enabled: Sequence[int], current: int | None) -> int:
        options = sorted(enabled)
        return options[self.rng.randrange(len(options))]

    def inject(self, step: int, probability: float) -> bool:
        return self.rng.random() < probability


class RandomWalk:
    name = "random"

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def schedule(self, index: int) -> Chooser | None:
        return _RandomChooser(_rng(self.seed, index, "walk"))

    def finished(self, chooser: Chooser, steps: int) -> None:
        return None

    complete = False
    bounded = False

    def describe(self) -> str:
        return f"random walk, seed {self.seed}"


# --------------------------------------------------------------------------- PCT


class _PctChooser:
    def __init__(self, rng: random.Random, threads: int, depth: int, horizon: int) -> None:
        self.rng = rng
        order = list(range(threads))
        rng.shuffle(order)
        # initial priorities depth .. depth+n-1; change points lower a thread to depth-1 .. 1
        self.priority = {thread: depth + rank for rank, thread in enumerate(order)}
        points = rng.sample(range(1, max(horizon, depth) + 1), depth - 1)
        self.change = {step: depth - 1 - i for i, step in enumerate(sorted(points))}

    def choose(self, step: int, enabled: Sequence[int], current: int | None) -> int:
        best = max(enabled, key=lambda t: self.priority.get(t, 0))
        if step in self.change:
            self.priority[best] = self.change[step]
            best = max(enabled, key=lambda t: self.priority.get(t, 0))
        return best

    def inject(self, step: int, probability: float) -> bool:
        return self.rng.random() < probability


class Pct:
    name = "pct"

    def __init__(self, seed: int, threads: int, depth: int) -> None:
        if depth < 1:
            raise RaceError(f"pct depth {depth!r}: accepted a whole number >= 1 (bug depth, e.g. 2 or 3)")
        self.seed = seed
        self.threads = threads
        self.depth = depth
        self.horizon = 4 * threads  # learnt: the longest schedule seen so far

    def schedule(self, index: int) -> Chooser | None:
        return _PctChooser(_rng(self.seed, index, "pct"), self.threads, self.depth, self.horizon)

    def finished(self, chooser: Chooser, steps: int) -> None:
        self.horizon = max(self.horizon, steps)

    complete = False
    bounded = False

    def describe(self) -> str:
        return f"PCT depth {self.depth}, seed {self.seed}"


# --------------------------------------------------------------------------- exhaustive


@dataclass
class _Frame:
    options: tuple[int, ...]  # thread ids, or 0/1 for a fault decision
    costs: tuple[int, ...]  # preemptions each option adds
    chosen: int = 0


@dataclass
class _DfsChooser:
    prefix: list[int]
    frames: list[_Frame] = field(default_factory=list)

    def _decide(self, options: tuple[int, ...], costs: tuple[int, ...]) -> int:
        depth = len(self.frames)
        index = self.prefix[depth] if depth < len(self.prefix) else 0
        if index >= len(options):
            raise RaceError(
                "exhaustive search: the operations did not repeat the same scheduling points from the same "
                "initial state (are they deterministic, and does `setup` reset all shared state?)"
            )
        self.frames.append(_Frame(options, costs, index))
        return options[index]

    def choose(self, step: int, enabled: Sequence[int], current: int | None) -> int:
        options = ordered_options(enabled, current)
        preemptive = current is not None and current in enabled
        costs = tuple(int(preemptive and t != current) for t in options)
        return self._decide(options, costs)

    def inject(self, step: int, probability: float) -> bool:
        return bool(self._decide((0, 1), (0, 0)))


class Exhaustive:
    name = "exhaustive"

    def __init__(self, preemption_bound: int | None) -> None:
        if preemption_bound is not None and preemption_bound < 0:
            raise RaceError(f"preemption_bound {preemption_bound!r}: accepted a whole number >= 0, or None")
        self.bound = preemption_bound
        self.prefix: list[int] | None = []
        self._bounded = False

    def schedule(self, index: int) -> Chooser | None:
        return None if self.prefix is None else _DfsChooser(list(self.prefix))

    def finished(self, chooser: Chooser, steps: int) -> None:
        assert isinstance(chooser, _DfsChooser)
        frames = chooser.frames
        spent = [0]
        for frame in frames:
            spent.append(spent[-1] + frame.costs[frame.chosen])
        for depth in range(len(frames) - 1, -1, -1):
            frame = frames[depth]
            for alt in range(frame.chosen + 1, len(frame.options)):
                if self.bound is None or spent[depth] + frame.costs[alt] <= self.bound:
                    self.prefix = [f.chosen for f in frames[:depth]] + [alt]
                    return
                self._bounded = True
        self.prefix = None

    @property
    def complete(self) -> bool:
        return self.prefix is None

    @property
    def bounded(self) -> bool:
        return self._bounded

    def describe(self) -> str:
        bound = "no preemption bound" if self.bound is None else f"preemption bound {self.bound}"
        return f"exhaustive, {bound}"


# --------------------------------------------------------------------------- given choices


class Replay:
    """Follow a token's choices exactly; any divergence is a :class:`RaceError`."""

    def __init__(self, choices: Sequence[Choice]) -> None:
        self.choices = tuple(choices)

    def choose(self, step: int, enabled: Sequence[int], current: int | None) -> int:
        if step >= len(self.choices):
            raise RaceError(
                f"replay token does not fit: the schedule needs a choice at step {step} but the token has "
                f"{len(self.choices)}; the code under test or the test changed since the token was printed"
            )
        thread = self.choices[step].thread
        if thread not in enabled:
            raise RaceError(
                f"replay token does not fit: at step {step} it chooses T{thread}, but only "
                f"{', '.join(f'T{t}' for t in sorted(enabled))} can run; the code under test or the test changed"
            )
        return thread

    def inject(self, step: int, probability: float) -> bool:
        return step < len(self.choices) and self.choices[step].fault


class Guided:
    """Follow given choices where they still apply, else run non-preemptively (for shrinking)."""

    def __init__(self, choices: Sequence[Choice]) -> None:
        self.choices = tuple(choices)

    def choose(self, step: int, enabled: Sequence[int], current: int | None) -> int:
        if step < len(self.choices) and self.choices[step].thread in enabled:
            return self.choices[step].thread
        return ordered_options(enabled, current)[0]

    def inject(self, step: int, probability: float) -> bool:
        return step < len(self.choices) and self.choices[step].fault


def make_strategy(name: str, *, seed: int, threads: int, depth: int, preemption_bound: int | None) -> Strategy:
    if name == "random":
        return RandomWalk(seed)
    if name == "pct":
        return Pct(seed, threads, depth)
    if name == "exhaustive":
        return Exhaustive(preemption_bound)
    raise RaceError(f"strategy {name!r} is not known; accepted: {', '.join(STRATEGIES)}")
