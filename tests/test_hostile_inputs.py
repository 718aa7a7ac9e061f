"""Issue 16, items 1 and 4: hostile figures and hostile perfgate.yml.

Each test names the case of the issue it keeps fixed. The numeric paths accept every finite value
the schema admits (0, 5e-324, 1.7e308, negative custom figures) and refuse the rest at load time
with the JSON path; perfgate.yml refuses alias bombs, duplicate keys and a warning threshold above
the failure threshold wherever thresholds are set.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_perfgate import cli, stats
from pytest_perfgate.budgets import parse_marker
from pytest_perfgate.config import parse_config
from pytest_perfgate.errors import BudgetError, ConfigError, MeasurementError, ResultsFileError
from pytest_perfgate.importers import from_benchmark_json, load_run
from pytest_perfgate.model import load_results
from pytest_perfgate.recorder import Recorder


def results_text(values_json: str, *, node: str = "t::a", extra: str = "") -> str:
    """A results file whose one series has ``values_json`` spliced in as is (so that integers
    past the float range and NaN literals reach the parser untouched)."""
    return (
        '{"schema": "perfgate-results", "schema_version": 1, "metadata": {}, "tests": [{"nodeid": "'
        + node
        + '", "outcome": "passed", "mode": "perf", "series": {"time": {"kind": "time", "values": '
        + values_json
        + "}}"
        + extra
        + "}]}"
    )


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- stats (item 1)

finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(st.lists(finite, min_size=1, max_size=20))
def test_mean_and_stdev_never_overflow_on_finite_samples(values: list[float]) -> None:
    """Before: OverflowError ("intermediate overflow in fsum") near 1e308."""
    centre = stats.mean(values)
    assert math.isfinite(centre)
    low, high = min(values), max(values)  # within the sample's range, to the rounding of one division
    assert math.nextafter(low, -math.inf) <= centre <= math.nextafter(high, math.inf)
    spread = stats.stdev(values)
    assert spread >= 0 and not math.isnan(spread)  # inf only when the spread itself passes 1.8e308
    for q in (0, 25, 50, 90, 100):
        assert min(values) <= stats.percentile(values, q) <= max(values)


@pytest.mark.parametrize(
    "values",
    [[1.0, 2.0, 3.0, 4.0], [0.1] * 7, [1e-9, 3e-9, 2.5e-9], [200.0, 210.0, 190.5, 205.25]],
)
def test_mean_and_stdev_stay_exact_for_ordinary_values(values: list[float]) -> None:
    assert stats.mean(values) == math.fsum(values) / len(values)
    assert stats.stdev(values) == pytest.approx(statistics.stdev(values), rel=1e-15)


def test_mean_and_stdev_near_the_float_range() -> None:
    values = [1.7e308, 1.6e308, 1e308, 1.7e308]
    assert stats.mean(values) == pytest.approx(1.5e308)
    assert stats.stdev(values) == pytest.approx(statistics.stdev([v / 1e10 for v in values]) * 1e10)
    assert stats.stdev([1.7e308, -1.7e308]) == math.inf  # the spread itself is past the range
    assert stats.percentile([-1.7e308, 1.7e308], 50) == 0.0


# --------------------------------------------------------------------------- results files (item 1)


@pytest.mark.parametrize("figure", ["0", "0.0", "5e-324", "1.7e308", "-1.5", "123456789012345678"])
def test_every_finite_figure_loads(tmp_path: Path, figure: str) -> None:
    run = load_results(write(tmp_path, "r.json", results_text(f"[{figure}, {figure}]")))
    assert run.tests[0].series["time"].values == (float(figure),) * 2


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ("[1, " + "1" + "0" * 400 + "]", "values[1]: an integer of"),
        ("[1e400]", "values[0]: inf is not a finite number"),
        ("[NaN]", "values[0]: nan is not a finite number"),
        ("[1, -Infinity]", "values[1]: -inf is not a finite number"),
    ],
)
def test_non_finite_figures_are_refused_at_load_time_with_the_json_path(
    tmp_path: Path, values: str, named: str
) -> None:
    """Before: 10**400 was an OverflowError traceback in every command; Infinity loaded."""
    with pytest.raises(ResultsFileError) as info:
        load_results(write(tmp_path, "r.json", results_text(values)))
    message = str(info.value)
    assert "tests[0].series.time." + named in message or named in message
    assert "tests[0].series.time.values[" in message and "accepted" in message


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (', "duration": ' + "9" * 400, "tests[0].duration"),
        (', "spec": {"max_regression": 1e999}', "tests[0].spec.max_regression"),
        (', "spec": {"max_regression": 0.1, "warn_regression": 0.2}', "tests[0].spec: warn_regression (20%)"),
        (', "spec": {"max_regression": -0.1}', "tests[0].spec.max_regression"),
        (
            ', "verdicts": [{"metric": "p95", "kind": "time", "verdict": "pass", "measured": 1e999}]',
            "tests[0].verdicts[0].measured",
        ),
        (
            ', "verdicts": [{"metric": "p95", "kind": "time", "verdict": "pass", "samples": "x"}]',
            "tests[0].verdicts[0].samples",
        ),
        (', "verdicts": [{"metric": "p95", "kind": [1], "verdict": "pass"}]', "tests[0].verdicts[0].kind"),
        (', "verdicts": [{"metric": "p95", "kind": "time", "verdict": {}}]', "tests[0].verdicts[0].verdict"),
        (', "mode": 3', "tests[0].mode"),
    ],
)
def test_other_numbers_and_shapes_are_refused_with_their_json_path(tmp_path: Path, extra: str, where: str) -> None:
    with pytest.raises(ResultsFileError) as info:
        load_results(write(tmp_path, "r.json", results_text("[1.0]", extra=extra)))
    assert where in str(info.value)


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (', "evidence": {"memory_profile": {"peak": Infinity}}', "tests[0].evidence.memory_profile.peak: inf"),
        (', "evidence": {"x": [1, ' + "1" + "0" * 400 + "]}", "tests[0].evidence.x[1]: an integer of 401 digits"),
    ],
)
def test_evidence_and_metadata_numbers_must_be_finite(tmp_path: Path, extra: str, where: str) -> None:
    """Found by the fuzz layer: evidence holding Infinity loaded, then merge and promote failed
    to save the run (ValueError: Out of range float values are not JSON compliant)."""
    with pytest.raises(ResultsFileError) as info:
        load_results(write(tmp_path, "r.json", results_text("[1.0]", extra=extra)))
    assert where in str(info.value)
    text = results_text("[1.0]").replace('"metadata": {}', '"metadata": {"ci": {"load": NaN}}')
    with pytest.raises(ResultsFileError, match=r"metadata\.ci\.load: nan is not a finite number"):
        load_results(write(tmp_path, "m.json", text))


@pytest.mark.parametrize(
    ("field", "value"),
    [("loops", '"abc"'), ("loops", "1e400"), ("loops", "0"), ("higher_is_better", '"yes"'), ("unit", "[1]")],
)
def test_series_fields_are_checked(tmp_path: Path, field: str, value: str) -> None:
    """Before: loops 'abc' was a ValueError traceback, 1e400 an OverflowError."""
    text = results_text("[1.0]").replace('"kind": "time",', f'"kind": "time", "{field}": {value},')
    with pytest.raises(ResultsFileError, match=rf"tests\[0\]\.series\.time\.{field}: expected"):
        load_results(write(tmp_path, "r.json", text))


def test_json_too_deep_or_an_integer_too_long_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsFileError, match="nested too deeply"):
        load_results(write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000))
    with pytest.raises(ResultsFileError, match="not usable JSON"):
        load_results(write(tmp_path, "long.json", results_text("[" + "7" * 5000 + "]")))


@pytest.mark.parametrize("figure", ["0", "5e-324", "1.7e308", "1e308"])
def test_compare_report_html_and_merge_take_any_finite_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], figure: str
) -> None:
    """Before: 1e308 was an OverflowError in fsum in report --html and merge (gate metric mean)."""
    values = f"[{figure}, 1.6e308, {figure}, 1.7e308]"
    a = write(tmp_path, "a.json", results_text(values))
    b = write(tmp_path, "b.json", results_text(values, node="t::b"))
    config = write(tmp_path, "perfgate.yml", "gate:\n  metric: mean\n")
    assert cli.main(["report", "--html", str(tmp_path / "r.html"), a]) == 0
    assert cli.main(["report", "--html", str(tmp_path / "r2.html"), "--baseline", a, a]) in (0, 1)
    assert cli.main(["merge", "-o", str(tmp_path / "m.json"), a, b]) == 0
    assert cli.main(["compare", "--config", config, a, a]) in (0, 1)
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "error:" not in out.err


def test_cli_compare_on_an_integer_past_the_float_range_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.json", results_text("[1, " + "1" + "0" * 400 + "]"))
    assert cli.main(["compare", bad, bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "tests[0].series.time.values[1]" in err


# --------------------------------------------------------------------------- pytest-benchmark import (item 1)


def bench_json(data: Any = (0.001, 0.002), **stats_extra: Any) -> dict[str, Any]:
    return {
        "benchmarks": [{"fullname": "t.py::test_x", "stats": {"data": list(data), **stats_extra}}],
        "version": "4.0.0",
    }


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        (bench_json((0.001, -0.002)), "benchmarks[0].stats.data[1]: -0.002 is negative"),
        (bench_json(()) | {"benchmarks": [{"name": "x", "stats": {"mean": -1.0}}]}, "benchmarks[0].stats.mean"),
        (bench_json((0.001, 10**400)), "benchmarks[0].stats.data[1]: an integer of"),
        (bench_json((0.001, float("inf"))), "benchmarks[0].stats.data[1]: inf is not a finite number"),
        (bench_json() | {"machine_info": {"x": float("nan")}}, "machine_info: holds a value"),
    ],
)
def test_import_refuses_negative_and_non_finite_timings_with_the_json_path(doc: Any, where: str) -> None:
    """Before: negative pytest-benchmark data was imported silently; 10**400 an OverflowError."""
    with pytest.raises(ResultsFileError) as info:
        from_benchmark_json(doc, "bench.json")
    assert where in str(info.value)


def test_import_accepts_zero_tiny_and_huge_timings() -> None:
    run = from_benchmark_json(bench_json((0, 5e-324, 1.7e308)), "bench.json")
    assert run.tests[0].series["time"].values == (0.0, 5e-324, 1.7e308)


def test_cli_import_of_negative_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path, "bench.json", json.dumps(bench_json((0.001, -0.5))))
    assert cli.main(["import", source, "-o", str(tmp_path / "out.json")]) == 2
    assert "benchmarks[0].stats.data[1]" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_load_run_reads_a_benchmark_file_with_a_too_long_integer_as_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "bench.json", '{"benchmarks": [{"name": "x", "stats": {"data": [' + "7" * 5000 + "]}}]}")
    with pytest.raises(ResultsFileError, match="not usable JSON"):
        load_run(path)


# --------------------------------------------------------------------------- perf.record (item 1)


@pytest.mark.parametrize(
    ("value", "unit", "says"),
    [
        (-5, "MB", "is negative"),
        (-1.0, "ms", "is negative"),
        (-3, "count", "is negative"),
        (10**400, None, "finite number (within +-1.8e308), got an integer of"),
        (1e308, "GB", "past the float range in base units"),
        (float("nan"), None, "finite number"),
    ],
)
def test_record_refuses_negative_sizes_and_figures_past_the_float_range(
    value: float, unit: str | None, says: str
) -> None:
    """Before: a negative size passed its budget; 10**400 was a raw OverflowError."""
    with pytest.raises(MeasurementError, match=r"perf\.record\('page_weight'\)") as info:
        Recorder().record("page_weight", value, unit=unit)
    assert says in str(info.value)


@pytest.mark.parametrize(("value", "unit"), [(-2.5, None), (0, "MB"), (5e-324, "s"), (1.7e308, None), (-1, "widgets")])
def test_record_keeps_every_finite_figure_its_kind_admits(value: float, unit: str | None) -> None:
    recorder = Recorder()
    recorder.record("figure", value, unit=unit)
    assert recorder.series["figure"].values == (float(value),)


# --------------------------------------------------------------------------- perfgate.yml (item 4)

BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)


def test_yaml_alias_bomb_is_refused_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a 520-byte file grew check-config to 24 GB."""
    path = write(tmp_path, "perfgate.yml", "gate:\n  alpha: 0.01\n" + BOMB)
    assert cli.main(["check-config", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}: invalid YAML (line 3, column 4: YAML anchors and aliases (&a) are not accepted" in err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("gate: &g {alpha: 0.01}\n", "line 1, column 7: YAML anchors and aliases (&g)"),
        ("kpis:\n  a: {p95: 1s}\n  b: *x\n", "line 3, column 6: YAML anchors and aliases (*x)"),
        (
            "gate:\n  max_regression: 10%\n  warn_regression: 5%\n  max_regression: 20%\n",
            "duplicate key 'max_regression' (lines 2 and 4)",
        ),
        ("gate: {}\nkpis: {}\ngate: {alpha: 0.01}\n", "duplicate key 'gate' (lines 1 and 3)"),
        ("kpis:\n  api:\n    p95: 1s\n    p95: 2s\n", "duplicate key 'p95' (lines 3 and 4)"),
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ],
)
def test_yaml_aliases_duplicates_and_depth_are_clear_config_errors(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "perfgate.yml")
    assert str(info.value).startswith("perfgate.yml: ") and says in str(info.value)


