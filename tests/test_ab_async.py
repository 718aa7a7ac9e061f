"""``perfgate ab`` pairs awaited ``perf`` calls: a sync test's ``perf(coroutine_function)`` (one loop
in each worker) and an async test's ``await perf.aio(...)`` (the test's own loop, blocked on the
controller's orders between rounds). The real command on a git repository made here: an async
slowdown fails, an unchanged commit passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.ab import LIBRARY, NOT_A_REGRESSION, ab, ab_against_main, make_repository, no_worktrees_left

pytest.importorskip("pytest_asyncio")

AIO = """\
import asyncio

from . import checksum, render


async def acheck(n=3000):
    await asyncio.sleep(0)  # one turn of the loop, then the work
    return checksum(n)


async def arender(items=200):
    await asyncio.sleep(0)
    return render(items)
"""

TESTS = """\
import pytest

from shop.aio import acheck, arender


def test_sync_awaited(perf):
    assert perf(acheck) > 0


@pytest.mark.asyncio
async def test_async_awaited(perf):
    assert await perf.aio(acheck) > 0


@pytest.mark.asyncio
async def test_async_untouched(perf):
    assert (await perf.aio(arender)).startswith("0,1")
"""

NODES = {
    name: f"tests/test_shop.py::{name}" for name in ("test_sync_awaited", "test_async_awaited", "test_async_untouched")
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repository(
        tmp_path / "project",
        {
            "src/shop/__init__.py": LIBRARY.format(loops="n"),
            "src/shop/aio.py": AIO,
            "tests/test_shop.py": TESTS,
            "pytest.ini": "[pytest]\nperfgate_max_time = 0.1s\nperfgate_warmup = 0.01s\n"
            "asyncio_default_fixture_loop_scope = function\n",
        },
    )


def test_ab_pairs_awaited_calls(repo: Path, tmp_path: Path) -> None:
    unchanged = ab_against_main(repo, tmp_path / "same.json", "--save-current", str(tmp_path / "same-current.json"))
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert unchanged.stdout.startswith("perfgate: PASSED (")
    same = {c["nodeid"]: c for c in json.loads((tmp_path / "same.json").read_text())["comparisons"]}
    for nodeid in NODES.values():
        assert same[nodeid]["verdict"] in NOT_A_REGRESSION, same[nodeid]
    # each worker awaited the calls: a sync test's on one loop, an async test's in the test's loop
    saved = {
        t["nodeid"]: t["series"]["time"] for t in json.loads((tmp_path / "same-current.json").read_text())["tests"]
    }
    assert saved[NODES["test_sync_awaited"]]["awaited"] == "one asyncio loop"
    assert saved[NODES["test_async_awaited"]]["awaited"] == "the test's asyncio loop"
    assert all(v > 0 for v in saved[NODES["test_async_awaited"]]["values"])

    # 40% more iterations in checksum, behind the awaited call
    (repo / "src" / "shop" / "__init__.py").write_text(LIBRARY.format(loops="n * 7 // 5"))
    slow = ab_against_main(repo, tmp_path / "ab.json")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    assert slow.stdout.startswith("perfgate: FAILED: 2 regressions (")
    rows = {c["nodeid"]: c for c in json.loads((tmp_path / "ab.json").read_text())["comparisons"]}
    for name in ("test_sync_awaited", "test_async_awaited"):
        assert rows[NODES[name]]["verdict"] == "regression", rows[NODES[name]]
        assert rows[NODES[name]]["change"] > 0.1, rows[NODES[name]]
    assert rows[NODES["test_async_untouched"]]["verdict"] in NOT_A_REGRESSION
    no_worktrees_left(repo)


def test_ab_reports_an_awaited_call_that_raises_mid_rounds(repo: Path) -> None:
    (repo / "tests" / "test_shop.py").write_text(
        TESTS
        + """

calls = []


async def flaky():
    calls.append(1)
    if len(calls) > 3:
        raise RuntimeError("broke in a round")


@pytest.mark.asyncio
async def test_breaks(perf):
    await perf.aio(flaky)
"""
    )
    run = ab(repo, "--base", "main", "--min-blocks", "6", "--", "tests", "-k", "breaks")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "RuntimeError: broke in a round" in run.stdout + run.stderr
    no_worktrees_left(repo)
