"""What changed between two CPU profiles of the same call: the base's and the current one's.

Pure (no I/O, no pytest). :func:`diff_profiles` matches the functions of the two profiles' tables
by name and file (the last two parts of its path: the two sides are usually checked out in
different directories, and lines move when code is edited), and ranks them by how much their own
time per measured call changed, largest change first. Own time is also given as a share of each
side's total, which does not depend on how fast the machine was while profiling. Each side's hot
path comes with it.

A function missing from one side's table (it did not run there, or was below the table's
cut-off) counts as 0 there; its value is ``None`` in the diff.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .evidence import TOP_FUNCTIONS, CallNode, CpuProfile, FunctionTime, JsonObject


def relative_to(profile: CpuProfile, root: str) -> CpuProfile:
    """``profile`` with the places under ``root`` (a side's checkout) written relative to it, so
    that both sides of a comparison name a file alike (``src/pkg/mod.py:12``)."""
    prefix = root.rstrip("/\\") + "/"

    def place(location: str) -> str:
        return location[len(prefix) :] if location.startswith(prefix) else location

    def node(n: CallNode) -> CallNode:
        return replace(n, location=place(n.location), children=tuple(node(c) for c in n.children))

    return replace(
        profile,
        tree=tuple(node(n) for n in profile.tree),
        top=tuple(row._replace(location=place(row.location)) for row in profile.top),
    )


def function_key(function: str, location: str) -> tuple[str, str]:
    """How a function is recognised on both sides: its name and the last two parts of its file."""
    path = location.rsplit(":", 1)[0] if location.rsplit(":", 1)[-1].isdigit() else location
    parts = path.replace("\\", "/").split("/")
    return function, "/".join(parts[-2:])


@dataclass(frozen=True)
class FunctionChange:
    """One function's own time on both sides (``None``: not in that side's table)."""

    function: str
    location: str  # the current side's place, or the base's for a function gone
    base_per_call: float | None  # own seconds per call of the measured call
    current_per_call: float | None
    base_share: float | None  # own time / the side's profiled total
    current_share: float | None

    @property
    def per_call_change(self) -> float:
        """Seconds of own time per measured call gained (negative: lost)."""
        return (self.current_per_call or 0.0) - (self.base_per_call or 0.0)

    @property
    def share_change(self) -> float:
        """Change of the own-time share, in points of the total (0.05: 5 points)."""
        return (self.current_share or 0.0) - (self.base_share or 0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "location": self.location,
            "base_per_call": self.base_per_call,
            "current_per_call": self.current_per_call,
            "base_share": self.base_share,
            "current_share": self.current_share,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> FunctionChange:
        return cls(
            str(data["function"]),
            str(data["location"]),
            data.get("base_per_call"),
            data.get("current_per_call"),
            data.get("base_share"),
            data.get("current_share"),
        )


@dataclass(frozen=True)
class PathStep:
    """One step of a hot path: a function and its share of the side's total."""

    function: str
    location: str
    share: float

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "location": self.location, "share": self.share}

    @classmethod
    def from_json(cls, data: JsonObject) -> PathStep:
        return cls(str(data["function"]), str(data["location"]), float(data["share"]))


