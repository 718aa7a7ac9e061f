"""Frozen result types and the versioned JSON results format.

A results file (``--perfgate-save``) is one :class:`RunResult`::

    {"schema": "perfgate-results", "schema_version": 1,
     "metadata": {...run metadata...},
     "tests": [{"nodeid": ..., "outcome": ..., "mode": ..., "series": {...},
                "spec": {...budgets...}, "verdicts": [...], "evidence": {...}}]}

:func:`load_results` reads it back and rejects unknown versions and corrupt files with a
:class:`~pytest_perfgate.errors.ResultsFileError` naming the path and the reason; each test's
evidence becomes a typed :class:`~pytest_perfgate.evidence.Evidence` there.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from .budgets import BudgetResult, BudgetSpec, MetricBudget, Verdict, spec_with_levels
from .errors import ResultsFileError
from .evidence import Evidence, EvidenceField
from .paths import write_json_atomic
from .units import Kind, format_value, shown

SCHEMA = "perfgate-results"
SCHEMA_VERSION = 1


#: the sources of counter series (the counting core's): callgrind and the allocation counter
_COUNTED = ("callgrind", "allocations")


@dataclass(frozen=True)
class Series:
    """Raw samples of one quantity, in base units (seconds, bytes, /s, fraction, count)."""

    name: str
    kind: Kind
    values: tuple[float, ...]
    higher_is_better: bool = False
    unit: str = ""
    loops: int = 1
    source: str = "perf"
    #: awaited calls: the loop that awaited them ("one asyncio loop", "the test's asyncio loop"),
    #: and what awaiting adds per call in seconds (measured, not subtracted); "" for plain calls
    awaited: str = ""
    await_overhead: float = 0.0

    @property
    def basis(self) -> str:
        """What the figures are based on: ``"32 rounds x 10 calls"``, ``"1 sample: the whole test call"``."""
        n = len(self.values)
        if self.kind is Kind.TIME and self.source in ("perf", "benchmark"):
            calls = f" x {self.loops} calls" if self.loops > 1 else ""
            awaited = f", awaited in {self.awaited} (+{self.fmt(self.await_overhead)}/call)" if self.awaited else ""
            return f"{n} round{'s' if n != 1 else ''}{calls}{awaited}"
        if self.kind is Kind.TIME and self.source == "call":
            return "1 sample: the whole test call"
        if self.source in _COUNTED:  # a counter: one value per counted call; judged on their median
            return f"median of {n} counted calls" if n > 1 else "1 counted call"
        return f"{n} sample{'s' if n != 1 else ''}" if n > 1 else ""

    def fmt(self, value: float) -> str:
        return format_value(value, self.kind, self.unit)


class Outcome(str, Enum):
    """How a test ended, as pytest says it, and ``crashed`` (its pytest-xdist worker died).
    :attr:`TestResult.outcome` holds the value (a plain string, as written in results files)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"  # in setup or teardown
    CRASHED = "crashed"


@dataclass(frozen=True)
class TestResult:
    """What one test measured and how its budgets were judged."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    outcome: str = Outcome.PASSED.value  # an Outcome's value; a results file may hold another word
    mode: str | None = None  # "perf", "benchmark", "call" or None (nothing timed)
    duration: float = 0.0
    series: Mapping[str, Series] = field(default_factory=dict)
    spec: BudgetSpec = field(default_factory=BudgetSpec)
    verdicts: tuple[BudgetResult, ...] = ()
    #: read as :class:`~pytest_perfgate.evidence.Evidence`; set from it or from any JSON mapping
    evidence: EvidenceField[TestResult] = EvidenceField()  # noqa: RUF009 (a descriptor: one per class)

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of the test's budgets (pass when it has none)."""
        if not self.verdicts:
            return Verdict.PASS
        return min((v.verdict for v in self.verdicts), key=lambda v: v.rank)


@dataclass(frozen=True)
class RunResult:
    metadata: Mapping[str, Any]
    tests: tuple[TestResult, ...]

    def by_nodeid(self) -> dict[str, TestResult]:
        return {t.nodeid: t for t in self.tests}


# --------------------------------------------------------------------------- to JSON


