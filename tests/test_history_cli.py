"""``perfgate history``: an injected step is reported at its commit range, open change points first,
with the documented exit codes; the JSON reads back."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.results import make_test
from pytest_perfgate.cli import main
from pytest_perfgate.history.log import LOG_NAME
from pytest_perfgate.history.model import Direction, History, load_history
from pytest_perfgate.model import RunResult, Series, TestResult
from pytest_perfgate.store.files import DirectoryStore
from pytest_perfgate.units import Kind


def _commit(i: int) -> str:
    return f"{i:02d}" * 20


def _promote(
    folder: Path, runs: int, *, step_at: int, factor: float, cpu_from: int | None = None, history: bool = True
) -> None:
    rng = random.Random(5)
    store = DirectoryStore(str(folder))
    for i in range(runs):
        level = factor if i >= step_at else 1.0
        timed = make_test("tests/test_api.py::test_search", [0.01 * rng.lognormvariate(0, 0.05) for _ in range(5)])
        counted = TestResult(
            "tests/test_api.py::test_search",
            series={
                "time": timed.series["time"],
                "instructions": Series("instructions", Kind.COUNT, (1e6 * level,) * 3, source="callgrind"),
            },
        )
        steady = make_test("tests/test_api.py::test_list", [0.002 * rng.lognormvariate(0, 0.05) for _ in range(5)])
        metadata = {
            "created": f"2026-12-0{1 + i // 10}T00:00:{i:02d}+00:00",
            "ci": {"CI_COMMIT_SHA": _commit(i), "CI_COMMIT_REF_NAME": "main"},
            "cpu": "EPYC" if cpu_from is not None and i >= cpu_from else "Xeon",
        }
        store.promote(RunResult(metadata, (counted, steady)), keep=5, history=history)


def test_an_injected_step_is_reported_at_its_commit_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    _promote(base, 30, step_at=20, factor=1.05)
    out = tmp_path / "history.json"
    assert main(["history", str(base), "--json", str(out)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == (
        "perfgate history: 30 runs, 3 series judged (alpha 0.001 per examined segment, at least 3 runs per level)"
    )
    assert text[1] == "open change points (1: the newest level of their series):"
    assert text[2] == (
        "  REGRESSION    +5.00%  tests/test_api.py::test_search [instructions]  1M -> 1.05M  runs 20..21 "
        f"({_commit(19)[:8]}..{_commit(20)[:8]})  confidence >99.9999%"
    )
    assert "2 series without a change point (--all lists every series)" in text
    history = load_history(out)
    (cp,) = history.open_change_points()
    assert (cp.key.metric, cp.index, cp.direction, cp.commits.first_new) == (
        "instructions",
        20,
        Direction.REGRESSION,
        _commit(20),
    )
    assert [p.stored_run for p in history.get("tests/test_api.py::test_search", "instructions").points] == list(  # type: ignore[union-attr]
        range(1, 31)
    )


def test_fail_on_regression_and_the_environment_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    _promote(base, 24, step_at=12, factor=1.10, cpu_from=12)
    assert main(["history", str(base), "--fail-on-regression"]) == 1
    line = capsys.readouterr().out.splitlines()[2]
    assert line.endswith("ENVIRONMENT CHANGED (cpu): may be the runner, not the commits")
    improved = tmp_path / "improved"
    _promote(improved, 24, step_at=12, factor=0.9)
    assert main(["history", str(improved), "--fail-on-regression"]) == 0
    assert "IMPROVEMENT   -10.0%" in capsys.readouterr().out


def test_metric_since_and_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    _promote(base, 30, step_at=20, factor=1.05)
    assert main(["history", str(base), "--metric", "median", "--all"]) == 0
    text = capsys.readouterr().out
    assert "2 series judged" in text and "no open change point" in text and "[instructions]" not in text
    assert "  tests/test_api.py::test_list [median]: 30 runs, noise " in text
    assert main(["history", str(base), "--since", "25", "--metric", "instructions", "--metric", "nope"]) == 0
    text = capsys.readouterr().out
    assert "perfgate history: 6 runs, 1 series judged" in text and "no open change point" in text
    assert "  nope: no series of this metric in the history (it has: instructions, median)" in text
    assert main(["history", str(base), "--since", "27"]) == 0
    assert "4 run(s): at least 6 are needed to find a change point" in capsys.readouterr().out


def test_a_store_without_history_is_judged_from_its_runs_and_rebuilt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base"
    _promote(base, 8, step_at=4, factor=1.05, history=False)
    assert main(["history", str(base)]) == 0
    text = capsys.readouterr().out
    assert "perfgate history: 5 runs" in text and "no history.jsonl: judged the 5 stored run(s) only" in text
    assert main(["history", str(base), "--rebuild"]) == 0
    assert capsys.readouterr().out.startswith(f"rebuilt the history of {base} from its 5 stored run(s)\n")
    assert (base / LOG_NAME).exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda base: None, "is not a baseline directory"),
        (lambda base: (base.mkdir(), (base / LOG_NAME).write_text('{"schema":"other"}\n')), "history.jsonl:1: not a"),
    ],
)
def test_bad_input_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: Callable[[Path], object], message: str
) -> None:
    base = tmp_path / "base"
    setup(base)
    assert main(["history", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_json_path_is_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    _promote(base, 6, step_at=3, factor=1.05)
    (tmp_path / "notes.json").write_text("[1, 2]")
    assert main(["history", str(base), "--json", str(tmp_path / "notes.json")]) == 2
    assert "exists and is not a perfgate file" in capsys.readouterr().err


def test_alert_options_without_alert_and_an_unwritable_site_are_refused_before_judging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    assert main(["history", str(baseline), "--dry-run"]) == 2
    assert "error: --dry-run and --token-variable go with --alert gitlab" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["history", str(baseline), "--html", str(blocker / "site")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "site" in err


def _stepped_store(directory: Path, runs: int, step_at: int, seed: int = 5) -> DirectoryStore:
    rnd = random.Random(seed)
    store = DirectoryStore(str(directory))
    for i in range(runs):
        level = 1.0 if i < step_at else 1.3
        values = {"t::a": [level * 0.002 * rnd.lognormvariate(0, 0.03) for _ in range(7)]}
        values["t::b"] = [0.001 * rnd.lognormvariate(0, 0.03) for _ in range(7)]
        store.promote(RunResult({}, tuple(make_test(n, v) for n, v in values.items())))
    return store


def test_the_judged_state_is_kept_and_continued_and_agrees_with_judging_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_perfgate.history.analyse import STATE_NAME, judge, load_state, read

    directory = tmp_path / "b"
    store = _stepped_store(directory, 20, 30)  # no step yet
    assert main(["history", str(directory), "--json", str(tmp_path / "first.json")]) == 0
    state, why = load_state(directory)
    assert why == "" and state is not None and state.position.seq == 20
    assert len(state.series) == 2 and all(j.count == 20 and not j.splits for j in state.series.values())
    rnd = random.Random(9)
    for _ in range(12):  # the step arrives: 12 runs at +30%
        store.promote(
            RunResult(
                {},
                (
                    make_test("t::a", [1.3 * 0.002 * rnd.lognormvariate(0, 0.03) for _ in range(7)]),
                    make_test("t::b", [0.001 * rnd.lognormvariate(0, 0.03) for _ in range(7)]),
                ),
            )
        )
    capsys.readouterr()
    assert main(["history", str(directory), "--json", str(tmp_path / "resumed.json")]) == 0
    resumed = load_history(tmp_path / "resumed.json")
    whole = judge(read(directory))
    found = [(c.key.test, c.run, c.direction) for c in resumed.change_points()]
    assert found == [(c.key.test, c.run, c.direction) for c in whole.change_points()]
    assert found == [("t::a", 21, Direction.REGRESSION)]
    # the state moved on with the history
    state, _ = load_state(directory)
    assert state is not None and all(j.count == 32 for j in state.series.values())
    # a history replaced by another (rebuilt from other runs) is judged whole, and said
    (directory / LOG_NAME).rename(tmp_path / "kept.jsonl")
    store2 = _stepped_store(tmp_path / "other", 32, 10, seed=8)
    (Path(store2.location) / LOG_NAME).rename(directory / LOG_NAME)
    capsys.readouterr()
    assert main(["history", str(directory)]) == 0
    out = capsys.readouterr().out
    assert f"{directory / STATE_NAME} is of another history (part 1 does not begin with the runs judged)" in out
    assert "t::a [median]" in out and "run 11" in out
    # an unreadable state is said and judged whole, never an error
    (directory / STATE_NAME).write_text("{not json")
    assert main(["history", str(directory)]) == 0
    assert "history.state.json: not read (" in capsys.readouterr().out
    # and it is written anew: the next judging continues again; --full judges whole and keeps the state too
    assert load_state(directory) != (None, "")
    assert main(["history", str(directory), "--full"]) == 0
    assert "not read" not in capsys.readouterr().out


def _appended(directory: Path, values: dict[str, list[float]], *, roll_bytes: int = 1 << 30) -> None:
    from pytest_perfgate.history.log import append

    runs = len(next(iter(values.values())))
    for i in range(runs):
        tests = tuple(make_test(name, [v[i]] * 3) for name, v in values.items())
        append(directory, RunResult({"git": {"commit": f"{i:040x}"}}, tests), roll_bytes=roll_bytes)


def test_a_long_history_is_continued_from_its_last_runs_only_and_finds_what_judging_whole_finds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """600 runs; the judged state after 560; then 40 more with a step at run 571 in one series,
    appended across a roll of the history file. The continued judging reads only the last runs
    (each series' earlier points are not read), finds the step at its run, and agrees with
    judging the whole history again."""
    from pytest_perfgate.history.analyse import TAIL, judge, judge_directory, read
    from pytest_perfgate.history.log import parts

    rnd = random.Random(3)
    steps = {"t::step": 571, "t::old": 100}
    values = {
        name: [(1.5 if i + 1 >= at else 1.0) * rnd.lognormvariate(0, 0.02) for i in range(600)]
        for name, at in {**steps, "t::flat": 10**6}.items()
    }
    directory = tmp_path / "h"
    directory.mkdir()
    _appended(directory, {k: v[:560] for k, v in values.items()})
    first, notes = judge_directory(directory)
    assert notes == [] and [(c.key.test, c.run) for c in first.change_points()] == [("t::old", 100)]
    _appended(directory, {k: v[560:] for k, v in values.items()}, roll_bytes=(directory / LOG_NAME).stat().st_size)
    assert [k for k, _ in parts(directory)] == [1]  # rolled on the first of the 40
    continued, notes = judge_directory(directory)
    assert notes == []
    assert not continued.whole and {s.key.test: s.earlier for s in continued.series} == dict.fromkeys(
        ["t::flat", "t::old", "t::step"], 600 - TAIL - 40
    )
    assert [(c.key.test, c.run, c.open) for c in continued.change_points()] == [
        ("t::step", 571, True),
        ("t::old", 100, True),
    ]
    whole = judge(read(directory))
    assert [(c.key.test, c.run) for c in whole.change_points()] == [
        (c.key.test, c.run) for c in continued.change_points()
    ]
    assert {s.key.test: s.count for s in continued.series} == {s.key.test: s.count for s in whole.series}
    # what a change point before the runs read says comes from the state: its runs and commits
    old = continued.get("t::old", "median")
    assert old is not None and old.change_points[0].commits.first_new == f"{99:040x}"
    # nothing appended: the same again, from the state
    again, _ = judge_directory(directory)
    assert [(c.key.test, c.run) for c in again.change_points()] == [("t::step", 571), ("t::old", 100)]
    # asked for every point (--json, --html): all read, judged from the state all the same
    every, _ = judge_directory(directory, whole=True)
    assert every.whole and [len(s.points) for s in every.series] == [600, 600, 600]
    capsys.readouterr()
    assert main(["history", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "t::step [median]" in out and "run 571" in out and "600 runs" in out


@pytest.mark.parametrize(("seed", "more"), [(1, 2), (2, 20)])
def test_a_continued_judging_keeps_the_levels_of_judging_whole_around_a_young_change_point(
    tmp_path: Path, seed: int, more: int
) -> None:
    """A step at run 21 (1.0 -> 2.0) and a +3-4% bump in the last 6 runs of the first judging (a
    young change point whose previous one lies long before the runs a continued judging reads):
    after the runs since, kept or dropped, every level equals judging the whole series."""
    from pytest_perfgate.history.analyse import judge, judge_directory, read

    rnd = random.Random(seed)
    first = 290
    bump = 1.04 if seed == 1 else 1.03
    values = [
        (1.0 if i < 20 else 2.0) * (bump if first - 6 <= i < first else 1.0) * rnd.lognormvariate(0, 0.01)
        for i in range(first + more)
    ]
    directory = tmp_path / "h"
    directory.mkdir()
    _appended(directory, {"t::x": values[:first]})
    judged, _ = judge_directory(directory)
    assert [c.run for c in judged.change_points()][-1] == 21 and len(judged.change_points()) == 2
    _appended(directory, {"t::x": values[first:]})
    continued, notes = judge_directory(directory)
    whole = judge(read(directory))
    assert notes == []

    def levels(history: History) -> list[tuple[int, float, float]]:
        return [(c.run, c.before, c.after) for c in history.series[0].change_points]

    assert [run for run, *_ in levels(continued)] == [run for run, *_ in levels(whole)]
    for (_, b1, a1), (_, b2, a2) in zip(levels(continued), levels(whole), strict=True):
        assert math.isclose(b1, b2, rel_tol=1e-9) and math.isclose(a1, a2, rel_tol=1e-9)
