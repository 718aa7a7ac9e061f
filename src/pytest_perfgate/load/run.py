"""One load run end to end, for the CLI and the pytest fixture: run locust (and the service,
when perfgate starts it: :mod:`.serve`, profiled by :mod:`.profile` or :mod:`.memory`), compute
the figures, judge them, and turn them into perfgate results (pure apart from the subprocesses)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..budgets import BudgetSpec
from ..errors import LoadError, PerfgateError
from ..evidence import MemoryProfile
from ..measure import metadata
from ..model import RunResult, TestResult
from ..paths import repository_path
from .kpi import judge
from .profile import CpuSampler, CpuSettings, ServiceCpuProfile
from .results import TOTAL, LoadStats, compute, to_test_results
from .runner import (
    LoadSettings,
    LocustOutcome,
    Progress,
    RawRun,
    check_locust,
    run_locust,
    stop_on_signals,
    work_folder,
)
from .serve import ServeSettings, serving

PROFILES = ("cpu", "memory")
#: the key of the service's evidence on the run's total
SERVICE_KEY = "service"


@dataclass(frozen=True)
class ProfileSettings:
    """``--profile cpu|memory`` and where its files go (``folder``: flame graph, py-spy's
    speedscope file, memray's capture)."""

    kind: str
    folder: str
    rate: int = 100  # py-spy samples per second
    py_spy: str | None = None  # default: found next to this Python or on PATH
    nonblocking: bool = False  # py-spy reads the stacks without pausing the service

    def validate(self) -> None:
        if self.kind not in PROFILES:
            raise LoadError(f"--profile {self.kind!r} is not known; accepted: {', '.join(PROFILES)}")
        if not 1 <= self.rate <= 10_000:
            raise LoadError(f"profile-rate must be between 1 and 10000 samples/s, got {self.rate}")


@dataclass(frozen=True)
class ServiceRun:
    """The service perfgate started: its command, how long it took to be ready, whether it left
    during the run (with its output's end), and its profile."""

    command: tuple[str, ...]
    ready_after: float
    exit_code: int | None = None  # it exited before perfgate stopped it
    output_tail: str = ""
    cpu: ServiceCpuProfile | None = None
    memory: MemoryProfile | None = None  # memray's capture of the service's whole life
    capture: str = ""  # memray's capture file
    #: the measured window in seconds from the service's start (from the start of memray's
    #: tracking with --profile memory: the time base of the memory timeline)
    window: tuple[float, float] | None = None
    notices: tuple[str, ...] = ()  # what could not be done, said once here and in the output

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"command": list(self.command), "ready_after": round(self.ready_after, 3)}
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
            out["output_tail"] = self.output_tail
        if self.window is not None:
            out["window"] = [round(t, 3) for t in self.window]
        if self.cpu is not None:
            out["cpu"] = self.cpu.to_json()
        if self.memory is not None:
            out["memory"] = {**self.memory.to_json(), "capture": self.capture}
        if self.notices:
            out["notices"] = list(self.notices)
        return out


@dataclass(frozen=True)
class LoadRun:
    settings: LoadSettings
    raw: RawRun
    stats: LoadStats
    locustfile_id: str  # the locustfile as named in node ids (relative to the current directory)
    wall_time: float
    command: tuple[str, ...]
    service: ServiceRun | None = None

    def judged(self, spec: BudgetSpec, *, strict: bool = False) -> TestResult:
        """The total, judged; it carries the service's evidence (``service``) when perfgate ran it."""
        total = judge(self.stats, spec, self.locustfile_id, strict=strict)
        return self._with_service(total)

    def _with_service(self, total: TestResult) -> TestResult:
        if self.service is None:
            return total
        return dataclasses.replace(total, evidence={**total.evidence.to_json(), SERVICE_KEY: self.service.to_json()})

    def run_result(self, total: TestResult | None = None, *, cwd: str = ".") -> RunResult:
        """The run in perfgate's results schema (see :mod:`pytest_perfgate.load.results`)."""
        s = self.settings
        extra = {
            "load": {
                "locustfile": self.locustfile_id,
                "host": s.host,
                "users": s.users,
                "spawn_rate": s.spawn_rate if s.spawn_rate is not None else float(s.users),
                "run_time": s.run_time,
                "warmup": s.warmup,
                "processes": s.processes,
                "expect_workers": s.expect_workers,
                "locust_version": self.raw.locust_version,
                "locust_requests": self.raw.locust_requests,
                "max_users": self.raw.max_users,
                "window": self.stats.window,
            }
        }
        if self.service is not None:
            extra["load"]["service"] = list(self.service.command)
        tests = to_test_results(self.stats, self.locustfile_id, total)
        if total is None and self.service is not None:
            tests = tuple(self._with_service(t) if t.nodeid.endswith("::" + TOTAL) else t for t in tests)
        # where GitLab's Code Quality report points a finding: the locustfile, in the repository
        where = (repository_path(self.settings.locustfile), 1)
        tests = tuple(t if t.location is not None else dataclasses.replace(t, location=where) for t in tests)
        return RunResult(metadata=metadata.collect(cwd, extra=extra), tests=tests)


