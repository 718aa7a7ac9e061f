"""Starts the two pytest workers (base and current), pins them to one CPU, drives every timed
call of every test (``perf``, pytest-benchmark, a whole test body) through
:func:`~.schedule.measure_paired`, and cleans up whatever happens:
workers are started in their own process group and killed with it; the worktree is removed.

After the paired rounds, the tests a caller picks (``run_ab``'s ``profile``: those judged slower)
are run once more on each side, one side after the other, in a profiling session: each timed call
under the CPU profiler instead of rounds (never while anything is timed)."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._procs import read_log, spawn, stop_group, tail
from ..counts.callgrind import valgrind_command
from ..errors import AbError, ChannelClosed, ChannelTimeout, PerfgateError, RoundFailed
from ..evidence import CpuProfile
from ..model import RunResult, load_results
from ..profdiff import relative_to
from . import worktree as wt
from .protocol import (
    ENV_FDS,
    ENV_FOREIGN,
    ENV_PAD,
    ENV_PROFILE,
    ENV_PROFILER,
    ENV_SIDE,
    ENV_WHOLE_CALLS,
    PROFILER_CPU,
    PROFILER_INSTRUCTIONS,
    PROTOCOL_VERSION,
    Channel,
    Message,
    MessageType,
)
from .schedule import SIDES, PairedSettings, PairedTest, Round, Side, Stopped, measure_paired

#: the problem of a test that requested perf or benchmark and passed on both sides without calling it
NOT_CALLED = "passed without calling perf or benchmark: nothing was timed"
#: time a worker has to start, collect, or finish its session
STARTUP_TIMEOUT = 120.0


@dataclass(frozen=True)
class AbOptions:
    base: str  # the base side's git revision
    pytest_args: tuple[str, ...] = ()
    cpu: int | None = None
    pythonpath: tuple[str, ...] | None = None  # None: "src" when the tree has one
    install: str | None = None
    install_timeout: float = 900.0
    overlay: tuple[str, ...] = ()
    min_blocks: int = 16
    max_time: float | None = None  # per side and test; None: the tests' own perfgate_max_time
    #: rounds last at least this long (longer than pytest's 100us: every round is a message to a worker)
    min_round_time: float = 1e-3
    test_timeout: float = 300.0
    timeout: float | None = None  # the whole run
    hashseed: str = "0"
    keep_worktree: bool = False
    cwd: str = "."
    #: tests whose change is at least this (either way) are measured again in a fresh pair of
    #: workers, and in another while the pairs disagree, up to ``confirm_pairs`` extra pairs
    confirm_above: float = 0.05
    confirm_pairs: int = 2
    #: the regression threshold: pairs on either side of it disagree on the verdict, and another
    #: pair breaks the tie (None: only ``confirm_above`` counts)
    confirm_verdict_at: float | None = None
    #: tests without perf or benchmark are timed as whole calls (their body, round after round)
    whole_calls: bool = True
    #: seconds each side's timed call runs under the CPU profiler, for the tests ``run_ab``'s caller
    #: picks after the rounds (0: no profiles)
    profile_time: float = 1.0
    #: how those tests are profiled: "instructions" (one call counted by Python function under
    #: callgrind: exact, the same on a loaded machine), "cpu" (pyinstrument, CPU time, for
    #: ``profile_time``), "auto" (instructions where valgrind and the platform allow, else cpu)
    profiler: str = "auto"


#: the profilers of a profiling session (:attr:`AbOptions.profiler`)
PROFILERS = ("auto", PROFILER_INSTRUCTIONS, PROFILER_CPU)


def choose_profiler(requested: str) -> tuple[str, str]:
    """The profiler a profiling session uses for ``requested`` ("auto", "instructions", "cpu"), and
    a notice when "auto" could not have instructions (why, and what it used); :class:`AbError`
    when "instructions" was asked for and cannot be had."""
    from ..counts.functions import unavailable

    if requested == PROFILER_CPU:
        return PROFILER_CPU, ""
    why = unavailable()
    if why is None:
        return PROFILER_INSTRUCTIONS, ""
    if requested == PROFILER_INSTRUCTIONS:
        raise AbError(f"--profiler instructions: {why}")
    return PROFILER_CPU, f"profiles by CPU time (pyinstrument), not by counted instructions: {why}"


@dataclass
class AbRun:
    """The outcome of ``perfgate ab``: every test's paired measurement (or why there is none)."""

    revision: str  # the base side's git revision, as given
    commit: str  # ... resolved
    tests: list[PairedTest] = field(default_factory=list)
    base_run: RunResult | None = None
    current_run: RunResult | None = None
    notices: list[str] = field(default_factory=list)
    cpu: int | None = None
    #: set when the run did not finish (a worker crashed or hung, the whole-run limit)
    incomplete: str = ""
    elapsed: float = 0.0
    #: nodeid -> each side's CPU profile of the test's timed call (the tests picked for profiling)
    profiles: dict[str, dict[Side, CpuProfile]] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"{self.revision} ({self.commit[:10]})"


