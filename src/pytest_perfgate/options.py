"""Option values: small parsers (argparse ``type=``) and one resolver for CLI + ini; where the
session's ``perfgate.yml`` is; the session header line.

An option left unset on the command line is ``None`` (told apart from ``False``/``0``); the
ini value is used then, and the default after that.

Loaded in every pytest session (the plugin declares its options from here): it imports nothing
of perfgate's beyond itself until a value needs parsing.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: the names ``perfgate.yml`` is looked for under
CONFIG_NAMES = ("perfgate.yml", "perfgate.yaml")


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers at or above ``minimum`` (and at most ``maximum``)."""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; expected e.g. 5") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{str(text)[:40]!r} must be at most {maximum:,}")
        return value

    return parse


positive_int = whole_number(1)
#: the most timed rounds a test makes (:class:`~pytest_perfgate.measure.timing.TimingSettings`'s
#: ``max_rounds``; not imported from there: this module loads in every pytest session)
MAX_ROUNDS = 100_000


def choice(*accepted: str, what: str | None = None) -> Callable[[str], str]:
    """A parser accepting one of ``accepted`` (case-insensitive); ``what`` names the kind of value
    in the error ("'sqlite' is not a backend; accepted: ...")."""

    def parse(text: str) -> str:
        value = str(text).strip().lower()
        if value not in accepted:
            wrong = f"is not a {what}" if what else "is not accepted"
            raise argparse.ArgumentTypeError(f"{text!r} {wrong}; accepted: {', '.join(accepted)}")
        return value

    return parse


def pushgateway_url(value: str) -> str:
    """A Pushgateway address: ``http(s)://HOST[:PORT][/PATH]``, or ``HOST:PORT`` (http, as
    prometheus-client reads it). Anything else is refused when the option is read, not at the end
    of the session as a traceback."""
    from urllib.parse import urlsplit

    raw = str(value).strip()
    accepted = "expected http://HOST[:PORT] or https://HOST[:PORT] (e.g. http://pushgateway:9091)"
    if not raw or any(ch.isspace() or ord(ch) < 32 for ch in raw):
        raise argparse.ArgumentTypeError(f"{value!r} is not a Pushgateway URL: {accepted}")
    try:
        parts = urlsplit(raw if "://" in raw else "http://" + raw)
        port = parts.port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a Pushgateway URL ({exc}): {accepted}") from None
    if parts.scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"{value!r}: scheme {parts.scheme!r} is not accepted: {accepted}")
    if not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} has no host: {accepted}")
    if port == 0 or parts.query or parts.fragment or parts.username or parts.password:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a Pushgateway URL (port 0, query, fragment or user): {accepted}"
        )
    return raw


def text(value: str) -> str:
    return str(value).strip()


def _from_units(parse_value: Callable[[object], float], text: str) -> float:
    """``parse_value`` (a :mod:`~pytest_perfgate.units` parser) as an argparse type: its
    :class:`~pytest_perfgate.errors.UnitError` becomes the usage error, word for word."""
    from .errors import UnitError

    try:
        return parse_value(str(text).strip())
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration(text: str) -> float:
    """A duration in seconds: ``"500ms"``, ``"30s"``, ``"1h30m"``, a bare number of seconds."""
    from .units import parse_duration

    return _from_units(parse_duration, text)


def positive_duration(text: str) -> float:
    """A duration longer than 0 (a time budget: 0 would run nothing)."""
    value = duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than 0 (a time budget, e.g. 30s)")
    return value


def threshold(below: float | None = None) -> Callable[[str], float]:
    """A parser of ratios above 0 (and below ``below``): ``"10%"``, ``0.1``; a gate threshold."""

    def parse(text: str) -> float:
        from .units import parse_threshold

        return _from_units(lambda raw: parse_threshold(raw, below=below), text)

    return parse


def evidence(text: str) -> tuple[str, ...]:
    from .budgets import parse_evidence
    from .errors import BudgetError

    try:
        return parse_evidence(str(text), "--perfgate-evidence", session=True)
    except BudgetError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("--perfgate-evidence ", "")) from None


def boolean(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; expected true or false")


def resolve(name: str, cli_value: Any, ini_value: Any, parser: Callable[[str], T], default: T) -> T:
    """CLI value if given, else the ini value (parsed), else ``default``.

    Raises ``ValueError`` naming the ini key for an ini value that does not parse.
    """
    if cli_value is not None:
        return cli_value  # type: ignore[no-any-return]
    if ini_value not in (None, "", []):
        try:
            return parser(ini_value if not isinstance(ini_value, bool) else str(ini_value))
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"ini option {name}: {exc}") from None
    return default


