"""Baseline stores behind one interface (:class:`BaselineStore`): where stored runs live, how a run
is promoted into them.

* :class:`~.files.FileStore`: one results file is the whole baseline (one run);
* :class:`~.files.DirectoryStore`: a directory of stored runs, the last ``keep`` kept by ``promote``;
* :class:`~.gitlab.ArtifactStore`: the stored runs a GitLab job keeps in its artifacts (read only).

:func:`open_store` picks the store for a local location.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .base import DEFAULT_KEEP, Baseline, BaselineStore, names_a_directory

if TYPE_CHECKING:
    from ..model import RunResult


def open_store(location: str | os.PathLike[str]) -> BaselineStore:
    """A directory (existing, or a path ending in ``/`` or without a ``.json`` suffix) is a
    :class:`~.files.DirectoryStore`; anything else is a :class:`~.files.FileStore`."""
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


def newest_first(runs: Sequence[RunResult], sources: Sequence[str]) -> Iterator[RunResult | str]:
    """A baseline's stored runs (``runs`` read from ``sources``, oldest first) with their evidence,
    newest first, each read when asked for: a run read from its summary (no evidence) is read again
    from its run file; one that cannot be read is the text of why (said in the report's notice,
    never skipped silently)."""
    from ..errors import PerfgateError
    from ..importers import load_run

    for run, source in reversed(list(zip(runs, sources, strict=True))):
        if run.metadata.get("summarised"):
            try:
                run = load_run(source)
            except PerfgateError as exc:
                yield f"{source}: {exc}"
                continue
        yield run


__all__ = ["DEFAULT_KEEP", "Baseline", "BaselineStore", "names_a_directory", "newest_first", "open_store"]