def choose_cpu(requested: int | None) -> tuple[int | None, str]:
    """The CPU both workers share, and a notice when they cannot be pinned."""
    if not hasattr(os, "sched_setaffinity"):
        return (
            None,
            "CPU affinity is not available on this platform: the workers are not pinned to one CPU, "
            "so the two sides may be slowed unequally (the comparison is less robust)",
        )
    allowed = sorted(os.sched_getaffinity(0))
    if requested is None:
        return allowed[-1], ""
    if requested not in allowed:
        raise AbError(f"--cpu {requested}: not a CPU this process may use (allowed: {', '.join(map(str, allowed))})")
    return requested, ""


class Worker:
    """One pytest worker process and its channel."""

    def __init__(self, side: Side, process: subprocess.Popen[bytes], channel: Channel, log: Path) -> None:
        self.side = side
        self.process = process
        self.channel = channel
        self.log = log
        self.timeout = STARTUP_TIMEOUT

    def receive(self, timeout: float | None = None) -> Message:
        try:
            return self.channel.receive(self.timeout if timeout is None else timeout)
        except ChannelClosed:
            code = self.process.wait(timeout=10)
            raise AbError(f"the {self.side} worker exited (code {code}){self.log_tail()}") from None
        except ChannelTimeout:
            raise AbError(
                f"the {self.side} worker did not answer within {self.timeout if timeout is None else timeout:g}s "
                f"(it hangs: killed){self.log_tail()}"
            ) from None

    def expect(self, kind: MessageType, timeout: float | None = None) -> Message:
        message = self.receive(timeout)
        if message["type"] == MessageType.FAILED:
            raise RoundFailed(self.side, str(message.get("message", "")), str(message.get("where", "a round")))
        if message["type"] != kind:
            raise AbError(f"the {self.side} worker broke off the measurement: {self._what(message)}{self.log_tail()}")
        return message

    @staticmethod
    def _what(message: Message) -> str:
        kind = message["type"]
        if kind == MessageType.END:
            return f"its test {message.get('nodeid')} ended ({message.get('outcome')}: {message.get('message')})"
        if kind == MessageType.FINISHED:
            return "its pytest session ended"
        return f"it sent {kind!r}"

    def send(self, kind: MessageType, **fields: Any) -> None:
        try:
            self.channel.send(kind, **fields)
        except ChannelClosed:
            code = self.process.wait(timeout=10)
            raise AbError(f"the {self.side} worker exited (code {code}){self.log_tail()}") from None

    # the RoundRunner protocol of measure_paired
    def calibrate(self, min_round_time: float) -> int:
        self.send(MessageType.CALIBRATE, min_round_time=min_round_time)
        return int(self.expect(MessageType.CALIBRATED)["loops"])

    def round(self, loops: int, keep: bool) -> Round:
        self.send(MessageType.ROUND, loops=loops, keep=keep)
        reply = self.expect(MessageType.ROUND)
        return Round(int(reply["ns"]), int(reply.get("switches", 0)), int(reply.get("cpu_ns", -1)))

    def log_tail(self, lines: int = 15) -> str:
        text = read_log(self.log)
        if text is None:
            return ""
        last = tail(text, lines)
        hint = ""
        if "unrecognized arguments: --perfgate-save" in text:
            hint = (
                "\n(perfgate's pytest plugin is not registered in this environment: pytest-perfgate must be "
                "installed (pip install pytest-perfgate), not only importable from PYTHONPATH)"
            )
        return f"; its output ends with:\n{last}{hint}" if last else hint

    def kill(self) -> None:
        """Kill the worker's whole process group (it and anything it started)."""
        stop_group(self.process, grace=0)
        self.channel.close()


