"""One pytest session's perfgate state and decisions, pytest-free.

The plugin calls these methods with plain values; everything that decides (which budgets a
test has, what it measured, whether it passes) is here and unit-testable; what the session says
and the reports it writes are made by :mod:`pytest_perfgate.reports.session_report`.
The plugin imports this module (and with it budgets, model, config, recorder) only when
a session needs it: a test with a budget, a measuring fixture used, results to save or to gate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import budgets as budget_mod
from . import metrics as metric_registry
from .budgets import BudgetSpec, Verdict
from .config import PerfgateConfig
from .errors import BudgetError, MarkerError, PerfgateError
from .evidence import Evidence
from .measure import metadata, timing
from .model import RunResult, TestResult, save_results
from .options import Options, header_line
from .recorder import Mode, Recorder
from .units import Kind

if TYPE_CHECKING:
    from .gate import SessionGate

MarkerLevels = Sequence[tuple[str, Sequence[tuple[tuple[object, ...], Mapping[str, object]]]]]


@dataclass
class PerfgateSession:
    options: Options
    config: PerfgateConfig
    rootdir: str
    is_worker: bool = False
    results: dict[str, TestResult] = field(default_factory=dict)
    save_error: str | None = None
    saved_to: str | None = None
    html_to: str | None = None
    pushed_to: str | None = None
    push_error: str | None = None
    gate: SessionGate | None = None

    # ------------------------------------------------------------------ set-up

    def header(self) -> str:
        return header_line(self.options, self.config.path, len(self.config.kpis), self.rootdir)

    def timing_settings(self) -> timing.TimingSettings:
        o = self.options
        return timing.TimingSettings(
            min_rounds=o.min_rounds, max_time=o.max_time, warmup_time=o.warmup, min_round_time=o.min_round_time
        )

    def resolve_spec(self, nodeid: str, levels: MarkerLevels, *, fixtures: Sequence[str] = ()) -> BudgetSpec | None:
        """Merge ``perf_budget`` markers from the outermost node (module) to the test itself,
        the closest winning per metric, over the KPI levels; ``None`` when the test has none.

        ``levels`` is ``[(node_id, [(args, kwargs), ...]), ...]`` outermost first.
        """
        spec: BudgetSpec | None = None
        for node_id, markers in levels:
            if len(markers) > 1:
                raise MarkerError(
                    f"perf_budget is given {len(markers)} times on {node_id or 'the test'}; merge them into one marker",
                    nodeid=nodeid,
                )
            for args, kwargs in markers:
                try:
                    parsed = budget_mod.parse_marker(kwargs, tuple(args), declared=self.config.metrics)
                except PerfgateError as exc:
                    raise MarkerError(str(exc), nodeid=nodeid) from None
                spec = parsed if spec is None else parsed.merged_over(spec)
        if spec is None:
            return None
        if spec.kpi is not None:
            try:
                spec = spec.merged_over(self.config.kpi(spec.kpi).spec())
            except BudgetError as exc:
                raise MarkerError(str(exc), nodeid=nodeid) from None
            spec = replace(spec, kpi=spec.kpi)
        if spec.get("mem_peak") and "benchmark" in fixtures and "perf" not in fixtures:
            raise MarkerError(
                "mem_peak cannot be measured with pytest-benchmark's 'benchmark' fixture (its rounds are "
                "not traced); use the 'perf' fixture, or no fixture to budget the whole test call",
                nodeid=nodeid,
            )
        return spec

    # ------------------------------------------------------------------ per test

    def take_benchmark(self, recorder: Recorder, fixture: Any) -> str | None:
        """Read pytest-benchmark's raw rounds (seconds per iteration) from its fixture; when it
        recorded none, the reason (budgets on time are then "not checked", never passed)."""
        stats = getattr(fixture, "stats", None)
        data = getattr(getattr(stats, "stats", None), "data", None)
        if not data:
            if getattr(fixture, "disabled", False):
                return (
                    "pytest-benchmark recorded no rounds: it is disabled (--benchmark-disable, or "
                    "automatically under pytest-xdist; use the perf fixture there)"
                )
            return "pytest-benchmark recorded no rounds (the benchmark fixture was not called)"
        loops = int(getattr(stats, "iterations", 1) or 1)
        samples = tuple(map(float, data))
        recorder.add_timing(
            timing.Timing(samples=samples, loops=loops, warmup_rounds=0, total_time=0.0), Mode.BENCHMARK
        )
        return None

    def finish_test(
        self,
        nodeid: str,
        spec: BudgetSpec | None,
        recorder: Recorder,
        *,
        rerun: Any = None,
        unmeasured: Mapping[str, str] | None = None,
    ) -> TestResult | None:
        """Judge a test that passed; ``None`` when it neither measured anything nor has budgets.

        ``unmeasured`` maps a series (e.g. ``time``) to why it could not be measured: budgets on
        its metrics get a "not checked" verdict with that reason."""
        if self.options.disable or (spec is None and not recorder.series):
            return None
        not_checked = {}
        for budget in spec.budgets if spec else ():
            definition = metric_registry.get(budget.metric)
            series = definition.series if definition else budget.metric
            if unmeasured and series in unmeasured and series not in recorder.series:
                not_checked[budget.metric] = unmeasured[series]
        verdicts = budget_mod.evaluate(
            spec or BudgetSpec(), recorder.series, strict=self.options.strict, not_checked=not_checked
        )
        profiles = self.collect_evidence(spec, verdicts, rerun) if rerun is not None else {}
        return recorded_result(nodeid, spec, recorder, profiles, verdicts)

    def collect_evidence(
        self, spec: BudgetSpec | None, verdicts: Sequence[budget_mod.BudgetResult], rerun: Any
    ) -> dict[str, object]:
        """Re-run the measured call under a profiler: memory by function when a memory budget
        failed, the call tree when a time budget failed, either when asked (option or marker);
        ``memory-native`` asked for adds native frames to memray's stacks."""
        from .measure import cpuprofile, memprofile

        wanted = set(self.options.evidence) | set(spec.evidence if spec else ())
        failed = {v.kind for v in verdicts if v.verdict is Verdict.FAIL}
        evidence: dict[str, object] = {}
        native = "memory-native" in wanted
        if (
            native
            or "memory" in wanted
            or (Kind.SIZE in failed and any(v.metric == "mem_peak" and v.verdict is Verdict.FAIL for v in verdicts))
        ):
            evidence["memory_profile"] = memprofile.profile_memory(rerun, native=native)
        if "cpu" in wanted or Kind.TIME in failed:
            evidence["cpu_profile"] = cpuprofile.profile_cpu(rerun)
        elif self.options.compare is not None:
            # a regression is only known when the gate runs, after the tests: keep a short profile
            # of every timed test so that a regressed one can show its hot path
            evidence["cpu_profile"] = cpuprofile.profile_cpu(rerun, min_time=0.05)
        return evidence

    def partial_result(
        self, nodeid: str, spec: BudgetSpec | None, recorder: Recorder, *, error: str | None = None
    ) -> TestResult:
        """A test whose budgets were not judged (it failed, errored or was skipped)."""
        return recorded_result(nodeid, spec, recorder, {"error": error} if error else {})

    @staticmethod
    def with_outcome(result: TestResult, outcome: str, duration: float) -> TestResult:
        return replace(result, outcome=outcome, duration=duration)

    def memory_sites_above(self, spec: BudgetSpec | None) -> float | None:
        """Bytes above which a whole-test trace keeps allocation sites (the smallest level)."""
        budget = spec.get("mem_peak") if spec else None
        if budget is None:
            return None
        levels = [lvl for lvl in (budget.target, budget.critical) if lvl is not None]
        return min(levels) if levels else None

    # ------------------------------------------------------------------ session end

    def add(self, result: TestResult) -> None:
        self.results[result.nodeid] = result

    def run_result(self) -> RunResult:
        extra: dict[str, object] = {
            "settings": {
                "min_rounds": self.options.min_rounds,
                "max_time": self.options.max_time,
                "warmup": self.options.warmup,
                "min_round_time": self.options.min_round_time,
                "strict": self.options.strict,
            },
            "config": self.config.path,
        }
        if self.options.counting:
            from .measure.counted import CountSettings, fingerprint

            extra["fingerprint"] = fingerprint(CountSettings.of(self.options))
        return RunResult(metadata=metadata.collect(self.rootdir, extra=extra), tests=tuple(self.results.values()))

    def finish(self) -> RunResult | None:
        """At the end of the session: the gate and the results file, where asked. The run, or
        ``None`` when nothing is to be gated or written (the reports come from it:
        :func:`pytest_perfgate.reports.session_report.finish_session`)."""
        o = self.options
        if o.save is None and o.html is None and o.pushgateway is None and o.compare is None:
            return None
        run = self.run_result()
        if o.compare is not None:
            from .gate import compare_for_session
            from .gatediff import explain_session
            from .store import newest_first

            gate = compare_for_session(run, o.compare, self.config.gate)
            self.gate, run = explain_session(gate, run, newest_first(gate.baseline_runs, gate.baseline_sources))
        if o.save is not None:
            self.saved_to = str(save_results(o.save, run))
        return run


def recorded_result(
    nodeid: str,
    spec: BudgetSpec | None,
    recorder: Recorder,
    more_evidence: Mapping[str, object],
    verdicts: tuple[budget_mod.BudgetResult, ...] = (),
) -> TestResult:
    """A recorder becomes a :class:`TestResult`; its evidence (JSON from the subsystems) and
    ``more_evidence`` (profiles taken here, an error) are read into typed evidence here, once."""
    return TestResult(
        nodeid=nodeid,
        mode=recorder.mode.value if recorder.mode is not None else None,  # the plain value: results cross xdist
        series=dict(recorder.series),
        spec=spec or BudgetSpec(),
        verdicts=verdicts,
        evidence=Evidence.from_json({**recorder.evidence, **more_evidence}),
    )


__all__ = ["PerfgateSession", "recorded_result"]
