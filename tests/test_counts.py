"""counts/ without valgrind: the dump parser on real dumps, estimated cycles, the command that
re-runs a process under callgrind, the fingerprint, and the errors when pieces are missing."""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from pytest_perfgate.counts import callgrind, fingerprint, native, native_with_client_requests
from pytest_perfgate.counts.callgrind import (
    CACHE_GEOMETRY,
    CallgrindDump,
    Valgrind,
    estimated_cycles,
    parse_dump,
    parse_dump_file,
    valgrind_command,
)
from pytest_perfgate.errors import MeasurementError, PlatformError, ResultsFileError

DATA = Path(__file__).parent / "data" / "counts"


# ----------------------------------------------------------------------------- the parser


def test_a_dump_of_instructions_only() -> None:
    dump = parse_dump_file(DATA / "ir.callgrind.out")
    assert dump == CallgrindDump(
        events=("Ir",), totals={"Ir": 3854}, trigger="Client Request: perfgate-18917-1", pid=18917, part=1
    )
    assert estimated_cycles(dump.totals) is None


def test_a_dump_with_the_cache_simulation() -> None:
    dump = parse_dump_file(DATA / "cachesim.callgrind.out")
    assert dump.events == ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")
    assert dump.totals == {
        "Ir": 3854,
        "Dr": 1133,
        "Dw": 644,
        "I1mr": 160,
        "D1mr": 85,
        "D1mw": 11,
        "ILmr": 160,
        "DLmr": 85,
        "DLmw": 11,
    }
    # Ir + 10 * (I1mr + D1mr + D1mw) + 100 * (ILmr + DLmr + DLmw)
    assert estimated_cycles(dump.totals) == 3854 + 10 * 256 + 100 * 256


@pytest.mark.parametrize("name", ["ir-termination.callgrind.out", "cachesim-termination.callgrind.out"])
def test_the_dump_at_exit_after_zero_stats_is_read_from_totals_not_the_wrapped_summary(name: str) -> None:
    # callgrind writes 'summary:' as an unsigned wrap-around after CALLGRIND_ZERO_STATS; 'totals:' is right
    text = (DATA / name).read_text()
    assert "summary: 184467440737" in text
    dump = parse_dump(text)
    assert dump.trigger == "Program termination"
    assert set(dump.totals.values()) == {0}


def test_summary_is_used_without_totals_and_trailing_zeros_are_filled() -> None:
    dump = parse_dump("# callgrind format\nevents: Ir Dr Dw\nsummary: 12 3\n")
    assert dump.totals == {"Ir": 12, "Dr": 3, "Dw": 0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello\n", "x.out is not a callgrind dump (no '# callgrind format' header, no 'events:' line)"),
        ("# callgrind format\nsummary: 3\n", "x.out: callgrind dump without an 'events:' line"),
        ("# callgrind format\nevents: Ir\n", "x.out: callgrind dump without a 'totals:' or 'summary:' line"),
        ("# callgrind format\nevents: Ir\ntotals: 1 2\n", "x.out: bad totals '1 2' for events Ir"),
        ("# callgrind format\nevents: Ir\ntotals: -1\n", "x.out: bad totals '-1' for events Ir"),
    ],
)
def test_a_bad_dump_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(MeasurementError) as info:
        parse_dump(text, source="x.out")
    assert str(info.value) == message


def test_an_unreadable_dump_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match=r"cannot read the callgrind dump .*missing\.out: No such file"):
        parse_dump_file(tmp_path / "missing.out")


# ----------------------------------------------------------------------------- the command

VALGRIND = Valgrind(path="/opt/vg/bin/valgrind", version="3.19.0")


def test_the_command_runs_the_real_interpreter_with_instrumentation_off_and_a_fixed_seed(tmp_path: Path) -> None:
    command = valgrind_command([sys.executable, "-m", "pytest", "-q"], out_dir=tmp_path / "cg", valgrind=VALGRIND)
    out = tmp_path / "cg"
    assert out.is_dir()
    assert command.argv == [
        "/opt/vg/bin/valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--collect-atstart=no",
        f"--callgrind-out-file={out}/callgrind.out.%p",
        f"--log-file={out}/valgrind.%p.log",
        "--cache-sim=no",
        sys.executable,
        "-m",
        "pytest",
        "-q",
    ]
    assert command.env == {
        "PYTHONHASHSEED": "0",
        "PERFGATE_CALLGRIND_OUT": str(out),
        "PERFGATE_CALLGRIND_CACHE_SIM": "0",
        "PERFGATE_CALLGRIND_FUNCTIONS": "0",
    }
    assert (command.hash_seed, command.cache_sim, command.valgrind, command.out_dir) == (0, False, VALGRIND, out)