@pytest.mark.parametrize(
    ("gate", "says"),
    [
        (
            "  max_regression: 10%\n  warn_regression: 20%\n",
            "gate: warn_regression (20%) is above max_regression (10%)",
        ),
        (
            "  overrides:\n    - {match: 't*', max_regression: 10%, warn_regression: 20%}\n",
            "gate.overrides[0]: warn_regression (20%) is above max_regression (10%)",
        ),
        (
            "  max_regression: 10%\n  overrides:\n    - {match: 't*', warn_regression: 15%}\n",
            "gate.overrides[0]: warn_regression (15%) is above max_regression (gate.max_regression) (10%)",
        ),
    ],
)
def test_warning_above_failure_is_refused_at_the_top_and_in_overrides(gate: str, says: str) -> None:
    """Before: refused at the top of gate: but accepted in gate.overrides."""
    with pytest.raises(ConfigError, match="above max_regression") as info:
        parse_config("gate:\n" + gate, "perfgate.yml")
    assert says in str(info.value)


def test_override_thresholds_in_order_are_kept() -> None:
    config = parse_config("gate:\n  overrides:\n    - {match: 't*', max_regression: 30%, warn_regression: 20%}\n")
    assert config.gate.thresholds_for("t::a") == (0.2, 0.3)


def test_warning_above_failure_is_refused_in_markers() -> None:
    """Before: perf_budget(max_regression='10%', warn_regression='20%') was accepted."""
    with pytest.raises(BudgetError, match=r"warn_regression \(20%\) is above max_regression \(10%\)"):
        parse_marker({"max_regression": "10%", "warn_regression": "20%"})
    assert parse_marker({"max_regression": "20%", "warn_regression": "20%"}).warn_regression == 0.2