def _num(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def series_to_dict(series: Series) -> dict[str, Any]:
    return {
        "kind": series.kind.value,
        "unit": series.unit,
        "higher_is_better": series.higher_is_better,
        "loops": series.loops,
        "source": series.source,
        **({"awaited": series.awaited, "await_overhead": series.await_overhead} if series.awaited else {}),
        "values": [_num(v) for v in series.values],
    }


def spec_to_dict(spec: BudgetSpec) -> dict[str, Any]:
    return {
        "kpi": spec.kpi,
        "max_regression": spec.max_regression,
        "warn_regression": spec.warn_regression,
        # written only when set: files without counters read the same in an older perfgate
        **{
            key: value
            for key, value in (
                ("counter_max_regression", spec.counter_max_regression),
                ("counter_warn_regression", spec.counter_warn_regression),
            )
            if value is not None
        },
        "evidence": list(spec.evidence),
        "budgets": [
            {
                "metric": b.metric,
                "kind": b.kind.value if b.kind else None,
                "target": b.target,
                "critical": b.critical,
                "higher_is_better": b.higher_is_better,
                "source": b.source,
            }
            for b in spec.budgets
        ],
    }


def verdict_to_dict(result: BudgetResult) -> dict[str, Any]:
    return {
        "metric": result.metric,
        "kind": result.kind.value,
        "unit": result.unit,
        "measured": _num(result.measured),
        "target": result.target,
        "critical": result.critical,
        "verdict": result.verdict.value,
        "samples": result.samples,
        "higher_is_better": result.higher_is_better,
        "detail": result.detail,
        "source": result.source,
        "message": result.message(),
    }


def test_to_dict(test: TestResult) -> dict[str, Any]:
    return {
        "nodeid": test.nodeid,
        "outcome": test.outcome,
        "mode": test.mode,
        "duration": test.duration,
        "series": {name: series_to_dict(s) for name, s in test.series.items()},
        "spec": spec_to_dict(test.spec),
        "verdicts": [verdict_to_dict(v) for v in test.verdicts],
        "evidence": test.evidence.to_json(),
    }


def run_to_dict(run: RunResult) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "metadata": dict(run.metadata),
        "tests": [test_to_dict(t) for t in sorted(run.tests, key=lambda t: t.nodeid)],
    }


def save_results(path: str | os.PathLike[str], run: RunResult) -> Path:
    return write_json_atomic(path, run_to_dict(run))


# --------------------------------------------------------------------------- from JSON


