"""The history file of a baseline directory: a compact summary of every promoted run.

``history.jsonl`` in the baseline directory, one JSON object per line:

* line 1, the header: ``{"schema": "perfgate-history-log", "schema_version": 2, "part": K,
  "last_seq": S, "series": [[id, test, metric, unit, kind, higher_is_better], ...],
  "environments": {digest: {field: value}}}`` (the series and environments known when the part
  began; ``last_seq``: the last run of the earlier parts);
* one line per promoted run: ``{"seq": N, "run": R, "commit": ..., "ref": ..., "time": ...,
  "env": digest, "new_series": [...], "new_env": {...}, "s": [ids], "c": [centres],
  "d": [spreads], "n": [counts] or n}``: ``seq`` numbers the history's runs in promotion order (1,
  2, ...), ``run`` is the stored run's number in the directory (``run-NNNNNN.json``), the columns
  hold one entry per series the run measured (centre to 7 significant digits, an integral value as
  an integer; spread to 2: a spread of a few samples is itself uncertain by tens of percent).
  ``s`` is left out when the run measured the same series as the record before it in the part,
  and ``n`` is one number when every count is the same.

Version 1 (read, and appended to in its own version so an older reader can still read the part)
always wrote ``s`` and a list ``n``.

A run's figures (:func:`figures`): per test that passed or failed (a test over its budget fails,
and its figures are the ones the history must keep; skipped, errored and crashed tests are left
out), the ``time`` series as its median (metric
``"median"``), every other series (instructions, allocations, memory, custom figures) as the
median of its values under the series' name; spread: the standard deviation of the run's samples;
count: their number.

**Nothing is dropped.** When ``history.jsonl`` would grow beyond ``roll_bytes`` (default 1 MiB,
about 50 runs of 1,000 tests), it is compressed to ``history-KKKKKK.jsonl.gz`` (part K) and a new
``history.jsonl`` (part K + 1) begins; readers read every part, oldest first. :func:`append` says
when it rolled.

**Concurrent promotions.** :func:`append` holds an exclusive lock (``flock`` on
the directory itself) while it reads the current part's state, appends one line
(one ``write`` of the whole line, then ``fsync``) or rolls: two pipelines promoting at once both
get their line, in lock order, with distinct ``seq``. A line left incomplete by a writer that died
is cut off by the next writer (and said so); a reader that meets an incomplete last line (an
append in progress) skips it and says so. A roll writes the compressed part before it replaces
``history.jsonl``; a part whose number is not below the current one is the leftover of an
interrupted roll and is not read.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ResultsFileError
from ..stats import percentile, stdev
from .model import Environment, SeriesKey, SeriesKind

if TYPE_CHECKING:  # a reader of the history needs no results model
    from ..model import RunResult

LOG_NAME = "history.jsonl"
LOG_SCHEMA = "perfgate-history-log"
LOG_VERSION = 2
#: the versions this perfgate reads (version 1 always writes ``s`` and a list ``n``)
LOG_VERSIONS = (1, 2)
#: the size at which the current part is compressed and a new one begun
ROLL_BYTES = 1024 * 1024
_PART_NAME = re.compile(r"^history-(\d{6})\.jsonl\.gz$")
#: how every run record begins (its ``seq`` first), checked by a writer on every line
_RECORD_START = re.compile(rb'^\{"seq":(\d+),')
#: the run metadata key of the environment fingerprint (as the gate reads it)
FINGERPRINT_KEY = "fingerprint"
TIME_METRIC = "median"
#: the outcomes whose figures are recorded (a budget breach fails a test that measured fine)
RECORDED_OUTCOMES = ("passed", "failed")


# --------------------------------------------------------------------------- one run's figures


@dataclass(frozen=True)
class RunInfo:
    """One run of the history: where and when it was made."""

    seq: int
    stored_run: int | None
    commit: str | None
    ref: str | None
    time: str | None
    environment: Environment | None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def run_origin(run: RunResult) -> tuple[str | None, str | None, str | None]:
    """(commit, ref, time) of a run's metadata: GitLab's ``CI_COMMIT_SHA`` and
    ``CI_COMMIT_REF_NAME`` (``CI_COMMIT_BRANCH``) when it ran in CI, else the checkout's
    ``git.commit`` and ``git.branch``; ``created`` (ISO 8601)."""
    meta = run.metadata
    ci: Mapping[str, Any] = meta.get("ci") or {}
    git: Mapping[str, Any] = meta.get("git") or {}
    ci = ci if isinstance(ci, Mapping) else {}
    git = git if isinstance(git, Mapping) else {}
    commit = _text(ci.get("CI_COMMIT_SHA")) or _text(git.get("commit"))
    ref = _text(ci.get("CI_COMMIT_REF_NAME")) or _text(ci.get("CI_COMMIT_BRANCH")) or _text(git.get("branch"))
    return commit, ref, _text(meta.get("created"))


#: the run metadata (:mod:`~pytest_perfgate.measure.metadata`) that describes the machine, under
#: the environment field names the history gives them (a runner with another CPU or OS image
#: moves timings without any commit)
HOST_FIELDS = {
    "cpu": "cpu",
    "cpu_count": "cpu_count",
    "os": "platform",
    "python": "python",
    "implementation": "implementation",
}


def run_environment(run: RunResult) -> Environment | None:
    """The environment a run was measured in: the machine's fields of its metadata
    (:data:`HOST_FIELDS`) and, for a counted run, its environment fingerprint
    (``metadata["fingerprint"]``, whose fields win); None when the run records neither."""
    fields: dict[str, Any] = {}
    for name, key in HOST_FIELDS.items():
        value = run.metadata.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            fields[name] = str(value)
    raw = run.metadata.get(FINGERPRINT_KEY)
    if isinstance(raw, Mapping):
        fields.update({str(k): str(v) for k, v in raw.items() if v is not None})
    return Environment.of(fields)


def figures(run: RunResult) -> list[tuple[SeriesKey, float, float | None, int]]:
    """(key, centre, spread, count) of every series of every passed or failed test of ``run`` (see the
    module docstring); a run read from a summary (no samples) gives the summary's median, spread
    None and count 0."""
    from .. import metrics

    found: list[tuple[SeriesKey, float, float | None, int]] = []
    for test in run.tests:
        if test.outcome not in RECORDED_OUTCOMES:
            continue
        summary = test.evidence.get("summary")
        for name, series in test.series.items():
            counter = metrics.is_counter(name) or series.source in ("callgrind", "allocations")
            metric = TIME_METRIC if name == metrics.TIME_SERIES else name
            key = SeriesKey(
                test=test.nodeid,
                metric=metric,
                unit=series.unit or series.kind.base_unit,
                kind=SeriesKind.COUNTER if counter else SeriesKind.TIMING,
                higher_is_better=series.higher_is_better,
            )
            values = [v for v in series.values if math.isfinite(v)]
            if values:
                spread = stdev(values) if len(values) > 1 else 0.0
                found.append((key, percentile(values, 50), spread, len(values)))
                continue
            stored = summary.get(name) if isinstance(summary, Mapping) else None
            median = stored.get("median") if isinstance(stored, Mapping) else None
            if isinstance(median, (int, float)) and math.isfinite(median):
                found.append((key, float(median), None, 0))
    return found


# --------------------------------------------------------------------------- reading


@dataclass
class Columns:
    """One series' figures over the history, as columns (positions in :attr:`Log.runs`)."""

    at: list[int] = field(default_factory=list)
    centre: list[float] = field(default_factory=list)
    spread: list[float | None] = field(default_factory=list)
    count: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Position:
    """How far a reading of a history file got: the current part's number, the bytes of its complete
    records read (``size``) and their digest, the last run's ``seq``, and the earlier parts' sizes.
    :func:`changed_since` tells whether a history still begins with what a position covers."""

    part: int
    size: int
    digest: str
    seq: int
    parts: tuple[tuple[int, int], ...] = ()


