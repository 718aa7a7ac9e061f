"""``perfgate ab --instructions``: the paired gate on counts. Each side (the current tree, then
the base revision's worktree with the current test files laid over it) runs its pytest session
once with ``--perfgate-instructions`` (or ``--perfgate-allocations``); counts do not depend on
the machine's load, so there is no pinning and no rounds: one counted call per test and side.

What each session selected and how each test ended comes from :mod:`.observer`; the counts from
each side's results file. :func:`~.judge.compare_counted` judges them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._procs import read_log, spawn, stop_group, tail
from ..errors import AbError, PerfgateError
from ..model import RunResult, load_results
from . import worktree as wt
from .controller import _check_no_other_perfgate, _perfgate_config, _terminate_as_interrupt, pytest_words, start_run
from .observer import ENV_OBSERVED
from .schedule import SIDES, Side

#: what each side's session counts: the callgrind counters (and allocations), or allocations only
INSTRUCTIONS = "--perfgate-instructions"
ALLOCATIONS = "--perfgate-allocations"
#: pytest's exit status of an internal error (its session ended, but not as it should)
INTERNAL_ERROR = 3


@dataclass(frozen=True)
class CountOptions:
    base: str
    pytest_args: tuple[str, ...] = ()
    pythonpath: tuple[str, ...] | None = None  # None: "src" when the tree has one
    install: str | None = None
    install_timeout: float = 900.0
    overlay: tuple[str, ...] = ()
    #: True: instructions under callgrind (and allocations); False: allocations only, no valgrind
    instructions: bool = True
    session_timeout: float = 3600.0  # one side's whole session
    timeout: float | None = None  # the whole run
    keep_worktree: bool = False
    cwd: str = "."


@dataclass
class SideSession:
    """What one side's counted session selected and did."""

    side: Side
    nodeids: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # test files, conftests, ini file: laid over the base tree
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)  # nodeid -> (outcome, message)
    errors: list[str] = field(default_factory=list)  # collection errors, one line each
    run: RunResult | None = None
    finished: bool = False
    #: why the session did not finish (crashed, killed, its results unreadable); "" when it did
    broken: str = ""


@dataclass
class CountRun:
    revision: str
    commit: str
    sessions: dict[Side, SideSession] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    incomplete: str = ""
    elapsed: float = 0.0

    @property
    def subject(self) -> str:
        return f"{self.revision} ({self.commit[:10]})"

    def run_of(self, side: Side) -> RunResult | None:
        session = self.sessions.get(side)
        return session.run if session else None


Progress = Callable[[str], None]


def run_counted(options: CountOptions, *, progress: Progress | None = None) -> CountRun:
    """Both sides' counted sessions. Raises :class:`AbError` when the run cannot start (no such
    revision, a side that selects nothing or whose session does not start, a failing install); a
    side that crashes midway returns what was counted, with ``incomplete`` set."""
    say = progress or (lambda line: None)
    start = start_run(
        options.base,
        options.cwd,
        options.timeout,
        options.pytest_args,
        "perfgate ab --instructions counts each side in one pytest process: remove -n/--numprocesses",
    )
    started, deadline, cwd, root, commit = start.started, start.deadline, start.cwd, start.root, start.commit
    run = CountRun(options.base, commit)
    what = "instructions (under callgrind) and allocations" if options.instructions else "allocations"
    run.notices.append(
        f"counted, not timed: each side's session ran once with {INSTRUCTIONS if options.instructions else ALLOCATIONS}"
        " (no rounds, no pinning); Baseline is the base side's count, Current the current side's, judged by the "
        "counter rule (the base side stands for the stored runs; the part of the rule on times does not apply)"
    )
    with ExitStack() as stack:
        stack.enter_context(_terminate_as_interrupt())
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="perfgate-ab-count-")))
        say(f"perfgate ab: base {run.subject}, current working tree; counting {what}, one side after the other")
        base_tree = stack.enter_context(wt.worktree(root, commit, keep=options.keep_worktree))
        if options.keep_worktree:
            run.notices.append(f"the base worktree is kept at {base_tree} (remove it with git worktree remove)")
        env = dict(os.environ)
        env.pop(ENV_OBSERVED, None)
        trees = {Side.CURRENT: root, Side.BASE: base_tree}
        relative = cwd.relative_to(root)
        for side in (Side.CURRENT, Side.BASE):
            if side is Side.BASE:
                files = [*run.sessions[Side.CURRENT].files, *options.overlay]
                config = _perfgate_config(cwd, root)
                copied = wt.overlay([*files, *([config] if config else [])], root, base_tree)
                say(f"perfgate ab: {len(copied)} current test file(s) laid over the base revision")
                if options.install:
                    say(f"perfgate ab: install step in the base tree: {options.install}")
                    wt.run_install(options.install, base_tree, env, options.install_timeout)
            limit = options.session_timeout
            if deadline is not None:
                limit = min(limit, deadline - time.monotonic())
                if limit <= 0:
                    run.incomplete = (
                        f"the whole-run time limit ({options.timeout:g}s) was reached before the {side} side"
                    )
                    break
            say(f"perfgate ab: counting the {side} side ...")
            began = time.monotonic()
            session = _count_side(side, trees, relative, env, options, scratch, limit)
            run.sessions[side] = session
            say(
                f"perfgate ab: the {side} side: {len(session.nodeids)} test(s) selected, "
                f"{sum(1 for t in session.run.tests if _counted(t)) if session.run else 0} counted "
                f"({time.monotonic() - began:.1f}s)"
            )
            if session.broken:
                run.incomplete = session.broken
                break
    run.elapsed = time.monotonic() - started
    return run


