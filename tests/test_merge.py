from __future__ import annotations

from pathlib import Path

import pytest

from pytest_perfgate.errors import ResultsFileError
from pytest_perfgate.merge import merge_files
from pytest_perfgate.model import RunResult, Series, TestResult, save_results
from pytest_perfgate.units import Kind


def _shard(path: Path, index: int, names: list[str]) -> Path:
    tests = tuple(TestResult(n, series={"time": Series("time", Kind.TIME, (0.1, 0.2))}) for n in names)
    return save_results(path, RunResult({"created": f"t{index}", "ci": {"CI_NODE_INDEX": str(index)}}, tests))


def test_shards_merge_losing_nothing(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a.json", 1, ["t::a", "t::b"])
    b = _shard(tmp_path / "b.json", 2, ["t::c"])
    merged = merge_files([a, b])
    assert sorted(t.nodeid for t in merged.tests) == ["t::a", "t::b", "t::c"]
    assert merged.by_nodeid()["t::c"].series["time"].values == (0.1, 0.2)
    assert [(s["source"], s["tests"], s["node_index"]) for s in merged.metadata["shards"]] == [
        (str(a), 2, "1"),
        (str(b), 1, "2"),
    ]


def test_overlapping_shards_are_rejected(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a.json", 1, ["t::a"])
    b = _shard(tmp_path / "b.json", 2, ["t::b", "t::a"])
    with pytest.raises(ResultsFileError, match=rf"{b}: test 't::a' is also in {a}: shards must not overlap"):
        merge_files([a, b])
    with pytest.raises(ResultsFileError, match="also in"):
        merge_files([a, a])


def test_nothing_to_merge_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ResultsFileError, match="no results files to merge"):
        merge_files([])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ResultsFileError, match=r"bad.json: is not valid JSON"):
        merge_files([tmp_path / "bad.json"])
