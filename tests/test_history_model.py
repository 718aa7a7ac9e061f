"""The judged-history model: JSON round trip, versioning, errors naming the file and key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_perfgate.errors import ResultsFileError
from pytest_perfgate.history.model import (
    ChangePoint,
    CommitRange,
    Direction,
    Environment,
    FieldChange,
    History,
    NotJudged,
    Point,
    SeriesHistory,
    SeriesKey,
    SeriesKind,
    environment_changes,
    history_from_dict,
    history_to_dict,
    load_history,
    write_history,
)


def _history() -> History:
    key = SeriesKey("tests/test_a.py::test_x", "instructions", "", SeriesKind.COUNTER)
    old = Environment.of({"python": "3.11.7", "valgrind": "3.19.0", "hash_seed": None})
    new = Environment.of({"python": "3.11.8", "valgrind": "3.19.0"})
    points = tuple(
        Point(run=i + 1, commit=f"{i:x}" * 40, ref="main", time=f"2026-12-0{1 + i % 9}T00:00:00+00:00",
              centre=1000.0 if i < 4 else 1100.0, spread=0.0, count=3, environment=old if i < 4 else new)
        for i in range(8)
    )  # fmt: skip
    cp = ChangePoint(
        key=key,
        index=4,
        commits=CommitRange(4, points[3].commit, 5, points[4].commit),
        before=1000.0,
        after=1100.0,
        change=0.1,
        direction=Direction.REGRESSION,
        p_value=1e-9,
        environment_changed=True,
        environment_fields=environment_changes(old, new),
        open=True,
    )
    timed = SeriesKey("tests/test_a.py::test_x", "median", "s", SeriesKind.TIMING)
    return History(
        series=(
            SeriesHistory(key, points, (cp,), noise=0.0, min_detectable_step=0.001),
            SeriesHistory(timed, points[:2], noise=None, min_detectable_step=None),
        ),
        runs=8,
        not_judged=(NotJudged("tests/test_a.py::test_y [median]", "2 runs: at least 6 are needed"),),
        source="base/",
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    history = _history()
    path = write_history(history, tmp_path / "h.json")
    again = load_history(path)
    assert again == history
    cp = again.series[0].change_points[0]
    assert cp.environment_fields == (FieldChange("python", "3.11.7", "3.11.8"),)
    assert cp.commits.text == "33333333..44444444"
    assert again.open_change_points() == [cp]
    assert again.ordered()[0].key.metric == "instructions"


def test_unknown_keys_are_kept_and_newer_fields_ignored() -> None:
    data = history_to_dict(_history())
    data["from_the_future"] = {"x": 1}
    data["series"][0]["new_field"] = 3
    history = history_from_dict(json.loads(json.dumps(data)), "h.json")
    assert history.extra == {"from_the_future": {"x": 1}}
    assert history_to_dict(history)["from_the_future"] == {"x": 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema="perfgate-run"), "not a perfgate history (schema is 'perfgate-run'"),
        (lambda d: d.update(schema_version=2), "history schema_version 2 is not supported"),
        (lambda d: d["series"][0].update(kind="fuzzy"), "series[0].kind: 'fuzzy' is not one of timing, counter"),
        (lambda d: d["series"][0]["points"]["centre"].pop(), "series[0].points: run, centre, spread and count"),
        (lambda d: d["series"][0]["change_points"][0].update(index=0), "series[0].change_points[0].index: 0 is not"),
        (lambda d: d["runs"][0].update(environment="abc"), "runs[0].environment: 'abc' is not in environments"),
        (lambda d: d["series"][1]["points"]["run"].__setitem__(0, 99), "series[1].points.run[0]: run 99 is not in"),
    ],
)
def test_malformed_history_names_the_file_and_key(
    tmp_path: Path, change: Callable[[dict[str, Any]], object], message: str
) -> None:
    data = history_to_dict(_history())
    change(data)
    path = tmp_path / "h.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsFileError) as info:
        load_history(path)
    assert info.value.path == str(path)
    assert message in info.value.reason


def test_truncated_and_empty_files_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps(history_to_dict(_history()))[:100])
    with pytest.raises(ResultsFileError, match="not valid JSON"):
        load_history(path)
    path.write_text("")
    with pytest.raises(ResultsFileError, match="is empty"):
        load_history(path)


def test_direction_and_environment_helpers() -> None:
    a = Environment.of({"python": "3.11.7"})
    assert Environment.of({}) is None and Environment.of(None) is None
    assert a is not None and a.digest == Environment.of({"python": "3.11.7"}).digest  # type: ignore[union-attr]
    assert environment_changes(a, None) == () and environment_changes(a, a) == ()
    rate = SeriesKey("t", "rps", "/s", SeriesKind.TIMING, higher_is_better=True)
    assert rate.label == "t [rps]" and len(rate.slug) == 16