@dataclass(frozen=True)
class Options:
    save: str | None = None
    html: str | None = None
    compare: str | None = None
    pushgateway: str | None = None
    pushgateway_job: str = "perfgate"
    config: str | None = None
    strict: bool = False
    min_rounds: int = 5
    max_time: float = 1.0
    warmup: float = 0.05
    min_round_time: float = 100e-6
    memory: bool = False
    evidence: tuple[str, ...] = ()
    disable: bool = False
    allocations: bool = False
    instructions: bool = False
    valgrind: str = "valgrind"
    cache_sim: bool = False

    @property
    def counting(self) -> bool:
        """Whether timed tests are also counted (allocations, and instructions under callgrind)."""
        return (self.allocations or self.instructions) and not self.disable


#: (name, parser, default, metavar, help): each row becomes the flag ``--perfgate-<name>`` and the
#: ini key ``perfgate_<name>`` (an empty metavar makes a flag without a value). The core and each
#: subsystem's plugin declare their options as such a table.
OptionTable = tuple[tuple[str, Callable[[str], Any], Any, str, str], ...]

OPTION_TABLE: OptionTable = (
    ("save", str, None, "PATH", "write this run's results (versioned JSON) to PATH"),
    ("html", str, None, "PATH", "write a self-contained HTML report (plots, evidence) to PATH"),
    (
        "compare",
        str,
        None,
        "PATH",
        "gate this run against the stored baseline at PATH (results file or directory of runs); "
        "a regression or critical budget breach fails the session",
    ),
    (
        "pushgateway",
        pushgateway_url,
        None,
        "URL",
        "push the run's figures to a Prometheus Pushgateway (job and branch labels)",
    ),
    ("pushgateway_job", str, "perfgate", "NAME", "the job label for --perfgate-pushgateway (default perfgate)"),
    ("config", str, None, "PATH", "KPI file (default: perfgate.yml at the rootdir)"),
    ("strict", boolean, False, "", "treat a value past its target (warn) level as a failure"),
    ("min_rounds", whole_number(1, MAX_ROUNDS), 5, "N", "at least N timed rounds per test (default 5)"),
    ("max_time", duration, 1.0, "DURATION", "time spent measuring each test, e.g. 1s (default 1s)"),
    ("warmup", duration, 0.05, "DURATION", "warm-up before the timed rounds (default 50ms)"),
    ("min_round_time", duration, 100e-6, "DURATION", "shortest timed round; fast calls are looped (default 100us)"),
    ("memory", boolean, False, "", "measure peak memory of every timed call, not only where budgeted"),
    (
        "evidence",
        evidence,
        (),
        "KINDS",
        "collect evidence for every perf-timed test, not only failing ones: memory, cpu, memory-native "
        "(memory with native frames, memray), all (memory and cpu), instructions (with --perfgate-instructions: "
        "each counted test's instructions by Python function); comma list",
    ),
    ("disable", boolean, False, "", "run tests without measuring or judging budgets (e.g. under coverage)"),
    (
        "allocations",
        boolean,
        False,
        "",
        "count the allocations (blocks, bytes) of one call of every timed test: alloc_blocks, alloc_bytes",
    ),
    (
        "instructions",
        boolean,
        False,
        "",
        "count the instructions of one call of every timed test under valgrind's callgrind (the tests are "
        "re-run under it; Linux); also counts allocations. See docs/instructions.md",
    ),
    ("valgrind", str, "valgrind", "PATH", "the valgrind for --perfgate-instructions (default: valgrind on PATH)"),
    (
        "cache_sim",
        boolean,
        False,
        "",
        "with --perfgate-instructions: simulate the caches too, for an estimated-cycles series (est_cycles; slower)",
    ),
)


def find_config(start: str | os.PathLike[str], rootdir: str | os.PathLike[str] | None = None) -> Path | None:
    """The first ``perfgate.yml`` (or ``.yaml``) from ``start`` up to ``rootdir`` (inclusive);
    only ``start`` itself when it is not inside ``rootdir``."""
    here = Path(start).resolve()
    top = Path(rootdir).resolve() if rootdir is not None else here
    folders = [here, *here.parents] if here == top or top in here.parents else [here, top]
    for folder in folders:
        for name in CONFIG_NAMES:
            candidate = folder / name
            # a FIFO or a dangling link is found too, and refused when read (never skipped silently)
            if os.path.lexists(candidate) and not candidate.is_dir():
                return candidate
        if folder == top:
            break
    return None


def header_line(options: Options, config_path: str | None, kpis: int, rootdir: str) -> str:
    """The session header: where the KPIs come from and the settings that decide measurements."""
    from .units import Kind, format_value

    source = f"{os.path.relpath(config_path, rootdir)} ({kpis} KPIs)" if config_path else "no perfgate.yml"
    if options.disable:
        return f"perfgate: disabled (--perfgate-disable); {source}"
    parts = [
        source,
        f"rounds >= {options.min_rounds}",
        f"max-time {format_value(options.max_time, Kind.TIME)}",
        "strict" if options.strict else "",
        f"results -> {options.save}" if options.save else "",
    ]
    return "perfgate: " + ", ".join(p for p in parts if p)
