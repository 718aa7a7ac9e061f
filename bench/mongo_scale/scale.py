"""Seed N audit documents and time the audit queries with and without the suggested index.

    python bench/mongo_scale/scale.py --n 1000000 --uri mongodb://localhost:27017
    python bench/mongo_scale/scale.py --n 20000 --backend mongomock      # no index claims

The backend is chosen like the pytest plugin does (--uri / PERFGATE_MONGO_URI, docker, mongod,
mongomock). Figures are appended to bench/RESULTS-mongo.md, labelled with the backend. On
mongomock, which ignores indexes, only the seeding rate and query times are reported: never a
with/without-index comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "audit_log"))

import audit  # noqa: E402

from pytest_perfgate.mongo import backends  # noqa: E402
from pytest_perfgate.mongo.capture import CaptureHub  # noqa: E402
from pytest_perfgate.mongo.explain import summarize  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
ACTIONS = ["login", "read", "write", "delete", "share", "export"]


def seed(db: Any, n: int, batch: int, users: int) -> float:
    coll = db[audit.COLLECTION]
    start = time.perf_counter()
    done = 0
    while done < n:
        size = min(batch, n - done)
        coll.insert_many(
            [
                {
                    "user": f"u{(done + i) % users}",
                    "action": ACTIONS[(done + i) % len(ACTIONS)],
                    "target": f"d{done + i}",
                    "ts": T0 + timedelta(seconds=done + i),
                }
                for i in range(size)
            ],
            ordered=False,
        )
        done += size
        rate = done / (time.perf_counter() - start)
        print(f"\rseeded {done:>9,}/{n:,} ({rate:,.0f} docs/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return time.perf_counter() - start


def time_it(fn: Any, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="documents to seed (up to 1,000,000)")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--backend", default="auto", choices=backends.BACKENDS)
    parser.add_argument("--uri", default=os.environ.get("PERFGATE_MONGO_URI"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS-mongo.md"))
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 1_000_000:
        parser.error("--n must be between 1 and 1,000,000")
    settings = backends.MongoSettings(choice=args.backend, uri=args.uri, uri_source="--uri/PERFGATE_MONGO_URI")
    selection = backends.choose(settings)
    backend = backends.start(selection, settings, CaptureHub())
    db = backend.client[f"perfgate_bench_{os.getpid()}"]
    try:
        seconds = seed(db, args.n, args.batch, args.users)
        since, until = T0 + timedelta(seconds=args.n // 2), T0 + timedelta(seconds=args.n // 2 + 86_400)
        queries = {
            "recent(user, time range, sorted)": lambda: audit.recent(db, "u7", since, until),
            "counts_per_action(since)": lambda: audit.counts_per_action(db, since),
        }
        rows = []
        # mongomock ignores indexes: timing it "with index" would only repeat the same scan
        for label in ("without index", "with index") if backend.real else ("without index",):
            if label == "with index":
                audit.ensure_indexes(db)
            for name, fn in queries.items():
                median, best = time_it(fn, args.repeat)
                plan = ""
                if backend.real and name.startswith("recent"):
                    body = {
                        "find": audit.COLLECTION,
                        "filter": {"user": "u7", "ts": {"$gte": since, "$lt": until}},
                        "sort": {"ts": -1},
                        "limit": 20,
                    }
                    s = summarize(db.command({"explain": body, "verbosity": "executionStats"}))
                    plan = f"{s.plan}; {s.docs_examined:,} docs examined"
                rows.append((label, name, median, best, plan))
        write(args, backend, selection, seconds, rows)
    finally:
        backend.client.drop_database(db.name)
        backend.close()
    return 0


Row = tuple[str, str, float, float, str]


def write(args: Any, backend: Any, selection: Any, seconds: float, rows: list[Row]) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"\n## {stamp}: {args.n:,} audit documents on {backend.description}\n",
        f"Backend: `{backend.kind}` ({selection.reason}). Command: "
        f"`python bench/mongo_scale/scale.py --n {args.n} --backend {args.backend} --repeat {args.repeat} "
        f"--batch {args.batch} --users {args.users}`\n",
        f"Seeding: {seconds:.1f}s ({args.n / seconds:,.0f} docs/s, insert_many batches of {args.batch:,}).\n",
    ]
    if not backend.real:
        lines.append(
            "**mongomock ignores indexes: the times below are NOT evidence about indexes** (only the "
            "no-index case is timed). Run against a real server for index timings.\n"
        )
    lines.append("| index | query | median | best | plan (explain) |\n|---|---|---|---|---|")
    for label, name, median, best, plan in rows:
        shown = label if backend.real else "n/a (mongomock)"
        lines.append(f"| {shown} | {name} | {median * 1e3:.2f} ms | {best * 1e3:.2f} ms | {plan or '-'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    path = Path(args.results)
    if not path.exists():
        path.write_text(
            "# MongoDB scale benchmark (bench/mongo_scale/scale.py)\n\nFigures are labelled with the "
            "backend they were measured on.\n"
        )
    with path.open("a") as fh:
        fh.write(text)


if __name__ == "__main__":
    raise SystemExit(main())
