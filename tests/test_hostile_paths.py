"""Hostile paths (issue 16, item 3): inputs that are not regular files are refused at once (a FIFO
never blocks a command), every output path is checked before any work, nothing that is not a
perfgate file is overwritten, a symlink is written through, and "no baseline yet" is only ever a
path that does not exist. Each case checks the exact message and exit code (docs/gate.md, Paths)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.results import make_run
from pytest_perfgate.cli import main
from pytest_perfgate.model import load_results, save_results
from pytest_perfgate.paths import check_input, check_output
from pytest_perfgate.store.files import DirectoryStore

ROOT = os.geteuid() == 0


def _results(path: Path, level: float = 1.0) -> str:
    save_results(path, make_run({"t::a": [level] * 5, "t::b": [2 * level] * 5}))
    return str(path)


def perfgate(*argv: str, timeout: float = 60) -> tuple[int, str, str]:
    """``perfgate ARGV`` in a subprocess, bounded: a hang is a test failure, not a stuck suite."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from pytest_perfgate.cli import main; sys.exit(main(sys.argv[1:]))",
             *argv],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"perfgate {' '.join(argv)} hung (> {timeout}s)")
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def fifo(tmp_path: Path) -> str:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return str(path)


# --------------------------------------------------------------------------- FIFOs as inputs


def test_report_of_a_fifo_is_refused_at_once(fifo: str) -> None:
    started = time.monotonic()
    code, out, err = perfgate("report", fifo)
    assert (code, out) == (2, "")
    assert err == f"error: {fifo}: is a FIFO (named pipe), not a regular file: expected a results file\n"
    assert time.monotonic() - started < 30


def test_compare_with_a_fifo_as_current_or_baseline_is_refused(fifo: str, tmp_path: Path) -> None:
    good = _results(tmp_path / "good.json")
    assert perfgate("compare", good, fifo)[::2] == (
        2,
        f"error: {fifo}: is a FIFO (named pipe), not a regular file: expected a results file\n",
    )
    assert perfgate("compare", fifo, good)[::2] == (
        2,
        f"error: {fifo}: is a FIFO (named pipe), not a regular file: expected a results file\n",
    )


def test_merge_and_import_and_promote_of_a_fifo_are_refused(fifo: str, tmp_path: Path) -> None:
    good = _results(tmp_path / "good.json")
    out = str(tmp_path / "m.json")
    code, _, err = perfgate("merge", good, fifo, "-o", out)
    assert (code, err) == (2, f"error: {fifo}: is a FIFO (named pipe), not a regular file: expected a results file\n")
    assert not os.path.exists(out)
    code, _, err = perfgate("import", fifo, "-o", out)
    assert (code, err) == (
        2,
        f"error: {fifo}: is a FIFO (named pipe), not a regular file: expected a pytest-benchmark JSON file\n",
    )
    code, _, err = perfgate("baseline", "promote", fifo, "--to", str(tmp_path / "bl"))
    assert (code, err) == (
        2,
        f"error: {fifo}: is a FIFO (named pipe), not a regular file: expected the results file to promote\n",
    )


def test_check_config_and_compare_config_of_a_fifo_are_refused(fifo: str, tmp_path: Path) -> None:
    expected = f"error: {fifo}: is a FIFO (named pipe), not a regular file: expected a perfgate.yml (YAML file)\n"
    assert perfgate("check-config", fifo)[::2] == (2, expected)
    good = _results(tmp_path / "good.json")
    assert perfgate("compare", good, good, "--config", fifo)[::2] == (2, expected)


def test_a_fifo_among_stored_runs_is_named_not_skipped(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path / "bl"))
    store.promote(make_run({"t::a": [1.0] * 5}))
    os.mkfifo(tmp_path / "bl" / "run-000002.json")
    code, _, err = perfgate("compare", str(tmp_path / "bl"), _results(tmp_path / "cur.json"))
    assert code == 2
    assert err == (
        f"error: {tmp_path / 'bl' / 'run-000002.json'}: is a FIFO (named pipe), not a regular file: "
        "expected a stored run (a regular file)\n"
    )


