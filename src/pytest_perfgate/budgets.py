"""Budget specs (what a test promises) and their evaluation into verdicts.

A budget level is written in one of these forms, in a marker or in ``perfgate.yml``:

* ``"5ms"``: the critical (fail) level only;
* ``("2ms", "5ms")`` / ``[2ms, 5ms]``: target (warn) then critical (fail);
* ``{"target": "2ms", "critical": "5ms"}``: either key may be left out.

For lower-is-better metrics (time, memory) the target must not exceed the critical level; for
higher-is-better metrics (throughput, hit ratios) it must not be below it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol

from . import metrics as metric_registry
from . import stats
from .errors import BudgetError, PerfgateError, UnitError
from .metrics import MetricDef
from .units import ACCEPTED, Kind, format_value, parse, parse_threshold


class Recorded(Protocol):
    """What :func:`evaluate` reads of a recorded series (a :class:`~pytest_perfgate.model.Series`)."""

    @property
    def kind(self) -> Kind: ...
    @property
    def values(self) -> Sequence[float]: ...
    @property
    def higher_is_better(self) -> bool: ...
    @property
    def unit(self) -> str: ...
    @property
    def basis(self) -> str: ...


LEVEL_FORMS = (
    "a single value (the critical level), a (target, critical) pair, or a mapping with 'target' and/or 'critical'"
)


class Verdict(str, Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    NOT_CHECKED = "not checked"

    @property
    def rank(self) -> int:
        return {"fail": 0, "warn": 1, "not checked": 2, "pass": 3}[self.value]


@dataclass(frozen=True)
class MetricBudget:
    """Levels for one metric. ``kind`` is None for a custom metric whose kind is not yet known
    (its levels were bare numbers)."""

    metric: str
    target: float | None
    critical: float | None
    kind: Kind | None = None
    higher_is_better: bool = False
    source: str = "marker"

    def check_order(self) -> None:
        if self.target is None or self.critical is None:
            return
        if self.higher_is_better and self.target < self.critical:
            raise ValueError(
                f"target {self._fmt(self.target)} is below critical {self._fmt(self.critical)}; "
                f"'{self.metric}' is higher-is-better, so the target (warn) level must be at or "
                "above the critical (fail) level"
            )
        if not self.higher_is_better and self.target > self.critical:
            raise ValueError(
                f"target {self._fmt(self.target)} is above critical {self._fmt(self.critical)}; "
                "the target (warn) level must be at or below the critical (fail) level"
            )

    def _fmt(self, value: float) -> str:
        return format_value(value, self.kind or Kind.NUMBER)


@dataclass(frozen=True)
class BudgetSpec:
    """Everything a test's budgets say: metric levels plus gate overrides."""

    budgets: tuple[MetricBudget, ...] = ()
    kpi: str | None = None
    max_regression: float | None = None
    warn_regression: float | None = None
    #: the gate's thresholds for this test's counters (instructions, allocations): docs/gate.md
    counter_max_regression: float | None = None
    counter_warn_regression: float | None = None
    evidence: tuple[str, ...] = ()  # evidence to collect even when the test passes: memory, cpu

    def get(self, metric: str) -> MetricBudget | None:
        for budget in self.budgets:
            if budget.metric == metric:
                return budget
        return None

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(b.metric for b in self.budgets)

    def merged_over(self, base: BudgetSpec) -> BudgetSpec:
        """This spec's levels win; ``base`` fills in what this one does not name."""
        ours = {b.metric for b in self.budgets}
        return BudgetSpec(
            budgets=tuple(b for b in base.budgets if b.metric not in ours) + self.budgets,
            kpi=self.kpi or base.kpi,
            max_regression=_first(self.max_regression, base.max_regression),
            warn_regression=_first(self.warn_regression, base.warn_regression),
            counter_max_regression=_first(self.counter_max_regression, base.counter_max_regression),
            counter_warn_regression=_first(self.counter_warn_regression, base.counter_warn_regression),
            evidence=tuple(dict.fromkeys((*base.evidence, *self.evidence))),
        )


