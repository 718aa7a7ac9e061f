"""The default branch's history: a compact summary of every promoted run, and the change points
found in each series over those runs (docs/history.md).

* :mod:`.model`: the frozen dataclasses of a judged history (:class:`~.model.History`) and their
  versioned JSON (``perfgate history --json``), read back by :func:`~.model.load_history`;
* :mod:`.log`: the history file a directory store appends to when it promotes a run;
* :mod:`.changepoints`: change-point detection on one series (pure: no I/O);
* :mod:`.analyse`: a history file (or the stored runs) judged into a :class:`~.model.History`.

Nothing here imports pytest, ``reports/`` or ``cli/``.
"""

from __future__ import annotations

from .model import (
    ChangePoint,
    CommitRange,
    Direction,
    Environment,
    FieldChange,
    History,
    NotJudged,
    Point,
    SeriesHistory,
    SeriesKey,
    SeriesKind,
    history_from_dict,
    history_to_dict,
    load_history,
    write_history,
)

__all__ = [
    "ChangePoint",
    "CommitRange",
    "Direction",
    "Environment",
    "FieldChange",
    "History",
    "NotJudged",
    "Point",
    "SeriesHistory",
    "SeriesKey",
    "SeriesKind",
    "history_from_dict",
    "history_to_dict",
    "load_history",
    "write_history",
]
