"""What a judged history is: series of per-run figures and the change points found in them.

A *series* is one figure of one test over the default branch's promoted runs
(:class:`SeriesKey`): the median time of ``tests/test_api.py::test_search``, or its instruction
count. Each promoted run gives it one :class:`Point` (the run's centre, spread and sample count,
the commit, ref and time the run was made at, and its environment fingerprint). A
:class:`ChangePoint` is the first run at a new level; it names the commit range in which the level
moved (last commit of the old level .. first commit of the new one), the size and direction, the
confidence, and whether the environment fingerprint changed in that range (then a runner image, an
interpreter or a dependency moved, not necessarily the code). :class:`History` is the whole result
(``perfgate history --json``): every series, the number of runs, and what was not judged and why.

Direction: every figure is lower-is-better (times, counts, bytes) unless its key says
``higher_is_better`` (throughput, rates): then a drop is the regression. ``change`` is always the
signed relative change of the level, ``(after - before) / before``.

JSON (:func:`history_to_dict`, :func:`history_from_dict`): ``schema`` ``"perfgate-history"``,
``schema_version`` 1. The runs are one table (``runs``: number, commit, ref, time, environment
digest), the environments another (digest -> fingerprint fields); each series keeps its points as
columns (run numbers, centres, spreads, counts), so 1,000 runs of 1,000 tests stay tens of MB.
Readers of version 1 ignore keys they do not know (newer writers add fields); unknown top-level
keys are kept in :attr:`History.extra` and written back. Anything else wrong is a
:class:`~pytest_perfgate.errors.ResultsFileError` naming the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import ResultsFileError

SCHEMA = "perfgate-history"
SCHEMA_VERSION = 1


class SeriesKind(str, Enum):
    """How a series is measured: decides the noise the detector expects."""

    #: a measurement that varies between runs on a shared machine: times, memory, rates
    #: (run-to-run spread 7-32% measured on shared runners)
    TIMING = "timing"
    #: a count that does not depend on the machine's load: instructions, allocations
    #: (spread < 0.1% with the same environment fingerprint)
    COUNTER = "counter"


class Direction(str, Enum):
    """Whether the new level is worse (regression) or better (improvement) than the old one."""

    REGRESSION = "regression"
    IMPROVEMENT = "improvement"


@dataclass(frozen=True, order=True)
class SeriesKey:
    """Which figure of which test a series follows.

    ``metric`` is the statistic for a timed series (``"median"`` of the ``time`` series) and the
    series name for anything else (``"instructions"``, ``"allocations"``, ``"mem_peak"``, a
    custom figure). ``unit`` is the base unit (``"s"``, ``"B"``, ``""`` for counts).
    """

    test: str
    metric: str
    unit: str
    kind: SeriesKind
    #: throughput-like figures (rates): a drop is the regression
    higher_is_better: bool = False

    @property
    def label(self) -> str:
        """``tests/test_api.py::test_search [median]``"""
        return f"{self.test} [{self.metric}]"

    @property
    def slug(self) -> str:
        """A short stable name for files and URLs (16 hex digits of a hash of test and metric)."""
        return hashlib.sha256(f"{self.test}\0{self.metric}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Environment:
    """An environment fingerprint: the fields (sorted by name) and their digest."""

    fields: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, fields: Mapping[str, Any] | None) -> Environment | None:
        """The environment of a run's ``metadata["fingerprint"]`` (None values dropped);
        None when there is none."""
        if not isinstance(fields, Mapping) or not fields:
            return None
        kept = tuple(sorted((str(k), str(v)) for k, v in fields.items() if v is not None))
        return cls(kept) if kept else None

    @cached_property
    def digest(self) -> str:
        """12 hex digits of a sha256 of the fields: equal digests, equal environments."""
        text = "\n".join(f"{k}={v}" for k, v in self.fields)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def as_dict(self) -> dict[str, str]:
        return dict(self.fields)


@dataclass(frozen=True)
class FieldChange:
    """One fingerprint field that differs between two runs ("" when absent on one side)."""

    field: str
    before: str
    after: str


def environment_changes(before: Environment | None, after: Environment | None) -> tuple[FieldChange, ...]:
    """The fingerprint fields that differ between two environments, by name; empty when either
    is unknown (None: nothing can be said) or they are equal."""
    if before is None or after is None or before == after:
        return ()
    old, new = before.as_dict(), after.as_dict()
    return tuple(
        FieldChange(name, old.get(name, ""), new.get(name, ""))
        for name in sorted(set(old) | set(new))
        if old.get(name, "") != new.get(name, "")
    )


@dataclass(frozen=True, slots=True)
class Point:
    """One stored run's figure in one series."""

    #: the run's number in the history (1, 2, ...: promotion order; the stored run file's number
    #: is :attr:`stored_run`)
    run: int
    commit: str | None
    ref: str | None
    #: when the run was made, ISO 8601 (the results file's ``metadata["created"]``)
    time: str | None
    #: the run's centre: the statistic ``metric`` names (median of a timed series; the median of
    #: the counted calls of a counter), in the key's base unit
    centre: float
    #: the standard deviation of the run's samples (base unit); 0 for one sample; None when not
    #: known (rebuilt from a summary that kept no samples)
    spread: float | None
    #: samples the run had
    count: int
    environment: Environment | None = None
    #: the stored run's file number in the baseline directory (``run-NNNNNN.json``); None when
    #: not known (the file was pruned long ago and the history did not record it)
    stored_run: int | None = None

    @property
    def environment_digest(self) -> str | None:
        return None if self.environment is None else self.environment.digest