@dataclass(frozen=True)
class ProfileDiff:
    """Two profiles of one measured call compared: the functions whose own time changed most
    (``changes``, largest change of own seconds per call first) and each side's hot path."""

    base_profiler: str
    current_profiler: str
    base_per_call: float  # profiled seconds per measured call (profiler overhead included)
    current_per_call: float
    changes: tuple[FunctionChange, ...]
    base_hot_path: tuple[PathStep, ...]
    current_hot_path: tuple[PathStep, ...]
    clock: str = "wall"  # the profiles' clock ("cpu": CPU time); "mixed" when they differ

    @property
    def top(self) -> FunctionChange | None:
        """The function whose own time grew most, if any grew."""
        grown = [c for c in self.changes if c.per_call_change > 0]
        return max(grown, key=lambda c: c.per_call_change) if grown else None

    def to_json(self) -> dict[str, Any]:
        return {
            "base_profiler": self.base_profiler,
            "current_profiler": self.current_profiler,
            "base_per_call": self.base_per_call,
            "current_per_call": self.current_per_call,
            "changes": [c.to_json() for c in self.changes],
            "base_hot_path": [s.to_json() for s in self.base_hot_path],
            "current_hot_path": [s.to_json() for s in self.current_hot_path],
            "clock": self.clock,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> ProfileDiff:
        return cls(
            str(data["base_profiler"]),
            str(data["current_profiler"]),
            float(data["base_per_call"]),
            float(data["current_per_call"]),
            tuple(FunctionChange.from_json(c) for c in data.get("changes") or ()),
            tuple(PathStep.from_json(s) for s in data.get("base_hot_path") or ()),
            tuple(PathStep.from_json(s) for s in data.get("current_hot_path") or ()),
            clock=str(data.get("clock") or "wall"),
        )


def _by_key(profile: CpuProfile) -> dict[tuple[str, str], FunctionTime]:
    rows: dict[tuple[str, str], FunctionTime] = {}
    for row in profile.top:
        key = function_key(row.function, row.location)
        if key in rows:  # the same name in two files whose paths end alike: summed
            prior = rows[key]
            row = prior._replace(own=prior.own + row.own, cumulative=max(prior.cumulative, row.cumulative))
        rows[key] = row
    return rows


def _cut_off_bound(profile: CpuProfile) -> float:
    """The most own time (seconds, all calls) a function missing from ``profile.top`` can have
    had: the last row's when the table is full (it was cut off), 0 otherwise."""
    if len(profile.top) < TOP_FUNCTIONS:
        return 0.0
    return min(row.own for row in profile.top)


def _hot_path(profile: CpuProfile) -> tuple[PathStep, ...]:
    total = profile.total or 1e-12
    return tuple(PathStep(n.function, n.location, n.cumulative / total) for n in profile.hot_path())


def diff_profiles(base: CpuProfile, current: CpuProfile, *, limit: int = 15) -> ProfileDiff:
    """The functions whose own time changed most between ``base`` and ``current`` (at most
    ``limit``), and each side's hot path."""
    base_rows, current_rows = _by_key(base), _by_key(current)
    base_calls, current_calls = max(base.calls, 1), max(current.calls, 1)
    base_total, current_total = base.total or 1e-12, current.total or 1e-12
    # a function missing from a side's full table was cut off there with less own time than its
    # last row, not absent: ranked against that bound rather than against 0
    base_floor, current_floor = _cut_off_bound(base) / base_calls, _cut_off_bound(current) / current_calls
    changes = []
    for key in dict.fromkeys([*current_rows, *base_rows]):
        before, after = base_rows.get(key), current_rows.get(key)
        shown = after if after is not None else before
        assert shown is not None
        changes.append(
            FunctionChange(
                function=shown.function,
                location=shown.location,
                base_per_call=before.own / base_calls if before is not None else None,
                current_per_call=after.own / current_calls if after is not None else None,
                base_share=before.own / base_total if before is not None else None,
                current_share=after.own / current_total if after is not None else None,
            )
        )

    def ranked(c: FunctionChange) -> float:
        before = c.base_per_call if c.base_per_call is not None else min(base_floor, c.current_per_call or 0.0)
        after = c.current_per_call if c.current_per_call is not None else min(current_floor, c.base_per_call or 0.0)
        return abs(after - before)

    changes.sort(key=lambda c: (-ranked(c), -abs(c.share_change), c.function))
    return ProfileDiff(
        base_profiler=base.profiler,
        current_profiler=current.profiler,
        base_per_call=base.total / base_calls,
        current_per_call=current.total / current_calls,
        changes=tuple(changes[:limit]),
        base_hot_path=_hot_path(base),
        current_hot_path=_hot_path(current),
        clock=base.clock if base.clock == current.clock else "mixed",
    )
