"""KPI levels for a load run and their evaluation on the run's total.

Levels come from, in increasing priority: the default error-rate level, the named KPIs of
``perfgate.yml`` (``--kpi``), and ``--budget metric=level`` options. Evaluation is
:func:`pytest_perfgate.budgets.evaluate` on the total's series: time percentiles on every
response time, ``rps`` higher-is-better, ``error_rate`` judged on its own so a run with too many
errors fails even when its latency looks fine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..budgets import BudgetResult, BudgetSpec, Verdict, evaluate, parse_level, parse_marker
from ..config import PerfgateConfig
from ..errors import BudgetError, LoadError, UnitError
from ..model import Outcome, TestResult
from ..units import Kind
from .results import SOURCE, TOTAL, LoadStats, nodeid

DEFAULT_ERROR_RATE = "1%"
BUDGET_FORMS = "METRIC=CRITICAL or METRIC=TARGET,CRITICAL, e.g. p95=200ms,500ms or rps=1000/s,500/s or error_rate=1%"


def parse_budget_option(text: str) -> BudgetSpec:
    """``p95=200ms,500ms`` (target, critical) or ``error_rate=1%`` (critical) as a spec."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise LoadError(f"--budget {text!r} does not parse; accepted: {BUDGET_FORMS}")
    levels = [v.strip() for v in value.split(",")]
    if len(levels) > 2:
        raise LoadError(f"--budget {text!r}: at most two levels (target, critical); accepted: {BUDGET_FORMS}")
    level: object = tuple(levels) if len(levels) == 2 else levels[0]
    try:
        spec = parse_marker({name.strip(): level})
    except BudgetError as exc:
        raise LoadError(f"--budget {text!r}: {exc}") from None
    return BudgetSpec(budgets=tuple(replace(b, source="option") for b in spec.budgets))


def build_spec(
    config: PerfgateConfig,
    kpis: Sequence[str] = (),
    budgets: Sequence[str] = (),
    *,
    error_rate: str | None = DEFAULT_ERROR_RATE,
) -> BudgetSpec:
    """The levels a run is judged by. ``error_rate=None`` adds no default error-rate level."""
    spec = BudgetSpec()
    if error_rate is not None:
        try:
            default = parse_level(error_rate, "error_rate", Kind.RATIO, source="default")
        except (BudgetError, UnitError) as exc:
            raise LoadError(f"--error-rate {error_rate!r}: {exc}") from None
        spec = BudgetSpec(budgets=(default,))
    for name in kpis:
        spec = config.kpi(name, where="--kpi").spec().merged_over(spec)
    for text in budgets:
        spec = parse_budget_option(text).merged_over(spec)
    return replace(spec, kpi=",".join(kpis) or None)


def judge(load: LoadStats, spec: BudgetSpec, locustfile: str, *, strict: bool = False) -> TestResult:
    """The run's total as a TestResult with its verdicts (``outcome`` "failed" on a breach)."""
    if load.total.requests == 0:
        verdicts: tuple[BudgetResult, ...] = tuple(
            BudgetResult(
                b.metric, b.kind or Kind.NUMBER, None, b.target, b.critical, Verdict.FAIL, 0,
                b.higher_is_better, detail="no request completed in the measured window", source=b.source,
            )
            for b in spec.budgets
        )  # fmt: skip
    else:
        verdicts = evaluate(spec, load.total.series(), strict=strict)
    failed = any(v.verdict is Verdict.FAIL for v in verdicts)
    return TestResult(
        nodeid=nodeid(locustfile, TOTAL),
        outcome=(Outcome.FAILED if failed else Outcome.PASSED).value,
        mode=SOURCE,
        duration=load.window,
        series=load.total.series(),
        spec=spec,
        verdicts=verdicts,
        evidence={"load": load.total.figures()},
    )
