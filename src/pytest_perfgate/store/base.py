"""What every baseline store shares: the :class:`BaselineStore` protocol, :class:`Baseline`, and the
names of a directory store's files that readers outside it (the GitLab store) need."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..model import RunResult

#: default number of runs a directory store keeps
DEFAULT_KEEP = 10

#: the directory store's list of its runs, oldest first: what a client that cannot list the
#: directory (GitLab's single-file artifact endpoint) reads to know which files to fetch
INDEX_NAME = "index.json"


@dataclass(frozen=True)
class Baseline:
    """Several stored runs, oldest first, read as one baseline."""

    location: str
    runs: tuple[RunResult, ...]
    sources: tuple[str, ...]


@runtime_checkable
class BaselineStore(Protocol):
    @property
    def location(self) -> str:
        """Where the runs are, as messages name it."""

    def load(self) -> Baseline | None:
        """The stored runs, or ``None`` when there is no baseline yet (never an error for that)."""

    def promote(self, run: RunResult, *, keep: int = DEFAULT_KEEP) -> str:
        """Store ``run`` as the newest baseline run (atomically); returns where it went."""


def names_a_directory(path: str) -> bool:
    """Whether a path that cannot be looked at (not there yet, or in a GitLab artifact) names a
    directory of stored runs: it ends in a separator or has no ``.json`` suffix."""
    return path.endswith(("/", os.sep)) or Path(path).suffix.lower() != ".json"