def spec_with_levels(
    budgets: Iterable[MetricBudget], kpi: str | None, levels: Mapping[str, float | None], evidence: tuple[str, ...]
) -> BudgetSpec:
    """A spec from its budgets and its gate thresholds (``levels``: ``max_regression``,
    ``warn_regression`` and their ``counter_`` forms; a missing one is unset)."""
    return BudgetSpec(
        budgets=tuple(budgets),
        kpi=kpi,
        max_regression=levels.get("max_regression"),
        warn_regression=levels.get("warn_regression"),
        counter_max_regression=levels.get("counter_max_regression"),
        counter_warn_regression=levels.get("counter_warn_regression"),
        evidence=evidence,
    )


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


@dataclass(frozen=True)
class BudgetResult:
    """The verdict of one budget against what the test measured."""

    metric: str
    kind: Kind
    measured: float | None
    target: float | None
    critical: float | None
    verdict: Verdict
    samples: int
    higher_is_better: bool = False
    unit: str = ""
    detail: str = ""
    source: str = "marker"

    @property
    def severity(self) -> float:
        """How far past its level the value is (for sorting worst first); 0 when within."""
        level = self.critical if self.verdict is Verdict.FAIL else self.target
        if self.measured is None or level is None or level == 0:
            return 0.0
        ratio = self.measured / level
        return 1 / ratio if self.higher_is_better and ratio else ratio

    def fmt(self, value: float | None) -> str:
        return "-" if value is None else format_value(value, self.kind, self.unit)

    def message(self) -> str:
        """One line, e.g. ``p95 12.3ms exceeds critical 10ms (target 5ms; 57 rounds)``."""
        if self.verdict is Verdict.NOT_CHECKED:
            return f"{self.metric} not checked: {self.detail}"
        word = "below" if self.higher_is_better else "exceeds"
        if self.verdict is Verdict.FAIL:
            level, other = f"critical {self.fmt(self.critical)}", self.target
            extra = f"target {self.fmt(other)}; " if other is not None else ""
        elif self.verdict is Verdict.WARN:
            level, other = f"target {self.fmt(self.target)}", self.critical
            extra = f"critical {self.fmt(other)}; " if other is not None else ""
        else:
            word, level = "within", "budget"
            extra = ""
        tail = f" ({extra}{self.detail})" if self.detail else (f" ({extra.rstrip('; ')})" if extra else "")
        measured = self.fmt(self.measured)
        if self.verdict is Verdict.PASS:
            return f"{self.metric} {measured} within budget{tail}"
        return f"{self.metric} {measured} {'is ' if word == 'below' else ''}{word} {level}{tail}"


# --------------------------------------------------------------------------- parsing


def parse_level(
    raw: object,
    metric: str,
    kind: Kind | None,
    *,
    higher_is_better: bool | None = False,
    source: str = "marker",
) -> MetricBudget:
    """Parse one level form (see module doc) for ``metric``. Raises ``ValueError`` subclasses
    whose message says what is wrong and what is accepted; callers add the location.

    ``higher_is_better=None`` means the direction is not known yet (an undeclared custom metric):
    the order of the two levels is then checked when the test records the metric."""
    if isinstance(raw, Mapping):
        unknown = sorted(set(map(str, raw)) - {"target", "critical"})
        if unknown:
            raise BudgetError(f"unknown key(s) {', '.join(map(repr, unknown))}; accepted: {LEVEL_FORMS}")
        target_raw, critical_raw = raw.get("target"), raw.get("critical")
        if target_raw is None and critical_raw is None:
            raise BudgetError(f"neither 'target' nor 'critical' given; accepted: {LEVEL_FORMS}")
    elif isinstance(raw, (tuple, list)):
        if len(raw) != 2:
            raise BudgetError(f"{len(raw)} values given; a pair is (target, critical); accepted: {LEVEL_FORMS}")
        target_raw, critical_raw = raw
    else:
        target_raw, critical_raw = None, raw
    if metric in metric_registry.FALSE_MEANS_ZERO:
        target_raw, critical_raw = _false_as_zero(target_raw, metric), _false_as_zero(critical_raw, metric)
    kind_target, target = _parse_value(target_raw, kind)
    kind_critical, critical = _parse_value(critical_raw, kind)
    if target is None and critical is None:  # p95=None, (None, None): a row "pass" with no level
        raise BudgetError(
            f"no level given ({raw!r}); accepted: {LEVEL_FORMS}; to set no budget on '{metric}', leave it out"
        )
    resolved = kind or kind_target or kind_critical
    if kind_target and kind_critical and kind_target is not kind_critical:
        raise BudgetError(f"target and critical have different units ({kind_target.value} vs {kind_critical.value})")
    budget = MetricBudget(
        metric, target, critical, kind=resolved, higher_is_better=bool(higher_is_better), source=source
    )
    if higher_is_better is not None:
        try:
            budget.check_order()
        except ValueError as exc:
            raise BudgetError(str(exc)) from None
    return budget


