from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_perfgate.budgets import evaluate, parse_marker
from pytest_perfgate.evidence import MemoryProfile
from pytest_perfgate.measure.cpuprofile import profile_cpu
from pytest_perfgate.measure.memprofile import profile_memory
from pytest_perfgate.model import RunResult, Series, TestResult
from pytest_perfgate.reports.html import render_html
from pytest_perfgate.units import Kind


def _work() -> int:
    rows = [bytes(100) for _ in range(5000)]
    return len(rows)


def _run(nodeid: str, scale: float, *, evidence: bool = False) -> TestResult:
    series = {"time": Series("time", Kind.TIME, tuple(0.001 * scale * (1 + i / 100) for i in range(50)))}
    spec = parse_marker({"median": ("1ms", "5ms")})
    extra = {}
    if evidence:
        extra = {
            "memory_profile": profile_memory(_work).to_json(),
            "cpu_profile": profile_cpu(_work, min_time=0.02).to_json(),
        }
    return TestResult(nodeid, series=series, spec=spec, verdicts=evaluate(spec, series), evidence=extra, mode="perf")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_page_has_verdicts_plots_evidence_and_no_external_resources() -> None:
    current = RunResult(
        {"created": "2026-11-22T00:00:00+00:00"}, (_run("t.py::slow", 2.0, evidence=True), _run("t.py::ok", 0.5))
    )
    baseline = [
        RunResult({"created": f"day {i}"}, (_run("t.py::slow", 1.0 + i / 10), _run("t.py::ok", 0.5))) for i in range(3)
    ]
    page = render_html(current, baseline=baseline)
    parser = _Collect()
    parser.feed(page)
    assert parser.urls == []  # self-contained
    assert "script" not in parser.tags
    text = " ".join(parser.text)
    assert "t.py::slow" in text and "Memory by function" in text and "Where the time went" in text
    # a distribution and a trend per test, and the flame graph of the CPU evidence
    # (and a heatmap of memory over time when the memory profiler recorded a timeline: memray's)
    heatmaps = page.count('<svg class="heatmap"')
    assert parser.tags.count("svg") == 5 + heatmaps and page.count('<svg class="flame"') == 1 and heatmaps <= 1
    # worst first: the failing test comes before the passing one
    assert page.index('data-nodeid="t.py::slow"') < page.index('data-nodeid="t.py::ok"')
    assert "critical median 5ms" in page and "target median 1ms" in page
    assert re.search(r'class="cell" style="width:[\d.]+%;background:hsl', page)  # the icicle heatmap