def start_worker(
    side: Side,
    cwd: Path,
    args: Sequence[str],
    env: dict[str, str],
    cpu: int | None,
    log: Path,
    results: Path,
    *,
    callgrind_dir: Path | None = None,
) -> Worker:
    """Start ``side``'s worker: pytest with the worker plugin, talking over two pipes; with
    ``callgrind_dir``, under callgrind with named functions skipped (instructions by function),
    its dumps in that directory."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "pytest_perfgate.ab.worker",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        "-q",
        *args,
        # after the user's arguments, so that this results file wins over one they gave
        f"--perfgate-save={results}",
    ]
    extra_env: dict[str, str] = {}
    if callgrind_dir is not None:  # before the pipes: nothing to close when valgrind cannot be had
        try:
            seed = int(env.get("PYTHONHASHSEED") or 0)
            under = valgrind_command(command, out_dir=callgrind_dir, hash_seed=seed, functions=True)
        except (ValueError, PerfgateError) as exc:
            raise AbError(f"cannot start the {side} worker under callgrind: {exc}") from None
        command, extra_env = under.argv, under.env
    to_worker_r, to_worker_w = os.pipe()
    from_worker_r, from_worker_w = os.pipe()
    worker_env = {**env, **extra_env, ENV_FDS: f"{to_worker_r},{from_worker_w}", ENV_SIDE: side.value}
    with open(log, "wb") as output:
        try:
            process = spawn(
                command,
                feature="perfgate ab",
                output=output,
                cwd=cwd,
                env=worker_env,
                pass_fds=(to_worker_r, from_worker_w),
            )
        except (OSError, PerfgateError) as exc:
            os.close(to_worker_w)
            os.close(from_worker_r)
            raise AbError(f"cannot start the {side} worker: {exc}") from None
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
    if cpu is not None:
        try:
            os.sched_setaffinity(process.pid, {cpu})
        except OSError as exc:
            stop_group(process, grace=0)
            raise AbError(f"cannot pin the {side} worker to CPU {cpu}: {exc}") from None
    return Worker(side, process, Channel(from_worker_r, to_worker_w), log)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cancelled CI job) cleans up like Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunStart:
    """Where a paired run (timed or counted) starts: the folder it was asked from, its repository,
    the base commit, and its clock (``deadline``: when ``--timeout`` ends it)."""

    cwd: Path
    root: Path
    commit: str
    started: float
    deadline: float | None


def start_run(base: str, cwd: str, timeout: float | None, pytest_args: Sequence[str], parallel: str) -> RunStart:
    """The start of a paired run; an :class:`AbError` for an unknown revision, a folder outside a
    repository, or pytest arguments that would spread a side over pytest-xdist workers
    (``parallel`` says why that is refused)."""
    started = time.monotonic()
    here = Path(cwd).resolve()
    root = wt.repository_root(here)
    commit = wt.resolve_revision(root, base)
    if any(
        a in ("-n", "--numprocesses", "--dist") or a.startswith(("--numprocesses=", "--dist=")) for a in pytest_args
    ):
        raise AbError(parallel)
    return RunStart(here, root, commit, started, None if timeout is None else started + timeout)


#: which of a finished run's tests to profile on both sides
ProfileChoice = Callable[[AbRun], Sequence[str]]


def run_ab(
    options: AbOptions,
    *,
    progress: Progress | None = None,
    live: Progress | None = None,
    profile: ProfileChoice | None = None,
) -> AbRun:
    """The whole paired run. Raises :class:`AbError` when it cannot start; a run that starts
    but cannot finish returns what it measured with ``incomplete`` set. ``profile`` picks, once
    every test is measured, the tests whose timed call is profiled on both sides
    (``AbRun.profiles``)."""
    say = progress or (lambda line: None)
    if options.profiler == PROFILER_INSTRUCTIONS and options.profile_time > 0 and profile is not None:
        choose_profiler(options.profiler)  # asked for and not to be had: said before the rounds, not after
    start = start_run(
        options.base,
        options.cwd,
        options.timeout,
        options.pytest_args,
        "perfgate ab runs each side in one pytest process: remove -n/--numprocesses/--dist",
    )
    started, deadline, cwd, root, commit = start.started, start.deadline, start.cwd, start.root, start.commit
    cpu, cpu_notice = choose_cpu(options.cpu)
    run = AbRun(options.base, commit, cpu=cpu)
    if cpu_notice:
        run.notices.append(cpu_notice)
    with ExitStack() as stack:
        stack.enter_context(_terminate_as_interrupt())
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="perfgate-ab-run-")))
        say(
            f"perfgate ab: base {run.subject}, current working tree; workers pinned to CPU {cpu}"
            if cpu is not None
            else f"perfgate ab: base {run.subject}, current working tree; workers not pinned"
        )
        base_tree = stack.enter_context(wt.worktree(root, commit, keep=options.keep_worktree))
        if options.keep_worktree:
            run.notices.append(f"the base worktree is kept at {base_tree} (remove it with git worktree remove)")
        env = dict(os.environ)
        env["PYTHONHASHSEED"] = options.hashseed
        env.pop(ENV_FDS, None)
        workers: dict[Side, Worker] = {}
        stack.callback(_kill_all, workers)
        pair = _Pair(
            options, run, {Side.CURRENT: root, Side.BASE: base_tree}, cwd.relative_to(root), env, scratch, workers
        )
        collected = {Side.CURRENT: pair.start(Side.CURRENT, 1)}
        if not collected[Side.CURRENT]["nodeids"]:
            pair.stop_empty(Side.CURRENT)
        files = [*collected[Side.CURRENT]["files"], *options.overlay]  # the current tests go over the base tree
        config = _perfgate_config(cwd, root)
        copied = wt.overlay([*files, *([config] if config else [])], root, base_tree)
        say(f"perfgate ab: {len(copied)} current test file(s) laid over the base revision")
        if options.install:
            say(f"perfgate ab: install step in the base tree: {options.install}")
            wt.run_install(options.install, base_tree, env, options.install_timeout)
        collected[Side.BASE] = pair.start(Side.BASE, 1)
        order = _plan(run, collected)
        for side in SIDES:
            workers[side].send(MessageType.RUN, nodeids=order)
        say(f"perfgate ab: {len(order)} test(s) on both sides")
        run.tests += _drive(run, workers, order, options, deadline, say, live)
        if not run.incomplete:
            pair.finish(1)
            run.current_run = _load(scratch / f"{Side.CURRENT}-1.json", run, Side.CURRENT)
            run.base_run = _load(scratch / f"{Side.BASE}-1.json", run, Side.BASE)
        for number in range(2, 2 + options.confirm_pairs):
            flagged = [
                t.nodeid for t in run.tests if _needs_confirming(t, options.confirm_above, options.confirm_verdict_at)
            ]
            if run.incomplete or not flagged:
                break
            say(
                f"perfgate ab: {len(flagged)} test(s) changed by {options.confirm_above:.0%} or more: measured again "
                f"in a fresh pair of workers (pair {number} of at most {1 + options.confirm_pairs})"
            )
            _kill_all(workers)
            for side in (Side.CURRENT, Side.BASE):
                pair.start(side, number)
                workers[side].send(MessageType.RUN, nodeids=flagged)
            again = {t.nodeid: t for t in _drive(run, workers, flagged, options, deadline, say, live)}
            if not run.incomplete:
                pair.finish(number)
            run.tests = [_confirmed(t, again.get(t.nodeid), run) for t in run.tests]
        chosen = list(profile(run)) if profile is not None and options.profile_time > 0 and not run.incomplete else []
        if chosen:
            profiler, why = choose_profiler(options.profiler)
            if why:
                run.notices.append(why)
            how = (
                "one call counted by Python function under callgrind"
                if profiler == PROFILER_INSTRUCTIONS
                else f"{options.profile_time:g}s of CPU time per timed call"
            )
            say(f"perfgate ab: {len(chosen)} test(s) judged slower: profiled on each side ({how}, after the rounds)")
            _kill_all(workers)
            pair.profile(chosen, deadline, profiler)
    run.elapsed = time.monotonic() - started
    return run


def _needs_confirming(test: PairedTest, above: float, verdict_at: float | None = None) -> bool:
    """Measured in one pair of workers, a test whose change is at least ``above`` either way; in
    several, one whose pairs have no majority among "worse by ``above``", "better by ``above``"
    and "within", or (``verdict_at``, the regression threshold) no majority on whether it is past
    that threshold: two pairs on either side of it would decide the verdict by their mean, and one
    pair's offset (it can be common to every test of that pair) could tip it. Another pair breaks
    the tie; the test is judged on the median over the pairs."""
    if test.problem or test.only or not test.log_ratios:
        return False
    changes = [math.expm1(shift) for shift in test.pair_shifts]
    votes = [(_direction(c, above), _direction(c, verdict_at) if verdict_at is not None else 0) for c in changes]
    if len(votes) == 1:
        return votes[0][0] != 0
    return 2 * max(votes.count(vote) for vote in set(votes)) <= len(votes)


def _direction(change: float, above: float) -> int:
    return 1 if change >= above else -1 if change <= -above else 0


def _confirmed(test: PairedTest, again: PairedTest | None, run: AbRun) -> PairedTest:
    if again is None:
        return test
    if again.problem or not again.log_ratios:
        run.notices.append(f"{test.nodeid}: not confirmed in a fresh pair of workers: {again.problem or 'no rounds'}")
        return test
    return replace(
        test,
        extra_pairs=(*test.extra_pairs, again.log_ratios),
        disturbed=test.disturbed + again.disturbed,
        disturbed_kept=test.disturbed_kept + again.disturbed_kept,
        disturbed_corrected=test.disturbed_corrected or again.disturbed_corrected,
    )


class _Pair:
    """Starts the two workers of one pair (and checks what they say), and finishes them."""

    def __init__(
        self,
        options: AbOptions,
        run: AbRun,
        trees: dict[Side, Path],
        relative: Path,
        env: dict[str, str],
        scratch: Path,
        workers: dict[Side, Worker],
    ) -> None:
        self.options, self.run, self.trees, self.relative = options, run, trees, relative
        self.env, self.scratch, self.workers = env, scratch, workers
        self.padding = random.Random()

    def start(self, side: Side, number: int, extra: dict[str, str] | None = None, *, counted: bool = False) -> Message:
        """Start ``side``'s worker of pair ``number`` (0: the profiling session); what it collected.
        ``counted``: under callgrind, for instructions by function."""
        tree = self.trees[side]
        side_env = {**self.env, **(extra or {})}
        paths = wt.import_paths(tree, self.options.pythonpath)
        _check_no_other_perfgate(side, paths)
        side_env["PYTHONPATH"] = wt.pythonpath(paths, self.env)
        side_env[ENV_FOREIGN] = str(self.trees[side.other])
        # the environment's size moves the initial stack, and with it the alignment of what the process
        # does: a random size per worker turns that fixed offset of a pair into noise between pairs
        # (counted by function: no padding; a count must not move with the environment's size)
        side_env[ENV_PAD] = "" if counted else "x" * self.padding.randrange(4096)
        side_env[ENV_WHOLE_CALLS] = "1" if self.options.whole_calls else "0"
        worker = start_worker(
            side,
            tree / self.relative,
            self.options.pytest_args,
            side_env,
            self.run.cpu,
            self.scratch / f"{side}-{number}.log",
            self.scratch / f"{side}-{number}.json",
            callgrind_dir=self.scratch / f"callgrind-{side}" if counted else None,
        )
        self.workers[side] = worker
        hello = worker.expect(MessageType.HELLO)
        if hello.get("protocol") != PROTOCOL_VERSION:
            raise AbError(
                f"the {side} worker speaks protocol {hello.get('protocol')!r}, not {PROTOCOL_VERSION}: it imported "
                "another pytest-perfgate (is the project under test perfgate itself? set --pythonpath)"
            )
        if number == 1 and self.run.cpu is not None and hello.get("affinity") != [self.run.cpu]:
            self.run.notices.append(
                f"the {side} worker runs on CPUs {hello.get('affinity')}, not only CPU {self.run.cpu}"
            )
        collected = worker.receive()
        if collected["type"] == MessageType.FINISHED:
            raise AbError(f"pytest on the {side} side stopped before running any test: {self.pytest_said(side)}")
        if collected["type"] != MessageType.COLLECTED:
            raise AbError(f"the {side} worker sent {collected['type']!r} before its collection")
        if number == 1 and side == Side.CURRENT:
            for lifted in collected.get("lifted", ()):
                self.run.notices.append(
                    f"{lifted} is lifted in the paired workers: a test's rounds would be killed midway; "
                    f"perfgate ab's --test-timeout ({self.options.test_timeout:g}s) bounds each test instead"
                )
        return collected

    def profile(self, nodeids: Sequence[str], deadline: float | None, profiler: str = PROFILER_CPU) -> None:
        """Each side's profiling session over ``nodeids``, one side after the other: the profiles
        go to ``run.profiles``; a test or a side that gives none is said in a notice (a profile is
        evidence: its absence never fails the run)."""
        got: dict[str, dict[Side, CpuProfile]] = {}
        for side in SIDES:
            try:
                self._profile_side(side, nodeids, deadline, got, profiler)
            except AbError as exc:
                self.run.notices.append(f"no CPU profiles from the {side} side: {str(exc).splitlines()[0]}")
            finally:
                if side in self.workers:
                    self.workers[side].kill()
        for nodeid in nodeids:
            sides = got.get(nodeid, {})
            if len(sides) == 2:
                self.run.profiles[nodeid] = sides

    def _profile_side(
        self,
        side: Side,
        nodeids: Sequence[str],
        deadline: float | None,
        got: dict[str, dict[Side, CpuProfile]],
        profiler: str,
    ) -> None:
        extra = {ENV_PROFILE: repr(self.options.profile_time), ENV_PROFILER: profiler}
        collected = self.start(side, 0, extra, counted=profiler == PROFILER_INSTRUCTIONS)
        worker = self.workers[side]
        wanted = [n for n in nodeids if n in set(collected["nodeids"])]
        worker.send(MessageType.RUN, nodeids=wanted)
        while True:
            limit = self.options.test_timeout
            if deadline is not None:
                limit = min(limit, deadline - time.monotonic())
                if limit <= 0:
                    raise AbError(_limit_reached(self.options))
            message = worker.receive(limit)
            kind, nodeid = message["type"], str(message.get("nodeid", ""))
            if kind == MessageType.PROFILE:
                if message.get("profile"):
                    profile = relative_to(CpuProfile.from_json(message["profile"]), str(self.trees[side]))
                    got.setdefault(nodeid, {})[side] = profile
                else:
                    self.run.notices.append(f"{nodeid}: no CPU profile on the {side} side: {message.get('why')}")
            elif kind == MessageType.END and message.get("outcome") != "passed" and side not in got.get(nodeid, {}):
                # a test whose profile arrived can still fail afterwards (a budget on a figure the
                # profiling session does not record): the profile stands, and nothing is missing
                self.run.notices.append(
                    f"{nodeid}: no CPU profile on the {side} side: {message.get('outcome')} ({message.get('message')})"
                )
            elif kind == MessageType.FINISHED:
                with suppress(subprocess.TimeoutExpired):
                    worker.process.wait(timeout=60)
                return
            elif kind == MessageType.READY:  # cannot happen in a profiling session: release the call
                worker.send(MessageType.RELEASE)

    def pytest_said(self, side: Side) -> str:
        """pytest's own last words on ``side`` (its worker has ended or is ending)."""
        worker = self.workers[side]
        with suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=STARTUP_TIMEOUT)
        return pytest_words(worker.log, worker.process.returncode)

    def stop_empty(self, side: Side) -> None:
        """``side`` collected no test: let its session end, and stop with pytest's words."""
        self.workers[side].send(MessageType.RUN, nodeids=[])
        with suppress(AbError):
            self.workers[side].expect(MessageType.FINISHED, STARTUP_TIMEOUT)
        raise AbError(f"no test to compare: pytest on the {side} side selected none: {self.pytest_said(side)}")

    def finish(self, number: int) -> None:
        for side in SIDES:
            try:
                finished = self.workers[side].expect(MessageType.FINISHED, STARTUP_TIMEOUT)
                self.workers[side].process.wait(timeout=60)
            except (AbError, subprocess.TimeoutExpired) as exc:
                self.run.notices.append(f"the {side} worker did not finish cleanly: {exc}")
                continue
            if finished.get("foreign") and number == 1:
                self.run.notices.append(
                    f"the {side} side imported code from the {side.other} tree, so part of this comparison may "
                    f"measure the same code twice: {', '.join(finished['foreign'][:5])}; check --pythonpath"
                )