def test_warning_above_failure_is_refused_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", results_text("[1.0, 1.0]"))
    assert cli.main(["compare", "--max-regression", "10%", "--warn-regression", "20%", a, a]) == 2
    assert "warn regression (20%) is above max regression (10%)" in capsys.readouterr().err


@pytest.mark.parametrize("marker", [{"p95": None}, {"p95": (None, None)}, {"metrics": {"hits": None}}])
def test_a_budget_without_a_level_is_an_error_not_a_pass(marker: dict[str, Any]) -> None:
    """Before: p95=None showed a row 'pass' with no level. Decided: an error (leave it out for no budget)."""
    with pytest.raises(BudgetError, match=r"no level given .*leave it out"):
        parse_marker(marker)


def test_a_kpi_level_without_a_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"perfgate.yml: kpis.api.p95: no level given"):
        parse_config("kpis:\n  api:\n    p95:\n", "perfgate.yml")


def test_a_marker_without_a_level_fails_the_test_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_none="""
        import pytest

        @pytest.mark.perf_budget(p95=None)
        def test_none(perf):
            perf(lambda: None)
        """,
        test_order="""
        import pytest

        @pytest.mark.perf_budget(max_regression="10%", warn_regression="20%")
        def test_order(perf):
            perf(lambda: None)
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfgate-max-time=5ms", "--perfgate-warmup=0")
    text = result.stdout.str()
    assert "test_none.py::test_none: 'p95': no level given (None)" in text
    assert "test_order.py::test_order: warn_regression (20%) is above max_regression (10%)" in text
    assert "Traceback" not in text and result.ret != 0


@pytest.mark.parametrize("value", ["9" * 400, "1e400", ".nan", ".inf"])
def test_yaml_numbers_past_the_float_range_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"perfgate.yml: kpis.api.p95: .*not a valid time"):
        parse_config(f"kpis:\n  api:\n    p95: {value}\n", "perfgate.yml")


# --------------------------------------------------------------------------- found by the fuzz layer


@pytest.mark.parametrize(
    "values",
    [[-1.6e308] * 3, [-1.7e308, 1.7e308, 0.0], [1.7e308, 1.6e308], [5e-324, 0.0], [-2.0, -1.0], [0.0] * 4],
)
def test_html_plots_take_any_finite_figure(values: list[float]) -> None:
    """Before: 'cannot convert float NaN to integer' in the distribution plot for -1.6e308 (its
    axis assumed positive values and a width within the float range)."""
    from pytest_perfgate.reports.html import distribution_svg, trend_svg
    from pytest_perfgate.units import Kind

    svg = distribution_svg(values, values[::-1], [("critical", 1.0)], Kind.TIME)
    trend = trend_svg([(f"run {i}", v) for i, v in enumerate(values)], Kind.TIME)
    for text in (svg, trend):
        assert "nan" not in text and "inf" not in text


def test_malformed_evidence_is_refused_at_load_not_in_the_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a memory_profile with a string peak or functions not a list was a ValueError /
    TypeError traceback in report --html and compare --markdown."""
    failing = (
        ', "spec": {"budgets": [{"metric": "p95", "kind": "time", "critical": 0.5}]}, "verdicts": [{"metric": "p95", '
        '"kind": "time", "measured": 1.0, "critical": 0.5, "verdict": "fail"}], "evidence": '
    )
    cases = {
        '{"memory_profile": {"peak": "x", "functions": [], "peak_stack": [], "peak_sites": [], "retained": 0, '
        '"leaks": [], "tree": {}}}': "tests[0].evidence.memory_profile.peak: expected a number",
        '{"memory_profile": {"peak": 1, "functions": 3}}': "tests[0].evidence.memory_profile: missing",
        '{"cpu_profile": {"calls": 1, "total": 1, "tree": [{"function": 1}], "top": []}}': "tests[0].evidence.cpu_profile.tree[0]: missing",
    }
    for evidence, where in cases.items():
        path = write(tmp_path, "ev.json", results_text("[1.0, 1.0]", extra=failing + evidence))
        assert cli.main(["report", "--html", str(tmp_path / "r.html"), path]) == 2
        assert cli.main(["compare", "--markdown", str(tmp_path / "r.md"), path, path]) == 2
        err = capsys.readouterr().err
        assert err.count(where) == 2 and "Traceback" not in err


