"""What one test's captured commands mean: the query-budget series, what could not be checked
and why, N+1 repeats, index advice (static, reconciled with ``explain`` on real servers), and
the report text. Pure: the database is reached only through the callables passed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import advisor
from .capture import EXPLAINABLE, QueryRecord, Repeat, find_repeats
from .explain import ExplainSummary, summarize

ExplainFn = Callable[[QueryRecord], Mapping[str, Any]]
IndexesFn = Callable[[str, str], Mapping[str, advisor.IndexKey]]

MONGOMOCK_REASON = "on mongomock, which has no explain (run on a real server: --perfgate-mongo-uri, Docker or mongod)"
EXPLAIN_METRICS = ("docs_examined", "collscan")


@dataclass(frozen=True)
class Analysis:
    queries: int
    docs_examined: int | None = None
    collscans: int | None = None
    not_checked: Mapping[str, str] = field(default_factory=dict)
    repeats: tuple[Repeat, ...] = ()
    advice: tuple[advisor.Advice, ...] = ()
    explained: tuple[tuple[QueryRecord, ExplainSummary], ...] = ()
    problems: tuple[str, ...] = ()


def analyse(
    records: Sequence[QueryRecord],
    *,
    real_server: bool,
    explain_all: bool,
    explain: ExplainFn | None,
    indexes: IndexesFn | None,
    repeat_threshold: int,
    explain_limit: int = 100,
) -> Analysis:
    """Analyse a test's records.

    ``explain_all``: explain every explainable command (the test budgets docs_examined or
    collscan); otherwise, when ``explain`` is given, one command per distinct shape is explained,
    for the index advice. Without ``explain`` the advice is the static estimate.
    """
    problems: list[str] = []
    not_checked: dict[str, str] = {}
    explained: list[tuple[QueryRecord, ExplainSummary]] = []
    explainable = [r for r in records if r.command in EXPLAINABLE and not r.error]
    if not real_server:
        not_checked.update(dict.fromkeys(EXPLAIN_METRICS, MONGOMOCK_REASON))
    elif explain is None:
        if explain_all:
            not_checked.update(dict.fromkeys(EXPLAIN_METRICS, "explain is not available"))
    else:
        if explain_all:
            targets = explainable
        else:
            firsts: dict[str, QueryRecord] = {}
            for record in explainable:
                firsts.setdefault(record.shape_key, record)
            targets = list(firsts.values())
        if explain_all and len(targets) > explain_limit:
            reason = (
                f"{len(targets)} explainable commands, more than the limit of {explain_limit} "
                "explains per test (raise --perfgate-mongo-explain-limit)"
            )
            not_checked.update(dict.fromkeys(EXPLAIN_METRICS, reason))
            targets = targets[:explain_limit]
        failed = []
        for record in targets:
            try:
                explained.append((record, summarize(explain(record))))
            except Exception as exc:
                why = str(exc).splitlines()[0] if str(exc) else repr(exc)
                failed.append(f"explain of {record.describe()} failed: {why}")
        problems.extend(failed)
        if failed and explain_all:
            not_checked.update(dict.fromkeys(EXPLAIN_METRICS, failed[0]))
    docs = collscans = None
    if explain_all and explained and not not_checked:
        docs = sum(s.docs_examined for _, s in explained)
        collscans = sum(s.collscans for _, s in explained)
    elif explain_all and not explainable and not not_checked:
        docs = collscans = 0
    advice = _advice(records, explained, indexes, problems)
    return Analysis(
        queries=len(records),
        docs_examined=docs,
        collscans=collscans,
        not_checked=not_checked,
        repeats=tuple(find_repeats(records, repeat_threshold)) if repeat_threshold > 0 else (),
        advice=tuple(advice),
        explained=tuple(explained),
        problems=tuple(problems),
    )


def _advice(
    records: Sequence[QueryRecord],
    explained: Sequence[tuple[QueryRecord, ExplainSummary]],
    indexes: IndexesFn | None,
    problems: list[str],
) -> list[advisor.Advice]:
    groups: dict[str, list[QueryRecord]] = {}
    for record in records:
        if record.command in EXPLAINABLE and record.collection:
            groups.setdefault(record.shape_key, []).append(record)
    by_shape = {r.shape_key: s for r, s in explained}
    cache: dict[tuple[str, str], Mapping[str, advisor.IndexKey]] = {}
    out = []
    for key, group in groups.items():
        first = group[0]
        pattern = advisor.pattern_of(first.command, first.shape)
        if pattern is None or first.collection is None:
            continue
        where = (first.database, first.collection)
        if where not in cache:
            try:
                cache[where] = indexes(*where) if indexes else {}
            except Exception as exc:
                problems.append(f"could not list the indexes of {first.collection}: {exc}")
                cache[where] = {}
        item = advisor.advise(first.collection, first.describe(), pattern, cache[where], len(group))
        item = replace(item, location=first.location)
        if key in by_shape:
            item = advisor.reconcile(item, by_shape[key])
        out.append(item)
    return out


def without_not_checked(analysis: Analysis) -> Analysis:
    return replace(analysis, not_checked={})


def evidence(analysis: Analysis, records: Sequence[QueryRecord], backend: str, limit: int = 200) -> dict[str, Any]:
    """What goes in the results file under ``evidence["mongo"]``."""
    return {
        "backend": backend,
        "queries": analysis.queries,
        "commands": [r.to_dict() for r in records[:limit]],
        **({"commands_truncated": len(records) - limit} if len(records) > limit else {}),
        "repeats": [r.to_dict() for r in analysis.repeats],
        "index_advice": [a.to_dict() for a in analysis.advice],
        "explain": [{"query": r.describe(), **s.to_dict(), "location": r.location} for r, s in analysis.explained],
        **({"not_checked": dict(analysis.not_checked)} if analysis.not_checked else {}),
        **({"problems": list(analysis.problems)} if analysis.problems else {}),
    }


def format_report(analysis: Analysis, records: Sequence[QueryRecord], backend: str, limit: int = 30) -> str:
    """The text attached to a failing test's report: the commands, N+1 repeats, index advice."""
    lines = [f"{analysis.queries} MongoDB command{'s' if analysis.queries != 1 else ''} on {backend}:"]
    for i, record in enumerate(records[:limit], 1):
        docs = "" if record.docs_returned is None else f", {record.docs_returned} docs"
        error = f", error: {record.error}" if record.error else ""
        took = f"{record.duration * 1e3:.2f}ms"
        lines.append(f"  {i:>3}. {record.describe()}  ({took}{docs}{error})  at {record.location}")
    if len(records) > limit:
        lines.append(f"  ... {len(records) - limit} more (all are in the results file)")
    if analysis.explained:
        lines.append("explain (executionStats):")
        seen = set()
        for record, summary in analysis.explained:
            if record.shape_key in seen:
                continue
            seen.add(record.shape_key)
            lines.append(
                f"  {record.describe()}: {summary.plan}; {summary.docs_examined} docs / "
                f"{summary.keys_examined} keys examined, {summary.n_returned} returned ({summary.engine})"
            )
    for repeat in analysis.repeats:
        lines.append(f"N+1: {repeat.message()}")
    if analysis.advice:
        lines.append("index advice:")
        lines.extend(f"  {a.message()}" + (f" [x{a.count}]" if a.count > 1 else "") for a in analysis.advice)
    for metric, reason in sorted(analysis.not_checked.items()):
        lines.append(f"{metric} not checked: {reason}")
    lines.extend(f"problem: {p}" for p in analysis.problems)
    return "\n".join(lines)


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