# --------------------------------------------------------------------------- outputs


def test_merge_into_a_directory_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _results(tmp_path / "good.json")
    assert main(["merge", good, "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path}: is a directory: expected a file path for the merged results file "
        f"(e.g. {tmp_path / 'out.json'})\n"
    )


def test_promote_to_a_symlink_loop_or_through_a_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _results(tmp_path / "good.json")
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    assert main(["baseline", "promote", good, "--to", str(loop)]) == 2
    assert capsys.readouterr().err == (
        f"error: {loop}: cannot be written: is a symlink loop (too many levels of symbolic links): expected a file "
        "path for the baseline file\n"
    )
    (tmp_path / "blocker").write_text("x")
    assert main(["baseline", "promote", good, "--to", str(tmp_path / "blocker" / "bl")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'blocker' / 'bl'}: cannot be written: a part of the path is a file, not a folder: "
        "expected a directory for the baseline directory\n"
    )


@pytest.mark.skipif(ROOT, reason="root may write anywhere: no unwritable folder to try")
def test_promote_into_an_unwritable_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _results(tmp_path / "good.json")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["baseline", "promote", good, "--to", str(locked / "b.json")]) == 2
        assert (
            capsys.readouterr().err
            == f"error: {locked / 'b.json'}: cannot be written: no permission to write in {locked}\n"
        )
    finally:
        locked.chmod(0o700)


def test_promote_never_overwrites_a_file_that_is_not_perfgates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _results(tmp_path / "good.json")
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes\n")
    assert main(["baseline", "promote", good, "--to", str(notes)]) == 2
    assert capsys.readouterr().err == (
        f"error: {notes}: exists and is not a perfgate file: not overwritten; pass a new path (or a perfgate file) "
        "for the baseline file\n"
    )
    assert notes.read_text() == "# my notes\n"
    # a perfgate results file is replaced as before
    older = _results(tmp_path / "older.json", 5.0)
    assert main(["baseline", "promote", good, "--to", older]) == 0
    assert load_results(older).tests[0].series["time"].values[0] == 1.0


def test_merge_and_import_never_overwrite_a_foreign_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _results(tmp_path / "good.json")
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    assert main(["merge", good, "-o", str(keep)]) == 2
    assert "exists and is not a perfgate file: not overwritten" in capsys.readouterr().err
    bench = tmp_path / "bench.json"
    bench.write_text('{"benchmarks": [{"name": "t", "stats": {"data": [1.0, 2.0]}}]}')
    assert main(["import", str(bench), "-o", str(keep)]) == 2
    assert "exists and is not a perfgate file: not overwritten" in capsys.readouterr().err
    assert keep.read_text() == "precious"


