"""Replay tokens: the executed choices of one schedule, in a shell-safe string.

``v1-<run>-<threads>-<choices>-<check>``: ``run`` is which ``race.run`` call of the test the
token belongs to, ``choices`` one character per step (the chosen thread, ``0-9a-z``), followed by
``_`` when a fault was injected at that step, and ``check`` four hex digits of a hash of the
operations seen, so that a token used on changed code is told apart from a reproduction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import RaceError

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
MAX_THREADS = len(_DIGITS)
VERSION = "v1"


@dataclass(frozen=True)
class Choice:
    thread: int
    fault: bool = False


@dataclass(frozen=True)
class ReplayToken:
    run: int
    threads: int
    choices: tuple[Choice, ...]
    check: str

    def encode(self) -> str:
        body = "".join(_DIGITS[c.thread] + ("_" if c.fault else "") for c in self.choices)
        return f"{VERSION}-{self.run}-{self.threads}-{body}-{self.check}"


def check_of(labels: Iterable[str]) -> str:
    return hashlib.sha1("\n".join(labels).encode()).hexdigest()[:4]


def decode(text: str) -> ReplayToken:
    """Parse a token; a bad one is a :class:`RaceError` saying what is expected."""
    hint = "expected a token printed by a failing race test, e.g. v1-0-2-0101-3fa2"
    parts = str(text).strip().split("-")
    if len(parts) != 5 or parts[0] != VERSION:
        raise RaceError(f"replay token {text!r} does not parse; {hint}")
    _, run, threads, body, check = parts
    if not (run.isdigit() and threads.isdigit()) or len(check) != 4:
        raise RaceError(f"replay token {text!r} does not parse; {hint}")
    n = int(threads)
    if not 1 <= n <= MAX_THREADS:
        raise RaceError(f"replay token {text!r}: {n} threads; accepted 1 to {MAX_THREADS}")
    choices: list[Choice] = []
    for char in body:
        if char == "_":
            if not choices or choices[-1].fault:
                raise RaceError(f"replay token {text!r}: misplaced '_'; {hint}")
            choices[-1] = Choice(choices[-1].thread, True)
            continue
        index = _DIGITS.find(char)
        if index < 0 or index >= n:
            raise RaceError(f"replay token {text!r}: {char!r} is not a thread of {n}; {hint}")
        choices.append(Choice(index))
    return ReplayToken(int(run), n, tuple(choices), check)