def test_the_cache_simulation_has_a_fixed_geometry(tmp_path: Path) -> None:
    command = valgrind_command(
        [sys.executable, "x.py"], out_dir=tmp_path, valgrind=VALGRIND, cache_sim=True, hash_seed=7
    )
    assert command.argv[6:10] == ["--cache-sim=yes", *CACHE_GEOMETRY]
    assert command.env["PYTHONHASHSEED"] == "7"
    assert command.env["PERFGATE_CALLGRIND_CACHE_SIM"] == "1"


def test_counting_by_function_skips_every_named_function(tmp_path: Path) -> None:
    command = valgrind_command([sys.executable, "x.py"], out_dir=tmp_path, valgrind=VALGRIND, functions=True)
    skips = [arg for arg in command.argv if arg.startswith("--fn-skip=")]
    # every symbol starts with a letter or '_'; perfgate's trampolines are named by address ("0x...")
    assert len(skips) == 53 and "--fn-skip=_*" in skips and "--fn-skip=Z*" in skips
    assert command.argv.index(skips[-1]) < command.argv.index(sys.executable)
    assert command.env["PERFGATE_CALLGRIND_FUNCTIONS"] == "1"


def test_a_launcher_script_is_refused_naming_the_real_interpreter(tmp_path: Path) -> None:
    shim = tmp_path / "python"
    shim.write_text('#!/usr/bin/env bash\nexec python3 "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(MeasurementError) as info:
        valgrind_command([str(shim), "x.py"], out_dir=tmp_path, valgrind=VALGRIND)
    assert str(info.value) == (
        f"the Python interpreter {shim} is a script (a pyenv shim or another launcher?), not a binary: valgrind "
        f"would measure the script's shell; run the real interpreter (sys.executable of a running Python, "
        f"e.g. {sys.executable})"
    )


def test_a_virtual_environment_interpreter_is_kept_as_linked(tmp_path: Path) -> None:
    link = tmp_path / "bin" / "python"
    link.parent.mkdir()
    link.symlink_to(os.path.realpath(sys.executable))
    # resolving the link would leave the virtual environment: the link is run as it is
    assert callgrind.real_interpreter(str(link)) == str(link)


def test_empty_argv_and_missing_interpreter_are_errors(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match="needs a command to run"):
        valgrind_command([], out_dir=tmp_path, valgrind=VALGRIND)
    with pytest.raises(MeasurementError, match="the Python interpreter '/nonexistent/python' was not found"):
        valgrind_command(["/nonexistent/python"], out_dir=tmp_path, valgrind=VALGRIND)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="valgrind is looked up on Linux only")
def test_missing_valgrind_names_what_to_install() -> None:
    with pytest.raises(MeasurementError) as info:
        callgrind.find_valgrind("no-such-valgrind-here")
    assert str(info.value) == (
        "instruction counts need valgrind: 'no-such-valgrind-here' was not found in PATH: "
        "install valgrind (Debian: apt-get install valgrind)"
    )
    with pytest.raises(MeasurementError, match=r"'/nonexistent/valgrind' is not an executable file: install valgrind"):
        callgrind.find_valgrind("/nonexistent/valgrind")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="valgrind is looked up on Linux only")
def test_a_binary_that_is_not_valgrind_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "valgrind"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    with pytest.raises(
        MeasurementError, match=r"--version did not print a valgrind version \(exit code 0, output 'hello'\)"
    ):
        callgrind.find_valgrind(str(fake))


def test_elsewhere_than_linux_is_a_platform_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(PlatformError, match="perfgate supports on Linux only; this is 'darwin'"):
        callgrind.find_valgrind()
    with pytest.raises(PlatformError):
        native_with_client_requests()


# ----------------------------------------------------------------------------- the native module


def test_a_missing_extension_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytest_perfgate.counts._native", None)
    with pytest.raises(MeasurementError) as info:
        native()
    message = str(info.value)
    assert message.startswith(
        "counting allocations and instructions needs perfgate's native extension "
        "(pytest_perfgate.counts._native), which is not built ("
    )
    assert "a C compiler and Python's headers" in message
    assert "apt-get install gcc python3-dev" in message
    assert "apt-get install valgrind" in message
    assert "pip install --force-reinstall --no-deps --no-binary pytest-perfgate pytest-perfgate" in message
    from pytest_perfgate.counts.allocations import count_allocations

    with pytest.raises(MeasurementError, match="native extension"):
        count_allocations(lambda: None)