def pytest_words(log: Path, code: int | None) -> str:
    """The lines of a pytest output that say why it ran nothing: errors and its closing line."""
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith(("ERROR", "E ", "error:"))]
    closing = [
        line.strip("= ")
        for line in lines
        if "no tests ran" in line or "deselected" in line or (line.startswith("=") and " in " in line)
    ]
    said = list(dict.fromkeys(errors[-3:] + [line for line in closing[-1:] if line]))
    text = "; ".join(said) or (lines[-1] if lines else "no output")
    return f"{text} (exit code {code})" if code is not None else text


def _check_no_other_perfgate(side: Side, paths: Sequence[str]) -> None:
    """Both workers must run this perfgate (its worker plugin and protocol), not one on a path."""
    running = Path(__file__).resolve().parents[1]
    for path in paths:
        candidate = Path(path) / "pytest_perfgate"
        if candidate.is_dir() and candidate.resolve() != running:
            raise AbError(
                f"the {side} side's import path {path} holds another pytest_perfgate than the running one "
                f"({running}): both workers must run this one; choose the code under test with --pythonpath"
            )


def _kill_all(workers: dict[Side, Worker]) -> None:
    for worker in workers.values():
        worker.kill()


def _perfgate_config(cwd: Path, root: Path) -> str | None:
    from ..config import find_config

    found = find_config(cwd, root)
    return str(found) if found else None


