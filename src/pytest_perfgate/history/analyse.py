"""A baseline directory's history judged: every series' change points (:func:`judge`), read from
its history file, or from its stored runs when it has none (:func:`read`), and the history file
rebuilt from the stored runs (:func:`rebuild`)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, overload

from ..errors import ResultsFileError
from . import changepoints as cp
from .log import (
    Columns,
    Log,
    Position,
    RunInfo,
    changed_since,
    figures,
    log_path,
    read_log,
    run_environment,
    run_origin,
    stored_run_number,
)
from .model import (
    ChangePoint,
    CommitRange,
    Direction,
    FieldChange,
    History,
    NotJudged,
    Point,
    SeriesHistory,
    SeriesKey,
    SeriesKind,
    environment_changes,
)

#: the false-alarm rate the defaults give, as bench/RESULTS-history.md measured it
FALSE_ALARM_RATE = (
    "at most alpha per examined segment (Bonferroni over its candidate splits, normal noise); measured: "
    "see bench/RESULTS-history.md"
)


def _log_from_runs(directory: str) -> Log:
    """The stored runs of a directory store as a :class:`Log` (oldest first)."""
    from ..store.files import DirectoryStore

    baseline = DirectoryStore(directory).load()
    log = Log()
    if baseline is None:
        return log
    for source, run in zip(baseline.sources, baseline.runs, strict=True):
        commit, ref, time = run_origin(run)
        log.runs.append(RunInfo(len(log.runs) + 1, stored_run_number(source), commit, ref, time, run_environment(run)))
        at = len(log.runs) - 1
        for key, centre, spread, count in figures(run):
            cols = log.series.setdefault(key, Columns())
            cols.at.append(at)
            cols.centre.append(centre)
            cols.spread.append(spread)
            cols.count.append(count)
    log.files.extend(baseline.sources)
    return log


def read(directory: str | os.PathLike[str]) -> Log:
    """The history of a baseline directory: its history file (every promoted run), or, when it has
    none (a store from before the history, or a fetched copy), its stored runs, with a note
    saying so. :class:`ResultsFileError` when it is neither."""
    name = os.fspath(directory)
    if not Path(name).is_dir():
        raise ResultsFileError(name, "is not a baseline directory (expected a directory of stored runs)")
    log = read_log(name)
    if log is not None:
        return log
    log = _log_from_runs(name)
    log.notes.append(
        f"{name}: no {log_path(name).name}: judged the {len(log.runs)} stored run(s) only "
        "(`perfgate history --rebuild` writes the history file from them)"
    )
    return log


def rebuild(directory: str | os.PathLike[str]) -> int:
    """Write the history file of ``directory`` from its stored runs (oldest first); the number of
    runs written. :class:`ResultsFileError` when it already has one (never overwritten)."""
    from ..store.files import DirectoryStore
    from .log import append, parts

    name = os.fspath(directory)
    if log_path(name).exists() or parts(name):
        raise ResultsFileError(str(log_path(name)), "exists: not rebuilt (move it away to rebuild it)")
    baseline = DirectoryStore(name).load()
    if baseline is None:
        raise ResultsFileError(name, "holds no stored runs to rebuild the history from")
    for source, run in zip(baseline.sources, baseline.runs, strict=True):
        append(name, run, stored_run=stored_run_number(source))
    return len(baseline.runs)


def _direction(key: SeriesKey, before: float, after: float) -> Direction:
    worse = after < before if key.higher_is_better else after > before
    return Direction.REGRESSION if worse else Direction.IMPROVEMENT


class Points(Sequence[Point]):
    """A series' points as a sequence whose :class:`Point` objects are made only when one is
    looked at (a history of a million points makes none for its text or its alerts), from the
    columns of a :class:`~.log.Log`: ``rows`` are positions in ``cols``."""

    __slots__ = ("_cols", "_rows", "_runs")

    def __init__(self, runs: Sequence[RunInfo], cols: Columns, rows: Sequence[int]) -> None:
        self._runs, self._cols, self._rows = runs, cols, rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Point: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Point, ...]: ...

    def __getitem__(self, index: int | slice) -> Point | tuple[Point, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        row = self._rows[index]
        cols = self._cols
        info = self._runs[cols.at[row]]
        return Point(
            info.seq, info.commit, info.ref, info.time, cols.centre[row], cols.spread[row], cols.count[row],
            info.environment, info.stored_run,
        )  # fmt: skip

    def centres(self) -> list[float]:
        centre = self._cols.centre
        return [centre[r] for r in self._rows]

    def run(self, index: int) -> int:
        """The run number (``seq``) of the point at ``index``."""
        return self._runs[self._cols.at[self._rows[index]]].seq

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Points({len(self)} points)"


@dataclass(frozen=True)
class Judged:
    """One series as a judging left it (what the judged state keeps): the next judging examines
    only its last :data:`~.changepoints.WINDOW` points and those since."""

    key: SeriesKey
    #: its points (finite centres) judged
    count: int
    #: its first value and whether it is judged in logs (the detector's transform)
    first: float
    logs: bool
    #: the sum of its values as judged (:func:`~.changepoints.without_excursions`), and the last
    #: HALF of them (whether they are excursions shows with the next runs): the levels of a
    #: continued judging are those of judging it whole
    total: float
    provisional: tuple[float, ...]
    #: None when it had too few points to be judged
    change_points: tuple[ChangePoint, ...] | None
    noise: float | None
    min_step: float | None
    #: the run of the oldest point a later judging may look at again, and of its newest point
    tail_run: int
    last_run: int

    @property
    def splits(self) -> list[cp.Split]:
        return [cp.Split(c.index, c.before, c.after, c.p_value) for c in self.change_points or ()]


class _Stale(Exception):
    """The judged state cannot be continued for this history: judge it whole (the reason)."""


def _change_point(
    key: SeriesKey, split: cp.Split, commits: CommitRange, fields: tuple[FieldChange, ...], *, open_: bool
) -> ChangePoint:
    return ChangePoint(
        key=key,
        index=split.index,
        commits=commits,
        before=split.before,
        after=split.after,
        change=split.change,
        direction=_direction(key, split.before, split.after),
        p_value=split.p_value,
        environment_changed=bool(fields),
        environment_fields=fields,
        open=open_,
    )


def _judged_then(before: Judged, kept: Sequence[float], earlier: int) -> float:
    """The sum, as the judging of ``before`` judged them, of the values from the first of ``kept``
    (the values read, from index ``earlier`` on) judged with both its neighbours to the end of the
    series then: the final ones as they are now, the last HALF as they were then."""
    return math.fsum(kept[cp.HALF : before.count - earlier - cp.HALF]) + math.fsum(before.provisional)


def _levels(splits: list[cp.Split], before: Judged, kept: Sequence[float], earlier: int, then: float) -> list[cp.Split]:
    """The splits of a continued judging with their levels (the means of the values judged on
    either side) as judging the whole series gives them, where the runs since changed a segment.
    ``kept``: the values read, as judged (:func:`~.changepoints.without_excursions`), from index
    ``earlier`` on. The sums of the values not read come from the state (the series' total, and the
    levels after its change points then) and ``then`` (:func:`_judged_then`); the first HALF
    values read are judged without their own earlier neighbours, so the values read count from
    HALF on."""
    start = earlier + (cp.HALF if earlier else 0)
    # the sum, as judged then, of the values from the start of the series and from each change
    # point then to its end (each level is the mean of its segment)
    since = {0: before.total}
    ends = [*(s.index for s in before.splits[1:]), before.count][: len(before.splits)]
    acc = 0.0
    for split, end in zip(reversed(before.splits), reversed(ends), strict=True):
        acc += split.after * (end - split.index)
        since[split.index] = acc

    def total(a: int, b: int) -> float | None:
        if b <= start:  # wholly before the values read: unchanged
            return None
        held = math.fsum(kept[max(a, start) - earlier : b - earlier])
        if a >= start:
            return held
        if a in since:
            return since[a] - then + held
        return None

    bounds = [0, *(s.index for s in splits), earlier + len(kept)]
    found = []
    for i, split in enumerate(splits):
        low, high = total(bounds[i], split.index), total(split.index, bounds[i + 2])
        found.append(
            replace(
                split,
                before=split.before if low is None else low / (split.index - bounds[i]),
                after=split.after if high is None else high / (bounds[i + 2] - split.index),
            )
        )
    return found


#: the points of a series a continued judging reads: a window, and the runs the excursions of its
#: first ones are judged on
TAIL = cp.WINDOW + 2 * cp.HALF


def _judge_one(
    key: SeriesKey,
    points: Sequence[Point],
    settings: cp.Settings,
    before: Judged | None = None,
    judged_until: int = 0,
) -> tuple[SeriesHistory | None, Judged]:
    """One series judged: whole, or continued from ``before`` (its state after the runs up to
    ``judged_until``; ``points`` then holds at least its last WINDOW points judged then, or all of
    them, and every point since). The series (None when too short to judge) and its state.
    :class:`_Stale` when the state cannot be continued with these points."""
    view = points if isinstance(points, Points) else None
    values = view.centres() if view is not None else [p.centre for p in points]
    run_of = view.run if view is not None else (lambda i: points[i].run)
    new = 0
    while new < len(values) and run_of(len(values) - 1 - new) > judged_until:
        new += 1
    old = len(values) - new
    earlier = 0 if before is None else before.count - old
    if earlier < 0:
        raise _Stale(f"{key.label}: fewer runs than judged before")
    if before is not None and not new:  # nothing since: as judged then
        if before.change_points is None:
            return None, before
        series = SeriesHistory(key, points, before.change_points, before.noise, before.min_step, earlier=earlier)
        return series, before
    if earlier and (old < TAIL or before is None or before.change_points is None):
        raise _Stale(f"{key.label}: its earlier runs were not read")
    count = earlier + len(values)
    resumed = before is not None and before.change_points is not None and count >= 2 * settings.min_segment
    splits: list[cp.Split] | None = None
    space: tuple[Sequence[float], bool] | None = None
    if resumed:
        assert before is not None
        tracker = cp.Tracker.resume(values[:old], before.splits, settings, offset=earlier, first=before.first,
                                    logs=before.logs)  # fmt: skip
        tracker.extend(values[old:])
        kept = tracker.values  # as the detector judged them, run by run
        ys, logs = tracker.judged
        space = (ys[-cp.WINDOW :], logs)
    else:
        kept = cp.without_excursions(values)  # as the detector judges them
        if count >= 2 * settings.min_segment:
            splits = cp.detect(values, settings, judged=kept)
    then = _judged_then(before, kept, earlier) if earlier and before is not None else 0.0
    if resumed:
        assert before is not None
        splits = _levels(tracker.splits, before, kept, earlier, then)
    if earlier:
        assert before is not None
        total = before.total - then + math.fsum(kept[cp.HALF :])
    else:
        total = math.fsum(kept)
    tail_at = max(0, count - TAIL) - earlier
    state = Judged(
        key=key,
        count=count,
        first=values[0] if before is None else before.first,
        logs=(before.logs if before is not None else True) and min(values[old:], default=1.0) > 0,
        total=total,
        provisional=tuple(kept[-cp.HALF :]),
        change_points=None,
        noise=None,
        min_step=None,
        tail_run=run_of(tail_at),
        last_run=run_of(len(values) - 1),
    )
    if splits is None:
        return None, state
    known = {c.index: c for c in before.change_points or ()} if before is not None else {}
    found = []
    for i, split in enumerate(splits):
        is_open = i == len(splits) - 1
        at = split.index - earlier
        if at >= 1:
            old_point, new_point = points[at - 1], points[at]
            commits = CommitRange(old_point.run, old_point.commit, new_point.run, new_point.commit)
            fields = environment_changes(old_point.environment, new_point.environment)
        elif split.index in known:
            commits, fields = known[split.index].commits, known[split.index].environment_fields
        else:
            raise _Stale(f"{key.label}: a change point before the runs read")
        found.append(_change_point(key, split, commits, fields, open_=is_open))
    tail = kept[-cp.WINDOW :]
    sd = cp.noise(tail, splits, offset=count - len(tail), judged=space)
    step = cp.min_detectable_step(sd, count, settings)
    series = SeriesHistory(
        key=key, points=points, change_points=tuple(found), noise=sd, min_detectable_step=step, earlier=earlier
    )
    return series, replace(state, change_points=tuple(found), noise=sd, min_step=step)


def judge_series(key: SeriesKey, points: Sequence[Point], settings: cp.Settings = cp.DEFAULT) -> SeriesHistory:
    """One whole series' change points (:func:`~.changepoints.detect`), with their commit ranges
    and environment changes, its noise (of its last :data:`~.changepoints.WINDOW` points) and its
    smallest detectable step. :class:`ValueError` when it is too short to judge."""
    series, _ = _judge_one(key, points, settings)
    if series is None:
        raise ValueError(f"{key.label}: {len(points)} points are too few to judge")
    return series


@dataclass(frozen=True)
class Checkpoint:
    """The judged state of a history: how far it was read, and every series as judged then."""

    position: Position
    series: Mapping[SeriesKey, Judged]

    @property
    def read_from(self) -> int:
        """The oldest run a continued judging reads: the oldest tail of a series measured in the
        last window of runs (a series not measured since is not examined again unless it returns:
        then the history is judged whole)."""
        recent = self.position.seq - cp.WINDOW
        tails = [j.tail_run for j in self.series.values() if j.last_run > recent]
        return min(tails, default=self.position.seq + 1)


def _judge(
    log: Log,
    settings: cp.Settings,
    *,
    metrics: Collection[str] | None = None,
    since: int | None = None,
    source: str = "",
    checkpoint: Checkpoint | None = None,
) -> tuple[History, dict[SeriesKey, Judged]]:
    runs = log.runs
    not_judged = [NotJudged("history", note) for note in log.notes]
    judged = []
    states: dict[SeriesKey, Judged] = {}
    need = 2 * settings.min_segment
    known = checkpoint.series if checkpoint is not None else {}
    until = checkpoint.position.seq if checkpoint is not None else 0
    empty = Columns()
    for key in sorted(set(log.series) | set(known)):
        if metrics is not None and key.metric not in metrics:
            continue
        cols = log.series.get(key, empty)
        rows: Sequence[int] = range(len(cols.at))
        if since is not None or not all(map(math.isfinite, cols.centre)):
            rows = []
            for row, (at, centre) in enumerate(zip(cols.at, cols.centre, strict=True)):
                info = runs[at]
                if since is not None and info.seq < since:
                    continue
                if not math.isfinite(centre):
                    not_judged.append(NotJudged(key.label, f"run {info.seq}: the centre is not a finite number"))
                    continue
                rows.append(row)
        if not rows and key not in known:
            continue
        series, state = _judge_one(key, Points(runs, cols, rows), settings, known.get(key), until)
        states[key] = state
        if series is not None:
            judged.append(series)
        else:
            not_judged.append(
                NotJudged(key.label, f"{state.count} run(s): at least {need} are needed to find a change point")
            )
    if metrics is not None:
        seen = {key.metric for key in log.series}
        for name in sorted(set(metrics) - seen):
            not_judged.append(
                NotJudged(name, f"no series of this metric in the history (it has: {', '.join(sorted(seen))})")
            )
    last = runs[-1].seq if runs else until
    history = History(
        series=tuple(judged),
        runs=max(0, last - (since - 1 if since is not None else 0)),
        not_judged=tuple(not_judged),
        alpha=settings.alpha,
        min_segment=settings.min_segment,
        false_alarm_rate=FALSE_ALARM_RATE,
        source=source,
    )
    return history, states


def judge(
    log: Log,
    settings: cp.Settings = cp.DEFAULT,
    *,
    metrics: Collection[str] | None = None,
    since: int | None = None,
    source: str = "",
) -> History:
    """Every series of ``log`` judged whole. ``metrics``: only series of these metric names;
    ``since``: only runs numbered ``since`` and later. A series with fewer than
    ``2 * min_segment`` points is not judged (listed in :attr:`History.not_judged`), nor is a
    value that is not finite."""
    return _judge(log, settings, metrics=metrics, since=since, source=source)[0]


def judge_directory(
    directory: str | os.PathLike[str],
    settings: cp.Settings = cp.DEFAULT,
    *,
    metrics: Collection[str] | None = None,
    since: int | None = None,
    whole: bool = False,
    full: bool = False,
    keep: bool = True,
) -> tuple[History, list[str]]:
    """The history of a baseline directory judged (:func:`read`), and what to tell about how.

    With its judged state (``history.state.json``, :func:`save_state`) a series is continued from
    its last :data:`~.changepoints.WINDOW` points and only the runs since are examined; only those
    runs are read, unless ``whole`` (every point in the result: for the JSON and the trend site).
    ``full``: judge every series whole. ``metrics`` or ``since`` judge a part, whole. ``keep``:
    write the judged state for the next judging (not after a partial one). A state that does not
    fit the history (rebuilt, replaced) is said and the history judged whole."""
    name = os.fspath(directory)
    notes: list[str] = []
    partial = since is not None or metrics is not None
    checkpoint = None
    if not (full or partial):
        checkpoint, why = load_state(name, settings)
        if why:
            notes.append(why)
    history: History | None = None
    log: Log | None = None
    if checkpoint is not None:
        log = read_log(name, after=0 if whole else checkpoint.read_from - 1)
        try:
            if log is None:
                raise _Stale(f"{log_path(name)} is gone")
            history, states = _judge(log, settings, source=name, checkpoint=checkpoint)
        except _Stale as exc:
            notes.append(f"{Path(name) / STATE_NAME} was not continued ({exc}): the history was judged whole")
            history = None
    if history is None:
        log = read(name)
        history, states = _judge(log, settings, metrics=metrics, since=since, source=name)
    assert log is not None
    if keep and not partial and log.position is not None:
        try:
            save_state(name, Checkpoint(log.position, states), settings)
        except OSError as exc:
            notes.append(f"the judged state was not kept ({exc.strerror or exc}): the next run judges it whole")
    return history, notes


# --------------------------------------------------------------------------- the judged state

#: the judged state kept next to the history file: how far the history was judged, and each series
STATE_NAME = "history.state.json"
STATE_SCHEMA = "perfgate-history-state"
STATE_VERSION = 2


def _settings_json(settings: cp.Settings) -> dict[str, Any]:
    return {"alpha": settings.alpha, "min_segment": settings.min_segment, "min_change": settings.min_change,
            "window": cp.WINDOW, "excursion": cp.EXCURSION, "half": cp.HALF}  # fmt: skip


def _change_point_row(c: ChangePoint) -> list[Any]:
    c_range = c.commits
    fields = [[f.field, f.before, f.after] for f in c.environment_fields]
    return [c.index, c.before, c.after, c.p_value, c_range.last_old_run, c_range.last_old, c_range.first_new_run,
            c_range.first_new, fields]  # fmt: skip


def _change_point_of(key: SeriesKey, row: list[Any]) -> ChangePoint:
    index, before, after, p, old_run, old, new_run, new, fields = row
    split = cp.Split(int(index), float(before), float(after), float(p))
    changes = tuple(FieldChange(str(f), str(b), str(a)) for f, b, a in fields)
    return ChangePoint(
        key=key, index=split.index, commits=CommitRange(int(old_run), old, int(new_run), new), before=split.before,
        after=split.after, change=split.change, direction=_direction(key, split.before, split.after),
        p_value=split.p_value, environment_changed=bool(changes), environment_fields=changes,
    )  # fmt: skip


def save_state(directory: str | os.PathLike[str], checkpoint: Checkpoint, settings: cp.Settings = cp.DEFAULT) -> Path:
    """Write the judged state of a whole history (not one judged ``since`` a run, nor of some metrics)."""
    from ..paths import write_json_atomic

    pos = checkpoint.position
    data = {
        "schema": STATE_SCHEMA,
        "schema_version": STATE_VERSION,
        "settings": _settings_json(settings),
        "position": {
            "part": pos.part,
            "size": pos.size,
            "digest": pos.digest,
            "seq": pos.seq,
            "parts": [list(p) for p in pos.parts],
        },
        "series": [
            [
                j.key.test,
                j.key.metric,
                j.key.unit,
                j.key.kind.value,
                j.key.higher_is_better,
                j.count,
                j.first,
                j.logs,
                j.total,
                list(j.provisional),
                j.tail_run,
                j.last_run,
                j.noise,
                j.min_step,
                None if j.change_points is None else [_change_point_row(c) for c in j.change_points],
            ]
            for j in checkpoint.series.values()
        ],
    }
    return write_json_atomic(Path(directory) / STATE_NAME, data)


def load_state(directory: str | os.PathLike[str], settings: cp.Settings = cp.DEFAULT) -> tuple[Checkpoint | None, str]:
    """The judged state kept in ``directory`` for ``settings`` when it still fits the history (it
    covers the history's first runs as they are), and why none is used ("" when it is, or when
    there is none yet). A state that cannot be used is never an error: the history is then judged
    whole, and the reason said."""
    path = Path(directory) / STATE_NAME
    if not path.is_file():
        return None, ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != STATE_SCHEMA:
            return None, f"{path}: not a judged state: the history was judged whole"
        if data.get("schema_version") != STATE_VERSION or data.get("settings") != _settings_json(settings):
            return None, ""  # another perfgate's, or other settings: judged whole, and written anew
        pos = data["position"]
        position = Position(int(pos["part"]), int(pos["size"]), str(pos["digest"]), int(pos["seq"]),
                            tuple((int(k), int(n)) for k, n in pos["parts"]))  # fmt: skip
        series = {}
        for row in data["series"]:
            test, metric, unit, kind, better, count, first, logs, total, provisional, tail, last, noise, step, rows = (
                row
            )
            key = SeriesKey(str(test), str(metric), str(unit), SeriesKind(kind), bool(better))
            found = None if rows is None else [_change_point_of(key, row) for row in rows]
            if found:  # the newest is the open one
                found[-1] = replace(found[-1], open=True)
            points = None if found is None else tuple(found)
            series[key] = Judged(key, int(count), float(first), bool(logs), float(total),
                                 tuple(float(v) for v in provisional), points,
                                 None if noise is None else float(noise), None if step is None else float(step),
                                 int(tail), int(last))  # fmt: skip
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return None, f"{path}: not read ({exc}): the history was judged whole"
    changed = changed_since(directory, position)
    if changed:
        return None, f"{path} is of another history ({changed}): the history was judged whole"
    return Checkpoint(position, series), ""