def _false_as_zero(raw: object, metric: str) -> object:
    """``collscan=False`` means "none allowed" (level 0); ``True`` names no level and is refused."""
    if raw is False:
        return 0
    if raw is True:
        raise BudgetError(
            f"{metric}=True is not a level; accepted: {metric}=False (none allowed, i.e. critical 0) "
            f"or a whole number such as {metric}=2"
        )
    return raw


_INFER_ORDER = (Kind.TIME, Kind.SIZE, Kind.RATE, Kind.RATIO)


def _parse_value(raw: object, kind: Kind | None) -> tuple[Kind | None, float | None]:
    if raw is None:
        return None, None
    if kind is not None:
        return kind, parse(raw, kind)
    # A custom metric without a declaration: a bare number is in the base unit of whatever the
    # test records; a string's unit tells the kind.
    if isinstance(raw, str):
        for candidate in _INFER_ORDER:
            try:
                return candidate, parse(raw, candidate)
            except UnitError:
                continue
        try:
            return None, parse(raw, Kind.NUMBER)
        except UnitError:
            raise UnitError(
                f"{raw!r} is not a valid value: no known unit; accepted: a number, or "
                + "; ".join(ACCEPTED[k] for k in _INFER_ORDER)
            ) from None
    return None, parse(raw, Kind.NUMBER)


MARKER_OPTIONS = (
    "kpi",
    "metrics",
    "max_regression",
    "warn_regression",
    "counter_max_regression",
    "counter_warn_regression",
    "evidence",
)
#: evidence a run or a test can ask for: memory by function, the CPU call tree, and memory by
#: function with native (C, C++, Rust) frames in memray's stacks (slower; memray only)
EVIDENCE_KINDS = ("memory", "cpu", "memory-native")
#: evidence only a whole session can ask for: each counted test's instructions by Python function
#: (the session's callgrind run is started for it)
BY_FUNCTION = "instructions"
SESSION_EVIDENCE = (BY_FUNCTION,)
#: what ``all`` asks for (native frames only when named)
ALL_EVIDENCE = ("memory", "cpu")


