"""``perfgate.yml`` loading and validation.

Every error names the file, the key path and the accepted forms, e.g.::

    perfgate.yml: kpis.api.p95.target: '2 parsecs' is not a valid time (unknown unit 'parsecs'); ...
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from . import metrics as metric_registry
from .budgets import BudgetSpec, MetricBudget, parse_level
from .errors import BudgetError, ConfigError, UnitError
from .metrics import MetricDef
from .options import find_config as find_config  # lives with the options: the plugin runs it in every session
from .units import Kind, parse_threshold

GATE_STATISTICS = ("min", "mean", "median", "p90", "p95", "p99", "max")
#: the top-level sections of ``perfgate.yml``
SECTIONS = ("kpis", "metrics", "gate")


class Correction(str, Enum):
    """How the gate controls false alarms over a whole suite (see :func:`pytest_perfgate.stats.adjust`)."""

    HOLM = "holm"  # the family-wise error rate
    BH = "bh"  # the false discovery rate (Benjamini-Hochberg)
    NONE = "none"  # each test on its own


@dataclass(frozen=True)
class GateOverride:
    """Per-test gate thresholds, chosen by a test-id glob (``tests/perf/test_io.py::*``); with
    ``metric``, for that metric only (the way to set a counter's thresholds per test or per
    metric: an override without ``metric`` applies to every metric that is not a counter)."""

    match: str
    max_regression: float | None = None
    warn_regression: float | None = None
    metric: str | None = None

    def applies(self, nodeid: str, metric: str | None) -> bool:
        if self.metric is not None and self.metric != metric:
            return False
        if self.metric is None and metric is not None and metric_registry.is_counter(metric):
            return False
        return fnmatch.fnmatchcase(nodeid, self.match)


@dataclass(frozen=True)
class CounterSettings:
    """The gate's rule for counters (instructions, estimated cycles, allocations): docs/gate.md.

    A regression is the current count above the baseline runs' median count by more than
    ``max_regression`` (a warning above ``warn_regression``); an improvement below it by at least
    ``min_improvement``. A counter whose values spread by more than ``max_spread`` (between the
    stored runs, or within the current run) is nondeterministic: it is judged against at least
    :attr:`SPREAD_FACTOR` times its spread, and the report says so.
    """

    max_regression: float = 0.01
    warn_regression: float = 0.005
    min_improvement: float = 0.005
    max_spread: float = 0.001

    #: a nondeterministic counter's thresholds are at least this many times its spread
    SPREAD_FACTOR = 3.0


@dataclass(frozen=True)
class GateSettings:
    metric: str = "median"
    max_regression: float = 0.10
    warn_regression: float = 0.05
    alpha: float = 0.01
    overrides: tuple[GateOverride, ...] = ()
    #: nothing fails or warns below this relative change, whatever the thresholds say
    min_effect: float = 0.03
    #: a significant drop of at least this much is reported as an improvement (0 < x < 1)
    min_improvement: float = 0.05
    #: suite-level control of the false-positive rate
    correction: Correction = Correction.HOLM
    #: with fewer baseline runs the run-to-run spread is not measured but assumed (conservative)
    min_baseline_runs: int = 3
    #: run-to-run spread assumed when the baseline has too few runs to measure it
    assumed_spread: float = 0.10
    #: confidence level of the interval shown for each change
    confidence: float = 0.95
    #: the rule for counters (``gate.counters``)
    counters: CounterSettings = field(default_factory=CounterSettings)

    def thresholds_for(
        self, nodeid: str, spec: BudgetSpec | None = None, metric: str | None = None
    ) -> tuple[float, float]:
        """(warn, max) regression for a test's metric. Timings and other measured metrics: the
        marker's ``max_regression``/``warn_regression``, then the first matching override (one
        naming this metric, or naming none), then ``gate``'s. Counters
        (:func:`~pytest_perfgate.metrics.is_counter`): the marker's
        ``counter_max_regression``/``counter_warn_regression``, then the first matching override
        that names this metric, then ``gate.counters``'."""
        counter = metric is not None and metric_registry.is_counter(metric)
        if counter:
            max_r, warn_r = self.counters.max_regression, self.counters.warn_regression
        else:
            max_r, warn_r = self.max_regression, self.warn_regression
        for override in self.overrides:
            if override.applies(nodeid, metric):
                max_r = override.max_regression if override.max_regression is not None else max_r
                warn_r = override.warn_regression if override.warn_regression is not None else warn_r
                break
        if spec is not None:
            spec_max = spec.counter_max_regression if counter else spec.max_regression
            spec_warn = spec.counter_warn_regression if counter else spec.warn_regression
            max_r = spec_max if spec_max is not None else max_r
            warn_r = spec_warn if spec_warn is not None else warn_r
        return min(warn_r, max_r), max_r


