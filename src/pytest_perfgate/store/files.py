"""File and directory stores."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import stats
from ..config import GATE_STATISTICS
from ..errors import ResultsFileError
from ..importers import load_run
from ..model import RunResult, Series, TestResult, run_to_dict
from ..paths import check_input, check_output, write_json_atomic, writing
from ..units import Kind
from .base import DEFAULT_KEEP, INDEX_NAME, Baseline

if TYPE_CHECKING:
    from ..history.log import Appended

_RUN_NAME = re.compile(r"^run-(\d{6})\.json$")
SUMMARY_SUFFIX = ".summary.json"
SUMMARY_SCHEMA = "perfgate-run-summary"
SUMMARY_VERSION = 1

INDEX_SCHEMA = "perfgate-baseline-index"
INDEX_VERSION = 1


def index_to_dict(names: Sequence[str]) -> dict[str, Any]:
    """The index of a directory store holding the run files ``names`` (oldest first)."""
    return {"schema": INDEX_SCHEMA, "schema_version": INDEX_VERSION, "runs": list(names)}


def parse_index(data: bytes, where: str) -> tuple[str, ...]:
    """The run file names an index lists, oldest first; :class:`ResultsFileError` naming ``where``
    for anything that is not an index this perfgate reads (not JSON, another schema or version, a
    name that is not a stored run's ``run-NNNNNN.json``, a name listed twice)."""
    import json

    if not data.strip():
        raise ResultsFileError(where, "is empty")
    try:
        index = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ResultsFileError(where, f"cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(
            where, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); the file may be truncated"
        ) from None
    if not isinstance(index, dict) or index.get("schema") != INDEX_SCHEMA:
        found = index.get("schema") if isinstance(index, dict) else type(index).__name__
        raise ResultsFileError(where, f"not a perfgate baseline index (schema is {found!r}, expected {INDEX_SCHEMA!r})")
    if index.get("schema_version") != INDEX_VERSION:
        raise ResultsFileError(
            where,
            f"index schema_version {index.get('schema_version')!r} is not supported by this perfgate (it reads "
            f"version {INDEX_VERSION}); upgrade perfgate",
        )
    runs = index.get("runs")
    if not isinstance(runs, list):
        raise ResultsFileError(where, f"runs: expected a list of run file names, got {type(runs).__name__}")
    seen: set[str] = set()
    for i, name in enumerate(runs):
        if not isinstance(name, str) or not _RUN_NAME.match(name):
            raise ResultsFileError(where, f"runs[{i}]: {name!r} is not a stored run's file name (run-NNNNNN.json)")
        if name in seen:
            raise ResultsFileError(where, f"runs[{i}]: {name!r} is listed twice")
        seen.add(name)
    return tuple(runs)


def summarise(run: RunResult, run_file: Path | None = None) -> dict[str, Any]:
    """A stored run reduced to what a baseline needs: per test and series the gate statistics
    (no samples). Loading it takes a fraction of the time of the full results file. With
    ``run_file`` (the stored run's file) its size is recorded: a run file that no longer has it
    (truncated, or replaced) is noticed when the summary is read (:func:`load_summary`)."""
    tests = []
    for test in run.tests:
        old = test.evidence.get("summary")
        series = {}
        for name, s in test.series.items():
            values = [v for v in s.values if math.isfinite(v)]
            if values:
                figures: dict[str, float] = {stat: stats.statistic(values, stat) for stat in GATE_STATISTICS}
            elif isinstance(old, dict) and isinstance(old.get(name), dict):
                figures = dict(old[name])  # imported without samples: keep the imported summary
            else:
                figures = {}
            series[name] = {
                "kind": s.kind.value,
                "unit": s.unit,
                "higher_is_better": s.higher_is_better,
                "samples": len(values),
                "stats": figures,
            }
        tests.append({"nodeid": test.nodeid, "outcome": test.outcome, "mode": test.mode, "series": series})
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "schema_version": SUMMARY_VERSION,
        "metadata": dict(run.metadata),
        "tests": tests,
    }
    if run_file is not None:
        summary["run_file"] = {"name": run_file.name, "size": run_file.stat().st_size}
    return summary


