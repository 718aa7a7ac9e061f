"""Merge results files into one, losing nothing: the shards of a sharded run (GitLab ``parallel:
N``), and a timed run with a counted run of the same suite (``--perfgate-instructions`` records
counts and no times, so the two are separate sessions; docs/gitlab.md, ``PERFGATE_INSTRUCTIONS``).

* A test in one file only is taken as it is.
* A test in two files is one test measured twice, once timed and once counted: allowed when their
  series are disjoint. The merged test has the union of the series; its outcome is the worse of
  the two (:data:`OUTCOME_ORDER`); its budget verdicts are both files' (the timed file's on a
  metric both judged); its evidence both files'
  (a key in both with different values is an error naming the key, except ``error``: both texts
  are kept, each after its file's name). One exception to "disjoint": a series the test records
  itself (``perf.record``, a KPI such as a hit ratio) is recorded by the counted session too; when
  exactly one of the two files is a counted run (its run has an environment fingerprint) and the
  series in both are neither ``time`` nor a counter, the other (timed) file's are kept, measured
  outside the simulator, and the shard entry of the counted file lists what was dropped.
  Any other overlap (the same series in both: the shards overlapped, or one file was given twice)
  is an error naming the test, the series and the two files.
* The merged run's metadata is the first file's, with a ``shards`` list saying where each part came
  from, and the environment fingerprint (``fingerprint``) of the counted files: the counters are
  compared by it. Counted files whose fingerprints differ are an error (counts from two
  environments in one run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .errors import ResultsFileError
from .model import Outcome, RunResult, TestResult, load_results

#: the outcome a test measured twice gets: the worse of its two, in this order (worst first).
#: ``skipped`` is last: a test skipped in one session (say, not countable) and passed in the other
#: is a passed test with fewer series. A word perfgate does not know ranks with ``error``.
OUTCOME_ORDER = (
    Outcome.CRASHED.value,
    Outcome.FAILED.value,
    Outcome.ERROR.value,
    Outcome.PASSED.value,
    Outcome.SKIPPED.value,
)
#: the series only a counted session records; never taken from one file over the other
COUNTER_SERIES = frozenset({"instructions", "est_cycles", "alloc_blocks", "alloc_bytes"})
TIME_SERIES = "time"
FINGERPRINT_KEY = "fingerprint"


def _outcome_rank(outcome: str) -> int:
    return OUTCOME_ORDER.index(outcome) if outcome in OUTCOME_ORDER else OUTCOME_ORDER.index(Outcome.ERROR.value)


def worse_outcome(a: str, b: str) -> str:
    """The worse of two outcomes (:data:`OUTCOME_ORDER`); on a tie, ``a``."""
    return b if _outcome_rank(b) < _outcome_rank(a) else a


def _is_counted(run: RunResult) -> bool:
    return isinstance(run.metadata.get(FINGERPRINT_KEY), Mapping)


class _Part:
    """One test as merged so far: where it came from and whether that file was a counted run."""

    def __init__(self, test: TestResult, source: str, counted: bool) -> None:
        self.test, self.source, self.counted = test, source, counted


def _names(names: Sequence[str] | set[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names))


def _merge_evidence(nodeid: str, first: _Part, source: str, test: TestResult) -> dict[str, Any]:
    merged = dict(first.test.evidence)
    for key, value in test.evidence.items():
        if key not in merged or merged[key] == value:
            merged[key] = value
        elif key == "error" and isinstance(value, str) and isinstance(merged[key], str):
            merged[key] = f"{first.source}: {merged[key]}\n{source}: {value}"
        else:
            raise ResultsFileError(
                source,
                f"test {nodeid!r} is also in {first.source} and both hold evidence {key!r} with different values: "
                "which one is the test's is not for perfgate merge to guess",
            )
    return merged


def _combine(part: _Part, source: str, test: TestResult, counted: bool) -> tuple[TestResult, str, list[str]]:
    """``test`` (from ``source``) joined to the test merged so far; with the file whose series gave
    way to the timed file's and their names (see the module's docstring)."""
    first = part.test
    both = set(first.series) & set(test.series)
    if both and (part.counted == counted or both & (COUNTER_SERIES | {TIME_SERIES})):
        raise ResultsFileError(
            source,
            f"test {test.nodeid!r} is also in {part.source} and both record {_names(both)}: a test may be in two "
            "files only when their series are disjoint (a timed run and a counted run of one suite); shards "
            "must not overlap (or the same file was given twice)",
        )
    # the timed file's test: its series win where both have one (a KPI), its mode and duration stay
    timed, other = (test, first) if part.counted and not counted else (first, test)
    series = {**other.series, **timed.series}
    # the budgets: the timed run's verdicts, then the counted run's on other metrics (a budget on a time
    # is "not checked" in a counted session; on a count, in a timed one)
    seen = {(v.metric, v.source) for v in timed.verdicts}
    verdicts = timed.verdicts + tuple(v for v in other.verdicts if (v.metric, v.source) not in seen)
    merged = replace(
        first,
        outcome=worse_outcome(first.outcome, test.outcome),
        mode=timed.mode or other.mode,
        duration=timed.duration,
        series=series,
        verdicts=verdicts,
        evidence=_merge_evidence(test.nodeid, part, source, test),
    )
    return merged, (part.source if timed is test else source), sorted(both)


def _fingerprint(runs: Sequence[tuple[str, RunResult]]) -> Mapping[str, Any] | None:
    """The counted files' environment fingerprint; an error when two of them differ."""
    found: tuple[str, Mapping[str, Any]] | None = None
    for source, run in runs:
        if not _is_counted(run):
            continue
        current = run.metadata[FINGERPRINT_KEY]
        if found is None:
            found = (source, current)
        elif dict(found[1]) != dict(current):
            differ = sorted(k for k in set(found[1]) | set(current) if found[1].get(k) != current.get(k))
            raise ResultsFileError(
                source,
                f"its environment fingerprint differs from {found[0]}'s ({', '.join(differ)}): counts taken in two "
                "environments cannot be one run",
            )
    return None if found is None else found[1]