def test_markdown_onto_a_symlink_writes_through_the_link(tmp_path: Path) -> None:
    good = _results(tmp_path / "good.json")
    (tmp_path / "published").mkdir()
    target = tmp_path / "published" / "report.md"
    target.write_text("old")
    link = tmp_path / "report.md"
    link.symlink_to(target)
    assert main(["compare", good, good, "--markdown", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "perfgate" in target.read_text() and target.read_text() != "old"


def test_report_outputs_are_checked_before_any_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _results(tmp_path / "good.json")
    junit = tmp_path / "gate.xml"
    assert main(["compare", good, good, "--junit", str(junit), "--markdown", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path}: is a directory: expected a file path for the Markdown report (e.g. {tmp_path / 'out.json'})\n"
    )
    assert not junit.exists()
    assert main(["compare", good, good, "--junit", str(junit), "--json", str(junit)]) == 2
    assert capsys.readouterr().err == f"error: {junit}: given to both --junit and --json: pass a file for each report\n"


def test_html_report_into_a_fifo_is_refused(fifo: str, tmp_path: Path) -> None:
    code, out, err = perfgate("report", _results(tmp_path / "good.json"), "--html", fifo)
    assert (code, out) == (2, "")
    assert err == (
        f"error: {fifo}: is a FIFO (named pipe), not a regular file: the HTML report is written as a regular file\n"
    )


# --------------------------------------------------------------------------- "no baseline yet"


def test_a_typod_from_file_is_an_error_not_no_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "resluts.json"
    assert main(["baseline", "fetch", "--to", str(tmp_path / "bl"), "--from-file", str(typo)]) == 2
    assert capsys.readouterr().err == f"error: {typo}: no such file\n"
    assert not (tmp_path / "bl").exists()


def test_a_symlink_loop_as_baseline_is_an_error_not_no_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = tmp_path / "baseline"
    loop.symlink_to(loop)
    assert main(["compare", str(loop), _results(tmp_path / "cur.json")]) == 2
    assert capsys.readouterr().err == (
        f"error: {loop}: is a symlink loop (too many levels of symbolic links): expected a directory of stored runs\n"
    )
    assert main(["baseline", "fetch", "--to", str(tmp_path / "bl"), "--from-dir", str(loop)]) == 2
    assert "is a symlink loop" in capsys.readouterr().err


def test_a_dangling_symlink_as_baseline_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "baseline.json"
    link.symlink_to(tmp_path / "gone.json")
    assert main(["compare", str(link), _results(tmp_path / "cur.json")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: {link}: is a dangling symlink (to {tmp_path / 'gone.json'}): expected a results file\n"
    )


@pytest.mark.skipif(ROOT, reason="root reads every directory: no unreadable one to try")
def test_an_unreadable_baseline_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = DirectoryStore(str(tmp_path / "bl"))
    store.promote(make_run({"t::a": [1.0] * 5}))
    (tmp_path / "bl").chmod(0o000)
    try:
        assert main(["compare", str(tmp_path / "bl"), _results(tmp_path / "cur.json")]) == 2
        assert "cannot be listed (permission denied)" in capsys.readouterr().err
    finally:
        (tmp_path / "bl").chmod(0o700)


def test_an_absent_baseline_is_still_no_baseline_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(tmp_path / "none"), _results(tmp_path / "cur.json")]) == 0
    assert "no baseline yet" in capsys.readouterr().out
    assert main(["baseline", "fetch", "--to", str(tmp_path / "bl"), "--from-dir", str(tmp_path / "none")]) == 0
    assert ": no baseline yet" in capsys.readouterr().out


def test_fetch_from_dir_into_itself_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    DirectoryStore(str(tmp_path / "bl")).promote(make_run({"t::a": [1.0] * 5}))
    assert main(["baseline", "fetch", "--to", str(tmp_path / "bl"), "--from-dir", str(tmp_path / "bl") + "/"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'bl'}/: is the same directory as --to {tmp_path / 'bl'}: every run would be stored "
        "twice; fetch into another\n"
    )
    assert len(DirectoryStore(str(tmp_path / "bl")).load().runs) == 1  # type: ignore[union-attr]


def test_a_truncated_run_whose_summary_survives_is_noticed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = DirectoryStore(str(tmp_path / "bl"))
    store.promote(make_run({"t::a": [1.0] * 5}))
    run = tmp_path / "bl" / "run-000001.json"
    summary = tmp_path / "bl" / "run-000001.summary.json"
    size = run.stat().st_size
    run.write_bytes(run.read_bytes()[: size // 2])
    later = time.time() + 10
    os.utime(summary, (later, later))  # as a copy that kept the summary newer would (cp, artifacts)
    assert main(["compare", str(tmp_path / "bl"), _results(tmp_path / "cur.json")]) == 2
    assert capsys.readouterr().err == (
        f"error: {run}: is {size // 2} bytes but its summary run-000001.summary.json recorded {size}: the stored run "
        "was truncated or changed after it was stored; restore it, or remove it and its summary\n"
    )


# --------------------------------------------------------------------------- load outputs


def test_load_outputs_are_checked_before_the_run(tmp_path: Path) -> None:
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("from locust import HttpUser\n")
    started = time.monotonic()
    # port 9 on loopback: nothing is run, the outputs are refused before locust or the target is tried
    code, out, err = perfgate("load", str(locustfile), "--host", "http://127.0.0.1:9", "--save", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == (
        f"error: {tmp_path}: is a directory: expected a file path for the results file (--save) "
        f"(e.g. {tmp_path / 'out.json'})\n"
    )
    code, _, err = perfgate("load", str(locustfile), "--host", "http://127.0.0.1:9", "--gitlab-report", str(tmp_path))
    assert code == 2 and "for the load_performance report (--gitlab-report)" in err
    both = str(tmp_path / "x.json")
    code, _, err = perfgate(
        "load", str(locustfile), "--host", "http://127.0.0.1:9", "--save", both, "--gitlab-report", both
    )
    assert (code, err) == (2, f"error: --save and --gitlab-report name the same file {both}: pass a file for each\n")
    assert time.monotonic() - started < 60


# --------------------------------------------------------------------------- the helpers


def test_check_input_and_output_kinds(tmp_path: Path, fifo: str) -> None:
    assert check_input(tmp_path, directory_ok=True) == "dir"
    assert check_input(tmp_path / "none", missing_ok=True) is None
    assert check_output(tmp_path / "new" / "deeper" / "x.json") == tmp_path / "new" / "deeper" / "x.json"
    assert check_output(tmp_path, directory=True) == tmp_path
    with pytest.raises(Exception, match="is a FIFO"):
        check_output(fifo, directory=True)


# --------------------------------------------------------------------------- the plugin's paths

SUITE = """
import pytest

@pytest.mark.perf_budget(median=("1ns", "10"))
def test_a(perf):
    perf(sum, range(3))
"""


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--perfgate-save=out",
            "ERROR: perfgate: out: is a directory: expected a file path for the results file "
            "(--perfgate-save) (e.g. out/out.json)",
        ),
        (
            "--perfgate-html=out",
            "ERROR: perfgate: out: is a directory: expected a file path for the HTML report "
            "(--perfgate-html) (e.g. out/out.json)",
        ),
        (
            "--perfgate-save=pipe",
            "ERROR: perfgate: pipe: is a FIFO (named pipe), not a regular file: the results "
            "file (--perfgate-save) is written as a regular file",
        ),
        (
            "--perfgate-compare=pipe",
            "ERROR: perfgate: pipe: is a FIFO (named pipe), not a regular file or a "
            "directory: expected a results file or a directory of stored runs",
        ),
        (
            "--perfgate-save=test_paths.py",
            "ERROR: perfgate: test_paths.py: exists and is not a perfgate file: not "
            "overwritten; pass a new path (or a perfgate file) for the results file "
            "(--perfgate-save)",
        ),
        (
            "--perfgate-compare=loop",
            "ERROR: perfgate: loop: is a symlink loop (too many levels of symbolic links): "
            "expected a results file or a directory of stored runs",
        ),
    ],
)
def test_plugin_paths_are_usage_errors_before_any_test(pytester: pytest.Pytester, option: str, message: str) -> None:
    pytester.makepyfile(test_paths=SUITE)
    (pytester.path / "out").mkdir()
    os.mkfifo(pytester.path / "pipe")
    (pytester.path / "loop").symlink_to(pytester.path / "loop")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", option, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == message
    assert (pytester.path / "pipe").is_fifo()  # the FIFO was not replaced by a file


def test_plugin_config_fifo_is_refused_not_read(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_paths=SUITE)
    os.mkfifo(pytester.path / "perfgate.yml")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        f"ERROR: perfgate: {pytester.path / 'perfgate.yml'}: is a FIFO (named pipe), not a regular file: expected a "
        "perfgate.yml (YAML file)"
    )