class _NoClientRequests:
    @staticmethod
    def have_client_requests() -> int:
        return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_an_extension_built_without_valgrind_headers_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytest_perfgate.counts._native", _NoClientRequests)  # type: ignore[arg-type]
    with pytest.raises(MeasurementError) as info:
        callgrind.count_call(lambda: None, name="t")
    assert str(info.value).startswith(
        "instruction counts need perfgate's native extension built with valgrind's headers "
        "(valgrind/callgrind.h), and it was built without them: install valgrind (Debian: apt-get install valgrind)"
    )
    assert callgrind.running_under_callgrind() is False


# ----------------------------------------------------------------------------- fingerprint


def test_the_fingerprint_of_this_process() -> None:
    here = fingerprint.current(valgrind="3.19.0", hash_seed=0)
    assert here.python == ".".join(map(str, sys.version_info[:3]))
    assert here.implementation == sys.implementation.name
    assert here.python_build == sys.version
    assert here.valgrind == "3.19.0"
    assert here.hash_seed == "0"
    assert len(here.distributions) == len(here.build_flags) == 12
    assert fingerprint.current(valgrind="3.19.0", hash_seed=0) == here
    assert fingerprint.differences(here, here) == ()


def test_differences_name_each_changed_field_in_order() -> None:
    before = fingerprint.current(valgrind="3.19.0", hash_seed=0)
    after = dataclasses.replace(before, python="9.9.9", valgrind="3.22.0")
    assert fingerprint.differences(before, after) == (
        fingerprint.Difference("python", before.python, "9.9.9"),
        fingerprint.Difference("valgrind", "3.19.0", "3.22.0"),
    )


def test_a_new_distribution_changes_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    before = fingerprint.distributions_hash()

    class Dist:
        metadata: ClassVar[dict[str, str]] = {"Name": "Some_Package"}
        version = "1.0"

    real = fingerprint.metadata.distributions
    monkeypatch.setattr(fingerprint.metadata, "distributions", lambda: [*real(), Dist()])
    assert fingerprint.distributions_hash() != before


def test_the_fingerprint_round_trips_through_json() -> None:
    here = fingerprint.current()
    assert fingerprint.Fingerprint.from_json(here.to_json()) == here
    assert fingerprint.Fingerprint.from_json({**here.to_json(), "newer": "ignored"}) == here


def test_a_fingerprint_from_before_the_counting_method_was_recorded_loads_and_differs() -> None:
    from pytest_perfgate.counts.callgrind import METHOD

    here = fingerprint.current(valgrind="3.19.0", hash_seed=0, method=METHOD)
    older = {key: value for key, value in here.to_json().items() if key != "method"}
    loaded = fingerprint.Fingerprint.from_json(older)
    assert loaded.method is None
    # counts made before the canonical heap are not compared with counts made with it
    assert fingerprint.differences(loaded, here) == (fingerprint.Difference("method", None, METHOD),)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"python": None}, "run.json: fingerprint field 'python' must be a string, got None"),
        ({"machine": 3}, "run.json: fingerprint field 'machine' must be a string, got 3"),
    ],
)
def test_a_bad_fingerprint_is_a_results_file_error(change: dict[str, object], message: str) -> None:
    data = {**fingerprint.current().to_json(), **change}
    with pytest.raises(ResultsFileError) as info:
        fingerprint.Fingerprint.from_json(data, source="run.json")
    assert str(info.value) == message
    with pytest.raises(ResultsFileError, match="the fingerprint must be an object, got list"):
        fingerprint.Fingerprint.from_json([], source="run.json")


# ----------------------------------------------------------------------------- counts


def test_the_spread_of_repeated_counts() -> None:
    one = callgrind.Counts(name="t", instructions=1000, samples=(1000,))
    assert one.spread == 0.0
    several = callgrind.Counts(name="t", instructions=1000, samples=(1010, 1000, 990))
    assert several.spread == pytest.approx(0.02)


def test_repeat_and_warmup_are_checked_first() -> None:
    with pytest.raises(MeasurementError, match="instruction counts of t: repeat must be >= 1 and warmup >= 0"):
        callgrind.count_call(lambda: None, name="t", repeat=0)
