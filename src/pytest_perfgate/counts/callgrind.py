"""Instruction counts under valgrind's callgrind, pytest-free.

Two halves:

* **the parent** builds the command that re-runs a Python process under callgrind with
  instrumentation off from the start (:func:`valgrind_command`): only the measured calls are
  simulated, everything else (start-up, collection, fixtures) runs at valgrind's un-instrumented
  speed (~5x slower than native instead of ~50-100x);
* **the child** (running under that command) counts one call with :func:`count_call`: one
  warm-up call uninstrumented, then the measured call with instrumentation and collection on
  around it only; callgrind dumps the counters to a file, which is parsed
  (:func:`parse_dump`) and deleted.

Garbage collector: ``gc.collect()`` before the measured call and the collector disabled during
it, in every run: a collection inside the call would add instructions that depend on what ran
before it, not on the call.

Estimated cycles (``cache_sim=True``): KCachegrind's "Cycle Estimation" derived event,
``CEst = Ir + 10 * L1m + 100 * LLm`` with ``L1m = I1mr + D1mr + D1mw`` and ``LLm = ILmr + DLmr +
DLmw`` (KCachegrind also adds ``10 * Bm``, branch mispredictions, which need ``--branch-sim``:
not used). The weights are a rough model of an L1 miss (~10 cycles) and a last-level miss (~100
cycles), not a measurement of this machine. iai/iai-callgrind use ``L1 hits + 5 * LL hits + 35 *
RAM`` instead; the two rank changes alike, their absolute figures differ.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_perfgate.counts import native_with_client_requests, require_linux
from pytest_perfgate.errors import MeasurementError

#: environment variables :func:`valgrind_command` sets for the child
ENV_OUT_DIR = "PERFGATE_CALLGRIND_OUT"
ENV_CACHE_SIM = "PERFGATE_CALLGRIND_CACHE_SIM"
#: set (to "1") by :func:`valgrind_command` with ``functions``: named functions are skipped, and
#: the counts can be told apart by Python function (:mod:`pytest_perfgate.counts.functions`)
ENV_FUNCTIONS = "PERFGATE_CALLGRIND_FUNCTIONS"
#: callgrind's ``--fn-skip`` for every name that starts with a letter or ``_`` (every symbol): what
#: a skipped function costs is charged to its nearest caller that is not skipped, which, with
#: perfgate's trampolines (named by their address, ``0x...``), is the Python function running
FUNCTION_SKIPS = tuple(f"--fn-skip={first}*" for first in "_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: the hash seed used when none is given (recorded in the fingerprint)
DEFAULT_HASH_SEED = 0
#: events needed for estimated cycles
CACHE_EVENTS = ("I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")
INSTALL_VALGRIND = "install valgrind (Debian: apt-get install valgrind)"
#: the simulated caches (size, associativity, line size), fixed: valgrind otherwise takes them from
#: the host's CPU (here a 256 MiB direct-mapped LL from a 320 MiB L3), and estimated cycles would
#: change with the machine the job lands on. A common desktop geometry: 32 KiB 8-way L1s, 8 MiB 16-way LL.
CACHE_GEOMETRY = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64")


# ----------------------------------------------------------------------------- the parent


@dataclass(frozen=True)
class Valgrind:
    """A valgrind binary that runs, and its version (``"3.19.0"``)."""

    path: str
    version: str


@dataclass(frozen=True)
class CallgrindCommand:
    """What to run: ``argv`` with ``env`` added to the current environment (``os.environ | env``)."""

    argv: list[str]
    env: dict[str, str]
    out_dir: Path
    valgrind: Valgrind
    hash_seed: int
    cache_sim: bool


def find_valgrind(valgrind: str = "valgrind") -> Valgrind:
    """The valgrind binary named ``valgrind`` (a path, or a name looked up in ``PATH``: what
    ``--perfgate-valgrind`` passes) and its version; :class:`MeasurementError` when it is missing
    or does not run; :class:`~pytest_perfgate.errors.PlatformError` off Linux."""
    require_linux()
    path = shutil.which(valgrind)
    if path is None:
        where = "is not an executable file" if os.sep in valgrind else "was not found in PATH"
        raise MeasurementError(f"instruction counts need valgrind: {valgrind!r} {where}: {INSTALL_VALGRIND}")
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MeasurementError(f"valgrind at {path} does not run ({exc}): {INSTALL_VALGRIND}") from None
    match = re.search(r"valgrind-(\S+)", proc.stdout)
    if proc.returncode != 0 or match is None:
        raise MeasurementError(
            f"{path} --version did not print a valgrind version (exit code {proc.returncode}, "
            f"output {proc.stdout.strip()[:200]!r}): is it valgrind? {INSTALL_VALGRIND}"
        )
    return Valgrind(path=path, version=match.group(1))


def is_elf(path: str) -> bool:
    """Whether ``path`` (symbolic links followed) is an ELF binary, not a script."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def real_interpreter(executable: str | None = None) -> str:
    """The interpreter to run under valgrind: ``executable`` (default ``sys.executable``), checked
    to be a binary. Not resolved through symbolic links: a virtual environment's ``bin/python`` is
    a link, and Python finds the environment from the path it was started as. A launcher script
    (a pyenv shim) would make valgrind measure the shell: :class:`MeasurementError`."""
    name = executable or sys.executable
    path = shutil.which(name) if os.sep not in name else name
    if not path or not os.path.exists(path):
        raise MeasurementError(f"the Python interpreter {name!r} was not found")
    if not is_elf(path):
        raise MeasurementError(
            f"the Python interpreter {path} is a script (a pyenv shim or another launcher?), not a binary: "
            f"valgrind would measure the script's shell; run the real interpreter (sys.executable of a running "
            f"Python, e.g. {sys.executable})"
        )
    return path


