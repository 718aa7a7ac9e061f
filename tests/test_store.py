"""Baseline stores: promote keeps the last K runs atomically, and the directory's index in step;
loading reads several runs (with or without an index)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from harness.results import make_run
from pytest_perfgate.config import GateSettings
from pytest_perfgate.errors import ResultsFileError
from pytest_perfgate.gate import compare
from pytest_perfgate.model import load_results, run_to_dict, save_results
from pytest_perfgate.store import BaselineStore, open_store
from pytest_perfgate.store.files import INDEX_NAME, DirectoryStore, FileStore, index_to_dict, parse_index


def _run(level: float):  # type: ignore[no-untyped-def]
    return make_run({"t::a": [level] * 3})


def test_promote_numbers_runs_and_keeps_the_last_k(tmp_path: Path) -> None:
    store = open_store(tmp_path / "baselines")
    assert isinstance(store, DirectoryStore) and isinstance(store, BaselineStore)
    assert store.load() is None  # not there yet: no baseline, not an error
    for level in (1.0, 2.0, 3.0, 4.0, 5.0):
        store.promote(_run(level), keep=3)
    names = sorted(p.name for p in (tmp_path / "baselines").iterdir())
    runs = [f"run-00000{i}{suffix}" for i in (3, 4, 5) for suffix in (".json", ".summary.json")]
    assert names == ["history.jsonl", INDEX_NAME, *runs]  # the long history keeps all 5 (test_history_log.py)
    baseline = store.load()
    assert baseline is not None
    assert [_median(r) for r in baseline.runs] == [3.0, 4.0, 5.0]  # oldest first
    assert baseline.sources[-1].endswith("run-000005.json")
    full = load_results(tmp_path / "baselines" / "run-000005.json")  # the full run stays stored
    assert full.tests[0].series["time"].values == (5.0, 5.0, 5.0)


def _median(run) -> float:  # type: ignore[no-untyped-def]
    return float(run.tests[0].evidence["summary"]["time"]["median"])


def test_summaries_give_the_same_gate_figures_as_the_full_runs(tmp_path: Path) -> None:
    rng = random.Random(4)
    names = [f"t{i}" for i in range(12)]
    runs = [make_run({n: [rng.lognormvariate(0, 0.1) for _ in range(15)] for n in names}) for _ in range(6)]
    store = DirectoryStore(str(tmp_path))
    for run in runs:
        store.promote(run)
    stored = store.load()
    assert stored is not None and all(r.metadata.get("summarised") for r in stored.runs)
    assert all(t.series["time"].values == () for r in stored.runs for t in r.tests)
    current = make_run({n: [rng.lognormvariate(0.2, 0.1) for _ in range(15)] for n in names})
    for metric in ("median", "p95", "min"):
        settings = GateSettings(metric=metric)
        assert compare(stored.runs, current, settings) == compare(runs, current, settings)


def test_a_run_newer_than_its_summary_is_read_in_full(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    store.promote(_run(1.0))
    path = tmp_path / "run-000001.json"
    save_results(path, _run(7.0))  # replaced by hand after promotion
    os.utime(path, (time.time() + 10, time.time() + 10))
    baseline = store.load()
    assert baseline is not None and baseline.runs[0].tests[0].series["time"].values == (7.0, 7.0, 7.0)


def test_concurrent_promotions_never_overwrite_each_other(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    threads = [threading.Thread(target=store.promote, args=(_run(float(i)),), kwargs={"keep": 100}) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    baseline = store.load()
    assert baseline is not None
    assert sorted(_median(r) for r in baseline.runs) == [float(i) for i in range(8)]


def test_a_corrupt_stored_run_is_an_error_naming_the_file(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    store.promote(_run(1.0))
    (tmp_path / "run-000002.json").write_text('{"schema": "perfgate-results", "schema_version": 1, "tes')
    with pytest.raises(ResultsFileError, match=r"run-000002\.json: is not valid JSON"):
        store.load()
    (tmp_path / "run-000002.json").write_text(json.dumps({**run_to_dict(_run(1.0)), "schema_version": 99}))
    with pytest.raises(ResultsFileError, match=r"run-000002\.json: schema_version 99 is not supported"):
        store.load()


def test_other_files_in_the_directory_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("notes")
    (tmp_path / "run-1.json").write_text("not ours")
    store = DirectoryStore(str(tmp_path))
    assert store.load() is None
    store.promote(_run(1.0))
    assert (tmp_path / "run-000001.json").exists()


def test_file_store(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    store = open_store(path)
    assert isinstance(store, FileStore) and store.load() is None
    store.promote(_run(2.0))
    assert load_results(path).tests[0].series["time"].values == (2.0, 2.0, 2.0)
    baseline = store.load()
    assert baseline is not None and len(baseline.runs) == 1


def test_open_store_picks_by_shape(tmp_path: Path) -> None:
    (tmp_path / "existing").mkdir()
    assert isinstance(open_store(tmp_path / "existing"), DirectoryStore)
    assert isinstance(open_store(f"{tmp_path}/new-dir/"), DirectoryStore)
    assert isinstance(open_store(tmp_path / "new-dir-no-slash"), DirectoryStore)
    assert isinstance(open_store(tmp_path / "b.json"), FileStore)
    (tmp_path / "file").write_text("x")
    assert isinstance(open_store(tmp_path / "file"), FileStore)


def test_directory_store_on_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    with pytest.raises(ResultsFileError, match="is not a directory"):
        DirectoryStore(str(tmp_path / "x")).load()


def test_a_corrupt_summary_is_an_error_naming_it(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    store.promote(_run(1.0))
    summary = tmp_path / "run-000001.summary.json"
    summary.write_text('{"schema": "perfgate-run-summary", "schema_version": 1, "tests": [{"nodeid": 1}]}')
    os.utime(summary, (time.time() + 10, time.time() + 10))
    with pytest.raises(ResultsFileError, match=r"run-000001\.summary\.json: malformed run summary"):
        store.load()
    summary.write_text('{"schema": "perfgate-run-summary", "schema_version": 7, "tests": []}')
    os.utime(summary, (time.time() + 10, time.time() + 10))
    with pytest.raises(ResultsFileError, match="summary schema_version 7 is not supported"):
        store.load()


def _index(directory: Path) -> tuple[str, ...]:
    path = directory / INDEX_NAME
    return parse_index(path.read_bytes(), str(path))


def test_the_index_lists_the_stored_runs_oldest_first_in_step_with_keep(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path / "b"))
    assert store.index_path == tmp_path / "b" / INDEX_NAME
    expected: list[str] = []
    for number, level in enumerate((1.0, 2.0, 3.0, 4.0, 5.0), start=1):
        store.promote(_run(level), keep=3)
        expected = [*expected, f"run-{number:06d}.json"][-3:]
        assert _index(tmp_path / "b") == tuple(expected)
    data = json.loads((tmp_path / "b" / INDEX_NAME).read_text())
    assert data == {"schema": "perfgate-baseline-index", "schema_version": 1, "runs": expected}
    # a smaller keep later drops the oldest from the directory and the index alike
    store.promote(_run(6.0), keep=1)
    assert _index(tmp_path / "b") == ("run-000006.json",)
    assert sorted(p.name for p in (tmp_path / "b").glob("run-*.json")) == ["run-000006.json", "run-000006.summary.json"]
    # no temporary file is left beside it
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if p.name.startswith(".")) == []


def test_the_index_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while the index is written leaves the previous one whole, never a partial file."""
    import pytest_perfgate.model as model

    store = DirectoryStore(str(tmp_path))
    store.promote(_run(1.0))
    before = (tmp_path / INDEX_NAME).read_bytes()

    real_replace = os.replace

    def crash_on_index(src: str, dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == INDEX_NAME:
            raise OSError("disk gone")
        real_replace(src, dst)

    monkeypatch.setattr(model.os, "replace", crash_on_index)
    with pytest.raises(OSError, match="disk gone"):
        store.promote(_run(2.0))
    assert (tmp_path / INDEX_NAME).read_bytes() == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_concurrent_promotions_leave_the_index_equal_to_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each promotion writes the index from the listing it saw. Here the first promotion is held
    just before it writes its index until eight others have finished: it writes last, from the
    oldest listing, and that listing must not be the last word."""
    import pytest_perfgate.store.files as files

    real_write = files.write_json_atomic
    listed, others_done = threading.Event(), threading.Event()

    def held_index_write(path: str | os.PathLike[str], data: object) -> Path:
        if Path(path).name == INDEX_NAME and threading.current_thread().name == "first" and not others_done.is_set():
            listed.set()
            assert others_done.wait(30)
        return real_write(path, data)

    monkeypatch.setattr(files, "write_json_atomic", held_index_write)
    store = DirectoryStore(str(tmp_path))
    first = threading.Thread(target=store.promote, args=(_run(0.0),), kwargs={"keep": 4}, name="first")
    first.start()
    assert listed.wait(30)
    others = [threading.Thread(target=store.promote, args=(_run(float(i)),), kwargs={"keep": 4}) for i in range(8)]
    for t in others:
        t.start()
    for t in others:
        t.join()
    assert list(_index(tmp_path))[-1] == "run-000009.json"  # the others kept it in step meanwhile
    others_done.set()
    first.join()
    stored = sorted(p.name for p in tmp_path.glob("run-*.json") if not p.name.endswith(".summary.json"))
    assert stored == [f"run-{i:06d}.json" for i in (6, 7, 8, 9)]
    assert list(_index(tmp_path)) == stored


def test_loading_does_not_depend_on_the_index(tmp_path: Path) -> None:
    """Older directories have no index (examples/catalog/baseline); a stale or even corrupt index
    does not change what is loaded: the run files are the baseline."""
    store = DirectoryStore(str(tmp_path))
    for level in (1.0, 2.0, 3.0):
        store.promote(_run(level))
    (tmp_path / INDEX_NAME).unlink()
    loaded = store.load()
    assert loaded is not None and [_median(r) for r in loaded.runs] == [1.0, 2.0, 3.0]
    (tmp_path / INDEX_NAME).write_text("{not json")
    loaded = store.load()
    assert loaded is not None and [_median(r) for r in loaded.runs] == [1.0, 2.0, 3.0]
    store.promote(_run(4.0))  # and the next promotion writes it anew
    assert _index(tmp_path) == tuple(f"run-00000{i}.json" for i in (1, 2, 3, 4))


def test_file_store_writes_no_index(tmp_path: Path) -> None:
    FileStore(str(tmp_path / "b.json")).promote(_run(1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]


def test_parse_index_round_trips_and_names_the_file_in_errors() -> None:
    names = ("run-000002.json", "run-000010.json")
    assert parse_index(json.dumps(index_to_dict(names)).encode(), "x/index.json") == names
    with pytest.raises(ResultsFileError, match=r"^x/index\.json: runs\[0\]: 'run-2\.json' is not a stored run's"):
        parse_index(json.dumps(index_to_dict(["run-2.json"])).encode(), "x/index.json")
