"""perfgate's locust event listener, loaded into the *locust* process next to the user's locustfile::

    locust -f .../perfgate_listener.py,locustfile.py --headless ...

It records every request as locust reports it (request type, name, response time in milliseconds
with the full precision of locust's ``time.perf_counter`` measurement, completion time, error)
instead of locust's own histogram, whose percentiles are rounded to two significant digits.

* in a worker (``--processes N``, or ``locust --worker`` on another machine) the rows ride to the
  master in the stats report locust already sends every few seconds and once more on quitting;
* on the master (or a single local process) the rows are collected and, when locust quits,
  written as JSON to the file named by ``$PERFGATE_LOAD_OUT``; ``$PERFGATE_LOAD_PROGRESS`` names
  a file that gets one JSON line per second (elapsed, users, current rps, requests, failures).

Standalone on purpose: it imports only locust and the standard library (never perfgate), so it
can be copied to worker machines that do not have perfgate installed
(``perfgate load --listener-path`` prints where it is).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

# (ignores: gevent has no type hints; mypy may run where locust is not installed)
import gevent  # type: ignore[import-untyped,import-not-found,unused-ignore]
import locust  # type: ignore[import-not-found,unused-ignore]
from locust import events  # type: ignore[import-not-found,unused-ignore]
from locust.env import Environment  # type: ignore[import-not-found,unused-ignore]
from locust.runners import MasterRunner, WorkerRunner  # type: ignore[import-not-found,unused-ignore]

OUT_ENV = "PERFGATE_LOAD_OUT"
PROGRESS_ENV = "PERFGATE_LOAD_PROGRESS"
REPORT_KEY = "perfgate_rows"
FORMAT = "perfgate-load-raw"
VERSION = 1
_MAX_ERROR_TEXT = 300


class _Collector:
    """One per locust process: buffers rows, ships them (worker) or writes them (master/local)."""

    def __init__(self) -> None:
        # [request_type, name, response_time_ms, completed_at_epoch_s, error_text_or_None]
        self.rows: list[list[Any]] = []
        self.start: float | None = None
        self.stop: float | None = None
        self.max_users = 0
        self.workers_reporting: set[str] = set()
        self.progress: Any = None

    # ---------------------------------------------------------------- every process

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        exception: BaseException | None = None,
        **_kwargs: Any,
    ) -> None:
        error = None if exception is None else (f"{type(exception).__name__}: {exception}")[:_MAX_ERROR_TEXT]
        self.rows.append([request_type, name, float(response_time or 0.0), time.time(), error])

    # ---------------------------------------------------------------- worker

    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY], self.rows = self.rows, []

    # ---------------------------------------------------------------- master / local

    def on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        rows = data.get(REPORT_KEY)
        if rows:
            self.rows.extend(rows)
            self.workers_reporting.add(client_id)

    def on_test_start(self, environment: Environment, **_kwargs: Any) -> None:
        if isinstance(environment.runner, WorkerRunner) or self.start is not None:
            return
        self.start = time.time()
        self.progress = gevent.spawn(self._progress_loop, environment, os.environ.get(PROGRESS_ENV))

    def on_test_stop(self, environment: Environment, **_kwargs: Any) -> None:
        if not isinstance(environment.runner, WorkerRunner) and self.stop is None:
            self.stop = time.time()

    def _progress_loop(self, environment: Environment, path: str | None) -> None:
        with open(path or os.devnull, "a", encoding="utf-8") as handle:
            while True:
                runner = environment.runner
                if runner is not None and self.start is not None:
                    users = int(runner.user_count or 0)
                    self.max_users = max(self.max_users, users)
                    total = runner.stats.total
                    line = {
                        "elapsed": round(time.time() - self.start, 3),
                        "users": users,
                        "rps": round(float(total.current_rps or 0.0), 2),
                        "requests": int(total.num_requests),
                        "failures": int(total.num_failures),
                    }
                    handle.write(json.dumps(line) + "\n")
                    handle.flush()
                gevent.sleep(1.0)

    def on_quitting(self, environment: Environment, **_kwargs: Any) -> None:
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            return
        if self.progress is not None:
            self.progress.kill(block=False)
        path = os.environ.get(OUT_ENV)
        if not path:
            return
        now = time.time()
        totals = runner.stats.total if runner is not None else None
        data = {
            "format": FORMAT,
            "version": VERSION,
            "locust_version": locust.__version__,
            "runner": "master" if isinstance(runner, MasterRunner) else "local",
            "workers_reporting": len(self.workers_reporting),
            "start": self.start if self.start is not None else now,
            "stop": self.stop if self.stop is not None else now,
            "max_users": max(self.max_users, int(runner.user_count or 0) if runner is not None else 0),
            # locust's own counts, to cross-check that no row was lost on the way
            "locust_requests": int(totals.num_requests) if totals is not None else None,
            "locust_failures": int(totals.num_failures) if totals is not None else None,
            "rows": self.rows,
        }
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(tmp, path)


_collector = _Collector()
for _hook, _listener in (
    (events.request, _collector.on_request),
    (events.report_to_master, _collector.on_report_to_master),
    (events.worker_report, _collector.on_worker_report),
    (events.test_start, _collector.on_test_start),
    (events.test_stop, _collector.on_test_stop),
    (events.quitting, _collector.on_quitting),
):
    _hook.add_listener(_listener)  # type: ignore[no-untyped-call,unused-ignore]