def test_an_empty_report_path_is_refused_not_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _results(tmp_path / "good.json")
    assert main(["compare", good, good, "--markdown", ""]) == 2
    assert capsys.readouterr().err == "error: '': empty path: expected a path for the Markdown report\n"
    assert main(["report", good, "--html", ""]) == 2
    assert capsys.readouterr().err == "error: '': empty path: expected a path for the HTML report\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (Linux)")
def test_a_place_nothing_can_be_made_in_is_refused_even_for_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _results(tmp_path / "good.json")
    assert main(["merge", good, "-o", "/proc/perfgate-test.json"]) == 2
    assert (
        capsys.readouterr().err
        == "error: /proc/perfgate-test.json: cannot be written: no permission to write in /proc\n"
    )


def test_ab_report_files_are_checked_before_the_paired_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repository: the run would fail later, the check comes first
    (tmp_path / "out").mkdir()
    assert main(["ab", "--base", "HEAD", "--markdown", "out", "--", "tests"]) == 2
    assert capsys.readouterr().err == (
        "error: out: is a directory: expected a file path for the Markdown report (e.g. out/out.json)\n"
    )


@pytest.mark.skipif(not ROOT, reason="runs perfgate as the user nobody, which needs root")
def test_an_unreadable_baseline_is_an_error_for_an_ordinary_user(tmp_path_factory: pytest.TempPathFactory) -> None:
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="perfgate-unreadable-", dir="/tmp"))
    try:
        folder.chmod(0o777)
        DirectoryStore(str(folder / "bl")).promote(make_run({"t::a": [1.0] * 5}))
        cur = _results(folder / "cur.json")
        (folder / "cur.json").chmod(0o644)
        (folder / "bl").chmod(0o000)  # root made it; nobody may not list it
        (folder / "one.json").write_text((folder / "cur.json").read_text())
        (folder / "one.json").chmod(0o000)

        def as_nobody(*argv: str) -> tuple[int, str]:
            # perfgate's modules are imported as root (the checkout may be closed to nobody), then
            # the process becomes nobody and runs the command
            code = (
                "import os, sys; from pytest_perfgate.cli import build_parser, guarded; import pytest_perfgate.store.files, "
                "pytest_perfgate.importers, pytest_perfgate.config, pytest_perfgate.gate, pytest_perfgate.paths, "
                "pytest_perfgate.reports.gate_terminal, tempfile, dataclasses; args = build_parser().parse_args(sys.argv[1:]); "
                "os.setgid(65534); os.setuid(65534); sys.exit(guarded(lambda: args.run(args)))"
            )
            done = subprocess.run(
                [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, check=False,
                cwd=folder, env={**os.environ, "HOME": str(folder)},
            )  # fmt: skip
            return done.returncode, done.stderr

        assert as_nobody("compare", str(folder / "bl"), cur) == (
            2,
            f"error: {folder / 'bl'}: cannot be listed (permission denied): expected a directory of stored runs "
            "that can be read\n",
        )
        assert as_nobody("compare", str(folder / "one.json"), cur) == (
            2,
            f"error: {folder / 'one.json'}: cannot be read (permission denied): expected a results file that "
            "can be read\n",
        )
        assert as_nobody("baseline", "fetch", "--to", str(folder / "new"), "--from-dir", str(folder / "bl")) == (
            2,
            f"error: {folder / 'bl'}: cannot be listed (permission denied): expected a directory of stored runs "
            "that can be read\n",
        )
    finally:
        (folder / "bl").chmod(0o700)
        shutil.rmtree(folder, ignore_errors=True)


def test_gitlab_comment_of_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    fifo = tmp_path / "report.md"
    os.mkfifo(fifo)
    result = subprocess.run(
        [sys.executable, "-m", "pytest_perfgate.cli", "gitlab-comment", str(fifo), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert f"error: {fifo}: is a FIFO (named pipe), not a regular file: expected the Markdown report to post" in (
        result.stderr
    )
