"""``perfgate baseline``: promote a run into a store, show what a store holds, fetch the default
branch's stored runs (a GitLab artifact, or a local file or directory) into a directory store."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..options import positive_int
from ..store.base import DEFAULT_KEEP, INDEX_NAME
from ..store.gitlab import FETCH_JOB, FETCH_PATH, LEGACY_FETCH_PATH
from ._common import Exit

if TYPE_CHECKING:
    from ..store.base import Baseline, BaselineStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    promote = sub.add_parser("promote", help="store a run as the newest baseline run (keeps the last K)")
    promote.add_argument("current", help="the results file to promote")
    promote.add_argument("--to", required=True, metavar="DIR", help="the baseline directory (or a .json file)")
    promote.add_argument("--keep", type=positive_int, default=None, metavar="K", help="runs to keep (default 10)")
    show = sub.add_parser("show", help="list the runs a baseline holds")
    show.add_argument("location", help="a baseline directory or results file")
    fetch = sub.add_parser(
        "fetch",
        help="fetch the default branch's stored runs (GitLab job artifact, CI_JOB_TOKEN) or a committed or local "
        "baseline into a baseline directory",
    )
    fetch.add_argument("--to", required=True, metavar="DIR", help="the baseline directory to store the runs in")
    fetch.add_argument(
        "--ref", metavar="REF", help="the branch whose latest artifact is the baseline (default: CI_DEFAULT_BRANCH)"
    )
    fetch.add_argument(
        "--job", default=FETCH_JOB, metavar="NAME", help=f"the job keeping the baseline artifact (default {FETCH_JOB})"
    )
    fetch.add_argument(
        "--path",
        default=None,
        metavar="PATH",
        help="where the runs are in the job's artifacts: a directory of stored runs when PATH ends in / or has no "
        f".json suffix (its {INDEX_NAME} lists them; the newest K are fetched), else one results file "
        f"(default {FETCH_PATH}, or {LEGACY_FETCH_PATH} when the artifact has no {FETCH_PATH}{INDEX_NAME})",
    )
    source = fetch.add_mutually_exclusive_group()
    source.add_argument("--from-dir", metavar="DIR", help="copy the stored runs of a local or committed directory")
    source.add_argument("--from-file", metavar="FILE", help="copy a local or committed results file")
    fetch.add_argument("--keep", type=positive_int, default=None, metavar="K", help="runs to keep in DIR (default 10)")
    fetch.add_argument(
        "--require-baseline", action="store_true", help="no baseline to fetch is an error (exit 2), not a notice"
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "promote":
        return _promote(args)
    if args.action == "fetch":
        return _fetch(args)
    return _show(args)


def _stored(count: int, keep: int) -> str:
    return f"{_plural(count, 'run')} stored, keeping {keep}"


def _promote(args: argparse.Namespace) -> int:
    from ..importers import load_run
    from ..paths import check_input, check_output
    from ..store import open_store
    from ..store.files import FileStore

    check_input(args.current, "the results file to promote")
    store = open_store(args.to)
    if isinstance(store, FileStore):  # never overwrite a file that is not perfgate's
        check_output(args.to, "the baseline file", perfgate_only=True)
    else:
        check_output(args.to, "the baseline directory", directory=True)
    run = load_run(args.current)
    keep = args.keep or DEFAULT_KEEP
    where = store.promote(run, keep=keep)
    stored = store.load()
    print(f"promoted {args.current} to {where} ({_stored(len(stored.runs) if stored else 0, keep)})")
    appended = getattr(store, "last_history", None)  # a directory store's long history (history.jsonl)
    for line in appended.notes if appended is not None else ():
        print(f"history: {line}")
    return Exit.OK


def _show(args: argparse.Namespace) -> int:
    from ..store import open_store

    stored = open_store(args.location).load()
    if stored is None:
        print(f"{args.location}: no baseline")
        return Exit.OK
    for source, run in zip(stored.sources, stored.runs, strict=True):
        created = run.metadata.get("created") or "?"
        print(f"{source}: {len(run.tests)} tests, created {created}")
    return Exit.OK


def _local_store(args: argparse.Namespace) -> BaselineStore | None:
    """The store ``--from-file`` or ``--from-dir`` names, checked (``None``: a directory not there yet)."""
    from ..errors import ResultsFileError
    from ..paths import check_input, same_place
    from ..store import open_store

    where = args.from_file or args.from_dir
    if args.from_file and Path(where).is_dir():
        raise ResultsFileError(where, "is a directory: use --from-dir for a directory of stored runs")
    # a file named by --from-file must be there (a typo is not "no baseline yet"); a directory
    # of stored runs that does not exist yet is
    kind = check_input(
        where,
        "a results file" if args.from_file else "a directory of stored runs",
        directory_ok=bool(args.from_dir),
        missing_ok=bool(args.from_dir),
    )
    if args.from_dir and kind == "file":
        raise ResultsFileError(where, "is a file: use --from-file for one results file, --from-dir for a directory")
    if args.from_dir and kind is not None and same_place(where, args.to):
        raise ResultsFileError(
            where, f"is the same directory as --to {args.to}: every run would be stored twice; fetch into another"
        )
    return open_store(where) if kind is not None else None


def _artifact_store(args: argparse.Namespace) -> BaselineStore:
    """The GitLab artifact store the options name, checked."""
    from ..errors import GateError
    from ..store.gitlab import ArtifactStore

    ref = args.ref or os.environ.get("CI_DEFAULT_BRANCH")
    if not ref:
        raise GateError("no ref to fetch the baseline from: pass --ref REF or run in GitLab CI (CI_DEFAULT_BRANCH)")
    if args.path is not None and not args.path.strip():
        raise GateError("--path is empty: pass the directory of stored runs or the results file in the artifact")
    if args.path is not None and (args.path.startswith("/") or {".", ".."} & set(args.path.split("/"))):
        raise GateError(
            f"--path {args.path!r} leaves the job's artifacts: pass a path inside them, relative, without . or .. "
            f"(e.g. {FETCH_PATH})"
        )
    if not args.job.strip():
        raise GateError(f"--job is empty: pass the name of the job keeping the baseline artifact ({FETCH_JOB})")
    return ArtifactStore(ref, args.job, args.path, args.keep or DEFAULT_KEEP)


def _fetch(args: argparse.Namespace) -> int:
    """The baseline runs of a GitLab artifact, a local file or a local directory, promoted (oldest
    first) into the directory store ``args.to``."""
    from ..errors import GateError
    from ..importers import load_run
    from ..paths import check_output
    from ..store.files import DirectoryStore
    from ..store.gitlab import ArtifactStore

    check_output(args.to, "the baseline directory", directory=True)  # before anything is fetched
    source = _local_store(args) if args.from_file or args.from_dir else _artifact_store(args)
    baseline: Baseline | None = source.load() if source is not None else None
    note = ""
    one_file = False  # the source is a single results file: it keeps no long history
    if isinstance(source, ArtifactStore):
        missing = source.missing()
        runs = list(baseline.runs) if baseline else []
        if baseline is not None and not runs:
            missing = f"no baseline yet: {baseline.location} lists no runs"
        if baseline is not None and args.path is None and baseline.location == source.where(LEGACY_FETCH_PATH):
            note = f"; that job kept no run history ({FETCH_PATH}{INDEX_NAME}) yet, only its latest results"
            one_file = True
    else:
        where = args.from_file or args.from_dir
        missing = f"{where}: no baseline yet (no results file or stored runs there)"
        runs = [load_run(s) for s in baseline.sources] if baseline else []  # full files, not the summaries
    if not runs or baseline is None:
        if args.require_baseline:
            raise GateError(missing)
        print(f"perfgate: NOTICE: {missing}; the gate will pass without a comparison")
        return Exit.OK
    from ..history.log import LOG_NAME, has_log

    target = DirectoryStore(args.to)
    keep = args.keep or DEFAULT_KEEP
    own_history = has_log(args.to)
    for run in runs:
        # a baseline directory with a long history of its own gets the fetched runs appended to it;
        # otherwise the source's comes whole, below
        target.promote(run, keep=keep, history=own_history)
    loaded = target.load()
    fetched = _plural(len(runs), "run")
    where = baseline.location
    print(f"fetched {fetched} from {where} into {args.to} ({_stored(len(loaded.runs) if loaded else 0, keep)}){note}")
    if own_history:
        print(f"history: the {_plural(len(runs), 'fetched run')} appended to {args.to}'s own {LOG_NAME}")
    else:
        print(_carry_history(None if one_file else source, args.to, len(runs)))
    return Exit.OK


def _carry_history(source: BaselineStore | None, to: str, fetched: int) -> str:
    """The source's long history (``history.jsonl`` and its parts) written into ``to`` (which has
    none), or, when the source keeps none, one begun from the runs just fetched; what was done,
    in a line."""
    from ..history.analyse import STATE_NAME, rebuild
    from ..history.log import LOG_NAME, history_files, install_history
    from ..store.files import DirectoryStore
    from ..store.gitlab import ArtifactStore

    read: Callable[[str], bytes | None] | None = None
    files: dict[str, bytes] = {}
    if isinstance(source, ArtifactStore):
        read = source.file
        files = source.history_files()
    elif isinstance(source, DirectoryStore):
        root = Path(source.location)

        def from_directory(name: str) -> bytes | None:
            return (root / name).read_bytes() if (root / name).is_file() else None

        read = from_directory
        files = history_files(read, lambda name: str(root / name))
    if files:
        # the judged state too, when the source keeps one: the next judging resumes from it
        kept = read(STATE_NAME) if read is not None else None
        install_history(to, {**files, **({STATE_NAME: kept} if kept is not None else {})})
        parts = len(files) - 1
        return f"history: {LOG_NAME} fetched" + (f" with {_plural(parts, 'earlier part')}" if parts else "")
    rebuild(to)
    return f"history: the source keeps none; {LOG_NAME} begun from the {_plural(fetched, 'fetched run')}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"