def merge_runs(runs: Sequence[tuple[str, RunResult]]) -> RunResult:
    """``runs`` are (source path, run) pairs; see the module's docstring for the rules."""
    if not runs:
        raise ResultsFileError("<merge>", "no results files to merge")
    parts: dict[str, _Part] = {}
    order: list[str] = []
    shards: list[dict[str, Any]] = []
    dropped_by_source: dict[str, dict[str, list[str]]] = {}
    for source, run in runs:
        counted = _is_counted(run)
        for test in run.tests:
            part = parts.get(test.nodeid)
            if part is None:
                parts[test.nodeid] = _Part(test, source, counted)
                order.append(test.nodeid)
                continue
            merged, gave_way, dropped = _combine(part, source, test, counted)
            if dropped:
                dropped_by_source.setdefault(gave_way, {})[test.nodeid] = dropped
            # once joined, the test is no longer one file's: a third file with it is an overlap
            part.test, part.source, part.counted = merged, f"{part.source} and {source}", False
        ci = run.metadata.get("ci") or {}
        shards.append(
            {
                "source": source,
                "tests": len(run.tests),
                "node_index": ci.get("CI_NODE_INDEX"),
                "created": run.metadata.get("created"),
                **({"counted": True} if counted else {}),
            }
        )
    for shard in shards:
        if shard["source"] in dropped_by_source:
            shard["series_kept_from_the_timed_run"] = dropped_by_source[shard["source"]]
    metadata: dict[str, Any] = {**runs[0][1].metadata, "shards": shards}
    fingerprint = _fingerprint(runs)
    if fingerprint is not None:
        metadata[FINGERPRINT_KEY] = dict(fingerprint)
    return RunResult(metadata=metadata, tests=tuple(parts[n].test for n in order))


def merge_files(paths: Sequence[str | os.PathLike[str]]) -> RunResult:
    return merge_runs([(os.fspath(p), load_results(p)) for p in paths])
