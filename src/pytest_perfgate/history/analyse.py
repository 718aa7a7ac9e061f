"""A baseline directory's history judged: every series' change points (:func:`judge`), read from
its history file, or from its stored runs when it has none (:func:`read`), and the history file
rebuilt from the stored runs (:func:`rebuild`)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ResultsFileError
from . import changepoints as cp
from .log import Columns, Log, RunInfo, figures, log_path, read_log, run_environment, run_origin, stored_run_number
from .model import (
    ChangePoint,
    CommitRange,
    Direction,
    History,
    NotJudged,
    Point,
    SeriesHistory,
    SeriesKey,
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


def values_digest(values: Sequence[float]) -> str:
    """A digest of a series' values (their IEEE doubles): a judged state is resumed only for the
    values it was judged on."""
    return hashlib.blake2b(struct.pack(f"<{len(values)}d", *values), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Judged:
    """What was judged of one series: its first ``count`` values (``digest``) and their change points."""

    count: int
    digest: str
    splits: tuple[cp.Split, ...]


def judge_series(
    key: SeriesKey, points: tuple[Point, ...], settings: cp.Settings = cp.DEFAULT, *, before: Judged | None = None
) -> SeriesHistory:
    """One series' change points (:func:`~.changepoints.detect`), with their commit ranges and
    environment changes, its noise and its smallest detectable step. ``before``: what an earlier
    judging found in this series' first values; when those values are unchanged, only the runs
    since are examined (:meth:`~.changepoints.Tracker.resume`, ``O(window)`` a run instead of
    the whole series again)."""
    values = [p.centre for p in points]
    if (
        before is not None
        and 0 < before.count <= len(values)
        and values_digest(values[: before.count]) == before.digest
    ):
        tracker = cp.Tracker.resume(values[: before.count], before.splits, settings)
        tracker.extend(values[before.count :])
        splits = list(tracker.splits)
    else:
        splits = cp.detect(values, settings)
    found = []
    for i, split in enumerate(splits):
        old, new = points[split.index - 1], points[split.index]
        fields = environment_changes(old.environment, new.environment)
        found.append(
            ChangePoint(
                key=key,
                index=split.index,
                commits=CommitRange(old.run, old.commit, new.run, new.commit),
                before=split.before,
                after=split.after,
                change=split.change,
                direction=_direction(key, split.before, split.after),
                p_value=split.p_value,
                environment_changed=bool(fields),
                environment_fields=fields,
                open=i == len(splits) - 1,
            )
        )
    sd = cp.noise(values, splits)
    return SeriesHistory(
        key=key,
        points=points,
        change_points=tuple(found),
        noise=sd,
        min_detectable_step=cp.min_detectable_step(sd, len(points), settings),
    )


def judge(
    log: Log,
    settings: cp.Settings = cp.DEFAULT,
    *,
    metrics: Collection[str] | None = None,
    since: int | None = None,
    source: str = "",
    before: Mapping[str, Judged] | None = None,
) -> History:
    """Every series of ``log`` judged. ``metrics``: only series of these metric names;
    ``since``: only runs numbered ``since`` and later. A series with fewer than
    ``2 * min_segment`` points is not judged (listed in :attr:`History.not_judged`), nor is a
    value that is not finite. ``before`` (series slug -> :class:`Judged`, from
    :func:`judged_state` of an earlier judging with the same settings): series whose earlier
    values are unchanged are only examined in the runs since (not with ``since``)."""
    runs = log.runs
    not_judged = [NotJudged("history", note) for note in log.notes]
    judged = []
    need = 2 * settings.min_segment
    for key in sorted(log.series):
        if metrics is not None and key.metric not in metrics:
            continue
        cols = log.series[key]
        points = []
        for at, centre, spread, count in zip(cols.at, cols.centre, cols.spread, cols.count, strict=True):
            info = runs[at]
            if since is not None and info.seq < since:
                continue
            if not math.isfinite(centre):
                not_judged.append(NotJudged(key.label, f"run {info.seq}: the centre is not a finite number"))
                continue
            points.append(
                Point(
                    info.seq, info.commit, info.ref, info.time, centre, spread, count, info.environment, info.stored_run
                )
            )
        if len(points) < need:
            if points:
                not_judged.append(
                    NotJudged(key.label, f"{len(points)} run(s): at least {need} are needed to find a change point")
                )
            continue
        earlier = before.get(key.slug) if before is not None and since is None else None
        judged.append(judge_series(key, tuple(points), settings, before=earlier))
    if metrics is not None:
        seen = {key.metric for key in log.series}
        for name in sorted(set(metrics) - seen):
            not_judged.append(NotJudged(name, "no series of this metric in the history"))
    return History(
        series=tuple(judged),
        runs=len([r for r in runs if since is None or r.seq >= since]),
        not_judged=tuple(not_judged),
        alpha=settings.alpha,
        min_segment=settings.min_segment,
        false_alarm_rate=FALSE_ALARM_RATE,
        source=source,
    )


# --------------------------------------------------------------------------- the judged state

#: the judged state kept next to the history file: what each series' change points were judged on
STATE_NAME = "history.state.json"
STATE_SCHEMA = "perfgate-history-state"
STATE_VERSION = 1


def judged_state(history: History) -> dict[str, Judged]:
    """Each judged series' values (their count and digest) and change points, by series slug."""
    return {
        s.key.slug: Judged(
            len(s.points),
            values_digest([p.centre for p in s.points]),
            tuple(cp.Split(c.index, c.before, c.after, c.p_value) for c in s.change_points),
        )
        for s in history.series
    }


def _split_row(split: cp.Split) -> tuple[int, float, float, float]:
    return split.index, split.before, split.after, split.p_value


def _settings_json(settings: cp.Settings) -> dict[str, Any]:
    return {"alpha": settings.alpha, "min_segment": settings.min_segment, "min_change": settings.min_change}


def save_state(directory: str | os.PathLike[str], history: History, settings: cp.Settings = cp.DEFAULT) -> Path:
    """Write the judged state of ``history`` (a whole history: not one judged ``since`` a run)."""
    from ..paths import write_json_atomic

    data = {
        "schema": STATE_SCHEMA,
        "schema_version": STATE_VERSION,
        "settings": _settings_json(settings),
        "series": {
            slug: {
                "count": j.count,
                "digest": j.digest,
                "splits": [[s.index, s.before, s.after, s.p_value] for s in j.splits],
            }
            for slug, j in judged_state(history).items()
        },
    }
    return write_json_atomic(Path(directory) / STATE_NAME, data)


def load_state(directory: str | os.PathLike[str], settings: cp.Settings = cp.DEFAULT) -> tuple[dict[str, Judged], str]:
    """The judged state kept in ``directory`` for ``settings``, and why none is used ("" when it
    is, or when there is none yet). A state that is not readable is never an error: the history is
    then judged whole, and the reason said."""
    path = Path(directory) / STATE_NAME
    if not path.is_file():
        return {}, ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != STATE_SCHEMA or data.get("schema_version") != STATE_VERSION:
            return {}, f"{path}: another perfgate's judged state: the history was judged whole"
        if data.get("settings") != _settings_json(settings):
            return {}, ""  # judged with other settings: not comparable
        state = {
            str(slug): Judged(
                int(entry["count"]),
                str(entry["digest"]),
                tuple(cp.Split(int(i), float(b), float(a), float(p)) for i, b, a, p in entry["splits"]),
            )
            for slug, entry in data["series"].items()
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return {}, f"{path}: not read ({exc}): the history was judged whole"
    return state, ""
