"""``perfgate compare | baseline | import``: exit codes, messages, files written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.results import bench_doc, make_run
from pytest_perfgate.cli import main
from pytest_perfgate.config import PerfgateConfig
from pytest_perfgate.gate import compare_for_session
from pytest_perfgate.model import RunResult, load_results, save_results
from pytest_perfgate.reports.gate_terminal import format_session_gate


def _save(path: Path, run: RunResult) -> str:
    save_results(path, run)
    return str(path)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    levels = (0.99, 1.0, 1.01, 1.0, 1.005)
    for lv in levels:
        main(
            [
                "baseline",
                "promote",
                _save(tmp_path / "r.json", make_run({"t::a": [lv] * 5, "t::b": [lv] * 5})),
                "--to",
                str(tmp_path / "bl"),
                "--keep",
                "4",
            ]
        )
    return {
        "dir": str(tmp_path / "bl"),
        "same": _save(tmp_path / "same.json", make_run({"t::a": [1.0] * 5, "t::b": [1.0] * 5})),
        "slow": _save(tmp_path / "slow.json", make_run({"t::a": [1.5] * 5, "t::b": [1.0] * 5})),
        "other": _save(tmp_path / "other.json", make_run({"x::y": [1.0] * 5})),
    }


def test_compare_passes_and_fails(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert len(list(Path(files["dir"]).glob("run-??????.json"))) == 4
    assert main(["compare", files["dir"], files["same"]]) == 0
    assert capsys.readouterr().out.startswith("perfgate: PASSED (2 unchanged); baseline of 4 runs")
    assert main(["compare", files["dir"], files["slow"]]) == 1
    out = capsys.readouterr().out
    assert out.startswith("perfgate: FAILED: 1 regression (1 unchanged); baseline of 4 runs")
    assert "t::a" in out and "REGRESSION" in out


def test_budgets_only_reports_regressions_without_failing_on_them(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", files["dir"], files["slow"], "--budgets-only"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "perfgate: PASSED (1 regression not failing here: the paired A/B gate judges them, 1 unchanged); "
        "baseline of 4 runs"
    )
    assert "REGRESSION" in out  # still listed for the reviewer


def test_compare_writes_every_report(files: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            files["dir"],
            files["slow"],
            "--markdown",
            str(out / "r.md"),
            "--junit",
            str(out / "j.xml"),
            "--metrics",
            str(out / "metrics.txt"),
            "--json",
            str(out / "g.json"),
        ]
    )
    assert code == 1
    assert "#### Regressions, warnings and improvements" in (out / "r.md").read_text()
    assert "<failure" in (out / "j.xml").read_text()
    assert (out / "metrics.txt").read_text().endswith("# EOF\n")
    assert json.loads((out / "g.json").read_text())["counts"]["regression"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["g.json", "j.xml", "metrics.txt", "r.md"]


def test_threshold_options_and_config(files: dict[str, str], tmp_path: Path) -> None:
    assert main(["compare", files["dir"], files["slow"], "--max-regression", "60%"]) == 0
    config = tmp_path / "perfgate.yml"
    config.write_text("gate:\n  max_regression: 70%\n  warn_regression: 60%\n")
    assert main(["compare", files["dir"], files["slow"], "--config", str(config)]) == 0


def test_missing_baseline_passes_with_a_notice(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(tmp_path / "nothing-yet"), files["same"]]) == 0
    out = capsys.readouterr().out
    assert out.startswith("perfgate: PASSED without a comparison (2 new); no baseline yet\n")
    assert "notice: no baseline at " in out and "nothing-yet" in out
    assert main(["compare", str(tmp_path / "nothing-yet"), files["same"], "--require-baseline"]) == 2
    assert "error: " in capsys.readouterr().err


def _bad(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("make_current", "message"),
    [
        (lambda p: str(p / "absent.json"), r"absent\.json: no such file"),
        (lambda p: _bad(p, "empty.json", ""), r"empty\.json: is empty"),
        (
            lambda p: _bad(p, "trunc.json", '{"schema": "perfgate-results", "schema_ver'),
            r"trunc\.json: is not valid JSON .*truncated",
        ),
        (
            lambda p: _bad(p, "v9.json", '{"schema": "perfgate-results", "schema_version": 9, "tests": []}'),
            r"v9\.json: schema_version 9 is not supported",
        ),
        (lambda p: _bad(p, "alien.json", '{"hello": 1}'), r"alien\.json: not a perfgate results file"),
        (lambda p: str(p), r"is a directory"),
    ],
)
def test_bad_current_file_is_exit_2_with_path_and_reason(
    files: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_current,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    assert main(["compare", files["dir"], make_current(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and "Traceback" not in captured.err
    import re

    assert re.search(message, captured.err), captured.err


def test_corrupt_baseline_and_no_overlap_are_exit_2(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", files["dir"], files["other"]]) == 2
    assert "no test in common" in capsys.readouterr().err
    stored = sorted(Path(files["dir"]).glob("run-??????.json"))[-1]
    stored.write_text(stored.read_text()[:100])
    assert main(["compare", files["dir"], files["same"]]) == 2
    assert f"error: {stored}: is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-regression", "ten percent"], "argument --max-regression: 'ten percent' is not a valid ratio"),
        (["--max-regression=-5%"], "argument --max-regression: '-5%' is not a valid ratio"),
        (["--min-improvement", "100%"], "argument --min-improvement: '100%' must be above 0 and below 100%"),
        (["--min-improvement", "0"], "argument --min-improvement: '0' must be above 0"),
        (["--warn-regression", "20%", "--max-regression", "10%"], "error: warn regression (20%) is above max"),
    ],
)
def test_bad_thresholds_are_exit_2(
    files: dict[str, str], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        code = main(["compare", files["dir"], files["same"], *args])
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_config_is_exit_2(files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "perfgate.yml"
    config.write_text("gate:\n  min_improvement: 150%\n")
    assert main(["compare", files["dir"], files["same"], "--config", str(config)]) == 2
    assert "gate.min_improvement: '150%' must be above 0 and below 100%" in capsys.readouterr().err


def test_unwritable_report_is_exit_2(files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blocker").write_text("")
    assert main(["compare", files["dir"], files["same"], "--markdown", str(tmp_path / "blocker" / "r.md")]) == 2
    assert "cannot be written" in capsys.readouterr().err


def test_import_then_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(bench_doc(None)))
    assert main(["import", str(src), "-o", str(tmp_path / "res.json")]) == 0
    assert "1 without raw rounds" in capsys.readouterr().out
    assert load_results(tmp_path / "res.json").tests[0].evidence["summary"]["time"]["median"] == 0.002
    # a pytest-benchmark file also works directly as baseline or current
    assert main(["compare", str(src), str(tmp_path / "res.json")]) == 0
    (tmp_path / "empty.json").write_text(" ")
    assert main(["import", str(tmp_path / "empty.json"), "-o", str(tmp_path / "x.json")]) == 2


def test_baseline_show(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["baseline", "show", files["dir"]]) == 0
    assert capsys.readouterr().out.count("run-0000") == 4  # summaries are not listed as runs


def test_compare_for_session(files: dict[str, str]) -> None:
    gate = compare_for_session(load_results(files["slow"]), files["dir"], PerfgateConfig().gate)
    assert gate.code == 1 and format_session_gate(gate)[0].startswith("perfgate: FAILED")
    assert gate.report is not None and len(gate.baseline_runs) == 4
    gate = compare_for_session(load_results(files["other"]), files["dir"], PerfgateConfig().gate)
    lines = format_session_gate(gate)
    assert gate.code == 2 and lines[0].startswith("error: ") and "no test in common" in lines[0]
    assert gate.report is None


def test_end_to_end_on_real_plugin_results(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real results files from the plugin: promote five runs, then gate an unchanged and a 100x run."""
    pytester.makepyfile(
        test_p="""
        import os, time
        import pytest

        def work():
            n = int(os.environ.get("UNITS", "20"))
            for _ in range(n):
                sum(range(2000))

        @pytest.mark.perf_budget(median="10s")  # far from both runs: the gate's verdict is the regression
        def test_work(perf):
            perf(work)
    """
    )
    # plugins these sessions do not need (hypothesis and locust alone take ~2 s to import per session)
    quiet = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:locust", "-p", "no:anyio")
    # On a busy runner one run's median can come out several times the others' (time-sliced rounds),
    # and the gate's t test on the baseline runs' spread needs the change to exceed 8 spreads with
    # three runs, 4 with five: five runs and a 100x slowdown leave no room for noise to hide it
    for i in range(5):
        result = pytester.runpytest_subprocess(*quiet, f"--perfgate-save=run{i}.json", "--perfgate-max-time=0.1")
        result.assert_outcomes(passed=1)
        assert main(["baseline", "promote", str(pytester.path / f"run{i}.json"), "--to", str(tmp_path / "bl")]) == 0
    monkeypatch.setenv("UNITS", "2000")  # 100x
    pytester.runpytest_subprocess(*quiet, "--perfgate-save=slow.json", "--perfgate-max-time=0.1")
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "bl"), str(pytester.path / "slow.json")]) == 1
    assert capsys.readouterr().out.startswith("perfgate: FAILED: 1 regression")
    shutil.copy(pytester.path / "run2.json", tmp_path / "again.json")
    # one of the baseline's own runs: never a failure; judged unchanged when this machine's five runs
    # agree well enough, else nothing could be judged (exit 3), and the headline says which
    code = main(["compare", str(tmp_path / "bl"), str(tmp_path / "again.json")])
    out = capsys.readouterr().out
    assert (code, out.split(" (")[0]) in (
        (0, "perfgate: PASSED"),
        (3, "perfgate: NOT JUDGED: the one time comparison could not be judged"),
    ), out


