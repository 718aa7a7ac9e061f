"""Baseline stores behind one interface: where stored runs live, how a run is promoted into them.

* :class:`FileStore`: one results file is the whole baseline (one run);
* :class:`DirectoryStore`: a directory of stored runs, the last ``keep`` kept by ``promote``.

Later issues add stores for GitLab artifacts; :func:`open_store` picks the store for a location.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..model import RunResult

#: default number of runs a directory store keeps
DEFAULT_KEEP = 10


@dataclass(frozen=True)
class Baseline:
    """Several stored runs, oldest first, read as one baseline."""

    location: str
    runs: tuple[RunResult, ...]
    sources: tuple[str, ...]


@runtime_checkable
class BaselineStore(Protocol):
    location: str

    def load(self) -> Baseline | None:
        """The stored runs, or ``None`` when there is no baseline yet (never an error for that)."""

    def promote(self, run: RunResult, *, keep: int = DEFAULT_KEEP) -> str:
        """Store ``run`` as the newest baseline run (atomically); returns where it went."""


def names_a_directory(path: str) -> bool:
    """Whether a path that cannot be looked at (not there yet, or in a GitLab artifact) names a
    directory of stored runs: it ends in a separator or has no ``.json`` suffix."""
    return path.endswith(("/", os.sep)) or Path(path).suffix.lower() != ".json"


def open_store(location: str | os.PathLike[str]) -> BaselineStore:
    """A directory (existing, or a path ending in ``/`` or without a ``.json`` suffix) is a
    :class:`DirectoryStore`; anything else is a :class:`FileStore`."""
    from ..errors import ResultsFileError
    from ..paths import check_input
    from .files import DirectoryStore, FileStore

    text = os.fspath(location)
    try:
        kind = check_input(text, "a results file or a directory of stored runs", directory_ok=True, missing_ok=True)
    except ResultsFileError:
        kind = "other"  # a FIFO, a loop, ...: the store's load or promote names the problem
    if kind == "dir" or text.endswith(("/", os.sep)) or (kind in (None, "other") and names_a_directory(text)):
        return DirectoryStore(text)
    return FileStore(text)


__all__ = ["DEFAULT_KEEP", "Baseline", "BaselineStore", "open_store"]