class _Reader:
    """Validating accessors that turn shape errors into ResultsFileError with a JSON path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, why: str) -> ResultsFileError:
        return ResultsFileError(self.path, f"{where}: {why}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")
        return value

    def seq(self, value: Any, where: str) -> Sequence[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {type(value).__name__}")
        return value

    def number(self, value: Any, where: str, *, optional: bool = False) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"expected a number, got {_short(value)}")
        return self.finite(value, where)

    def finite(self, value: int | float, where: str) -> float:
        """``value`` as a float: any finite figure (0, 5e-324, 1.7e308, negative) is accepted;
        NaN, Infinity, 1e400 and integers past the float range are refused (JSON numbers are
        unbounded, a float is not)."""
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.fail(
                where,
                f"{_short(value)} is not a finite number; accepted: numbers within +-1.8e308 "
                "(null for a sample that was not finite)",
            )
        return number

    def integer(self, value: Any, where: str, *, default: int, minimum: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(where, f"expected a whole number of at least {minimum}, got {_short(value)}")
        return value

    def flag(self, value: Any, where: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {_short(value)}")
        return value

    def text(self, value: Any, where: str, *, default: str = "") -> str:
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {_short(value)}")
        return value

    def plain(self, value: Any, where: str) -> Mapping[str, Any]:
        """A free-form object (metadata, evidence): any JSON, but every number in it finite, so
        that the run can be saved again (strict JSON) and its figures printed."""
        found = self.mapping(value, where)
        stack: list[tuple[Any, str]] = [(found, where)]
        while stack:
            node, at = stack.pop()
            if isinstance(node, Mapping):
                stack.extend((v, f"{at}.{k}") for k, v in node.items())
            elif isinstance(node, list):
                stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node))
            elif isinstance(node, (int, float)) and not isinstance(node, bool):
                self.finite(node, at)
        return found

    def kind(self, value: Any, where: str) -> Kind:
        try:
            return Kind(value)
        except (ValueError, TypeError):
            accepted = ", ".join(k.value for k in Kind)
            raise self.fail(where, f"unknown kind {_short(value)}; accepted: {accepted}") from None


def _short(value: Any) -> str:
    """``repr(value)`` cut to a readable length (a 400-digit integer, a huge list)."""
    return shown(value)


def series_from_dict(r: _Reader, name: str, raw: Any, where: str) -> Series:
    d = r.mapping(raw, where)
    raw_values = r.seq(d.get("values"), f"{where}.values")
    if all(type(v) is float and math.isfinite(v) for v in raw_values):  # the usual case, fast
        values = tuple(raw_values)
    else:  # null stands for a non-finite value (JSON has no NaN); anything else is named
        values = tuple(
            math.nan if v is None else float(r.number(v, f"{where}.values[{i}]") or 0.0)
            for i, v in enumerate(raw_values)
        )
    return Series(
        name=name,
        kind=r.kind(d.get("kind"), f"{where}.kind"),
        values=values,
        higher_is_better=r.flag(d.get("higher_is_better"), f"{where}.higher_is_better"),
        unit=r.text(d.get("unit"), f"{where}.unit"),
        loops=r.integer(d.get("loops"), f"{where}.loops", default=1, minimum=1),
        source=r.text(d.get("source"), f"{where}.source", default="perf") or "perf",
        awaited=r.text(d.get("awaited"), f"{where}.awaited"),
        await_overhead=float(r.number(d.get("await_overhead", 0.0), f"{where}.await_overhead") or 0.0),
    )


def spec_from_dict(r: _Reader, raw: Any, where: str) -> BudgetSpec:
    d = r.mapping(raw or {}, where)
    budgets = []
    for i, b in enumerate(r.seq(d.get("budgets", []), f"{where}.budgets")):
        bw = f"{where}.budgets[{i}]"
        b = r.mapping(b, bw)
        budget = MetricBudget(
            metric=r.text(b.get("metric"), f"{bw}.metric"),
            target=r.number(b.get("target"), f"{bw}.target", optional=True),
            critical=r.number(b.get("critical"), f"{bw}.critical", optional=True),
            kind=r.kind(b["kind"], f"{bw}.kind") if b.get("kind") else None,
            higher_is_better=r.flag(b.get("higher_is_better"), f"{bw}.higher_is_better"),
            source=r.text(b.get("source"), f"{bw}.source", default="marker") or "marker",
        )
        if not budget.metric:
            raise r.fail(f"{bw}.metric", "missing or empty")
        budgets.append(budget)
    levels: dict[str, float | None] = {}
    for prefix in ("", "counter_"):
        max_key, warn_key = f"{prefix}max_regression", f"{prefix}warn_regression"
        max_r = r.number(d.get(max_key), f"{where}.{max_key}", optional=True)
        warn_r = r.number(d.get(warn_key), f"{where}.{warn_key}", optional=True)
        for key, level in ((max_key, max_r), (warn_key, warn_r)):
            if level is not None and level <= 0:
                raise r.fail(f"{where}.{key}", f"{level!r} must be above 0 (a fraction: 0.1 is 10%)")
        if max_r is not None and warn_r is not None and warn_r > max_r:
            digits = ".1%" if prefix else ".0%"  # counter thresholds are fractions of a percent
            raise r.fail(where, f"{warn_key} ({warn_r:{digits}}) is above {max_key} ({max_r:{digits}})")
        levels[max_key], levels[warn_key] = max_r, warn_r
    kpi = d.get("kpi")
    if kpi is not None and not isinstance(kpi, str):
        raise r.fail(f"{where}.kpi", f"expected a KPI name or null, got {_short(kpi)}")
    evidence = tuple(
        r.text(e, f"{where}.evidence[{i}]") for i, e in enumerate(r.seq(d.get("evidence", []), f"{where}.evidence"))
    )
    return spec_with_levels(budgets, kpi, levels, evidence)


def verdict_from_dict(r: _Reader, raw: Any, where: str) -> BudgetResult:
    d = r.mapping(raw, where)
    try:
        verdict = Verdict(d.get("verdict"))
    except (ValueError, TypeError):
        raise r.fail(f"{where}.verdict", f"unknown verdict {d.get('verdict')!r}") from None
    return BudgetResult(
        metric=str(d.get("metric")),
        kind=r.kind(d.get("kind"), f"{where}.kind"),
        measured=r.number(d.get("measured"), f"{where}.measured", optional=True),
        target=r.number(d.get("target"), f"{where}.target", optional=True),
        critical=r.number(d.get("critical"), f"{where}.critical", optional=True),
        verdict=verdict,
        samples=r.integer(d.get("samples"), f"{where}.samples", default=0, minimum=0),
        higher_is_better=r.flag(d.get("higher_is_better"), f"{where}.higher_is_better"),
        unit=r.text(d.get("unit"), f"{where}.unit"),
        detail=r.text(d.get("detail"), f"{where}.detail"),
        source=r.text(d.get("source"), f"{where}.source", default="marker") or "marker",
    )


#: the shape of the evidence the reports read (perfgate writes it: measure/memprofile.py and
#: cpuprofile.py): "num" a finite number, "int" a whole number >= 0, "str" a string, a list of one
#: shape a list of it, a dict an object with those keys (all present, but in a memory call-tree
#: node), "node"/"cpu_node" a call tree; a key ending in "?" may be absent (files older than it).
#: Anything else in the evidence is kept as written (finite numbers only).
_FUNCTION = {"function": "str", "location": "str", "calls": "int", "inclusive_peak": "num", "self_net": "num"}
_SITE = {"size": "num", "count": "int", "stack": ["str"]}
_EVIDENCE_SHAPES: dict[str, object] = {
    "memory_profile": {
        "peak": "num",
        "functions": [_FUNCTION],
        "peak_stack": ["str"],
        "peak_sites": [_SITE],
        "retained": "num",
        "leaks": [_SITE],
        "tree": "node",
        "tracer?": "str",
        "timeline?": {"times": ["num"], "functions": ["str"], "held": [["int"]], "tracer?": "str"},
    },
    "memory_sites_at_end": [_SITE],
    "cpu_profile": {
        "calls": "int",
        "total": "num",
        "tree": ["cpu_node"],
        "top": [{"function": "str", "location": "str", "calls": "int", "own": "num", "cumulative": "num"}],
    },
}
_NODE = {"function": "str", "location": "str", "peak": "num", "self_net": "num", "calls": "int", "children": ["node"]}
_CPU_NODE = {
    "function": "str",
    "location": "str",
    "calls": "int",
    "cumulative": "num",
    "own": "num",
    "children": ["cpu_node"],
}


def _evidence(r: _Reader, raw: Any, where: str) -> Evidence:
    evidence = r.plain(raw, where)
    for key, shape in _EVIDENCE_SHAPES.items():
        if key in evidence:
            _check_shape(r, evidence[key], shape, f"{where}.{key}")
    return Evidence.from_json(evidence)


def _check_shape(r: _Reader, value: Any, shape: Any, where: str) -> None:
    stack: list[tuple[Any, Any, str]] = [(value, shape, where)]
    while stack:
        value, shape, at = stack.pop()
        if shape == "node" or shape == "cpu_node":
            if shape == "node" and isinstance(value, Mapping) and not value:
                continue  # an empty tree: no call path recorded
            shape = _NODE if shape == "node" else _CPU_NODE
        if isinstance(shape, dict):
            r.mapping(value, at)
            missing = [k for k in shape if not k.endswith("?") and k not in value]
            if missing and shape is not _NODE:  # the reports read these keys; the icicle tolerates gaps
                raise r.fail(at, f"missing {', '.join(map(repr, missing))} (evidence perfgate writes has them)")
            keys = ((k.rstrip("?"), sub) for k, sub in shape.items())
            stack.extend((value[k], sub, f"{at}.{k}") for k, sub in keys if k in value)
        elif isinstance(shape, list):
            stack.extend((item, shape[0], f"{at}[{i}]") for i, item in enumerate(r.seq(value, at)))
        elif shape == "str":
            if not isinstance(value, str):
                raise r.fail(at, f"expected a string, got {_short(value)}")
        elif shape == "int":
            r.integer(value, at, default=0, minimum=0)
        else:
            r.number(value, at)


def test_from_dict(r: _Reader, raw: Any, where: str) -> TestResult:
    d = r.mapping(raw, where)
    nodeid = d.get("nodeid")
    if not isinstance(nodeid, str) or not nodeid:
        raise r.fail(f"{where}.nodeid", "missing or not a string")
    series = r.mapping(d.get("series", {}), f"{where}.series")
    mode = d.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise r.fail(f"{where}.mode", f"expected a string or null, got {_short(mode)}")
    return TestResult(
        nodeid=nodeid,
        outcome=r.text(d.get("outcome"), f"{where}.outcome", default="passed") or "passed",
        mode=mode,
        duration=r.number(d.get("duration", 0.0), f"{where}.duration") or 0.0,
        series={str(k): series_from_dict(r, str(k), v, f"{where}.series.{k}") for k, v in series.items()},
        spec=spec_from_dict(r, d.get("spec"), f"{where}.spec"),
        verdicts=tuple(
            verdict_from_dict(r, v, f"{where}.verdicts[{i}]")
            for i, v in enumerate(r.seq(d.get("verdicts", []), f"{where}.verdicts"))
        ),
        evidence=_evidence(r, d.get("evidence", {}), f"{where}.evidence"),
    )


def test_from_json(data: Any, where: str = "<test>") -> TestResult:
    """One test's JSON (as carried on a pytest report) back into a :class:`TestResult`."""
    return test_from_dict(_Reader(where), data, "test")


