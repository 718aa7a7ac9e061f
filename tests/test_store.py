"""Baseline stores: promote keeps the last K runs atomically; loading reads several runs."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from pytest_perfgate.config import GateSettings
from pytest_perfgate.errors import ResultsFileError
from pytest_perfgate.gate import compare
from pytest_perfgate.model import load_results, run_to_dict, save_results
from pytest_perfgate.store import BaselineStore, open_store
from pytest_perfgate.store.files import DirectoryStore, FileStore
from test_gate import make_run


def _run(level: float):  # type: ignore[no-untyped-def]
    return make_run({"t::a": [level] * 3})


def test_promote_numbers_runs_and_keeps_the_last_k(tmp_path: Path) -> None:
    store = open_store(tmp_path / "baselines")
    assert isinstance(store, DirectoryStore) and isinstance(store, BaselineStore)
    assert store.load() is None  # not there yet: no baseline, not an error
    for level in (1.0, 2.0, 3.0, 4.0, 5.0):
        store.promote(_run(level), keep=3)
    names = sorted(p.name for p in (tmp_path / "baselines").iterdir())
    assert names == [f"run-00000{i}{suffix}" for i in (3, 4, 5) for suffix in (".json", ".summary.json")]
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