def _counted(test: Any) -> bool:
    from ..metrics import is_counter

    return any(is_counter(name) for name in test.series)


def _count_side(
    side: Side,
    trees: dict[Side, Path],
    relative: Path,
    env: dict[str, str],
    options: CountOptions,
    scratch: Path,
    limit: float,
) -> SideSession:
    tree = trees[side]
    paths = wt.import_paths(tree, options.pythonpath)
    _check_no_other_perfgate(side, paths)
    side_env = {**env, "PYTHONPATH": wt.pythonpath(paths, env), ENV_OBSERVED: str(scratch / f"{side}.observed.json")}
    results, log = scratch / f"{side}.json", scratch / f"{side}.log"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "pytest_perfgate.ab.observer",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        "-q",
        *options.pytest_args,
        # after the user's arguments, so that these win over theirs
        INSTRUCTIONS if options.instructions else ALLOCATIONS,
        f"--perfgate-save={results}",
    ]
    with open(log, "wb") as output:
        try:
            process = spawn(command, feature="perfgate ab", output=output, cwd=tree / relative, env=side_env)
        except (OSError, PerfgateError) as exc:
            raise AbError(f"cannot start the {side} side's pytest session: {exc}") from None
    try:
        code: int | None = process.wait(timeout=max(limit, 1.0))
    except subprocess.TimeoutExpired:
        stop_group(process, grace=5)
        code = None
    finally:
        stop_group(process, grace=0)
    session = SideSession(side)
    observed = _read_observed(scratch / f"{side}.observed.json")
    said = pytest_words(log, code)
    if observed is None or not observed.get("collected"):
        if code == 5 or (code == 0 and observed is None):
            raise AbError(f"no test to compare: pytest on the {side} side selected none: {said}")
        raise AbError(f"pytest on the {side} side stopped before running any test: {said}{_hint(log)}")
    running = str(Path(__file__).resolve().parents[1])
    if observed.get("perfgate") != running:
        raise AbError(
            f"the {side} side's session imported another pytest-perfgate ({observed.get('perfgate')}) than the "
            f"running one ({running}): both sides must run this one; choose the code under test with --pythonpath"
        )
    session.nodeids = list(observed.get("nodeids", []))
    session.files = list(observed.get("files", []))
    session.errors = [
        f"collection error on the {side} side in {e['nodeid']}: {_last(e['message'])}" for e in observed["errors"]
    ]
    session.outcomes = {k: (v["outcome"], v["message"]) for k, v in observed.get("outcomes", {}).items()}
    session.finished = bool(observed.get("finished"))
    if not session.nodeids:
        raise AbError(f"no test to compare: pytest on the {side} side selected none: {said}")
    if code is None:
        session.broken = f"the {side} side's session did not finish within {limit:g}s (killed)"
    elif not session.finished:
        session.broken = f"the {side} side's session crashed (exit code {code}){_tail(log)}"
    elif observed.get("exitstatus") == INTERNAL_ERROR:
        session.broken = f"pytest on the {side} side ended with an internal error{_tail(log)}"
    else:
        try:
            session.run = load_results(results)
        except PerfgateError as exc:
            session.broken = f"the {side} side's results could not be read: {exc}{_tail(log)}"
    return session


def _read_observed(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _last(message: str) -> str:
    return (message.strip().splitlines() or ["?"])[-1].removeprefix("E").strip()


def _tail(log: Path, lines: int = 15) -> str:
    text = read_log(log)
    last = tail(text, lines) if text else ""
    return f"; its output ends with:\n{last}" if last else ""


def _hint(log: Path) -> str:
    text = read_log(log) or ""
    if "unrecognized arguments: --perfgate" in text:
        return (
            "\n(perfgate's pytest plugin is not registered in this environment: pytest-perfgate must be "
            "installed (pip install pytest-perfgate), not only importable from PYTHONPATH)"
        )
    return _tail(log)


__all__ = ["SIDES", "CountOptions", "CountRun", "SideSession", "run_counted"]