def load_summary(path: Path, run_file: Path | None = None) -> RunResult | None:
    """Read a summary written by :func:`summarise` back as a run whose series carry no samples and
    whose statistics are in each test's ``evidence["summary"]`` (where the gate looks for them).

    With ``run_file``: :class:`ResultsFileError` when the summary recorded that file's size and it
    has another size now (a truncated run file is never hidden behind its surviving summary);
    ``None`` when the summary recorded no size (written by an older perfgate): read the run file."""
    import json

    name = str(path)
    check_input(name, "a run summary")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFileError(name, f"cannot be read as a run summary: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SUMMARY_SCHEMA:
        raise ResultsFileError(name, f"not a perfgate run summary (schema {SUMMARY_SCHEMA!r} expected)")
    if data.get("schema_version") != SUMMARY_VERSION:
        raise ResultsFileError(name, f"summary schema_version {data.get('schema_version')!r} is not supported")
    try:
        tests = []
        for t in data["tests"]:
            series = {
                key: Series(key, Kind(s["kind"]), (), higher_is_better=bool(s["higher_is_better"]), unit=str(s["unit"]))
                for key, s in t["series"].items()
            }
            summary = {key: s["stats"] for key, s in t["series"].items()}
            tests.append(
                TestResult(
                    nodeid=str(t["nodeid"]),
                    outcome=str(t["outcome"]),
                    mode=t.get("mode"),
                    series=series,
                    evidence={"summary": summary},
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultsFileError(name, f"malformed run summary ({type(exc).__name__}: {exc})") from None
    if run_file is not None:
        recorded = data.get("run_file")
        size = recorded.get("size") if isinstance(recorded, dict) else None
        if not isinstance(size, int) or isinstance(size, bool):
            return None
        actual = run_file.stat().st_size
        if actual != size:
            raise ResultsFileError(
                str(run_file),
                f"is {actual} bytes but its summary {path.name} recorded {size}: the stored run was truncated or "
                "changed after it was stored; restore it, or remove it and its summary",
            )
    metadata = data.get("metadata")
    return RunResult(
        metadata={**(metadata if isinstance(metadata, dict) else {}), "summarised": True}, tests=tuple(tests)
    )


class FileStore:
    """One results file (perfgate's, or a pytest-benchmark JSON) is the baseline."""

    def __init__(self, location: str) -> None:
        self.location = location

    def load(self) -> Baseline | None:
        # only a path that does not exist is "no baseline yet"; a FIFO, a loop, an unreadable
        # file is an error (check_input)
        if check_input(self.location, "a results file", missing_ok=True) is None:
            return None
        return Baseline(self.location, (load_run(self.location),), (self.location,))

    def promote(self, run: RunResult, *, keep: int = DEFAULT_KEEP) -> str:
        target = check_output(self.location, "the baseline file", perfgate_only=True)
        with writing(self.location, "the baseline file"):
            write_json_atomic(target, run_to_dict(run))
        return self.location


class DirectoryStore:
    """A directory of ``run-NNNNNN.json`` files, numbered in promotion order.

    ``promote`` writes the new run to a temporary file and links it under the next free number
    (a link never overwrites, so two concurrent promotions cannot clobber each other), writes its
    summary (``run-NNNNNN.summary.json``: the gate statistics of every series, no samples), removes
    the oldest runs beyond ``keep``, then rewrites ``index.json`` (atomically): the stored run files,
    oldest first, for a reader that cannot list the directory (``perfgate baseline fetch`` from a
    GitLab artifact). Last it appends the run's summary to ``history.jsonl``, the long history that
    is never pruned (docs/history.md), under a lock. ``load`` does not read the index (older
    directories have none): it reads every stored run, oldest first, from its summary when there is
    one (a run copied in by hand has none: the full file is read); a corrupt or unknown-schema file
    is an error naming it, never skipped
    silently.
    """

    def __init__(self, location: str) -> None:
        self.location = location
        #: what the last :meth:`promote` appended to the history (None: nothing)
        self.last_history: Appended | None = None

    def _stored(self) -> list[tuple[int, Path]]:
        root = Path(self.location)
        if not root.is_dir():
            return []
        found = []
        try:
            entries = list(root.iterdir())
        except OSError as exc:
            raise ResultsFileError(self.location, f"cannot be listed ({exc.strerror or exc})") from None
        for entry in entries:
            match = _RUN_NAME.match(entry.name)
            if match:
                # a FIFO or loop is named, never skipped; one removed meanwhile (a concurrent prune) is gone
                if check_input(entry, "a stored run (a regular file)", missing_ok=True) is None:
                    continue
                found.append((int(match.group(1)), entry))
        return sorted(found)

    def load(self) -> Baseline | None:
        kind = check_input(self.location, "a directory of stored runs", directory_ok=True, missing_ok=True)
        if kind == "file":
            raise ResultsFileError(self.location, "is not a directory of stored runs")
        stored = self._stored()
        if not stored:
            return None
        runs = tuple(self._load_one(path) for _, path in stored)
        return Baseline(self.location, runs, tuple(str(p) for _, p in stored))

    @staticmethod
    def _summary_path(path: Path) -> Path:
        return path.with_name(path.name[: -len(".json")] + SUMMARY_SUFFIX)

    def _load_one(self, path: Path) -> RunResult:
        summary = self._summary_path(path)
        if summary.is_file() and summary.stat().st_mtime >= path.stat().st_mtime:
            run = load_summary(summary, run_file=path)
            if run is not None:
                return run
        return load_run(path)

    def promote(self, run: RunResult, *, keep: int = DEFAULT_KEEP, history: bool = True) -> str:
        """Store ``run`` (see the class docstring); with ``history`` (the default), also append its
        summary to the directory's long history (:func:`~pytest_perfgate.history.log.append`,
        ``history.jsonl``: never pruned), after the index is written; what that append did is
        :attr:`last_history`."""
        if keep < 1:
            raise ValueError("keep must be at least 1")
        root = Path(self.location)
        check_output(root, "the baseline directory", directory=True)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsFileError(self.location, f"cannot be made ({exc.strerror or exc})") from None
        with writing(root, "the baseline directory"):
            fd, tmp = tempfile.mkstemp(prefix=".promote.", suffix=".json", dir=root)
        os.close(fd)
        try:
            write_json_atomic(tmp, run_to_dict(run))
            number = (self._stored() or [(0, root)])[-1][0] + 1
            while True:
                target = root / f"run-{number:06d}.json"
                try:
                    os.link(tmp, target)
                    break
                except FileExistsError:
                    number += 1
        finally:
            os.unlink(tmp)
        write_json_atomic(self._summary_path(target), summarise(run, run_file=target))
        for _, old in self._stored()[:-keep]:
            old.unlink(missing_ok=True)
            self._summary_path(old).unlink(missing_ok=True)
        self._write_index()
        if history:
            from ..history.log import append

            self.last_history = append(root, run, stored_run=number)
        return str(target)

    @property
    def index_path(self) -> Path:
        return Path(self.location) / INDEX_NAME

    def _write_index(self) -> None:
        """Write the index from the directory's listing, and again while the listing changed under
        it: whichever of several concurrent promotions writes last, it wrote the final listing."""
        for _ in range(100):
            names = [path.name for _, path in self._stored()]
            write_json_atomic(self.index_path, index_to_dict(names))
            if [path.name for _, path in self._stored()] == names:
                return
