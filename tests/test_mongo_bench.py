"""bench/mongo_scale/scale.py: labelled figures, no index claims from mongomock, and the
with/without-index plan column on a (fake, wire-protocol) server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_scale():
    spec = importlib.util.spec_from_file_location("mongo_scale", ROOT / "bench" / "mongo_scale" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mongomock_figures_make_no_index_claims(tmp_path, capsys):
    out = tmp_path / "results.md"
    assert (
        load_scale().main(
            ["--n", "300", "--batch", "100", "--repeat", "1", "--backend", "mongomock", "--results", str(out)]
        )
        == 0
    )
    text = out.read_text()
    assert "300 audit documents on mongomock" in text
    assert "NOT evidence about indexes" in text
    assert "with index" not in text and "| n/a (mongomock) | recent(user, time range, sorted) |" in text


def test_server_figures_show_the_plan_without_and_with_the_index(tmp_path, capsys):
    from fake_mongo_server import FakeMongoServer

    out = tmp_path / "results.md"
    with FakeMongoServer() as server:
        assert (
            load_scale().main(
                [
                    "--n",
                    "300",
                    "--batch",
                    "100",
                    "--repeat",
                    "1",
                    "--users",
                    "10",
                    "--backend",
                    "uri",
                    "--uri",
                    server.uri,
                    "--results",
                    str(out),
                ]
            )
            == 0
        )
        assert not server.store.dbs, "the bench database is dropped"
    rows = [line for line in out.read_text().splitlines() if line.startswith("| with")]
    assert "COLLSCAN; 300 docs examined" in rows[0] and rows[0].startswith("| without index | recent")
    assert "IXSCAN user_1_ts_-1; 30 docs examined" in rows[2] and rows[2].startswith("| with index | recent")


def test_n_is_bounded():
    with pytest.raises(SystemExit):
        load_scale().main(["--n", "2000000", "--backend", "mongomock"])