def _plan(run: AbRun, collected: dict[Side, Message]) -> list[str]:
    """Tests on both sides, in the current side's order; the others reported as new or missing."""
    current, base = collected[Side.CURRENT]["nodeids"], collected[Side.BASE]["nodeids"]
    on_base = set(base)
    on_current = set(current)
    for side, errors in (
        (Side.BASE, collected[Side.BASE]["errors"]),
        (Side.CURRENT, collected[Side.CURRENT]["errors"]),
    ):
        for error in errors:
            last = (error["message"].strip().splitlines() or ["?"])[-1].removeprefix("E").strip()
            run.notices.append(f"collection error on the {side} side in {error['nodeid']}: {last}")
    for nodeid in current:
        if nodeid not in on_base:
            run.tests.append(PairedTest(nodeid, only=Side.CURRENT, problem="not on the base side (a new test)"))
    for nodeid in base:
        if nodeid not in on_current:
            run.tests.append(PairedTest(nodeid, only=Side.BASE, problem="not on the current side (removed or renamed)"))
    return [nodeid for nodeid in current if nodeid in on_base]


def _drive(
    run: AbRun,
    workers: dict[Side, Worker],
    order: list[str],
    options: AbOptions,
    deadline: float | None,
    say: Progress,
    live: Progress | None,
) -> list[PairedTest]:
    """Every test of ``order`` on both workers; a crash or hang stops here with ``run.incomplete``."""
    width = len(str(len(order)))
    tests: list[PairedTest] = []
    for index, nodeid in enumerate(order):
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            run.incomplete = _limit_reached(options)
            tests += _not_run(order[index:], run.incomplete)
            break
        limit = options.test_timeout if deadline is None else min(options.test_timeout, deadline - now)
        for worker in workers.values():
            worker.timeout = limit
        try:
            test = _one_test(nodeid, workers, options, limit, live, f"[{index + 1:>{width}}/{len(order)}]")
        except AbError as exc:
            message = str(exc)
            if deadline is not None and time.monotonic() >= deadline - 0.5:
                message = _limit_reached(options, nodeid)
            run.incomplete = message
            tests.append(PairedTest(nodeid, problem=f"the run broke here: {message}".split("\n")[0]))
            tests += _not_run(order[index + 1 :], "a worker crashed or hung earlier")
            break
        say(f"[{index + 1:>{width}}/{len(order)}] {nodeid}: {_summary(test)}")
        tests.append(test)
        if test.stopped is Stopped.TIME_LIMIT and deadline is not None and limit < options.test_timeout:
            # the whole-run limit, not the test's own, cut this test short: the run is not complete
            run.incomplete = _limit_reached(options, nodeid)
            tests += _not_run(order[index + 1 :], run.incomplete)
            break
    return tests