def test_names_are_escaped() -> None:
    page = render_html(RunResult({}, (_run("t.py::test[<script>alert(1)</script>]", 1.0),)))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_plugin_writes_the_html_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf_budget(mem_peak="10kB")
        def test_mem(perf):
            perf(lambda: [bytes(100) for _ in range(2000)])
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfgate-html=out/report.html", "--perfgate-max-time=10ms")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["html report: out/report.html"])
    page = (pytester.path / "out" / "report.html").read_text()
    assert "test_plugin_writes_the_html_report.py::test_mem" in page and "Memory by function" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    current = RunResult({}, (_run("t.py::slow", 2.0, evidence=True), _run("t.py::ok", 0.5)))
    page = tmp_path / "report.html"
    page.write_text(render_html(current, baseline=[RunResult({}, (_run("t.py::slow", 1.0),))]))
    browser = _chromium()
    assert browser is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert 'data-nodeid="t.py::slow"' in dom and "Memory by function" in dom
    subprocess.run(
        [browser, *flags, "--window-size=1200,1600", f"--screenshot={tmp_path / 'shot.png'}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert (tmp_path / "shot.png").stat().st_size > 10_000  # a real picture, not a blank page


def test_a_test_s_counters_are_drawn_over_the_stored_runs_next_to_its_time() -> None:
    from pytest_perfgate.budgets import BudgetSpec
    from pytest_perfgate.gate import compare
    from pytest_perfgate.model import RunResult, Series, TestResult
    from pytest_perfgate.reports.html import render_html
    from pytest_perfgate.units import Kind

    def run(instructions: float, created: str) -> RunResult:
        series = {
            "time": Series("time", Kind.TIME, (1e-3,) * 5),
            "instructions": Series("instructions", Kind.COUNT, (instructions,), source="callgrind"),
        }
        test = TestResult(nodeid="t::a", outcome="passed", mode="perf", series=series, spec=BudgetSpec())
        return RunResult(metadata={"created": created}, tests=(test,))

    stored = [run(40_200_000, f"2026-01-0{i}") for i in (1, 2, 3)]
    current = run(44_300_000, "2026-01-04")
    page = render_html(current, baseline=stored, gate=compare(stored, current))
    assert '<h3 class="counter">Instructions per call: the stored runs (3) and this run</h3><svg' in page
    assert "44.3M" in page and "40.2M" in page and "+10.2%" in page
    assert "Allocations per call" not in page


# --------------------------------------------------------------------------- heatmap, flame graph, escaping

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _timeline() -> dict[str, object]:
    """Memory over time by function, constructed: ``cache.fill`` grows to 8 MB and keeps it,
    ``parse`` holds 1 MB in the middle, a third function (named like a script) 64 kB at the end."""
    times = [i * 0.25 for i in range(12)]
    return {
        "times": times,
        "functions": ["app.parse", "app.cache.fill", SCRIPT],
        "held": [
            [0, 0, 0, 0, 1 << 20, 1 << 20, 1 << 20, 0, 0, 0, 0, 0],
            [i * (8 << 20) // 11 for i in range(12)],
            [0] * 11 + [64 << 10],
        ],
        "tracer": "memray",
    }


def _tree() -> list[dict[str, object]]:
    """A call tree with known shares: run (1 s) -> load 0.75 s (-> parse 0.5 s), save 0.25 s."""

    def node(function: str, seconds: float, children: list[dict[str, object]]) -> dict[str, object]:
        return {"function": function, "location": f"app.py:{len(function)}", "calls": 1, "cumulative": seconds,
                "own": seconds - sum(float(c["cumulative"]) for c in children), "children": children}  # fmt: skip

    return [node("run", 1.0, [node("load", 0.75, [node("parse", 0.5, [])]), node(SCRIPT, 0.25, [])])]


@dataclass(frozen=True)
class _MemoryWithTimeline(MemoryProfile):
    """The memory profile with its ``timeline``, as memray's profiler records it (evidence.py
    gains the field with it; until then this stands in for it)."""

    timeline: Mapping[str, object] = field(default_factory=dict)


#: memory by function, constructed: build_cache holds 3 MB of the 4 MB peak, 1 MB stays allocated
MEMORY = {
    "peak": 4_000_000,
    "functions": [
        {"function": "app.run", "location": "app.py:1", "calls": 1, "inclusive_peak": 4_000_000, "self_net": 0},
        {"function": "app.build_cache", "location": "app.py:9", "calls": 1, "inclusive_peak": 3_000_000,
         "self_net": 1_000_000},
    ],
    "peak_stack": ["app.run (app.py:1)", "app.build_cache (app.py:9)"],
    "peak_sites": [],
    "retained": 1_000_000,
    "leaks": [{"size": 1_000_000, "count": 10, "stack": ["app.py:12 in build_cache: cache.append(row)"]}],
    "tree": {"function": "app.run", "location": "app.py:1", "calls": 1, "peak": 4_000_000, "self_net": 0, "children": [
        {"function": "app.build_cache", "location": "app.py:9", "calls": 1, "peak": 3_000_000, "self_net": 1_000_000}]},
}  # fmt: skip


def _with_timeline(profile: MemoryProfile) -> MemoryProfile:
    """``profile`` with the constructed timeline: in evidence.py's own field where it has one."""
    import pytest_perfgate.evidence as evidence

    timeline_type = getattr(evidence, "MemoryTimeline", None)
    if timeline_type is not None:
        return replace(profile, timeline=timeline_type.from_json(_timeline()))  # type: ignore[call-arg]
    kept = {f.name: getattr(profile, f.name) for f in fields(profile) if f.name != "timeline"}
    return _MemoryWithTimeline(**kept, timeline=_timeline())


def _sampled(function: str, total: int, children: list[dict[str, object]]) -> dict[str, object]:
    own = total - sum(int(c["total"]) for c in children)  # type: ignore[call-overload]
    return {
        "function": function,
        "location": f"svc.py:{len(function)}",
        "own": own,
        "total": total,
        "children": children,
    }


#: what changed between the base's profile and the current one (perfgate ab's ``cpu_diff``)
CPU_DIFF = {
    "base_profiler": "pyinstrument",
    "current_profiler": "pyinstrument",
    "base_per_call": 0.002,
    "current_per_call": 0.003,
    "changes": [
        {"function": "app.slow_sort", "location": "app.py:42", "base_per_call": 0.001, "current_per_call": 0.002,
         "base_share": 0.5, "current_share": 0.66},
        {"function": SCRIPT, "location": SCRIPT, "base_per_call": None, "current_per_call": 0.0001,
         "base_share": None, "current_share": 0.03},
    ],
    "base_hot_path": [{"function": "run", "location": "app.py:1", "share": 1.0}],
    "current_hot_path": [{"function": "run", "location": "app.py:1", "share": 1.0},
                         {"function": "app.slow_sort", "location": "app.py:42", "share": 0.66}],
}  # fmt: skip


def _evidence_run() -> RunResult:
    profile = MemoryProfile.from_json(MEMORY)
    memory = _with_timeline(profile)
    cpu = {"calls": 3, "total": 1.0, "tree": _tree(), "top": []}
    service_cpu = {
        "profiler": "py-spy 0.4.3",
        "samples": 400,
        "seconds": 30.0,
        "tree": [_sampled("process 12", 400, [_sampled("score_products", 300, []), _sampled(SCRIPT, 100, [])])],
    }
    evidence = {
        "memory_profile": memory,
        "cpu_profile": cpu,
        "cpu_diff": CPU_DIFF,
        # a service profiled under load (perfgate load --serve): its profiles in the run's evidence
        "service": {"cpu": service_cpu, "memory": {**MEMORY, "timeline": _timeline(), "capture": "x.bin"}},
    }
    test = _run(f"t.py::test_mem[{SCRIPT}]", 2.0)
    test = TestResult(test.nodeid, series=test.series, spec=test.spec, verdicts=test.verdicts, evidence=evidence)
    return RunResult({"created": "2026-12-06"}, (test,))


def test_flame_widths_are_shares_of_the_caller() -> None:
    from pytest_perfgate.reports.svg import flame

    svg = flame(_tree(), width=1000)
    widths = {
        name: float(width)
        for width, name in re.findall(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)".*?<title>(\S+)', svg)
    }
    # each frame's width is its share of the whole (less half a pixel of gap)
    assert widths == {"run": 999.5, "load": 749.5, "parse": 499.5, "&lt;script&gt;alert(1)&lt;/script&gt;": 249.5}
    # callees that add up to more than their caller (cProfile's aggregated edges) share its width
    over = [{"function": "a", "cumulative": 1.0, "children": [
        {"function": "b", "cumulative": 0.9}, {"function": "c", "cumulative": 0.9}]}]  # fmt: skip
    widths = [float(w) for w in re.findall(r'width="([\d.]+)" height="17"', flame(over, width=1000))]
    assert widths == [999.5, 499.5, 499.5]
    assert flame([]) == "" and flame([{"function": "idle", "cumulative": 0}]) == ""


def test_heatmap_rows_columns_and_colours() -> None:
    from pytest_perfgate.reports.svg import heatmap

    timeline = _timeline()
    svg = heatmap(timeline["times"], timeline["functions"], timeline["held"])  # type: ignore[arg-type]
    # rows: the most held first; the script-like name is text
    labels = re.findall(r'<text x="4" y="\d+">([^<]*)<title>', svg)
    assert labels == ["app.cache.fill", "app.parse", ESCAPED]
    # the darkest cell is cache.fill's last (8 MB), at 2.75 s
    assert "<title>app.cache.fill at 2.75s: 8MB</title>" in svg or "<title>app.cache.fill at 2.75s: 8.39MB" in svg
    darkest = re.search(r'fill="hsl\(0,85%,55%\)"><title>([^<]*)</title>', svg)
    assert darkest is not None and darkest[1].startswith("app.cache.fill at 2.75s")
    # empty cells are not drawn: parse held nothing for 9 of the 12 points
    assert svg.count("<title>app.parse at ") == 3
    # more time points than columns: neighbours merged, keeping the largest
    wide = heatmap([i / 100 for i in range(1000)], ["f"], [[i for i in range(1000)]], max_columns=10)
    assert wide.count("<title>f at ") == 10 and "<title>f at 9.00-9.99s: 999B</title>" in wide
    # a row of another length than the times is left out; nothing left: nothing drawn
    assert heatmap([0.0, 1.0], ["f"], [[1, 2, 3]]) == "" and heatmap([], [], []) == ""


def test_every_evidence_string_is_text_in_the_page() -> None:
    run = _evidence_run()
    stored = [RunResult({"created": SCRIPT}, run.tests)]
    from pytest_perfgate.gate import compare

    page = render_html(run, baseline=stored, gate=compare(stored, run), title=SCRIPT)
    parser = _Collect()
    parser.feed(page)
    assert "script" not in parser.tags and "<script" not in page
    # the test id, the title, the flame graph's and the heatmaps' function names, the run label
    assert page.count(ESCAPED) >= 8
    assert re.search(r"https?://", page) is None  # no external resource, not even a namespace


def test_the_heatmap_flame_graphs_and_what_changed_are_in_the_page() -> None:
    page = render_html(_evidence_run())
    headings = re.findall(r"<h3[^>]*>([^<]*)</h3>", page)
    # a tracer named after the peak where the profile says which (memray or tracemalloc)
    shown = [re.sub(r", (memray|tracemalloc)\)$", ")", h) for h in headings]
    assert shown == [
        "Time per call: this run",
        "What changed: own time per call, base and current (pyinstrument)",
        "Hot path, base",
        "Hot path, current",
        "Memory by function (peak 4MB)",
        "Call stack at the peak",
        "Still allocated at the end (1MB)",
        "Memory by function: service (peak 4MB)",
        "Call stack at the peak: service",
        "Still allocated at the end: service (1MB)",
        "Memory over time by function (memray)",
        "Memory over time by function: service (memray)",
        "Where the time went (cProfile fallback, 3 re-run call(s), 1s)",
        "Where the time went: service (py-spy 0.4.3, 400 samples over 30s)",
    ]
    assert page.count('<svg class="heatmap"') == 2 and page.count('<svg class="flame"') == 2
    # the sampled tree: shares of the samples
    assert "score_products <b>75.0%</b>" in page and "300 samples" in page
    # what changed: each function's own time per call on both sides
    assert (
        "<tr><td>app.slow_sort</td><td class=num>1ms</td><td class=num>2ms</td><td class=num>+1ms</td>"
        "<td class=num>50.0% -&gt; 66.0%</td><td class=muted>app.py:42</td></tr>"
    ) in page
    assert f"<tr><td>{ESCAPED}</td><td class=num>-</td><td class=num>100us</td>" in page


def test_without_jinja2_the_report_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pytest_perfgate.errors import PlatformError
    from pytest_perfgate.reports import html

    html.environment.cache_clear()
    monkeypatch.setitem(sys.modules, "jinja2", None)
    try:
        with pytest.raises(PlatformError, match=r"the HTML report needs jinja2, which is not installed; hint: pip "):
            render_html(RunResult({}, ()))
    finally:
        html.environment.cache_clear()


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine (Debian: apt-get install chromium)")
def test_heatmap_and_flame_graph_render_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(_evidence_run()), encoding="utf-8")
    browser = _chromium()
    assert browser is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    # the browser's DOM: the script-like names are text nodes, not elements
    assert "<script" not in dom and dom.count(ESCAPED) >= 4
    assert '<svg class="heatmap"' in dom and '<svg class="flame"' in dom
    assert ">app.cache.fill<title>" in dom and ">load</text>" in dom and ">parse</text>" in dom
    assert ">score_products</text>" in dom and "What changed: own time per call" in dom
    shot = Path(os.environ.get("PERFGATE_SCREENSHOT_DIR", tmp_path)) / "evidence.png"
    subprocess.run(
        [browser, *flags, "--window-size=1000,2600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000