@pytest.mark.parametrize("key", ["git", "ci", "settings"])
def test_metadata_sections_the_reports_read_must_be_objects(tmp_path: Path, key: str) -> None:
    text = results_text("[1.0]").replace('"metadata": {}', f'"metadata": {{"{key}": "main"}}')
    with pytest.raises(ResultsFileError, match=rf"metadata\.{key}: expected an object, got str"):
        load_results(write(tmp_path, "r.json", text))


def test_min_rounds_past_the_most_rounds_a_test_makes_is_a_usage_error(pytester: pytest.Pytester) -> None:
    from pytest_perfgate.measure.timing import TimingSettings
    from pytest_perfgate.options import MAX_ROUNDS

    assert TimingSettings().max_rounds == MAX_ROUNDS
    pytester.makepyfile(test_x="def test_x(perf):\n    perf(sum, [1])\n")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--perfgate-min-rounds={10**400}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perfgate-min-rounds: '1000000000*' must be at most 100,000"])


def test_import_of_an_integer_too_long_for_python_is_a_clear_error(tmp_path: Path) -> None:
    from pytest_perfgate.cli import main

    source = tmp_path / "bench.json"
    source.write_text('{"benchmarks": [{"name": "x", "stats": {"data": [' + "9" * 5000 + "]}}]}")
    assert main(["import", str(source), "-o", str(tmp_path / "out.json")]) == 2