def _limit_reached(options: AbOptions, nodeid: str = "") -> str:
    return f"the whole-run time limit ({options.timeout:g}s) was reached" + (f" during {nodeid}" if nodeid else "")


def _not_run(nodeids: Sequence[str], why: str) -> list[PairedTest]:
    return [PairedTest(n, problem="not run: " + why) for n in nodeids]


#: why a test's rounds stopped, as the progress line says it (nothing when it had its time)
STOPPED = {
    Stopped.BLOCKS: "the most blocks",
    Stopped.DISTURBED: "twice the time: too few undisturbed blocks",
    Stopped.WALL_TIME: "the wall-clock cap: the untimed part of each round (setup, messages) dominates",
    Stopped.TIME_LIMIT: "cut short at the test's time limit",
}


def _summary(test: PairedTest) -> str:
    if test.problem:
        return "not compared: " + test.problem.split("\n")[0]
    if not test.log_ratios:
        return "no paired rounds"
    ratio = math.expm1(test.pair_shifts[0])
    notes = []
    left_out = test.disturbed - test.disturbed_kept
    if left_out:
        notes.append(f"{left_out} disturbed left out")
    if test.disturbed_kept:
        notes.append(f"{test.disturbed_kept} disturbed judged{' (corrected)' if test.disturbed_corrected else ''}")
    if test.stopped in STOPPED:
        notes.append(f"stopped at {STOPPED[test.stopped]}")
    extra = f"; {'; '.join(notes)}" if notes else ""
    return f"{ratio:+.1%} over {test.blocks} blocks of 4 rounds x {test.loops} loop(s) ({test.elapsed:.1f}s{extra})"