def valgrind_command(
    argv: Sequence[str],
    *,
    out_dir: str | os.PathLike[str],
    valgrind: str | Valgrind = "valgrind",
    cache_sim: bool = False,
    hash_seed: int = DEFAULT_HASH_SEED,
    functions: bool = False,
) -> CallgrindCommand:
    """The command that runs ``argv`` (``[python, "-m", "pytest", ...]``; ``argv[0]`` a Python
    interpreter, checked by :func:`real_interpreter`) under callgrind, instrumentation and
    collection off at start, dumps and valgrind's log in ``out_dir`` (created), with
    ``PYTHONHASHSEED=hash_seed``; ``cache_sim`` adds the cache simulation (estimated cycles) with
    the fixed :data:`CACHE_GEOMETRY`. ``functions``: every named function skipped
    (:data:`FUNCTION_SKIPS`), for :func:`pytest_perfgate.counts.functions.count_functions`; the
    totals are the same, only who is charged with them changes."""
    if not argv:
        raise MeasurementError("valgrind_command needs a command to run (argv is empty)")
    tool = valgrind if isinstance(valgrind, Valgrind) else find_valgrind(valgrind)
    python = real_interpreter(argv[0])
    directory = Path(out_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        tool.path,
        "--tool=callgrind",
        "--instr-atstart=no",
        "--collect-atstart=no",
        f"--callgrind-out-file={directory / 'callgrind.out.%p'}",
        f"--log-file={directory / 'valgrind.%p.log'}",
        f"--cache-sim={'yes' if cache_sim else 'no'}",
        *(CACHE_GEOMETRY if cache_sim else ()),
        *(FUNCTION_SKIPS if functions else ()),
        python,
        *argv[1:],
    ]
    env = {
        "PYTHONHASHSEED": str(hash_seed),
        ENV_OUT_DIR: str(directory),
        ENV_CACHE_SIM: "1" if cache_sim else "0",
        ENV_FUNCTIONS: "1" if functions else "0",
    }
    return CallgrindCommand(
        argv=command, env=env, out_dir=directory, valgrind=tool, hash_seed=hash_seed, cache_sim=cache_sim
    )


# ----------------------------------------------------------------------------- dump files


@dataclass(frozen=True)
class CallgrindDump:
    """What perfgate reads from one callgrind dump file: its event names and their totals."""

    events: tuple[str, ...]
    totals: Mapping[str, int]
    trigger: str | None = None
    pid: int | None = None
    part: int | None = None


def parse_dump(text: str, *, source: str = "<callgrind dump>") -> CallgrindDump:
    """Parse a callgrind dump (the ``events:`` line and the ``totals:`` line, ``summary:`` when
    there is no ``totals:``; the header's ``pid:``, ``part:`` and ``desc: Trigger:``). Pure;
    :class:`MeasurementError` naming ``source`` when the text is not a usable dump."""
    events: tuple[str, ...] | None = None
    totals: str | None = None
    summary: str | None = None
    trigger = pid = part = None
    for raw in text.splitlines():
        line = raw.strip()
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        if key == "events":
            events = tuple(value.split())
        elif key == "totals":
            totals = value
        elif key == "summary":
            summary = value
        elif key == "pid" and value.isdigit():
            pid = int(value)
        elif key == "part" and value.isdigit():
            part = int(value)
        elif key == "desc" and value.startswith("Trigger:"):
            trigger = value.partition(":")[2].strip()
    if not text.startswith("# callgrind format") and events is None:
        raise MeasurementError(f"{source} is not a callgrind dump (no '# callgrind format' header, no 'events:' line)")
    if events is None or not events:
        raise MeasurementError(f"{source}: callgrind dump without an 'events:' line")
    counted = totals if totals is not None else summary
    if counted is None:
        raise MeasurementError(f"{source}: callgrind dump without a 'totals:' or 'summary:' line")
    fields = counted.split()
    if len(fields) > len(events) or not all(f.isdigit() for f in fields):
        raise MeasurementError(f"{source}: bad totals {counted!r} for events {' '.join(events)}")
    # callgrind leaves out trailing zeros
    values = [int(f) for f in fields] + [0] * (len(events) - len(fields))
    return CallgrindDump(
        events=events, totals=dict(zip(events, values, strict=True)), trigger=trigger, pid=pid, part=part
    )