def locustfile_id(path: str, cwd: str | None = None) -> str:
    """The locustfile relative to ``cwd`` with forward slashes (absolute when outside it)."""
    full = os.path.abspath(path)
    base = os.path.abspath(cwd or os.getcwd())
    rel = os.path.relpath(full, base)
    return (full if rel.startswith("..") else rel).replace(os.sep, "/")


def run_load(
    settings: LoadSettings,
    *,
    progress: Progress | None = None,
    workdir: str | None = None,
    check_target: bool = True,
    serve: ServeSettings | None = None,
    profile: ProfileSettings | None = None,
) -> LoadRun:
    """One load run; with ``serve``, perfgate starts the service first and stops it after (and
    on any fault), profiled as ``profile`` asks."""
    if serve is None:
        if profile is not None:
            raise LoadError("--profile needs --serve: perfgate profiles a service it starts itself")
        outcome = run_locust(settings, progress=progress, workdir=workdir, check=check_target)
        service = None
    else:
        outcome, service = _run_served(settings, serve, profile, progress=progress, workdir=workdir)
    return LoadRun(
        settings=settings,
        raw=outcome.raw,
        stats=compute(outcome.raw, warmup=settings.warmup),
        locustfile_id=locustfile_id(settings.locustfile),
        wall_time=outcome.wall_time,
        command=outcome.command,
        service=service,
    )


def _both(first: Progress | None, second: Callable[[Mapping[str, Any]], None]) -> Progress:
    def sink(point: Mapping[str, Any]) -> None:
        second(point)
        if first is not None:
            first(point)

    return sink


@dataclass
class _Served:
    notices: list[str] = field(default_factory=list)
    cpu: ServiceCpuProfile | None = None
    memory: MemoryProfile | None = None


def _run_served(
    settings: LoadSettings,
    serve: ServeSettings,
    profile: ProfileSettings | None,
    *,
    progress: Progress | None,
    workdir: str | None,
) -> tuple[LocustOutcome, ServiceRun]:
    from . import memory as memory_profile

    settings.validate()
    serve.validate()
    check_locust(settings.python)  # before the service starts: a missing locust costs nothing
    argv = serve.argv()
    capture: Path | None = None
    if profile is not None:
        profile.validate()
        folder = Path(profile.folder)
        folder.mkdir(parents=True, exist_ok=True)
        if profile.kind == "memory":
            capture = folder / memory_profile.CAPTURE_NAME
            argv = memory_profile.memray_argv(argv, capture)
            memory_profile.check_memray(argv[0])
            serve = dataclasses.replace(serve, stop_grace=max(serve.stop_grace, memory_profile.STOP_GRACE))
    found = _Served()
    with stop_on_signals(), work_folder(workdir) as work:
        with serving(serve, argv, host=settings.host, folder=work) as service:
            sampler = None
            if profile is not None and profile.kind == "cpu":
                sampler = CpuSampler(
                    CpuSettings(rate=profile.rate, py_spy=profile.py_spy, nonblocking=profile.nonblocking),
                    service.pid,
                    warmup=settings.warmup,
                    run_time=settings.run_time,
                    folder=Path(profile.folder),
                )
                sampler.check()  # ptrace refused: an error before any load
            try:
                outcome = run_locust(
                    settings,
                    progress=progress if sampler is None else _both(progress, sampler.progress),
                    workdir=str(work),
                    tick=None if sampler is None else sampler.tick,
                )
                if sampler is not None:
                    found.cpu = _cpu_profile(sampler, found.notices)
            finally:
                if sampler is not None:
                    sampler.close()
            exit_code = service.proc.poll()
            output_tail = service.output_tail() if exit_code is not None else ""
        origin = service.started_at  # epoch seconds the window is counted from
        if capture is not None:
            found.memory = _memory_profile(capture, found.notices)
            if found.memory is not None:  # the timeline's time base
                origin = memory_profile.tracking_started(capture) or origin
    if exit_code is not None:
        found.notices.append(f"the service exited with code {exit_code} during the run")
    raw = outcome.raw
    begin = raw.start + settings.warmup - origin
    window = (begin, max(begin, raw.stop - origin))
    return outcome, ServiceRun(
        command=tuple(argv),
        ready_after=service.ready_after,
        exit_code=exit_code,
        output_tail=output_tail,
        cpu=found.cpu,
        memory=found.memory,
        capture=str(capture) if found.memory is not None else "",
        window=window,
        notices=tuple(found.notices),
    )


def _cpu_profile(sampler: CpuSampler, notices: list[str]) -> ServiceCpuProfile | None:
    """The CPU profile with its flame graph written next to it; a notice instead when it could
    not be taken (the load's figures are kept)."""
    from ..paths import write_text_atomic
    from .flamegraph import flamegraph_svg

    try:
        found = sampler.finish()
    except PerfgateError as exc:
        notices.append(f"no CPU profile: {exc}")
        return None
    svg = sampler.folder / "service-cpu-flamegraph.svg"
    write_text_atomic(svg, flamegraph_svg(found.tree, found.samples, title="the service's CPU under load (py-spy)"))
    return dataclasses.replace(found, files=(("flamegraph", str(svg)), *found.files))


def _memory_profile(capture: Path, notices: list[str]) -> MemoryProfile | None:
    from .memory import summarise

    try:
        return summarise(capture)
    except PerfgateError as exc:
        notices.append(f"no memory profile: {exc}")
        return None