@dataclass(frozen=True)
class Kpi:
    name: str
    budgets: tuple[MetricBudget, ...]

    def spec(self) -> BudgetSpec:
        return BudgetSpec(budgets=self.budgets, kpi=self.name)


@dataclass(frozen=True)
class PerfgateConfig:
    path: str | None = None
    kpis: Mapping[str, Kpi] = field(default_factory=dict)
    metrics: Mapping[str, MetricDef] = field(default_factory=dict)
    gate: GateSettings = field(default_factory=GateSettings)

    def kpi(self, name: str, *, where: str = "") -> Kpi:
        try:
            return self.kpis[name]
        except KeyError:
            prefix = f"{where}: " if where else ""
            if self.path is None:
                raise BudgetError(
                    f"{prefix}unknown KPI '{name}': no perfgate.yml was found (looked from the current "
                    "directory up to the rootdir); pass --perfgate-config PATH or set perfgate_config in the ini"
                ) from None
            known = ", ".join(sorted(self.kpis)) or "none defined"
            raise BudgetError(f"{prefix}unknown KPI '{name}'; KPIs in {self.path}: {known}") from None


def load_config(path: str | os.PathLike[str] | None) -> PerfgateConfig:
    """Load and validate a config file; ``None`` gives the defaults."""
    if path is None:
        return PerfgateConfig()
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", path=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot be read: {exc}", path=name) from None
    return parse_config(text, name)


def _strict_loader() -> type:
    """A ``yaml.SafeLoader`` that refuses anchors and aliases (a 520-byte alias bomb expands to
    gigabytes) and duplicate keys (YAML keeps the last one silently), each with its line."""
    import yaml
    from yaml.constructor import ConstructorError
    from yaml.events import AliasEvent, NodeEvent

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor is not None):
                sign = "*" if isinstance(event, AliasEvent) else "&"
                raise ConstructorError(
                    None,
                    None,
                    f"YAML anchors and aliases ({sign}{event.anchor}) are not accepted in perfgate.yml; "
                    "write each value out",
                    event.start_mark,  # type: ignore[arg-type]
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # an unhashable key: SafeConstructor refuses it with its line
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (lines {seen[key]} and {line}); each key may appear once in a mapping",
                        key_node.start_mark,
                    )
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def parse_config(text: str, path: str = "perfgate.yml") -> PerfgateConfig:
    import yaml

    try:
        data = yaml.load(text, Loader=_strict_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML ({where}{problem})", path=path) from None
    except RecursionError:
        raise ConfigError("invalid YAML (nested too deeply)", path=path) from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"the top level must be a mapping of sections, got {type(data).__name__}", path=path)
    unknown = sorted(set(map(str, data)) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(unknown)}; accepted: {', '.join(sorted(SECTIONS))}", path=path
        )
    # custom metrics first: KPIs may budget them
    declared = _parse_metrics(data.get("metrics"), path)
    kpis = _parse_kpis(data.get("kpis"), path, declared)
    gate = _parse_gate(data.get("gate"), path)
    return PerfgateConfig(path=path, kpis=kpis, metrics=declared, gate=gate)