def _one_test(
    nodeid: str, workers: dict[Side, Worker], options: AbOptions, limit: float, live: Progress | None, prefix: str
) -> PairedTest:
    state: dict[Side, Message] = {}
    for side in SIDES:
        state[side] = _until(workers[side], nodeid, (MessageType.READY, MessageType.END))
    ready = [side for side in SIDES if state[side]["type"] == MessageType.READY]
    test = PairedTest(nodeid)
    broke = ""
    if len(ready) == 2:
        settings = state[Side.CURRENT]["settings"]
        paired = PairedSettings(
            min_blocks=options.min_blocks,
            max_time=options.max_time if options.max_time is not None else float(settings["max_time"]),
            warmup_time=float(settings["warmup_time"]),
            min_round_time=max(float(settings["min_round_time"]), options.min_round_time),
            time_limit=max(limit * 0.8, 1e-3),
        )
        show = (lambda blocks: live(f"{prefix} {nodeid}: {blocks} blocks")) if live else None
        try:
            test = measure_paired(nodeid, {side: workers[side] for side in SIDES}, paired, progress=show)
        except RoundFailed as exc:
            # that side's test fails with the exception; the other is released unmeasured
            broke = f"failed on the {exc.side} side when called again: {exc}"
            for side in SIDES:
                if side != exc.side:
                    workers[side].send(MessageType.RELEASE)
        else:
            for side in SIDES:
                workers[side].send(MessageType.DONE, loops=test.loops)
    else:
        for side in ready:
            workers[side].send(MessageType.RELEASE)
    ends = {
        side: state[side]
        if state[side]["type"] == MessageType.END
        else _until(workers[side], nodeid, (MessageType.END,))
        for side in SIDES
    }
    outcomes = {side: end["outcome"] for side, end in ends.items()}
    if broke:
        return replace(test, problem=broke)
    if set(outcomes.values()) == {"skipped"}:
        reasons = dict.fromkeys(end["message"] for end in ends.values())
        return replace(test, problem=f"skipped on both sides: {'; '.join(reasons)}", optional=True)
    problems = [
        f"{end['outcome']} on the {side} side: {end['message']}".rstrip(": ")
        for side, end in ends.items()
        if end["outcome"] != "passed"
    ]
    if problems:
        return replace(test, problem="; ".join(problems))
    if not ready:
        end = ends[Side.CURRENT] if ends[Side.CURRENT].get("untimed") else ends[Side.BASE]
        return replace(test, problem=end.get("untimed") or NOT_CALLED, optional=bool(end.get("by_choice")))
    if len(ready) == 1:
        return replace(test, problem=f"timed on the {ready[0]} side only (the other passed without a timed call)")
    return test


def _until(worker: Worker, nodeid: str, kinds: tuple[MessageType, ...]) -> Message:
    """The next message of one of ``kinds`` about ``nodeid``."""
    while True:
        message = worker.receive()
        if message["type"] == MessageType.FINISHED:
            raise AbError(f"the {worker.side} worker's session ended before {nodeid} ran (pytest stopped early?)")
        if message["type"] in kinds and message.get("nodeid") == nodeid:
            return message
        if message["type"] in (MessageType.READY, MessageType.END):
            raise AbError(f"the {worker.side} worker is at {message.get('nodeid')} while {nodeid} was expected")


def _load(path: Path, run: AbRun, side: Side) -> RunResult | None:
    try:
        return load_results(path)
    except PerfgateError as exc:
        run.notices.append(f"the {side} side's results could not be read: {exc}")
        return None