def parse_marker(
    kwargs: Mapping[str, object],
    args: tuple[object, ...] = (),
    *,
    declared: Mapping[str, MetricDef] | None = None,
) -> BudgetSpec:
    """Parse ``perf_budget(...)`` keyword arguments into a :class:`BudgetSpec`.

    Accepts, per metric ``m``: ``m=level``, ``target_m=value``, ``critical_m=value`` (with
    ``critical_m`` given, a plain ``m=value`` is the target), and the options
    ``kpi``, ``metrics`` (a dict of custom metric levels), ``max_regression``, ``warn_regression``
    (the gate's thresholds for this test's timings), ``counter_max_regression``,
    ``counter_warn_regression`` (for its counters: instructions, allocations).
    """
    declared = declared or {}
    if args:
        raise BudgetError(
            f"positional arguments are not accepted (got {args!r}); name each metric, e.g. perf_budget(p95='200ms')"
        )
    plain: dict[str, object] = {}
    targets: dict[str, object] = {}
    criticals: dict[str, object] = {}
    options: dict[str, object] = {}
    for key, value in kwargs.items():
        if key in MARKER_OPTIONS:
            options[key] = value
        elif key.startswith("target_"):
            targets[_resolve_name(key[len("target_") :], declared, key)] = value
        elif key.startswith("critical_"):
            criticals[_resolve_name(key[len("critical_") :], declared, key)] = value
        else:
            name = _resolve_name(key, declared, key)
            if name in plain:
                raise BudgetError(f"metric '{name}' given twice (as an alias and by name)")
            plain[name] = value

    budgets: list[MetricBudget] = []
    for name in dict.fromkeys([*plain, *targets, *criticals]):
        definition = metric_registry.get(name) or declared.get(name)
        assert definition is not None
        if name in criticals or name in targets:
            if name in plain and isinstance(plain[name], (tuple, list, Mapping)):
                raise BudgetError(
                    f"'{name}' gives both levels already; do not combine it with target_{name}/critical_{name}"
                )
            critical = criticals.get(name)
            target = targets.get(name, plain.get(name) if name in criticals else None)
            if name in targets and name in plain:
                raise BudgetError(f"'{name}' and 'target_{name}' both set the target level")
            raw: object = {"target": target, "critical": critical}
        else:
            raw = plain[name]
        budgets.append(_level_for(raw, name, definition, "marker"))

    custom_raw = options.get("metrics")
    if custom_raw is not None:
        if not isinstance(custom_raw, Mapping):
            raise BudgetError(
                f"metrics= must be a dict of custom metric name to level, got {type(custom_raw).__name__}"
            )
        for name, raw in custom_raw.items():
            name = str(name)
            if metric_registry.get(name) is not None:
                raise BudgetError(f"'{name}' is a built-in metric; give it as perf_budget({name}=...) not in metrics=")
            if any(b.metric == name for b in budgets):
                raise BudgetError(f"custom metric '{name}' given twice")
            budgets.append(_level_for(raw, name, declared.get(name), "marker"))

    kpi = options.get("kpi")
    if kpi is not None and not isinstance(kpi, str):
        raise BudgetError(f"kpi= must be the name of a KPI in perfgate.yml, got {kpi!r}")
    levels: dict[str, float | None] = {}
    for prefix in ("", "counter_"):
        max_key, warn_key = f"{prefix}max_regression", f"{prefix}warn_regression"
        max_regression = _option_ratio(options, max_key)
        warn_regression = _option_ratio(options, warn_key)
        if max_regression is not None and warn_regression is not None and warn_regression > max_regression:
            # the rule of perfgate.yml's gate (top level and overrides) and of the CLI
            digits = ".1%" if prefix else ".0%"
            raise BudgetError(
                f"{warn_key} ({warn_regression:{digits}}) is above {max_key} ({max_regression:{digits}}); "
                "the warning threshold must be at most the failure threshold"
            )
        levels[max_key], levels[warn_key] = max_regression, warn_regression
    return spec_with_levels(budgets, kpi, levels, parse_evidence(options.get("evidence", ()), "evidence="))


def parse_evidence(raw: object, where: str, *, session: bool = False) -> tuple[str, ...]:
    """``"memory"``, ``"cpu"``, ``"memory-native"``, ``"all"`` (memory and cpu), a comma list or a
    sequence of those; ``"none"`` or empty for nothing. ``session`` (the command line's
    ``--perfgate-evidence``): ``"instructions"`` too."""
    accepted = "'memory', 'cpu', 'memory-native'" + (", 'instructions'" if session else "")
    items = [p.strip() for p in raw.split(",")] if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise BudgetError(f"{where} expects {accepted}, 'all' or a list of them, got {raw!r}")
    chosen: list[str] = []
    for item in items:
        if item in ("", "none"):
            continue
        if item == "all":
            chosen.extend(ALL_EVIDENCE)
        elif item in EVIDENCE_KINDS or (session and item in SESSION_EVIDENCE):
            chosen.append(item)
        elif item in SESSION_EVIDENCE:
            raise BudgetError(
                f"{where} evidence {item!r} is chosen for a whole session, not a test: "
                "pytest --perfgate-instructions --perfgate-evidence=instructions"
            )
        else:
            raise BudgetError(
                f"{where} unknown evidence {item!r}; accepted: {accepted.replace(chr(39), '')}, all, none"
            )
    return tuple(dict.fromkeys(chosen))


def _level_for(raw: object, name: str, definition: MetricDef | None, source: str) -> MetricBudget:
    """Parse ``raw`` for a metric, prefixing any error with the metric's name. Without a
    definition (an undeclared custom metric) kind and direction are settled when it is recorded."""
    try:
        if definition is None:
            return parse_level(raw, name, None, higher_is_better=None, source=source)
        return parse_level(
            raw, definition.name, definition.kind, higher_is_better=definition.higher_is_better, source=source
        )
    except (UnitError, BudgetError) as exc:
        raise BudgetError(f"'{name}': {exc}") from None


def _option_ratio(options: Mapping[str, object], key: str) -> float | None:
    if options.get(key) is None:
        return None
    try:
        return parse_threshold(options[key])
    except UnitError as exc:
        raise BudgetError(f"{key}: {exc}") from None


