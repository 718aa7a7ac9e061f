"""Merge the results files of a sharded run (GitLab ``parallel: N``) into one, losing nothing.

A test that appears in two shards is an error (the shards overlapped, or one file was given
twice): which result would be the truth is not ours to guess.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .errors import ResultsFileError
from .model import RunResult, TestResult, load_results


def merge_runs(runs: Sequence[tuple[str, RunResult]]) -> RunResult:
    """``runs`` are (source path, run) pairs; the merged metadata is the first run's, with a
    ``shards`` list saying where each part came from."""
    if not runs:
        raise ResultsFileError("<merge>", "no results files to merge")
    owner: dict[str, str] = {}
    tests: list[TestResult] = []
    shards: list[dict[str, Any]] = []
    for source, run in runs:
        for test in run.tests:
            if test.nodeid in owner:
                raise ResultsFileError(
                    source,
                    f"test {test.nodeid!r} is also in {owner[test.nodeid]}: shards must not overlap "
                    "(or the same file was given twice)",
                )
            owner[test.nodeid] = source
            tests.append(test)
        ci = run.metadata.get("ci") or {}
        shards.append(
            {
                "source": source,
                "tests": len(run.tests),
                "node_index": ci.get("CI_NODE_INDEX"),
                "created": run.metadata.get("created"),
            }
        )
    metadata = {**runs[0][1].metadata, "shards": shards}
    return RunResult(metadata=metadata, tests=tuple(tests))


def merge_files(paths: Sequence[str | os.PathLike[str]]) -> RunResult:
    return merge_runs([(os.fspath(p), load_results(p)) for p in paths])
