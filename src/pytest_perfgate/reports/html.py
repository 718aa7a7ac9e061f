"""A self-contained HTML report: one file, no network, no script.

Per test: the budget verdicts and gate comparisons, the distribution of the current run's samples
against the baseline's (with the budget levels drawn on it), the trend of the statistic over the
stored runs, and the evidence: memory by function (an icicle coloured as a heatmap), the call
stack at the memory peak, what stayed allocated, memory over time by function (a heatmap), and
where the time went (a flame graph and the call tree).

The page's structure is in jinja2 templates (``reports/templates/``, autoescaped: every value
from a results file is text); this module turns the results into plain values for them, and
:mod:`~pytest_perfgate.reports.svg` draws the plots. jinja2 is imported when a page is rendered.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import stats
from ..budgets import Verdict, worst_first
from ..errors import PlatformError
from ..evidence import CPROFILE, CpuProfile, Evidence, MemoryNode, MemoryProfile
from ..metrics import TIME_SERIES
from ..metrics import get as get_metric
from ..model import RunResult, TestResult
from ..units import Kind, format_value
from .evidence_text import amount, cpu_profile_source, memory_table, own_what
from .svg import distribution_svg, flame, heatmap, trend_svg

if TYPE_CHECKING:
    import jinja2

    from ..gate import Comparison, GateReport

__all__ = ["distribution_svg", "render_html", "trend_svg"]

#: how to get jinja2 where it is missing (pytest-perfgate depends on it)
JINJA2_HINT = "pip install 'jinja2>=3.1' (pytest-perfgate depends on it: reinstall pytest-perfgate)"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates' environment: the package's ``templates/``, autoescaped, strict about names."""
    try:
        import jinja2
    except ImportError:
        raise PlatformError(f"the HTML report needs jinja2, which is not installed; hint: {JINJA2_HINT}") from None
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_perfgate.reports", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )


def _markup(text: str) -> Any:
    """SVG drawn by :mod:`.svg` (its text escaped there): inserted as it is."""
    import markupsafe

    return markupsafe.Markup(text)


def _fmt(value: float | None, kind: Kind, unit: str = "") -> str:
    return "-" if value is None else format_value(value, kind, unit)


# --------------------------------------------------------------------------- evidence


def icicle_rows(tree: MemoryNode, *, max_depth: int = 12) -> list[list[dict[str, Any]]]:
    """Memory by call path, as rows of cells: each row a depth; a callee's width shares its
    caller's width in proportion to the callees' inclusive peaks; the colour is the inclusive peak
    relative to the whole call's peak (a heatmap). A cell without a label is a gap (no callee)."""
    total = float(tree.peak or 0) or 1.0
    rows: list[list[tuple[float, MemoryNode | None]]] = []

    def place(node: MemoryNode, share: float, depth: int) -> None:
        if depth >= max_depth:
            return
        while len(rows) <= depth:
            rows.append([])
        weights = [max(float(c.peak or 0), 0.0) for c in node.children]
        weight_sum = sum(weights) or 1.0
        used = 0.0
        for child, weight in zip(node.children, weights, strict=True):
            part = share * weight / weight_sum
            rows[depth].append((part, child))
            used += part
            place(child, part, depth + 1)
        if share - used > 1e-9:  # space with no callee below: keep later rows aligned
            for d in range(depth, max_depth):
                while len(rows) <= d:
                    rows.append([])
                rows[d].append((share - used, None))

    place(tree, 100.0, 0)
    out = []
    for row in rows:
        if all(node is None for _, node in row):
            continue
        cells = []
        for share, node in row:
            if node is None:
                cells.append({"width": f"{share:.3f}", "label": None})
                continue
            peak = float(node.peak or 0)
            heat = min(1.0, peak / total)
            cells.append(
                {
                    "width": f"{share:.3f}",
                    "colour": f"hsl({int(50 - 50 * heat)},85%,{int(88 - 33 * heat)}%)",
                    "label": f"{node.function} {format_value(peak, Kind.SIZE)}",
                    "title": (
                        f"{node.function} ({node.location}): inclusive peak {format_value(peak, Kind.SIZE)}, "
                        f"self (net) {format_value(float(node.self_net or 0), Kind.SIZE)}, {node.calls} calls"
                    ),
                }
            )
        out.append(cells)
    return out