def _mapping(value: Any, path: str, key: str, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping of {what}, got {type(value).__name__}", path=path, key=key)
    return value


def _parse_metrics(raw: Any, path: str) -> dict[str, MetricDef]:
    declared: dict[str, MetricDef] = {}
    kinds = ", ".join(k.value for k in Kind)
    for name, body in _mapping(raw, path, "metrics", "custom metric declarations").items():
        key = f"metrics.{name}"
        name = str(name)
        if metric_registry.get(name) is not None:
            raise ConfigError(f"'{name}' is a built-in metric and cannot be redeclared", path=path, key=key)
        body = _mapping(body, path, key, "settings (kind, higher_is_better, unit)")
        unknown = sorted(set(map(str, body)) - {"kind", "higher_is_better", "unit"})
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)}; accepted: kind, higher_is_better, unit", path=path, key=key
            )
        try:
            kind = Kind(body.get("kind", "number"))
        except ValueError:
            raise ConfigError(
                f"unknown kind {body.get('kind')!r}; accepted: {kinds}", path=path, key=f"{key}.kind"
            ) from None
        hib = body.get("higher_is_better", False)
        if not isinstance(hib, bool):
            raise ConfigError(f"expected true or false, got {hib!r}", path=path, key=f"{key}.higher_is_better")
        declared[name] = metric_registry.custom(name, kind, higher_is_better=hib, unit=str(body.get("unit") or ""))
    return declared


def _parse_kpis(raw: Any, path: str, declared: Mapping[str, MetricDef]) -> dict[str, Kpi]:
    kpis: dict[str, Kpi] = {}
    for kpi_name, body in _mapping(raw, path, "kpis", "KPI names to metric levels").items():
        key = f"kpis.{kpi_name}"
        body = _mapping(body, path, key, "metric names to levels")
        if not body:
            raise ConfigError("a KPI needs at least one metric level", path=path, key=key)
        budgets = []
        for metric_name, level in body.items():
            metric_key = f"{key}.{metric_name}"
            definition = metric_registry.get(str(metric_name)) or declared.get(str(metric_name))
            if definition is None:
                accepted = ", ".join(sorted({*metric_registry.known_names(), *declared}))
                raise ConfigError(
                    f"unknown metric '{metric_name}'; accepted: {accepted} (declare your own under 'metrics:')",
                    path=path,
                    key=metric_key,
                )
            try:
                budgets.append(
                    parse_level(
                        level,
                        definition.name,
                        definition.kind,
                        higher_is_better=definition.higher_is_better,
                        source=f"kpi:{kpi_name}",
                    )
                )
            except (BudgetError, UnitError) as exc:
                raise ConfigError(str(exc), path=path, key=metric_key) from None
        kpis[str(kpi_name)] = Kpi(str(kpi_name), tuple(budgets))
    return kpis


def _threshold(value: Any, path: str, key: str, *, below: float | None = None) -> float:
    try:
        return parse_threshold(value, below=below)
    except UnitError as exc:
        raise ConfigError(str(exc), path=path, key=key) from None


_GATE_KEYS = (
    "metric",
    "max_regression",
    "warn_regression",
    "alpha",
    "overrides",
    "min_effect",
    "min_improvement",
    "correction",
    "min_baseline_runs",
    "assumed_spread",
    "confidence",
    "counters",
)
_COUNTER_KEYS = ("max_regression", "warn_regression", "min_improvement", "max_spread")