@dataclass(frozen=True)
class CommitRange:
    """Where a level moved: after ``last_old`` (the last run at the old level) and at or before
    ``first_new`` (the first run at the new level). Commits are None when a run recorded none."""

    last_old_run: int
    last_old: str | None
    first_new_run: int
    first_new: str | None

    @property
    def text(self) -> str:
        """``abc12345..def67890`` (short shas); ``run 18..run 19`` when the runs recorded no commit
        (made outside CI and outside a git checkout)."""
        if self.last_old is None and self.first_new is None:
            return f"run {self.last_old_run}..run {self.first_new_run}"
        return f"{(self.last_old or '?')[:8]}..{(self.first_new or '?')[:8]}"


@dataclass(frozen=True)
class ChangePoint:
    """A step in one series: the level from ``index`` on differs from the level before it."""

    key: SeriesKey
    #: index into :attr:`SeriesHistory.points` of the first point at the new level
    index: int
    commits: CommitRange
    #: the levels (means of the centres) of the segment before and of the segment from ``index``
    #: (up to the next change point), base unit
    before: float
    after: float
    #: (after - before) / before; inf when before is 0 and after is not
    change: float
    direction: Direction
    #: the t test's two-sided p-value for the split; ``confidence`` is ``1 - p_value``
    p_value: float
    #: whether the environment fingerprint differs between the last run of the old level and the
    #: first of the new (then the step may be the runner, not the commit range)
    environment_changed: bool = False
    environment_fields: tuple[FieldChange, ...] = ()
    #: the newest level: nothing has moved the series since (an open change point)
    open: bool = False

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value

    @property
    def run(self) -> int:
        """The run number of the first point at the new level."""
        return self.commits.first_new_run

    @property
    def is_regression(self) -> bool:
        return self.direction is Direction.REGRESSION


@dataclass(frozen=True)
class SeriesHistory:
    """One series over the stored runs, judged."""

    key: SeriesKey
    #: the series' points, oldest first: all of them, or, judged from the judged state
    #: (``history.state.json``), its last points only (``earlier`` before them were not read)
    points: Sequence[Point]
    change_points: tuple[ChangePoint, ...] = ()
    #: the run-to-run noise of the series: a robust relative standard deviation of its centres
    #: within levels (0 for a series that never varies)
    noise: float | None = None
    #: the smallest relative step this series can show at the documented false-alarm rate
    #: (a step in the middle of its points); None when it has too few points to judge
    min_detectable_step: float | None = None
    #: the points before ``points[0]`` (0: ``points`` is the whole series)
    earlier: int = 0

    @property
    def count(self) -> int:
        """The number of points in the whole series."""
        return self.earlier + len(self.points)

    @property
    def open_change_point(self) -> ChangePoint | None:
        """The change point starting the newest level, if any."""
        for cp in self.change_points:
            if cp.open:
                return cp
        return None

    @property
    def last_change(self) -> ChangePoint | None:
        return self.change_points[-1] if self.change_points else None


@dataclass(frozen=True)
class NotJudged:
    """A series (or a whole test or run) the detector did not look at, and why."""

    what: str  # a series label, a test id, or "run 12"
    reason: str