@dataclass
class Log:
    """What the history files of a directory hold, oldest run first (or the runs after a given one:
    :func:`read_log`'s ``after``)."""

    runs: list[RunInfo] = field(default_factory=list)
    series: dict[SeriesKey, Columns] = field(default_factory=dict)
    #: what was not read and why (an incomplete last record)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: where the reading ended (None for a log made from stored runs)
    position: Position | None = None


def log_path(directory: str | os.PathLike[str]) -> Path:
    return Path(directory) / LOG_NAME


def parts(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """The compressed earlier parts, by number."""
    root = Path(directory)
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ResultsFileError(str(root), f"cannot be listed ({exc.strerror or exc})") from None
    found = [(int(m.group(1)), e) for e in entries if (m := _PART_NAME.match(e.name))]
    return sorted(found)


def has_log(directory: str | os.PathLike[str]) -> bool:
    return log_path(directory).is_file()


def part_name(number: int) -> str:
    return f"history-{number:06d}.jsonl.gz"


def history_files(read: Callable[[str], bytes | None], where: Callable[[str], str]) -> dict[str, bytes]:
    """Every file of a history another place keeps (a GitLab artifact, a directory), by name:
    ``history.jsonl`` (``read(name)`` gives a file's bytes, None when it is not there) and the
    earlier parts its header numbers (``part``: K means parts 1 .. K-1). Empty when there is no
    history; :class:`ResultsFileError` naming ``where(name)`` when a part it needs is missing or
    the header is not a history's."""
    current = read(LOG_NAME)
    if current is None:
        return {}
    first = current.split(b"\n", 1)[0]
    try:
        header = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("schema") != LOG_SCHEMA or not isinstance(header.get("part"), int):
        raise ResultsFileError(where(LOG_NAME), "does not start with a perfgate history header")
    files = {LOG_NAME: current}
    for number in range(1, header["part"]):  # the first part is 1
        name = part_name(number)
        content = read(name)
        if content is None:
            raise ResultsFileError(where(name), f"is missing: {LOG_NAME} continues part {number}, and it is not there")
        files[name] = content
    return files


def install_history(directory: str | os.PathLike[str], files: Mapping[str, bytes]) -> bool:
    """Write a fetched history's ``files`` (:func:`history_files`) into ``directory``, unless it
    has a history of its own (never overwritten); whether they were written."""
    from ..paths import write_bytes_atomic

    root = Path(directory)
    if has_log(root) or parts(root):
        return False
    for name, content in sorted(files.items(), key=lambda item: item[0] == LOG_NAME):  # the parts first
        write_bytes_atomic(root / name, content)
    return True


class _State:
    """The tables a part builds up while it is read."""

    def __init__(self, source: str, keys: dict[tuple[Any, ...], SeriesKey] | None = None) -> None:
        self.source = source
        self.series: dict[int, SeriesKey] = {}
        self.environments: dict[str, Environment] = {}
        self.part = 0
        self.last_seq = 0
        self.first_seq = 0
        self.version = LOG_VERSION
        #: the series ids of the last record read (a version 2 record without ``s`` has the same)
        self.last_ids: list[Any] | None = None
        self.last_columns: list[Columns] | None = None
        #: the series keys of rows already checked (shared by the parts of one reading)
        self.keys: dict[tuple[Any, ...], SeriesKey] = {} if keys is None else keys
        #: records read and not yet in their columns: (position in the log's runs, c, d, n)
        self.block: list[tuple[int, list[Any], list[Any], list[Any]]] = []

    def fail(self, line: int, message: str) -> ResultsFileError:
        return ResultsFileError(f"{self.source}:{line}", message)

    def define(self, line: int, rows: Any) -> None:
        if not isinstance(rows, list):
            raise self.fail(line, "series: expected a list")
        for row in rows:
            if not isinstance(row, list) or len(row) != 6 or not isinstance(row[0], int):
                raise self.fail(line, f"series: {row!r} is not [id, test, metric, unit, kind, higher_is_better]")
            sid, test, metric, unit, kind, better = row
            key = self.keys.get((test, metric, unit, kind, better))  # every part's header names them again
            if key is None:
                if not all(isinstance(v, str) for v in (test, metric, unit)) or kind not in ("timing", "counter"):
                    raise self.fail(line, f"series: {row!r} is not [id, test, metric, unit, kind, higher_is_better]")
                key = SeriesKey(test, metric, unit, SeriesKind(kind), bool(better))
                self.keys[(test, metric, unit, kind, better)] = key
            if self.series.get(sid, key) != key:
                raise self.fail(line, f"series id {sid} is defined twice")
            self.series[sid] = key

    def environ(self, line: int, table: Any) -> None:
        if not isinstance(table, dict):
            raise self.fail(line, "environments: expected an object")
        for digest, fields in table.items():
            if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
                raise self.fail(line, f"environment {digest}: expected an object of strings")
            env = Environment.of(fields)
            if env is not None:
                self.environments[str(digest)] = env


def _header(state: _State, data: Any) -> None:
    if not isinstance(data, dict) or data.get("schema") != LOG_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise state.fail(1, f"not a perfgate history log (schema is {found!r}, expected {LOG_SCHEMA!r})")
    if data.get("schema_version") not in LOG_VERSIONS:
        raise state.fail(
            1,
            f"history log schema_version {data.get('schema_version')!r} is not supported by this perfgate (it reads "
            f"versions {', '.join(map(str, LOG_VERSIONS))}); upgrade perfgate",
        )
    state.version = data["schema_version"]
    part, last = data.get("part"), data.get("last_seq")
    if not isinstance(part, int) or not isinstance(last, int):
        raise state.fail(1, "header: part and last_seq must be integers")
    state.part, state.last_seq, state.first_seq = part, last, last
    state.define(1, data.get("series", []))
    state.environ(1, data.get("environments", {}))


def _lines(data: bytes) -> tuple[list[bytes], bool]:
    """The complete lines and whether an incomplete last line was left out."""
    lines = data.split(b"\n")
    tail = lines.pop()
    return lines, bool(tail.strip())


def _scan(state: _State, number: int, raw: bytes, *, what: str) -> None:
    """Take a record line in without reading its figures: its ``seq`` (checked to follow the last
    one) and the series or environments it defines."""
    match = _RECORD_START.match(raw)
    if match is None or not raw.rstrip().endswith(b"}"):
        raise state.fail(number, f"is not a run record; the history file is corrupt{what}")
    seq = int(match.group(1))
    if seq != state.last_seq + 1:
        raise state.fail(number, f"seq {seq} does not follow {state.last_seq}: runs are missing or repeated")
    state.last_seq = seq
    if b'"new_series"' in raw or b'"new_env"' in raw:
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise state.fail(number, f"is not valid JSON ({exc}); the history file is corrupt{what}") from None
        state.define(number, record.get("new_series", []))
        state.environ(number, record.get("new_env", {}))


def _read_part(
    data: bytes, source: str, log: Log, *, current: bool, after: int = 0, keys: dict[tuple[Any, ...], SeriesKey]
) -> _State:
    """Read one part into ``log``: every record of a run after ``after`` (runs up to it are only
    scanned for the series and environments they define). ``keys``: the series rows checked so far."""
    state = _State(source, keys)
    lines, partial = _lines(data)
    if not lines:
        if current and partial:  # the header itself is being written
            raise ResultsFileError(source, "has no complete header line: the file is truncated")
        raise ResultsFileError(source, "is empty")
    named = None  # the last line scanned that names its series (a version 2 record may not)
    for number, raw in enumerate(lines, 1):
        if number > 1 and state.last_seq < after:
            _scan(state, number, raw, what="")
            if _NAMED in raw:
                named = raw
            continue
        if named is not None:
            _flush(state)
            state.last_ids, state.last_columns, named = _last_ids(named), None, None
        try:
            data_line = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise state.fail(number, f"is not valid JSON ({exc}); the history file is corrupt") from None
        if number == 1:
            _header(state, data_line)
            continue
        _record(state, number, data_line, log)
    _flush(state)
    if partial:
        note = f"{source}: an incomplete last record (being appended, or an interrupted promotion) was not read"
        if not current:
            raise ResultsFileError(source, "ends in an incomplete record: the compressed part is truncated")
        log.notes.append(note)
    return state


def _record(state: _State, line: int, data: Any, log: Log) -> None:
    if not isinstance(data, dict):
        raise state.fail(line, "a run record must be an object")
    seq = data.get("seq")
    if not isinstance(seq, int) or seq != state.last_seq + 1:
        raise state.fail(line, f"seq {seq!r} does not follow {state.last_seq}: runs are missing or repeated")
    state.last_seq = seq
    if "new_series" in data:
        state.define(line, data["new_series"])
    if "new_env" in data:
        state.environ(line, data["new_env"])
    digest = data.get("env")
    if digest is not None and digest not in state.environments:
        raise state.fail(line, f"env {digest!r} is not defined")
    stored = data.get("run")
    log.runs.append(
        RunInfo(
            seq=seq,
            stored_run=stored if isinstance(stored, int) else None,
            commit=_text(data.get("commit")),
            ref=_text(data.get("ref")),
            time=_text(data.get("time")),
            environment=None if digest is None else state.environments[digest],
        )
    )
    at = len(log.runs) - 1
    ids, centres, spreads, counts = (data.get(k) for k in ("s", "c", "d", "n"))
    if ids is None and state.version >= 2:
        ids = state.last_ids
        if ids is None:
            raise state.fail(line, "s is missing, and no earlier record of this part names the series")
    if isinstance(counts, int) and not isinstance(counts, bool) and state.version >= 2 and isinstance(ids, list):
        counts = [counts] * len(ids)
    if not all(isinstance(c, list) for c in (ids, centres, spreads, counts)):
        raise state.fail(line, "s, c, d and n must be lists")
    assert isinstance(ids, list) and isinstance(centres, list) and isinstance(spreads, list)
    assert isinstance(counts, list)
    if not len(ids) == len(centres) == len(spreads) == len(counts):
        raise state.fail(line, "s, c, d and n must have the same length")
    if not set(map(type, centres)) <= _NUMBERS or not set(map(type, spreads)) <= _SPREADS:
        raise state.fail(line, "centres and spreads must be numbers (a spread may be null)")
    if not set(map(type, counts)) <= {int}:
        raise state.fail(line, "counts must be integers")
    if ids is not state.last_ids or state.last_columns is None:
        _flush(state)
        columns = []
        for sid in ids:
            key = state.series.get(sid)
            if key is None:
                raise state.fail(line, f"series id {sid!r} is not defined")
            cols = log.series.get(key)
            if cols is None:
                cols = log.series[key] = Columns()
            columns.append(cols)
        state.last_ids, state.last_columns = ids, columns
    state.block.append((at, centres, spreads, counts))


def _flush(state: _State) -> None:
    """Move the records read since the series last changed into their columns, transposed at
    once (a record of 1,000 series is not taken apart value by value)."""
    if not state.block or state.last_columns is None:
        return
    ats = [at for at, *_ in state.block]
    columns = zip(*(c for _, c, _, _ in state.block), strict=True)
    spreads = zip(*(d for _, _, d, _ in state.block), strict=True)
    counts = zip(*(n for *_, n in state.block), strict=True)
    for cols, c, d, n in zip(state.last_columns, columns, spreads, counts, strict=True):
        cols.at.extend(ats)
        cols.centre.extend(map(float, c))
        cols.spread.extend(d if None in d else map(float, d))
        cols.count.extend(n)
    state.block = []


_NUMBERS = {int, float}
#: how a record naming its series' ids holds them (a quote cannot stand unescaped in a JSON string)
_NAMED = b',"s":['

_SPREADS = {int, float, type(None)}


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _part_first_seq(path: Path) -> int:
    """The ``last_seq`` of a compressed part's header (the run its first record follows), read
    without taking in the tables the header holds."""
    try:
        with gzip.open(path, "rb") as handle:
            header = json.loads(handle.readline())
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsFileError(str(path), f"cannot be read as a compressed history part ({exc})") from None
    last = header.get("last_seq") if isinstance(header, dict) and header.get("schema") == LOG_SCHEMA else None
    if not isinstance(last, int):
        raise ResultsFileError(f"{path}:1", "not a history part's header (no last_seq)")
    return last


def _decompressed(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ResultsFileError(str(path), f"cannot be read as a compressed history part ({exc})") from None


def read_log(directory: str | os.PathLike[str], *, after: int = 0) -> Log | None:
    """Every run the history files of ``directory`` hold, oldest first (``after``: only the runs
    after the one numbered ``after``; the parts that end before it are not read); None when there
    is no ``history.jsonl``. :class:`ResultsFileError` naming the file and line for a corrupt one."""
    current = log_path(directory)
    for _ in range(5):
        try:
            data = current.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ResultsFileError(str(current), f"cannot be read ({exc.strerror or exc})") from None
        log = Log()
        head = _State(str(current))
        first = data.split(b"\n", 1)[0]
        try:
            _header(head, json.loads(first))
        except json.JSONDecodeError:
            raise ResultsFileError(str(current), "line 1 is not a history header: the file is corrupt") from None
        earlier = [(k, p) for k, p in parts(directory) if k < head.part]
        if [k for k, _ in earlier] != list(range(1, head.part)):
            continue  # rolled meanwhile: list again
        sizes = tuple((k, path.stat().st_size) for k, path in earlier)
        # the parts holding runs after `after` (part k ends where part k + 1 begins)
        if after >= head.first_seq:
            earlier = []
        elif after > 0:  # from the newest part back to the one holding the run after `after`
            needed = 1
            while needed < len(earlier) and _part_first_seq(earlier[-needed][1]) > after:
                needed += 1
            earlier = earlier[-needed:]
        expected: int | None = 0 if after == 0 else None
        keys: dict[tuple[Any, ...], SeriesKey] = {}
        for k, path in earlier:
            state = _read_part(_decompressed(path), str(path), log, current=False, after=after, keys=keys)
            if expected is not None and state.first_seq != expected:
                raise ResultsFileError(str(path), f"part {k} begins after run {state.first_seq}, expected {expected}")
            expected = state.last_seq
            log.files.append(str(path))
        state = _read_part(data, str(current), log, current=True, after=after, keys=keys)
        if expected is not None and state.first_seq != expected:
            raise ResultsFileError(str(current), f"begins after run {state.first_seq}, expected {expected}")
        log.files.append(str(current))
        size = data.rfind(b"\n") + 1
        log.position = Position(head.part, size, _digest(data[:size]), state.last_seq, sizes)
        return log
    raise ResultsFileError(str(current), "the history's parts kept changing while it was read; read it again")


def changed_since(directory: str | os.PathLike[str], position: Position) -> str:
    """Why the history of ``directory`` no longer begins with what ``position`` covered (it was
    rebuilt, replaced or cut); "" when it still does (runs appended since, or a roll, change
    nothing of it)."""
    current = log_path(directory)
    try:
        data = current.read_bytes()
        head = _State(str(current))
        _header(head, json.loads(data.split(b"\n", 1)[0]))
    except (OSError, ValueError, ResultsFileError) as exc:
        return f"{current} cannot be read ({exc})"
    found = dict((k, p) for k, p in parts(directory))
    if head.part < position.part:
        return f"{current} is part {head.part}, the judged history had {position.part}"
    for k, size in position.parts:
        if k not in found or found[k].stat().st_size != size:
            return f"part {k} ({part_name(k)}) is not the one judged"
    if head.part > position.part:  # rolled since: what was judged is in the compressed part
        if position.part not in found:
            return f"part {position.part} ({part_name(position.part)}) is missing"
        data = _decompressed(found[position.part])
    if len(data) < position.size or _digest(data[: position.size]) != position.digest:
        return f"part {position.part} does not begin with the runs judged"
    return ""


# --------------------------------------------------------------------------- writing


def _short(value: float, digits: int) -> float | int:
    if value == int(value) and abs(value) < 2**53:
        return int(value)
    return float(f"{value:.{digits}g}")


@contextmanager
def _locked(directory: Path, *, timeout: float = 120.0) -> Iterator[None]:
    """The directory's history lock: ``flock`` on the directory itself (no lock file is left
    behind); where there is no ``fcntl`` (Windows), a ``.history.lock`` file made exclusively,
    waited for up to ``timeout`` seconds."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        import time

        lock = directory / ".history.lock"
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                break
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise ResultsFileError(
                        str(lock), f"held for over {timeout:.0f} s: remove it if no promotion is running"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass(frozen=True)
class Appended:
    """What :func:`append` did."""

    path: str
    seq: int
    series: int
    #: what the reader of the promotion's output must know (a roll, a cut-off record)
    notes: tuple[str, ...] = ()


def _writer_state(data: bytes, source: str) -> _State:
    """What a writer needs of the current part (its tables and last ``seq``), read quickly: only the
    header, the records that define series or environments, and the last record are parsed (a
    reader checks every record)."""
    state = _State(source)
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    try:
        _header(state, json.loads(lines[0]))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise state.fail(1, f"is not valid JSON ({exc}); the history file is corrupt") from None
    for number, raw in enumerate(lines[1:], 2):
        _scan(state, number, raw, what=" (not appended to)")
    return state


def _header_line(part: int, last_seq: int, state: _State, ids: Mapping[SeriesKey, int]) -> bytes:
    header = {
        "schema": LOG_SCHEMA,
        "schema_version": LOG_VERSION,
        "part": part,
        "last_seq": last_seq,
        "series": [_series_row(sid, key) for key, sid in sorted(ids.items(), key=lambda item: item[1])],
        "environments": {d: e.as_dict() for d, e in state.environments.items()},
    }
    return (json.dumps(header, separators=(",", ":")) + "\n").encode()


def _series_row(sid: int, key: SeriesKey) -> list[Any]:
    return [sid, key.test, key.metric, key.unit, key.kind.value, key.higher_is_better]


def _last_ids(data: bytes) -> Any:
    """The series ids of the last record of a part that names them (``s``), None when none does."""
    at = data.rfind(_NAMED)
    if at < 0:
        return None
    begin = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    try:
        return json.loads(data[begin : end if end >= 0 else len(data)]).get("s")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def _line(record: dict[str, Any], series_ids: list[int], counts: list[int], state: _State, data: bytes) -> bytes:
    """A run record's line: in a version 2 part, ``s`` only when the series differ from the last
    record's (``data``: the part so far) and ``n`` as one number when every count is the same."""
    record = dict(record)
    compact = state.version >= 2
    if not compact or _last_ids(data) != series_ids:
        record["s"] = series_ids
    record["n"] = counts[0] if compact and counts and counts.count(counts[0]) == len(counts) else counts
    order = ("seq", "run", "commit", "ref", "time", "env", "new_series", "new_env", "s", "c", "d", "n")
    ordered = {k: record[k] for k in order if k in record}
    return (json.dumps(ordered, separators=(",", ":"), allow_nan=False) + "\n").encode()


def append(
    directory: str | os.PathLike[str],
    run: RunResult,
    *,
    stored_run: int | None = None,
    roll_bytes: int = ROLL_BYTES,
) -> Appended:
    """Append ``run``'s summary to the history of ``directory`` (made when there is none), under
    the directory's history lock; roll the current part first when it would outgrow
    ``roll_bytes``. :class:`ResultsFileError` naming the file when the history is corrupt (nothing
    is written then)."""
    from ..paths import write_text_atomic, writing

    root = Path(directory)
    current = log_path(root)
    notes: list[str] = []
    with writing(current, "the history file"), _locked(root):
        state = _State(str(current))
        size, data = 0, b""
        if current.exists():
            data = current.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut < len(data):
                notes.append(
                    f"{current}: cut off an incomplete last record ({len(data) - cut} bytes) left by an "
                    "interrupted promotion: the run it was for is missing from the history"
                )
                with open(current, "r+b") as handle:
                    handle.truncate(cut)
                data = data[:cut]
            if data:
                state = _writer_state(data, str(current))
            size = len(data)
        ids = {key: sid for sid, key in state.series.items()}
        commit, ref, time = run_origin(run)
        env = run_environment(run)
        found = figures(run)
        record: dict[str, Any] = {
            "seq": state.last_seq + 1,
            "run": stored_run,
            "commit": commit,
            "ref": ref,
            "time": time,
            "env": None if env is None else env.digest,
        }
        new_series = []
        for key, *_ in found:
            if key not in ids:
                ids[key] = len(ids) + 1 if not ids else max(ids.values()) + 1
                new_series.append(_series_row(ids[key], key))
        if new_series:
            record["new_series"] = new_series
        if env is not None and env.digest not in state.environments:
            record["new_env"] = {env.digest: env.as_dict()}
        record["c"] = [_short(c, 7) for _, c, _, _ in found]
        record["d"] = [None if d is None else _short(d, 2) for _, _, d, _ in found]
        series_ids = [ids[key] for key, *_ in found]
        counts = [n for *_, n in found]
        if size == 0:
            write_text_atomic(current, _header_line(1, 0, state, {}).decode())
            state.version, size = LOG_VERSION, current.stat().st_size
        line = _line(record, series_ids, counts, state, data)
        if size + len(line) > roll_bytes and state.last_seq > state.first_seq:
            part = state.part
            target = root / part_name(part)
            tmp = root / f".{target.name}.tmp"
            tmp.write_bytes(gzip.compress(current.read_bytes(), compresslevel=6, mtime=0))
            os.replace(tmp, target)
            if env is not None:
                state.environments.setdefault(env.digest, env)
            fresh = {row[0] for row in new_series}
            known = {key: sid for key, sid in ids.items() if sid not in fresh}
            write_text_atomic(current, _header_line(part + 1, state.last_seq, state, known).decode())
            state.version = LOG_VERSION
            line = _line(record, series_ids, counts, state, b"")  # a new part's first record names its series
            notes.append(f"history rolled: {current.name} (part {part}) compressed to {target.name}; nothing dropped")
        with open(current, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    return Appended(str(current), state.last_seq + 1, len(found), tuple(notes))


def parts_size(directory: str | os.PathLike[str]) -> int:
    """Bytes the history files of ``directory`` take (every part and the current one)."""
    total = sum(p.stat().st_size for _, p in parts(directory))
    current = log_path(directory)
    return total + (current.stat().st_size if current.exists() else 0)


def stored_run_number(path: str | os.PathLike[str]) -> int | None:
    """The number of a stored run's file name (``run-000012.json`` -> 12)."""
    match = re.match(r"^run-(\d{6})\.json$", Path(path).name)
    return int(match.group(1)) if match else None
