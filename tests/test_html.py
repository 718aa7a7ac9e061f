from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_perfgate.budgets import evaluate, parse_marker
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
    assert parser.tags.count("svg") == 5 and page.count('<svg class="flame"') == 1
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
