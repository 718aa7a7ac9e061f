"""What a pytest session says and writes at its end: the terminal summary, the failure message
of a test whose budget failed, the HTML report and the Pushgateway."""

from __future__ import annotations

from ..budgets import Verdict, worst_first
from ..errors import PerfgateError
from ..model import TestResult
from ..paths import write_text_atomic
from ..session import PerfgateSession
from ..units import Kind
from .evidence_text import format_cpu_profile, format_memory_profile, format_sites
from .terminal import format_budget_table, format_timings

#: how the failure of a test whose budget (not its body) failed begins
BUDGET_FAILURE = "perf budget exceeded:"


def finish_session(session: PerfgateSession) -> None:
    """At the end of the session: the gate and the results file (:meth:`PerfgateSession.finish`),
    then the HTML report and the Pushgateway, each where asked."""
    run = session.finish()
    o = session.options
    if run is None:
        return
    if o.html is not None:
        from .html import render_html

        gate = session.gate
        page = render_html(run, baseline=gate.baseline_runs if gate else (), gate=gate.report if gate else None)
        session.html_to = str(write_text_atomic(o.html, page))
    if o.pushgateway is not None:
        from .prometheus import push

        try:
            session.pushed_to = push(run, o.pushgateway, job=o.pushgateway_job)
        except PerfgateError as exc:  # monitoring trouble is reported, it does not fail the tests
            session.push_error = str(exc)


def summary_lines(session: PerfgateSession, *, verbose: bool = False) -> list[str]:
    """The perfgate section of the terminal summary."""
    tests = list(session.results.values())
    lines = format_budget_table(tests, max_rows=None if verbose else 30)
    if verbose or session.options.save is not None:  # timings are visible without budgets
        lines += format_timings(tests, max_rows=None if verbose else 50)
    warned = sorted(t.nodeid for t in tests if t.verdict is Verdict.WARN)
    if warned:
        lines.append(
            f"WARN {len(warned)} test{'s' if len(warned) != 1 else ''} past the target level "
            f"(not failing{'; --perfgate-strict makes these failures' if not session.options.strict else ''})"
        )
    if session.saved_to:
        lines.append(f"results: {session.saved_to} ({len(tests)} tests)")
    if session.html_to:
        lines.append(f"html report: {session.html_to}")
    if session.pushed_to:
        lines.append(f"pushed to {session.pushed_to}")
    if session.push_error:
        lines.append(f"WARN {session.push_error} (the tests' outcome is unaffected)")
    if session.gate is not None:
        from .gate_terminal import format_session_gate  # the gate's modules only when it ran

        lines.extend(format_session_gate(session.gate))
    if session.save_error:
        lines.append(f"error: {session.save_error}")
    return lines


def failure_text(result: TestResult) -> str | None:
    """The failure message of a test whose budgets failed, with its evidence if any."""
    failed = [v for v in worst_first(result.verdicts) if v.verdict is Verdict.FAIL]
    if not failed:
        return None
    lines = [f"{BUDGET_FAILURE} {v.message()}" for v in failed]
    others = [v for v in result.verdicts if v.verdict is not Verdict.FAIL]
    lines.extend(f"  also: {v.message()}" for v in others)
    evidence = result.evidence
    profile = evidence.memory_profile
    if profile:
        if profile.peak_sites:
            lines.append(format_sites(profile.peak_sites, "allocation sites at the largest observed point:"))
        lines.append(format_memory_profile(profile))
    if evidence.memory_sites_at_end:
        lines.append(
            format_sites(
                evidence.memory_sites_at_end,
                "allocation sites still held at the end of the test "
                "(use the perf fixture to see the sites at the peak):",
            )
        )
    cpu = evidence.cpu_profile
    if cpu and any(v.kind is Kind.TIME for v in failed):
        lines.append(format_cpu_profile(cpu))
    return "\n".join(lines)