@dataclass(frozen=True)
class History:
    """A judged history: every series, the number of runs it covers, what was not judged."""

    series: tuple[SeriesHistory, ...]
    runs: int
    not_judged: tuple[NotJudged, ...] = ()
    #: the detector's significance level per tested split (docs/history.md)
    alpha: float = 0.001
    #: the fewest points on each side of an accepted split
    min_segment: int = 3
    #: a sentence: the false-alarm rate this alpha gives (measured, bench/RESULTS-history.md)
    false_alarm_rate: str = ""
    #: where the history was read from (a baseline directory or history file)
    source: str = ""
    #: unknown top-level keys of a newer writer, kept and written back
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[SeriesHistory]:
        return iter(self.series)

    @property
    def whole(self) -> bool:
        """Whether every series holds all its points (not judged from the judged state, which
        reads only the last runs): what the JSON and the trend site need."""
        return not any(s.earlier for s in self.series)

    def change_points(self) -> list[ChangePoint]:
        """Every change point, newest run first."""
        found = [cp for s in self.series for cp in s.change_points]
        return sorted(found, key=lambda cp: (-cp.run, cp.key))

    def open_change_points(self) -> list[ChangePoint]:
        """The change points that start their series' newest level, newest run first."""
        return [cp for cp in self.change_points() if cp.open]

    def for_test(self, test: str) -> list[SeriesHistory]:
        return [s for s in self.series if s.key.test == test]

    def get(self, test: str, metric: str) -> SeriesHistory | None:
        for s in self.series:
            if s.key.test == test and s.key.metric == metric:
                return s
        return None

    def ordered(self) -> list[SeriesHistory]:
        """Series with an open change point first (open regressions before improvements, larger
        steps first), then by the run of their latest change (newest first), then by key."""

        def rank(s: SeriesHistory) -> tuple[Any, ...]:
            cp = s.open_change_point
            last = s.last_change
            if cp is not None:
                return (0, 0 if cp.is_regression else 1, -abs(_finite(cp.change)), s.key)
            return (1, 0, -(last.run if last else -1), s.key)

        return sorted(self.series, key=rank)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 1e300


# --------------------------------------------------------------------------- JSON


def _num(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def history_to_dict(history: History) -> dict[str, Any]:
    """The versioned JSON of ``history`` (a :attr:`History.whole` one)."""
    if not history.whole:
        raise ValueError("a history judged from its judged state holds only the last runs: judge it whole to write it")
    runs: dict[int, dict[str, Any]] = {}
    environments: dict[str, dict[str, str]] = {}
    series = []
    for s in history.series:
        points = tuple(s.points)  # made once (a judged history makes its points when looked at)
        for p in points:
            if p.run in runs:
                continue
            if p.environment is not None and p.environment.digest not in environments:
                environments[p.environment.digest] = p.environment.as_dict()
            runs[p.run] = {
                "run": p.run,
                "stored_run": p.stored_run,
                "commit": p.commit,
                "ref": p.ref,
                "time": p.time,
                "environment": p.environment_digest,
            }
        series.append(
            {
                "test": s.key.test,
                "metric": s.key.metric,
                "unit": s.key.unit,
                "kind": s.key.kind.value,
                "higher_is_better": s.key.higher_is_better,
                "noise": _num(s.noise),
                "min_detectable_step": _num(s.min_detectable_step),
                "points": {
                    "run": [p.run for p in points],
                    "centre": [_num(p.centre) for p in points],
                    "spread": [_num(p.spread) for p in points],
                    "count": [p.count for p in points],
                },
                "change_points": [
                    {
                        "index": cp.index,
                        "last_old_run": cp.commits.last_old_run,
                        "last_old_commit": cp.commits.last_old,
                        "first_new_run": cp.commits.first_new_run,
                        "first_new_commit": cp.commits.first_new,
                        "before": _num(cp.before),
                        "after": _num(cp.after),
                        "change": _num(cp.change),
                        "direction": cp.direction.value,
                        "p_value": cp.p_value,
                        "confidence": cp.confidence,
                        "environment_changed": cp.environment_changed,
                        "environment_fields": [[f.field, f.before, f.after] for f in cp.environment_fields],
                        "open": cp.open,
                    }
                    for cp in s.change_points
                ],
            }
        )
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        **{k: v for k, v in history.extra.items() if k not in _KNOWN},
        "source": history.source,
        "runs_count": history.runs,
        "alpha": history.alpha,
        "min_segment": history.min_segment,
        "false_alarm_rate": history.false_alarm_rate,
        "runs": [runs[n] for n in sorted(runs)],
        "environments": environments,
        "series": series,
        "not_judged": [{"what": n.what, "reason": n.reason} for n in history.not_judged],
    }


_KNOWN = {
    "schema", "schema_version", "source", "runs_count", "alpha", "min_segment", "false_alarm_rate", "runs",
    "environments", "series", "not_judged",
}  # fmt: skip