def test_a_closed_output_pipe_is_exit_141_without_a_traceback() -> None:
    """As `perfgate compare ... | head -1`: the reader closes the pipe while perfgate still writes."""
    import subprocess
    import sys

    writer = (
        "import sys\nfrom pytest_perfgate.cli import guarded\n"
        "def run():\n    for _ in range(100000):\n        print('row ' * 20)\n    return 0\n"
        "sys.exit(guarded(run))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", writer], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith("row")
    process.stdout.close()
    error = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert "Traceback" not in error and "BrokenPipe" not in error, error


def test_report_prints_every_recorded_tests_timings_budgeted_or_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    from pytest_perfgate.model import Series
    from pytest_perfgate.units import Kind

    run = make_run({"tests/test_md.py::test_render": [0.0981] * 32, "tests/test_md.py::test_parse": [0.0025] * 20})
    bench = replace(run.tests[0], series={"time": Series("time", Kind.TIME, (0.0981,) * 32, source="benchmark")})
    run = replace(run, tests=(bench, run.tests[1]))
    path = _save(tmp_path / "r.json", run)
    assert main(["report", path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "timings: median time per call of 2 tests",
        "tests/test_md.py::test_parse   median 2.5ms   (20 rounds, perf)",
        "tests/test_md.py::test_render  median 98.1ms  (32 rounds, pytest-benchmark)",
        f"{path}: no budgets (2 tests recorded)",
    ]
