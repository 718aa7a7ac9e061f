"""The ``cli`` package: the dispatch table and its lazy command modules, the shared exit codes, the
duration and ratio options of every command, report files' mode, the GitLab artifact store."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_perfgate.cli import COMMANDS, Exit, build_parser, command_module, main
from pytest_perfgate.cli.load import _run_time
from pytest_perfgate.errors import LoadError
from pytest_perfgate.model import RunResult, Series, TestResult, save_results
from pytest_perfgate.store import BaselineStore
from pytest_perfgate.store.gitlab import ArtifactStore
from pytest_perfgate.units import Kind, parse_duration


def _results(path: Path) -> str:
    test = TestResult(nodeid="t::a", series={"time": Series("time", Kind.TIME, (1.0,) * 5)})
    save_results(path, RunResult(metadata={"created": "2026-01-01T00:00:00+00:00"}, tests=(test,)))
    return str(path)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _imported(*argv: str) -> list[str]:
    """The command modules of this package a ``perfgate ARGV`` process imported."""
    code = (
        "import sys\nfrom pytest_perfgate.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('pytest_perfgate.cli.') and m != "
        "'pytest_perfgate.cli._common'), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, check=False)
    return eval(done.stderr.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_help_lists_every_command_without_importing_one() -> None:
    assert _imported("--help") == []
    assert _imported("compare", "--help") == ["pytest_perfgate.cli.compare"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest_perfgate.cli", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    listed = " ".join(done.stdout.split())
    for name, (_, text) in COMMANDS.items():
        assert f"{name} {' '.join(text.split())}" in listed


def test_every_command_module_has_arguments_and_a_run() -> None:
    for name in COMMANDS:
        module = command_module(name)
        assert callable(module.add_arguments) and callable(module.run), name
    args = build_parser().parse_args(["check-config", "x.yml"])
    assert args.run is command_module("check-config").run


def test_exit_codes_keep_their_documented_values() -> None:
    assert [(e.name, e.value) for e in Exit] == [("OK", 0), ("FAILED", 1), ("BAD_INPUT", 2), ("NOT_JUDGED", 3)]


def test_a_report_file_gets_the_mode_of_a_results_file(tmp_path: Path, umask_022: None) -> None:
    results = _results(tmp_path / "r.json")
    md, junit, metrics, js, html = (tmp_path / n for n in ("r.md", "r.xml", "r.txt", "r.json.out", "r.html"))
    argv = ["compare", results, results, "--markdown", str(md), "--junit", str(junit), "--metrics", str(metrics)]
    assert main([*argv, "--json", str(js)]) == 0
    assert main(["report", results, "--html", str(html)]) == 0
    for path in (md, junit, metrics, js, html, Path(results)):
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path


def test_an_imported_file_gets_the_mode_of_a_results_file(tmp_path: Path, umask_022: None) -> None:
    source = tmp_path / "bench.json"
    source.write_text('{"benchmarks": [{"fullname": "t::a", "stats": {"data": [1.0, 1.1]}}]}')
    assert main(["import", str(source), "-o", str(tmp_path / "out.json")]) == 0
    assert oct((tmp_path / "out.json").stat().st_mode & 0o777) == oct(0o644)


# --------------------------------------------------------------------------- durations and ratios


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("500ms", 0.5), ("90", 90.0), ("2m", 120.0), ("1.5min", 90.0), ("1h30m", 5400.0), ("1m30s", 90.0)],
)
def test_one_duration_parser_reads_units_and_locusts_compound_form(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def _parse(command: str, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"perfgate {command}")
    command_module(command).add_arguments(parser)
    return parser.parse_args(list(argv))


def test_load_durations_take_units_as_ab_does() -> None:
    args = _parse("load", "f.py", "--warmup", "5s", "--connect-timeout", "1500ms")
    assert (args.warmup, args.connect_timeout) == (5.0, 1.5)
    args = _parse("ab", "--base", "main", "--max-time", "5s", "--min-round-time", "500us", "--test-timeout", "1h30m")
    assert (args.max_time, args.min_round_time, args.test_timeout) == (5.0, pytest.approx(5e-4), 5400.0)


def test_load_run_time_takes_units_in_whole_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_time("1h30m") == 5400 and _run_time("90") == 90 and _run_time("2min") == 120
    assert capsys.readouterr().err == ""
    assert _run_time("500ms") == 1
    assert capsys.readouterr().err == "perfgate load: run-time 500ms rounded up to 1s (locust runs whole seconds)\n"
    with pytest.raises(LoadError, match=r"^run-time '0s' is not above 0; accepted: a duration such as"):
        _run_time("0s")
    with pytest.raises(
        LoadError,
        match=r"^run-time 'soon' does not parse; accepted: .*'1h30m' or '1.5min' \(locust runs whole seconds: a fraction is rounded up\)$",
    ):
        _run_time("soon")


@pytest.mark.parametrize(("command", "option"), [("load", "--warmup"), ("ab", "--max-time")])
def test_a_bad_duration_names_the_option_and_the_accepted_forms(
    command: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, *(["--base", "main"] if command == "ab" else []), option, "soon"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: 'soon' is not a valid time; accepted: a number of seconds or a string such as" in err
    assert "'1.5s', '1h30m' (units: ns, us, ms, s, min, h)" in err


def test_gate_ratios_parse_with_units(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("compare", "a", "b", "--max-regression", "12.5%", "--alpha", "0.01", "--min-improvement", "5%")
    assert (args.max_regression, args.alpha, args.min_improvement) == (0.125, 0.01, 0.05)
    with pytest.raises(SystemExit):
        _parse("compare", "a", "b", "--alpha", "50%")
    assert "argument --alpha: '50%' must be above 0 and below 50%" in capsys.readouterr().err


# --------------------------------------------------------------------------- the GitLab store


def test_the_gitlab_artifact_store_is_a_read_only_baseline_store() -> None:
    store = ArtifactStore("main")
    assert isinstance(store, BaselineStore)
    assert store.paths == (".perfgate/baseline/", ".perfgate/results.json")
    assert store.missing() == (
        "no baseline yet (first run on main): no artifact .perfgate/baseline/index.json (nor .perfgate/results.json) "
        "of job 'perfgate-baseline' on main"
    )
    with pytest.raises(Exception, match="read only"):
        store.promote(RunResult(metadata={}, tests=()))