def run_from_dict(data: Any, path: str = "<data>") -> RunResult:
    r = _Reader(path)
    d = r.mapping(data, "top level")
    if d.get("schema") != SCHEMA:
        raise ResultsFileError(
            path, f"not a perfgate results file (schema is {d.get('schema')!r}, expected {SCHEMA!r})"
        )
    version = d.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsFileError(
            path,
            f"schema_version {version!r} is not supported by this perfgate (it reads version "
            f"{SCHEMA_VERSION}); upgrade perfgate or regenerate the file",
        )
    tests = tuple(test_from_dict(r, t, f"tests[{i}]") for i, t in enumerate(r.seq(d.get("tests"), "tests")))
    seen: set[str] = set()
    for t in tests:
        if t.nodeid in seen:
            raise ResultsFileError(path, f"test {t.nodeid!r} appears twice")
        seen.add(t.nodeid)
    metadata = r.plain(d.get("metadata", {}), "metadata")
    for key in ("git", "ci", "settings"):  # read as objects by the reports, merge and the pushgateway
        if metadata.get(key) is not None:
            r.mapping(metadata[key], f"metadata.{key}")
    return RunResult(metadata=metadata, tests=tests)


def load_results(path: str | os.PathLike[str]) -> RunResult:
    """Read a results file; :class:`ResultsFileError` for anything missing, corrupt or unknown."""
    name = os.fspath(path)
    from .paths import check_input

    check_input(name, "a results file")  # a FIFO would block the read forever: refused at once
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsFileError(name, "no such file") from None
    except IsADirectoryError:
        raise ResultsFileError(name, "is a directory, expected a results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(name, f"cannot be read: {exc}") from None
    if not text.strip():
        raise ResultsFileError(name, "is empty")
    return run_from_dict(parse_json(text, name), name)


def parse_json(text: str, name: str) -> Any:
    """``json.loads`` with every way it can fail as a :class:`ResultsFileError` naming the file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(
            name, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); the file may be truncated"
        ) from None
    except ValueError as exc:  # an integer of more digits than Python converts (sys.set_int_max_str_digits)
        raise ResultsFileError(name, f"is not usable JSON: {exc}") from None
    except RecursionError:
        raise ResultsFileError(name, "is not usable JSON: nested too deeply") from None