class _Reader:
    """Typed access to a JSON object with errors naming the file and the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ResultsFileError:
        return ResultsFileError(self.source, f"{where}: {message}")

    def obj(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")
        return value

    def lst(self, value: Any, where: str) -> Sequence[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {type(value).__name__}")
        return value

    def text(self, value: Any, where: str, *, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {value!r}")
        return value

    def integer(self, value: Any, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, f"expected an integer, got {value!r}")
        return value

    def number(self, value: Any, where: str, *, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if value in ("nan", "inf", "-inf"):
            return float(value)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self.fail(where, f"expected a number, got {value!r}")
        return float(value)

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {value!r}")
        return value

    def enum(self, cls: type[Enum], value: Any, where: str) -> Any:
        try:
            return cls(value)
        except ValueError:
            accepted = ", ".join(str(m.value) for m in cls)  # type: ignore[var-annotated]
            raise self.fail(where, f"{value!r} is not one of {accepted}") from None


def history_from_dict(data: Any, source: str = "history") -> History:
    """The :class:`History` in ``data`` (from :func:`history_to_dict`, possibly of a newer perfgate
    of the same schema version); :class:`ResultsFileError` naming ``source`` and the key for
    anything else."""
    r = _Reader(source)
    top = r.obj(data, "top level")
    if top.get("schema") != SCHEMA:
        raise ResultsFileError(source, f"not a perfgate history (schema is {top.get('schema')!r}, expected {SCHEMA!r})")
    if top.get("schema_version") != SCHEMA_VERSION:
        raise ResultsFileError(
            source,
            f"history schema_version {top.get('schema_version')!r} is not supported by this perfgate (it reads "
            f"version {SCHEMA_VERSION}); upgrade perfgate",
        )
    environments: dict[str, Environment] = {}
    for digest, fields in r.obj(top.get("environments", {}), "environments").items():
        where = f"environments.{digest}"
        env = Environment(tuple(sorted((str(k), r.text(v, f"{where}.{k}")) for k, v in r.obj(fields, where).items())))
        environments[str(digest)] = env
    runs: dict[int, tuple[str | None, str | None, str | None, Environment | None, int | None]] = {}
    for i, item in enumerate(r.lst(top.get("runs", []), "runs")):
        where = f"runs[{i}]"
        run = r.obj(item, where)
        number = r.integer(run.get("run"), f"{where}.run")
        digest = r.text(run.get("environment"), f"{where}.environment", optional=True)
        if digest is not None and digest not in environments:
            raise r.fail(f"{where}.environment", f"{digest!r} is not in environments")
        runs[number] = (
            r.text(run.get("commit"), f"{where}.commit", optional=True),
            r.text(run.get("ref"), f"{where}.ref", optional=True),
            r.text(run.get("time"), f"{where}.time", optional=True),
            None if digest is None else environments[digest],
            None if run.get("stored_run") is None else r.integer(run.get("stored_run"), f"{where}.stored_run"),
        )
    series = tuple(_series(r, item, f"series[{i}]", runs) for i, item in enumerate(r.lst(top.get("series"), "series")))
    not_judged = []
    for i, item in enumerate(r.lst(top.get("not_judged", []), "not_judged")):
        entry = r.obj(item, f"not_judged[{i}]")
        not_judged.append(
            NotJudged(
                r.text(entry.get("what"), f"not_judged[{i}].what"),
                r.text(entry.get("reason"), f"not_judged[{i}].reason"),
            )
        )
    return History(
        series=series,
        runs=r.integer(top.get("runs_count", len(runs)), "runs_count"),
        not_judged=tuple(not_judged),
        alpha=r.number(top.get("alpha", 0.001), "alpha"),
        min_segment=r.integer(top.get("min_segment", 3), "min_segment"),
        false_alarm_rate=r.text(top.get("false_alarm_rate", ""), "false_alarm_rate"),
        source=r.text(top.get("source", ""), "source"),
        extra={k: v for k, v in top.items() if k not in _KNOWN},
    )


def _series(
    r: _Reader,
    item: Any,
    where: str,
    runs: Mapping[int, tuple[str | None, str | None, str | None, Environment | None, int | None]],
) -> SeriesHistory:
    s = r.obj(item, where)
    key = SeriesKey(
        test=r.text(s.get("test"), f"{where}.test"),
        metric=r.text(s.get("metric"), f"{where}.metric"),
        unit=r.text(s.get("unit", ""), f"{where}.unit"),
        kind=r.enum(SeriesKind, s.get("kind"), f"{where}.kind"),
        higher_is_better=r.boolean(s.get("higher_is_better", False), f"{where}.higher_is_better"),
    )
    columns = r.obj(s.get("points"), f"{where}.points")
    numbers = [
        r.integer(v, f"{where}.points.run[{j}]") for j, v in enumerate(r.lst(columns.get("run"), f"{where}.points.run"))
    ]
    centres = r.lst(columns.get("centre"), f"{where}.points.centre")
    spreads = r.lst(columns.get("spread"), f"{where}.points.spread")
    counts = r.lst(columns.get("count"), f"{where}.points.count")
    if not len(numbers) == len(centres) == len(spreads) == len(counts):
        raise r.fail(f"{where}.points", "run, centre, spread and count must have the same length")
    points = []
    for j, number in enumerate(numbers):
        if number not in runs:
            raise r.fail(f"{where}.points.run[{j}]", f"run {number} is not in runs")
        commit, ref, time, env, stored = runs[number]
        points.append(
            Point(
                run=number,
                commit=commit,
                ref=ref,
                time=time,
                centre=r.number(centres[j], f"{where}.points.centre[{j}]"),
                spread=r.number(spreads[j], f"{where}.points.spread[{j}]", optional=True),
                count=r.integer(counts[j], f"{where}.points.count[{j}]"),
                environment=env,
                stored_run=stored,
            )
        )
    change_points = []
    for j, cp_item in enumerate(r.lst(s.get("change_points", []), f"{where}.change_points")):
        at = f"{where}.change_points[{j}]"
        cp = r.obj(cp_item, at)
        index = r.integer(cp.get("index"), f"{at}.index")
        if not 0 < index < len(points):
            raise r.fail(
                f"{at}.index", f"{index} is not the index of a point after the first (0 < index < {len(points)})"
            )
        fields = []
        for k, f in enumerate(r.lst(cp.get("environment_fields", []), f"{at}.environment_fields")):
            triple = r.lst(f, f"{at}.environment_fields[{k}]")
            if len(triple) != 3:
                raise r.fail(f"{at}.environment_fields[{k}]", "expected [field, before, after]")
            fields.append(FieldChange(*(r.text(v, f"{at}.environment_fields[{k}]") for v in triple)))
        change_points.append(
            ChangePoint(
                key=key,
                index=index,
                commits=CommitRange(
                    last_old_run=r.integer(cp.get("last_old_run", points[index - 1].run), f"{at}.last_old_run"),
                    last_old=r.text(cp.get("last_old_commit"), f"{at}.last_old_commit", optional=True),
                    first_new_run=r.integer(cp.get("first_new_run", points[index].run), f"{at}.first_new_run"),
                    first_new=r.text(cp.get("first_new_commit"), f"{at}.first_new_commit", optional=True),
                ),
                before=r.number(cp.get("before"), f"{at}.before"),
                after=r.number(cp.get("after"), f"{at}.after"),
                change=r.number(cp.get("change"), f"{at}.change"),
                direction=r.enum(Direction, cp.get("direction"), f"{at}.direction"),
                p_value=r.number(cp.get("p_value"), f"{at}.p_value"),
                environment_changed=r.boolean(cp.get("environment_changed", False), f"{at}.environment_changed"),
                environment_fields=tuple(fields),
                open=r.boolean(cp.get("open", False), f"{at}.open"),
            )
        )
    return SeriesHistory(
        key=key,
        points=tuple(points),
        change_points=tuple(change_points),
        noise=r.number(s.get("noise"), f"{where}.noise", optional=True),
        min_detectable_step=r.number(s.get("min_detectable_step"), f"{where}.min_detectable_step", optional=True),
    )


def write_history(history: History, path: str | Path) -> Path:
    """Write ``history``'s JSON to ``path`` atomically (a reader never sees half a file)."""
    from ..paths import check_output, write_text_atomic, writing

    target = check_output(str(path), "the history JSON", perfgate_only=True)
    with writing(str(path), "the history JSON"):
        return write_text_atomic(target, json.dumps(history_to_dict(history), separators=(",", ":")) + "\n")


def load_history(path: str | Path) -> History:
    """The :class:`History` written to ``path`` by :func:`write_history`;
    :class:`ResultsFileError` naming the path for anything wrong (missing, not JSON, another
    schema or version, a malformed field)."""
    from ..paths import read_text

    name = str(path)
    text = read_text(name, "a history JSON file")
    if not text.strip():
        raise ResultsFileError(name, "is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(
            name, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); the file may be truncated"
        ) from None
    return history_from_dict(data, name)