def parse_dump_file(path: str | os.PathLike[str]) -> CallgrindDump:
    """:func:`parse_dump` of a file; :class:`MeasurementError` naming the file when unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise MeasurementError(f"cannot read the callgrind dump {path}: {exc.strerror or exc}") from None
    return parse_dump(text, source=str(path))


def estimated_cycles(totals: Mapping[str, int]) -> int | None:
    """``Ir + 10 * (I1mr + D1mr + D1mw) + 100 * (ILmr + DLmr + DLmw)`` (KCachegrind's cycle
    estimation without branch simulation), or ``None`` without cache-simulation events."""
    if "Ir" not in totals or any(event not in totals for event in CACHE_EVENTS):
        return None
    l1_misses = totals["I1mr"] + totals["D1mr"] + totals["D1mw"]
    ll_misses = totals["ILmr"] + totals["DLmr"] + totals["DLmw"]
    return totals["Ir"] + 10 * l1_misses + 100 * ll_misses


# ----------------------------------------------------------------------------- the child


@dataclass(frozen=True)
class Counts:
    """The counts of one measured call (the median of ``samples`` when it was counted several times)."""

    name: str
    instructions: int
    #: estimated cycles (cache simulation on), else None
    estimated_cycles: int | None = None
    #: every event callgrind reported for the median call (``Ir``; with the cache simulation
    #: ``Dr``, ``D1mr``, ...)
    events: Mapping[str, int] = field(default_factory=dict)
    #: the instructions of each measured call, in order (one per ``repeat``)
    samples: tuple[int, ...] = ()

    @property
    def spread(self) -> float:
        """``(max - min) / median`` of the samples (0.0 for one sample)."""
        if len(self.samples) < 2 or not self.instructions:
            return 0.0
        return (max(self.samples) - min(self.samples)) / self.instructions


_dump_seq = 0


def running_on_valgrind() -> bool:
    """Whether this process runs under valgrind (any command); False when the extension with
    valgrind's client requests is missing."""
    try:
        module = native_with_client_requests()
    except Exception:
        return False
    return bool(module.running_on_valgrind())


def running_under_callgrind() -> bool:
    """Whether this process runs under valgrind with perfgate's command (:data:`ENV_OUT_DIR` set)."""
    return running_on_valgrind() and bool(os.environ.get(ENV_OUT_DIR))


def under_callgrind(out_dir: str | os.PathLike[str] | None) -> tuple[Any, Path]:
    """The extension with client requests and the directory callgrind dumps into (``out_dir``, or
    :data:`ENV_OUT_DIR`'s); :class:`MeasurementError` when this process does not run under
    :func:`valgrind_command`'s command."""
    module = native_with_client_requests()
    if not module.running_on_valgrind():
        raise MeasurementError(
            "instruction counts are taken under valgrind's callgrind: this process does not run under valgrind "
            "(start it with the command of pytest_perfgate.counts.callgrind.valgrind_command)"
        )
    directory = Path(out_dir if out_dir is not None else os.environ.get(ENV_OUT_DIR, ""))
    if not str(directory) or not directory.is_dir():
        raise MeasurementError(
            f"instruction counts: callgrind's output directory is unknown ({ENV_OUT_DIR} is not set to a "
            f"directory; start the process with valgrind_command)"
        )
    return module, directory