def _parse_gate(raw: Any, path: str) -> GateSettings:
    body = _mapping(raw, path, "gate", "gate settings")
    unknown = sorted(set(map(str, body)) - set(_GATE_KEYS))
    if unknown:
        accepted = ", ".join(_GATE_KEYS)
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; accepted: {accepted}", path=path, key="gate")
    defaults = GateSettings()

    def ratio(name: str, default: float, below: float | None = None) -> float:
        return _threshold(body[name], path, f"gate.{name}", below=below) if name in body else default

    metric = str(body.get("metric", defaults.metric))
    if metric not in GATE_STATISTICS:
        raise ConfigError(
            f"unknown statistic {metric!r}; accepted: {', '.join(GATE_STATISTICS)}", path=path, key="gate.metric"
        )
    max_r = ratio("max_regression", defaults.max_regression)
    warn_r = ratio("warn_regression", min(defaults.warn_regression, max_r))
    if warn_r > max_r:
        raise ConfigError(
            f"warn_regression ({warn_r:.0%}) is above max_regression ({max_r:.0%})", path=path, key="gate"
        )
    overrides = []
    raw_overrides = body.get("overrides") or []
    if not isinstance(raw_overrides, list):
        raise ConfigError(
            "expected a list of {match, metric, max_regression, warn_regression}", path=path, key="gate.overrides"
        )
    counters = _parse_counters(body.get("counters"), path)
    for i, item in enumerate(raw_overrides):
        key = f"gate.overrides[{i}]"
        item = _mapping(item, path, key, "match / metric / max_regression / warn_regression")
        if not isinstance(item.get("match"), str):
            raise ConfigError("'match' (a test-id glob such as 'tests/perf/*') is required", path=path, key=key)
        extra = sorted(set(map(str, item)) - {"match", "metric", "max_regression", "warn_regression"})
        if extra:
            raise ConfigError(
                f"unknown key(s) {', '.join(extra)}; accepted: match, metric, max_regression, warn_regression",
                path=path,
                key=key,
            )
        metric_name = item.get("metric")
        if metric_name is not None:
            if not isinstance(metric_name, str) or not metric_name:
                raise ConfigError(
                    f"expected the name of one metric (e.g. instructions), got {metric_name!r}",
                    path=path,
                    key=f"{key}.metric",
                )
            metric_name = metric_registry.canonical(metric_name)
        levels = {
            name: _threshold(item[name], path, f"{key}.{name}") if name in item else None
            for name in ("max_regression", "warn_regression")
        }
        # the same rule as at the top of gate: (a level the override leaves out is the top one's,
        # gate.counters' for a counter)
        counter = metric_name is not None and metric_registry.is_counter(metric_name)
        top_warn, top_max = (counters.warn_regression, counters.max_regression) if counter else (warn_r, max_r)
        warn_o = levels["warn_regression"] if levels["warn_regression"] is not None else top_warn
        max_o = levels["max_regression"] if levels["max_regression"] is not None else top_max
        if levels["warn_regression"] is not None and warn_o > max_o:
            top = "gate.counters.max_regression" if counter else "gate.max_regression"
            whose = "" if levels["max_regression"] is not None else f" ({top})"
            raise ConfigError(
                f"warn_regression ({warn_o:.0%}) is above max_regression{whose} ({max_o:.0%})", path=path, key=key
            )
        overrides.append(GateOverride(match=item["match"], metric=metric_name, **levels))
    try:
        correction = Correction(str(body["correction"]).lower()) if "correction" in body else defaults.correction
    except ValueError:
        raise ConfigError(
            f"unknown correction {body.get('correction')!r}; accepted: {', '.join(c.value for c in Correction)}",
            path=path,
            key="gate.correction",
        ) from None
    min_runs = body.get("min_baseline_runs", defaults.min_baseline_runs)
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 2:
        raise ConfigError(
            f"expected a whole number of at least 2, got {min_runs!r}", path=path, key="gate.min_baseline_runs"
        )
    return GateSettings(
        metric=metric,
        max_regression=max_r,
        warn_regression=warn_r,
        alpha=ratio("alpha", defaults.alpha, below=0.5),
        overrides=tuple(overrides),
        min_effect=ratio("min_effect", defaults.min_effect, below=1.0),
        min_improvement=ratio("min_improvement", defaults.min_improvement, below=1.0),
        correction=correction,
        min_baseline_runs=min_runs,
        assumed_spread=ratio("assumed_spread", defaults.assumed_spread, below=1.0),
        confidence=ratio("confidence", defaults.confidence, below=1.0),
        counters=counters,
    )


def _parse_counters(raw: Any, path: str) -> CounterSettings:
    """``gate.counters``: the counter rule's thresholds (docs/gate.md, "Counters")."""
    body = _mapping(raw, path, "gate.counters", "counter settings")
    unknown = sorted(set(map(str, body)) - set(_COUNTER_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)}; accepted: {', '.join(_COUNTER_KEYS)}", path=path, key="gate.counters"
        )
    defaults = CounterSettings()

    def ratio(name: str, default: float) -> float:
        return _threshold(body[name], path, f"gate.counters.{name}", below=1.0) if name in body else default

    max_r = ratio("max_regression", defaults.max_regression)
    warn_r = ratio("warn_regression", min(defaults.warn_regression, max_r))
    if warn_r > max_r:
        raise ConfigError(
            f"warn_regression ({warn_r:.2%}) is above max_regression ({max_r:.2%})", path=path, key="gate.counters"
        )
    return CounterSettings(
        max_regression=max_r,
        warn_regression=warn_r,
        min_improvement=ratio("min_improvement", defaults.min_improvement),
        max_spread=ratio("max_spread", defaults.max_spread),
    )