def _figure(value: object) -> float:
    """A finite figure, 0 for anything else (evidence from a tests' process is not shape-checked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _get(node: Any, name: str, default: Any = None) -> Any:
    return node.get(name, default) if isinstance(node, Mapping) else getattr(node, name, default)


def _cpu_nodes(
    nodes: Sequence[Any], total: float, value: str, show: Callable[[float], str], *, calls: bool
) -> list[dict[str, Any]]:
    """A call tree for the template (typed nodes or their JSON): each node's ``value`` as a share
    of ``total``; its call count when ``calls`` (a tracing profiler's)."""
    out = []
    for node in nodes:
        figure = _figure(_get(node, value, 0))
        share = figure / (total or 1e-12)
        children = _get(node, "children", ()) or ()
        count = _get(node, "calls") if calls else None
        out.append(
            {
                "function": str(_get(node, "function", "?")),
                "location": str(_get(node, "location", "?")),
                "calls": "" if count is None else f", {count} calls",
                "share": f"{100 * share:.1f}%",
                "bar": max(1, int(200 * min(share, 1.0))),
                "figure": show(figure),
                "children": _cpu_nodes(children, total, value, show, calls=calls)
                if isinstance(children, (list, tuple))
                else [],
            }
        )
    return out


def _memory_view(where: str, memory: MemoryProfile) -> dict[str, Any]:
    tracer = getattr(memory, "tracer", "")
    header, rows = memory_table(memory, limit=15)
    return {
        "where": where,
        "peak": format_value(float(memory.peak or 0), Kind.SIZE) + (f", {tracer}" if tracer else ""),
        "icicle": icicle_rows(memory.tree) if memory.tree is not None else [],
        "columns": header,
        "rows": rows,
        "peak_stack": [str(frame) for frame in memory.peak_stack],
        "leaks": [
            {"size": _fmt(site.size, Kind.SIZE), "count": str(site.count), "where": str(site.stack[-1])}
            if site.stack
            else {"size": _fmt(site.size, Kind.SIZE), "count": str(site.count), "where": "?"}
            for site in memory.leaks
        ],
        "retained": _fmt(float(memory.retained or 0), Kind.SIZE),
    }


#: where profiles are in a test's evidence: its own (typed) at the top; a service's profiled under
#: load (``perfgate load --serve``: ``service.cpu``, ``service.memory``) or any other nested one
#: under these names, this deep at most
_CPU_KEYS = ("cpu_profile", "cpu")
_MEMORY_KEYS = ("memory_profile", "memory")
_NESTED_DEPTH = 3


def _profiles(evidence: Evidence) -> Iterator[tuple[str, str, Any]]:
    """``(where, "cpu" | "memory", profile)``: the test's own profiles (where ``""``, typed) and
    those nested in other evidence (where ``": service"``, as JSON)."""
    if evidence.memory_profile is not None:
        yield "", "memory", evidence.memory_profile
    if evidence.cpu_profile is not None:
        yield "", "cpu", evidence.cpu_profile
    stack = [(evidence[k], k, 1) for k in evidence if k not in ("memory_profile", "cpu_profile")]
    while stack:
        value, path, depth = stack.pop(0)
        if not isinstance(value, Mapping) or depth > _NESTED_DEPTH:
            continue
        for key, inner in value.items():
            if not isinstance(inner, Mapping):
                continue
            if key in _CPU_KEYS and isinstance(inner.get("tree"), list):
                yield f": {path}", "cpu", inner
            elif key in _MEMORY_KEYS and ("timeline" in inner or "functions" in inner):
                yield f": {path}", "memory", inner
            else:
                stack.append((inner, f"{path}.{key}", depth + 1))


def _timeline_view(where: str, profile: Any) -> dict[str, Any] | None:
    """Memory over time by function (``timeline``: ``{"times", "functions", "held", "tracer"}``)."""
    timeline = _get(profile, "timeline")
    to_json = getattr(timeline, "to_json", None)
    if to_json is not None:
        timeline = to_json()
    if not isinstance(timeline, Mapping):
        return None
    times, functions, held = timeline.get("times"), timeline.get("functions"), timeline.get("held")
    if not (isinstance(times, list) and isinstance(functions, list) and isinstance(held, list)):
        return None
    svg = heatmap(times, [str(f) for f in functions], held)
    if not svg:
        return None
    return {"where": where, "tracer": str(timeline.get("tracer") or ""), "svg": _markup(svg)}


def _cpu_view(where: str, profile: Any) -> dict[str, Any] | None:
    """A CPU profile: the re-run's (``cumulative`` seconds under ``total``) or a sampler's
    (``total`` samples per node under ``samples``, py-spy's of a service)."""
    tree = _get(profile, "tree")
    if not isinstance(tree, (list, tuple)):
        return None
    first = tree[0] if tree else {}
    sampled = _get(first, "cumulative") is None and _get(first, "total") is not None
    profiler = str(_get(profile, "profiler") or "cProfile")
    if sampled:
        value, kind, unit = "total", Kind.COUNT, " samples"
        total = _figure(_get(profile, "samples")) or sum(_figure(_get(n, "total")) for n in tree)
        seconds = _figure(_get(profile, "seconds"))
        basis = f"{profiler}, {int(total)} samples" + (f" over {format_value(seconds, Kind.TIME)}" if seconds else "")
    else:
        value, kind, unit = "cumulative", Kind.TIME, ""
        total = _figure(_get(profile, "total"))
        if isinstance(profile, CpuProfile):
            basis = cpu_profile_source(profile) + f", {format_value(total, Kind.TIME)}"
        else:
            calls = _get(profile, "calls")
            runs = "" if calls is None else f", {calls} re-run calls"
            basis = f"{profiler}{runs}, {format_value(total, Kind.TIME)}"
    # a sampling profiler's nodes count no calls (0): say nothing rather than "0 calls"
    counted = not sampled and profiler == CPROFILE

    def show(figure: float) -> str:
        return format_value(figure, kind) + unit + (" cumulative" if not sampled else "")

    return {
        "where": where,
        "basis": basis,
        "flame": _markup(flame(list(tree), value=value, kind=kind, unit=unit)) if tree else "",
        "tree": _cpu_nodes(tree, total, value, show, calls=counted),
    }


def _per_call(value: object, clock: str = "wall") -> str:
    return "-" if value is None else amount(_figure(value), clock)


def _share(value: object) -> str:
    return "-" if value is None else f"{100 * _figure(value):.1f}%"


def _diff_view(diff: Mapping[str, Any]) -> dict[str, Any] | None:
    """What changed between the base's and the current profile (``cpu_diff``, perfgate ab and
    the stored gate): the functions whose own time changed most, each side's hot path."""
    changes = [c for c in diff.get("changes") or () if isinstance(c, Mapping)]
    if not changes:
        return None
    rows = []
    clock = str(diff.get("clock") or "wall")
    for change in changes[:10]:
        grown = _figure(change.get("current_per_call")) - _figure(change.get("base_per_call"))
        rows.append(
            {
                "function": str(change.get("function") or "?"),
                "location": str(change.get("location") or ""),
                "base": _per_call(change.get("base_per_call"), clock),
                "current": _per_call(change.get("current_per_call"), clock),
                "change": ("+" if grown >= 0 else "-") + amount(abs(grown), clock),
                "shares": f"{_share(change.get('base_share'))} -> {_share(change.get('current_share'))}",
            }
        )

    def path(steps: object) -> list[str]:
        if not isinstance(steps, list):
            return []
        return [
            f"{s.get('function')} ({s.get('location')}) {_share(s.get('share'))}" if isinstance(s, Mapping) else str(s)
            for s in steps
        ]

    profilers = {str(diff.get("base_profiler") or ""), str(diff.get("current_profiler") or "")} - {""}
    return {
        "profilers": ", ".join(sorted(profilers)),
        "own": own_what(clock),
        "rows": rows,
        "base_path": path(diff.get("base_hot_path")),
        "current_path": path(diff.get("current_hot_path")),
    }


def _evidence_view(evidence: Evidence) -> dict[str, Any]:
    view: dict[str, Any] = {"memory": [], "timelines": [], "cpu": [], "diff": None}
    for where, kind, profile in _profiles(evidence):
        if kind == "memory":
            if isinstance(profile, MemoryProfile):
                view["memory"].append(_memory_view(where, profile))
            else:
                # a timeline only, or another shape: no table (its heatmap, if any, is below)
                with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
                    view["memory"].append(_memory_view(where, MemoryProfile.from_json(profile)))
            timeline = _timeline_view(where, profile)
            if timeline is not None:
                view["timelines"].append(timeline)
        else:
            cpu = _cpu_view(where, profile)
            if cpu is not None:
                view["cpu"].append(cpu)
    diff = evidence.get("cpu_diff")
    if isinstance(diff, Mapping):
        view["diff"] = _diff_view(diff)
    return view


# --------------------------------------------------------------------------- the page


def _levels(test: TestResult) -> list[tuple[str, float]]:
    levels = []
    for budget in test.spec.budgets:
        definition = get_metric(budget.metric)
        if definition is None or definition.series != TIME_SERIES:
            continue
        for name, value in (("target", budget.target), ("critical", budget.critical)):
            if value is not None:
                levels.append((f"{name} {budget.metric}", value))
    return levels


def _anchor(nodeid: str) -> str:
    return "t" + hashlib.sha1(nodeid.encode()).hexdigest()[:12]


def _test_rank(test: TestResult, comparisons: Sequence[Comparison]) -> tuple[int, str]:
    gate_rank = min((c.verdict.rank for c in comparisons), default=99)
    return (min(test.verdict.rank * 10, gate_rank * 10 + 5), test.nodeid)


def render_html(
    current: RunResult,
    *,
    baseline: Sequence[RunResult] = (),
    gate: GateReport | None = None,
    title: str = "perfgate report",
) -> str:
    """The whole page as a string."""
    env = environment()
    comparisons: dict[str, list[Comparison]] = {}
    for comparison in gate.comparisons if gate else ():
        comparisons.setdefault(comparison.nodeid, []).append(comparison)
    tests = sorted(current.tests, key=lambda t: _test_rank(t, comparisons.get(t.nodeid, [])))
    meta = current.metadata
    git = meta.get("git") or {}
    head_meta = [
        str(part)
        for part in (
            meta.get("created"),
            f"{git.get('branch')} @ {str(git.get('commit'))[:10]}" if git else None,
            f"Python {meta.get('python')}" if meta.get("python") else None,
            meta.get("cpu"),
            f"baseline: {len(baseline)} stored run{'s' if len(baseline) != 1 else ''}" if baseline else "no baseline",
        )
        if part
    ]
    verdicts = [v for t in tests for v in t.verdicts]
    budget_summary = ", ".join(
        f"{sum(1 for v in verdicts if v.verdict is k)} {k.value}"
        for k in Verdict
        if any(v.verdict is k for v in verdicts)
    )
    history: dict[str, list[tuple[str, TestResult]]] = {test.nodeid: [] for test in tests}
    for run in baseline:
        label = str(run.metadata.get("created") or "run")
        for nodeid, result in run.by_nodeid().items():
            if nodeid in history:
                history[nodeid].append((label, result))
    css = env.loader.get_source(env, "report.css")[0] if env.loader is not None else ""
    return env.get_template("report.html.j2").render(
        title=title,
        css=_markup(css),
        head_meta=head_meta,
        gate=_gate_view(gate),
        budget_summary=budget_summary,
        tests=[_test_view(t, comparisons.get(t.nodeid, []), history[t.nodeid]) for t in tests],
    )


def _gate_view(gate: GateReport | None) -> dict[str, Any] | None:
    if gate is None:
        return None
    from .gate_text import headline, notice_text

    return {
        "status_class": gate.status.value.replace(" ", "-"),
        "exit_code": gate.exit_code,
        "headline": headline(gate),
        "incomplete": list(gate.incomplete),
        "notices": [{"kind": n.kind.value, "text": notice_text(n)} for n in gate.notices],
    }


#: the counters drawn per test, with their headings
_COUNTER_TITLES = (
    ("instructions", "Instructions per call"),
    ("est_cycles", "Estimated cycles per call"),
    ("alloc_blocks", "Allocations per call"),
    ("alloc_bytes", "Bytes allocated per call"),
)


def _plot(title: str, svg: str, css: str = "") -> dict[str, Any]:
    return {"title": title, "svg": _markup(svg), "css": css}


def _plots(test: TestResult, history: Sequence[tuple[str, TestResult]]) -> list[dict[str, Any]]:
    """The time per call against the last baseline run, its median over the stored runs, and each
    counter's over the stored runs (the median of each run's values)."""
    out = []
    series = test.series.get(TIME_SERIES)
    if series is not None and series.values:
        base_values = [
            v for _, r in history[-1:] for v in (r.series[TIME_SERIES].values if TIME_SERIES in r.series else ())
        ]
        plot = distribution_svg(series.values, base_values, _levels(test), Kind.TIME)
        if plot:
            out.append(_plot(f"Time per call: {'last baseline run vs ' if base_values else ''}this run", plot))
        points = [
            (label, stats.statistic(r.series[TIME_SERIES].values, "median"))
            for label, r in history
            if TIME_SERIES in r.series and r.series[TIME_SERIES].values
        ]
        points.append(("current", stats.statistic(series.values, "median")))
        trend = trend_svg(points, Kind.TIME)
        if trend:
            out.append(_plot(f"Median over the stored runs ({len(points) - 1}) and this run", trend))
    for name, title in _COUNTER_TITLES:
        counter = test.series.get(name)
        if counter is None or not counter.values:
            continue
        points = [
            (label, stats.statistic(r.series[name].values, "median"))
            for label, r in history
            if name in r.series and r.series[name].values
        ]
        points.append(("current", stats.statistic(counter.values, "median")))
        trend = trend_svg(points, counter.kind)
        if trend:
            out.append(_plot(f"{title}: the stored runs ({len(points) - 1}) and this run", trend, "counter"))
    return out


def _test_view(
    test: TestResult, comparisons: Sequence[Comparison], history: Sequence[tuple[str, TestResult]]
) -> dict[str, Any]:
    from .gate_terminal import fmt_change

    return {
        "nodeid": test.nodeid,
        "anchor": _anchor(test.nodeid),
        "verdict": test.verdict.value,
        "outcome": test.outcome,
        "budgets": [
            {
                "metric": v.metric,
                "measured": v.fmt(v.measured),
                "target": v.fmt(v.target),
                "critical": v.fmt(v.critical),
                "verdict": v.verdict.value,
                "detail": v.detail,
            }
            for v in worst_first(test.verdicts)
        ],
        "comparisons": [
            {
                "metric": c.metric,
                "statistic": c.statistic,
                "baseline": c.fmt(c.baseline),
                "current": c.fmt(c.current),
                "change": fmt_change(c, interval=False),
                "verdict": c.verdict.value,
                "reason": c.reason,
            }
            for c in comparisons
        ],
        "plots": _plots(test, history),
        "evidence": _evidence_view(test.evidence),
    }