def measured_call(module: Any, fn: Callable[[], Any], tag: str, *, canonical_heap: bool) -> None:
    """One counted call of ``fn`` (instrumentation on): ``gc.collect()``, the collector off, a fresh
    canonical heap epoch (``canonical_heap``), the counters zeroed, collection on around the call
    only, the counters dumped as ``tag``; all of it undone when ``fn`` raises."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    if canonical_heap:
        module.heap_begin()
    module.zero_stats()
    module.toggle_collect()
    try:
        fn()
    finally:
        module.toggle_collect()
        if canonical_heap:
            module.heap_end()
        module.dump_stats(tag)
        if was_enabled:
            gc.enable()


def next_tag() -> str:
    """A name for the next dump (``DUMP_STATS_AT``), unique in this process."""
    global _dump_seq
    _dump_seq += 1
    return f"perfgate-{os.getpid()}-{_dump_seq}"


def dumps_of(out_dir: Path, pid: int) -> list[Path]:
    """This process's numbered dumps (``callgrind.out.<pid>.<n>``), in order."""
    prefix = f"callgrind.out.{pid}."
    found = [
        (int(entry.name[len(prefix) :]), entry)
        for entry in out_dir.iterdir()
        if entry.name.startswith(prefix) and entry.name[len(prefix) :].isdigit()
    ]
    return [path for _, path in sorted(found)]


#: how :func:`count_call` counts, recorded in the fingerprint: counts made another way are not compared
METHOD = "callgrind per call, canonical heap 1"


def count_call(
    fn: Callable[[], Any],
    *,
    name: str,
    warmup: int = 1,
    repeat: int = 1,
    out_dir: str | os.PathLike[str] | None = None,
    instrument_per_call: bool = True,
    keep_dump: bool = False,
    canonical_heap: bool = True,
) -> Counts:
    """Count the instructions of a call of ``fn`` in a process started by
    :func:`valgrind_command`: ``warmup`` calls uninstrumented, then instrumentation on and, for
    each of ``repeat`` measured calls, ``gc.collect()``, the counters zeroed, collection on
    around the call only (the collector disabled), the counters dumped (client request
    ``DUMP_STATS_AT``). The dumps are parsed and deleted (unless ``keep_dump``); the result is
    the median call (lower median) with every call's count in ``samples``.

    ``instrument_per_call`` (default, see bench/RESULTS-instructions.md): instrumentation is
    switched off after the measured calls, so everything between counted calls runs
    uninstrumented; False leaves it on after the first call (only collection is toggled),
    which runs everything afterwards ~50x slower.

    ``canonical_heap`` (default): each measured call allocates from a fresh epoch of the
    extension's canonical heap (``_native.heap_begin``), so its count does not depend on what the
    process allocated and freed before it; False leaves pymalloc and the C allocator as they are.

    :class:`MeasurementError` when not under callgrind, the extension lacks client requests, or
    a dump is missing; an exception from ``fn`` propagates after instrumentation is off again.
    """
    if repeat < 1 or warmup < 0:
        raise MeasurementError(f"instruction counts of {name}: repeat must be >= 1 and warmup >= 0")
    module, directory = under_callgrind(out_dir)
    # every named function skipped (counts by function too): callgrind needs a function it does not skip
    # on the stack, and the extension's root is one; it starts and stops the instrumentation itself
    rooted = os.environ.get(ENV_FUNCTIONS) == "1"
    tags: list[str] = []
    for _ in range(warmup):
        fn()
    if canonical_heap:
        module.heap_install()

    def calls() -> None:
        for _ in range(repeat):
            tag = next_tag()
            tags.append(tag)
            measured_call(module, fn, tag, canonical_heap=canonical_heap)

    try:
        if rooted:
            module.call_rooted(calls)
        else:
            module.start_instrumentation()
            try:
                calls()
            finally:
                if instrument_per_call:
                    module.stop_instrumentation()
    except BaseException:
        if not keep_dump:
            for path in dumps_of(directory, os.getpid())[-len(tags) :] if tags else []:
                path.unlink(missing_ok=True)
        raise
    by_tag: dict[str, CallgrindDump] = {}
    paths = dumps_of(directory, os.getpid())
    for path in paths[-len(tags) :]:
        dump = parse_dump_file(path)
        if dump.trigger is not None:
            by_tag[dump.trigger.rpartition(" ")[2]] = dump
        if not keep_dump:
            path.unlink(missing_ok=True)
    missing = [tag for tag in tags if tag not in by_tag]
    if missing:
        raise MeasurementError(
            f"instruction counts of {name}: callgrind wrote no dump {missing[0]!r} in {directory} "
            f"(found {[p.name for p in paths[-len(tags) :]]})"
        )
    dumps = [by_tag[tag] for tag in tags]
    if any("Ir" not in dump.totals for dump in dumps):
        raise MeasurementError(f"instruction counts of {name}: a dump has no Ir (events: {dumps[0].events})")
    samples = tuple(dump.totals["Ir"] for dump in dumps)
    median = sorted(dumps, key=lambda dump: dump.totals["Ir"])[(len(dumps) - 1) // 2]
    return Counts(
        name=name,
        instructions=median.totals["Ir"],
        estimated_cycles=estimated_cycles(median.totals),
        events=dict(median.totals),
        samples=samples,
    )