def _resolve_name(name: str, declared: Mapping[str, MetricDef], key: str) -> str:
    if metric_registry.get(name) is not None:
        return metric_registry.canonical(name)
    if name in declared:
        return name
    accepted = sorted({*metric_registry.known_names(), *declared, *MARKER_OPTIONS})
    raise BudgetError(
        f"unknown metric '{key}'; accepted: {', '.join(accepted)} (each also as target_<metric> / "
        "critical_<metric>); a test's own figures go in metrics={'name': level} or are declared "
        "under 'metrics:' in perfgate.yml"
    )


# --------------------------------------------------------------------------- evaluation


def evaluate(
    spec: BudgetSpec,
    series: Mapping[str, Recorded],
    *,
    strict: bool = False,
    not_checked: Mapping[str, str] | None = None,
) -> tuple[BudgetResult, ...]:
    """Judge every budget of ``spec`` against the recorded series.

    ``not_checked`` maps a metric to the reason it cannot be checked here (e.g. on mongomock);
    such budgets get :attr:`Verdict.NOT_CHECKED`, never a pass. ``strict`` turns warnings into
    failures. A budget on a metric the test never recorded raises :class:`BudgetError`.
    """
    results = []
    for budget in spec.budgets:
        if not_checked and budget.metric in not_checked:
            results.append(
                BudgetResult(
                    budget.metric,
                    budget.kind or Kind.NUMBER,
                    None,
                    budget.target,
                    budget.critical,
                    Verdict.NOT_CHECKED,
                    0,
                    budget.higher_is_better,
                    detail=not_checked[budget.metric],
                    source=budget.source,
                )
            )
            continue
        definition = metric_registry.get(budget.metric)
        recorded = series.get(definition.series if definition else budget.metric)
        if recorded is None or not recorded.values:
            have = ", ".join(sorted(series)) or "nothing"
            raise BudgetError(
                f"budget on '{budget.metric}' but the test recorded no such metric (recorded: {have})"
                + ("" if definition else f"; record it with perf.record('{budget.metric}', value)")
            )
        if definition is None:
            definition = metric_registry.custom(
                budget.metric, recorded.kind, higher_is_better=recorded.higher_is_better, unit=recorded.unit
            )
            if budget.kind is not None and budget.kind is not recorded.kind and recorded.kind is not Kind.NUMBER:
                raise BudgetError(
                    f"budget on '{budget.metric}' is a {budget.kind.value} but the test recorded a "
                    f"{recorded.kind.value}"
                )
            budget = replace(budget, higher_is_better=recorded.higher_is_better)
            try:
                budget.check_order()
            except ValueError as exc:
                raise BudgetError(f"'{budget.metric}': {exc}") from None
        measured = stats.statistic(recorded.values, definition.statistic)
        verdict = level_verdict(measured, budget.target, budget.critical, definition.higher_is_better, strict=strict)
        results.append(
            BudgetResult(
                metric=budget.metric,
                kind=definition.kind if definition.kind is not Kind.NUMBER else (budget.kind or Kind.NUMBER),
                measured=measured,
                target=budget.target,
                critical=budget.critical,
                verdict=verdict,
                samples=len(recorded.values),
                higher_is_better=definition.higher_is_better,
                unit=recorded.unit,
                detail=recorded.basis,
                source=budget.source,
            )
        )
    return tuple(results)


def level_verdict(
    measured: float, target: float | None, critical: float | None, higher_is_better: bool, *, strict: bool = False
) -> Verdict:
    """Past the critical level: fail; past the target: warn (fail when ``strict``); else pass."""

    def beyond(level: float | None) -> bool:
        if level is None or math.isnan(measured):
            return False
        return measured < level if higher_is_better else measured > level

    if beyond(critical):
        return Verdict.FAIL
    if beyond(target):
        return Verdict.FAIL if strict else Verdict.WARN
    return Verdict.PASS


def worst_first(results: Iterable[BudgetResult]) -> list[BudgetResult]:
    return sorted(results, key=lambda r: (r.verdict.rank, -r.severity, r.metric))


__all__ = [
    "BudgetResult",
    "BudgetSpec",
    "MetricBudget",
    "PerfgateError",
    "Verdict",
    "evaluate",
    "level_verdict",
    "parse_level",
    "parse_marker",
    "worst_first",
]
