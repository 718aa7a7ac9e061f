"""What a schedule did: scheduling points, steps, traces and their readable form (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass
from enum import Enum


class StepKind(Enum):
    """Why a thread got control at a step."""

    RUN = "run"  # chosen at a scheduling point
    RELEASE = "release"  # the running thread was left in flight inside a blocking call
    RETURN = "return"  # a thread came back from an in-flight call and was chosen


@dataclass(frozen=True)
class PointInfo:
    """A scheduling point: what a thread is about to do when it next gets control."""

    operation: str
    collection: str | None = None
    shape: str | None = None

    def describe(self) -> str:
        target = f"{self.collection}.{self.operation}" if self.collection else self.operation
        return f"{target} {self.shape}" if self.shape else target


START = PointInfo("start")


@dataclass(frozen=True)
class Step:
    index: int
    thread: int
    point: PointInfo
    kind: StepKind = StepKind.RUN
    preemption: bool = False
    fault: str | None = None


@dataclass(frozen=True)
class Trace:
    """The executed interleaving of one schedule."""

    threads: tuple[str, ...]
    steps: tuple[Step, ...]

    @property
    def preemptions(self) -> int:
        return sum(1 for step in self.steps if step.preemption)

    def format(self) -> str:
        width = max((len(name) for name in self.threads), default=4)
        lines = [f"  {'step':>4}  {'thread':<{width + 4}}  operation"]
        for step in self.steps:
            mark = "*" if step.preemption else " "
            what = step.point.describe()
            if step.kind is StepKind.RELEASE:
                what = f"(in flight, control released) {what}"
            elif step.kind is StepKind.RETURN:
                what = f"(returned from in-flight call) {what}"
            if step.fault:
                what += f"  <- injected {step.fault}"
            lines.append(f" {mark}{step.index:>4}  T{step.thread} {self.threads[step.thread]:<{width + 1}}  {what}")
        if any(step.preemption for step in self.steps):
            lines.append("  (* = preemption: the running thread could have continued but another was chosen)")
        return "\n".join(lines)


_SCALARS = (str, int, float, bool, bytes, type(None))


def shape_of(value: object, depth: int = 0) -> str:
    """A filter's shape: keys and operators kept, values replaced by ``?``."""
    if depth > 6:
        return "..."
    if isinstance(value, Mapping):
        inner = ", ".join(f"{key}: {shape_of(item, depth + 1)}" for key, item in value.items())
        return "{" + inner + "}"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, _SCALARS) for item in value):
            return "[?]"
        return "[" + ", ".join(shape_of(item, depth + 1) for item in value) + "]"
    return "?"


def call_shape(operation: str, args: Sequence[object], kwargs: Mapping[str, object]) -> str | None:
    """The shape shown in a trace for a collection method call."""
    if operation in ("insert_one",):
        return None
    if operation == "insert_many":
        docs = args[0] if args else kwargs.get("documents")
        return f"({len(docs)} docs)" if isinstance(docs, Sized) else None
    if operation == "bulk_write":
        requests = args[0] if args else kwargs.get("requests")
        return f"({len(requests)} requests)" if isinstance(requests, Sized) else None
    if operation == "aggregate":
        pipeline = args[0] if args else kwargs.get("pipeline")
        if isinstance(pipeline, (list, tuple)):
            return "[" + ", ".join(next(iter(stage), "?") for stage in pipeline if isinstance(stage, Mapping)) + "]"
        return None
    if operation == "distinct":
        flt = args[1] if len(args) > 1 else kwargs.get("filter")
        return shape_of(flt) if flt is not None else None
    flt = args[0] if args else kwargs.get("filter")
    return shape_of(flt) if flt is not None else None
