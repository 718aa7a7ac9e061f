"""A loopback stand-in for the few GitLab API endpoints perfgate calls: single files of a job's
artifacts (the raw endpoint), merge-request notes (list with pagination, create, update) and
issues with their notes (list by state and label, create, update, close; the history's alerts).
Records every request.

    python -m pytest_perfgate.testing.gitlab_stub --port 0 --token T --artifact main/build/results.json=FILE \
        --artifact-dir main/perfgate-baseline=DIR

prints ``listening on http://127.0.0.1:PORT/api/v4`` and serves until killed. ``--artifact
REF/JOB/PATH=FILE`` serves one file; ``--artifact-dir REF/JOB=DIR`` serves every file under DIR by
its path relative to DIR, as GitLab serves the files of a job's artifacts archive.

Fault modes (:class:`StubState` fields, and options of the command), for the client's tests and
demos: ``fail_with`` a status (for the first ``fail_count`` requests only, with ``retry_after``),
``fail_body`` (an error answer's body), ``redirect_to`` (a 302 to another address), ``endless_pages``
(the notes listing always has a next page), ``drip`` (a body one byte every so many seconds),
``huge_body`` (a body of that many bytes, streamed), ``answers`` (a method's JSON answer on the
notes endpoints replaced: a malformed answer).
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from dataclasses import dataclass, field, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

_NOTES = re.compile(r"^/api/v4/projects/(?P<project>[^/]+)/merge_requests/(?P<mr>\d+)/notes(?:/(?P<note>\d+))?$")
_ISSUES = re.compile(
    r"^/api/v4/projects/(?P<project>[^/]+)/issues(?:/(?P<issue>\d+)(?P<notes>/notes(?:/(?P<note>\d+))?)?)?$"
)
_ARTIFACT = re.compile(r"^/api/v4/projects/(?P<project>[^/]+)/jobs/artifacts/(?P<ref>[^/]+)/raw/(?P<path>.+)$")


def _status_line(status: int) -> str:
    """GitLab's way of saying a status in a message: "503 Service Unavailable"."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


@dataclass
class StubState:
    token: str | None = None  # required in PRIVATE-TOKEN or JOB-TOKEN when set
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # mr iid -> notes
    artifacts: dict[tuple[str, str, str], bytes] = field(default_factory=dict)  # (ref, job, path) -> content
    # (ref, job) -> a local directory: its files are that job's artifacts (read when asked for, after `artifacts`)
    artifact_dirs: dict[tuple[str, str], Path] = field(default_factory=dict)
    fail_with: int | None = None  # answer every request with this status (fault injection)
    fail_count: int | None = None  # ... only the first this many requests (then answer normally)
    fail_methods: frozenset[str] | None = None  # ... only requests of these methods (None: all)
    act_then_fail: bool = False  # ... after doing what was asked (a proxy's 502 after GitLab created the note)
    retry_after: str | None = None  # the Retry-After header of those answers
    fail_body: bytes | None = None  # their body (default: GitLab's {"message": "503 Service Unavailable"})
    redirect_to: str | None = None  # answer every request with a redirect to this address + the request's path
    redirect_status: int = 302
    endless_pages: bool = False  # the notes listing always names a next page
    drip: float | None = None  # answer with a body sent one byte every this many seconds
    huge_body: int | None = None  # answer GETs with a body of this many bytes
    huge_length: bool = True  # ... declaring its length (False: no Content-Length, read until closed)
    answers: dict[str, Any] = field(default_factory=dict)  # method -> JSON (or bytes) answered on the notes endpoints
    page_size: int = 2  # small, so that pagination is exercised
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    next_id: int = 100
    # issues (perfgate history --alert): iid -> {iid, title, description, labels, state, web_url, notes}
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)


def artifact_file(state: StubState, ref: str, job: str, path: str) -> bytes | None:
    """The content GitLab's raw artifact endpoint serves for ``path`` of ``job``'s latest artifacts
    on ``ref``, or ``None`` (404). A path leaving the artifact directory is not there."""
    if (ref, job, path) in state.artifacts:
        return state.artifacts[(ref, job, path)]
    root = state.artifact_dirs.get((ref, job))
    if root is None or not path or path.startswith("/") or ".." in path.split("/"):
        return None
    file = Path(root, path)
    return file.read_bytes() if file.is_file() else None


def make_handler(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        failure: tuple[int, Any, dict[str, str]] | None = None  # answered instead (act_then_fail)

        def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
            if self.failure is not None:
                status, payload, headers = self.failure
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, size: int, pause: float = 0.0, declare: bool = True) -> None:
            """A 200 answer of ``size`` bytes, in chunks (one byte each ``pause`` seconds when set),
            until the client goes away."""
            self.send_response(200)
            if declare:
                self.send_header("Content-Length", str(size))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            chunk = b"x" * (1 if pause else 64 * 1024)
            sent = 0
            try:
                while sent < size:
                    part = chunk[: size - sent]
                    self.wfile.write(part)
                    self.wfile.flush()
                    sent += len(part)
                    if pause:
                        time.sleep(pause)
            except OSError:
                pass  # the client gave up: what it should do

        def _authorised(self) -> bool:
            given = self.headers.get("PRIVATE-TOKEN") or self.headers.get("JOB-TOKEN")
            return state.token is None or given == state.token

        def _handle(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}") if length else {}
            state.requests.append((self.command, self.path, dict(self.headers)))
            self.failure = None
            if state.redirect_to is not None:
                location = {"Location": state.redirect_to + self.path}
                return self._send(state.redirect_status, {"message": _status_line(state.redirect_status)}, location)
            if (
                state.fail_with is not None
                and (state.fail_count is None or state.fail_count > 0)
                and (state.fail_methods is None or self.command in state.fail_methods)
            ):
                if state.fail_count is not None:
                    state.fail_count -= 1
                headers = {"Retry-After": state.retry_after} if state.retry_after is not None else {}
                failure = (state.fail_with, state.fail_body or {"message": _status_line(state.fail_with)}, headers)
                if not state.act_then_fail:
                    return self._send(*failure)
                self.failure = failure
            if state.drip is not None:
                return self._stream(1000, state.drip)
            if state.huge_body is not None and self.command == "GET":
                return self._stream(state.huge_body, declare=state.huge_length)
            if not self._authorised():
                return self._send(401, {"message": "401 Unauthorized"})
            match = _ARTIFACT.match(url.path)
            if match is not None:
                job = parse_qs(url.query).get("job", [""])[0]
                content = artifact_file(state, unquote(match["ref"]), job, unquote(match["path"]))
                if self.command == "GET" and content is not None:
                    return self._send(200, content)
                return self._send(404, {"message": "404 Not found"})
            match = _ISSUES.match(url.path)
            if match is not None:
                return self._issues(match, parse_qs(url.query), body)
            match = _NOTES.match(url.path)
            if match is not None and self.command in state.answers:
                return self._send(201 if self.command == "POST" else 200, state.answers[self.command])
            if match is not None:
                notes = state.notes.setdefault(int(match["mr"]), [])
                if self.command == "GET" and not match["note"]:
                    page = int(parse_qs(url.query).get("page", ["1"])[0])
                    chunk = notes[(page - 1) * state.page_size : page * state.page_size]
                    more = page * state.page_size < len(notes) or state.endless_pages
                    return self._send(200, chunk, {"X-Next-Page": str(page + 1) if more else ""})
                if self.command == "POST" and not match["note"]:
                    state.next_id += 1
                    note = {"id": state.next_id, "body": body.get("body")}
                    notes.append(note)
                    return self._send(201, note)
                if self.command == "PUT" and match["note"]:
                    for note in notes:
                        if note["id"] == int(match["note"]):
                            note["body"] = body.get("body")
                            return self._send(200, note)
                    return self._send(404, {"message": "404 Note Not Found"})
            return self._send(404, {"message": "404 Not found"})

        def _page(self, items: list[dict[str, Any]], query: dict[str, list[str]]) -> None:
            page = int(query.get("page", ["1"])[0])
            chunk = items[(page - 1) * state.page_size : page * state.page_size]
            more = page * state.page_size < len(items)
            return self._send(200, chunk, {"X-Next-Page": str(page + 1) if more else ""})

        def _issues(self, match: re.Match[str], query: dict[str, list[str]], body: dict[str, Any]) -> None:
            """GitLab's issues API, the part perfgate uses: list (state, labels), create, update
            (title, description, state_event close), and an issue's notes (list, create)."""
            if match["issue"] is None:
                if self.command == "GET":
                    wanted_state = query.get("state", ["all"])[0]
                    labels = {x for x in query.get("labels", [""])[0].split(",") if x}
                    found = [
                        {k: v for k, v in issue.items() if k != "notes"}
                        for issue in sorted(state.issues.values(), key=lambda i: i["iid"])
                        if wanted_state in ("all", issue["state"]) and labels <= set(issue["labels"])
                    ]
                    return self._page(found, query)
                if self.command == "POST":
                    iid = max(state.issues, default=0) + 1
                    state.issues[iid] = {
                        "iid": iid,
                        "title": body.get("title"),
                        "description": body.get("description"),
                        "labels": [x for x in str(body.get("labels") or "").split(",") if x],
                        "state": "opened",
                        "web_url": f"https://gitlab.example.com/group/proj/-/issues/{iid}",
                        "notes": [],
                    }
                    return self._send(201, {k: v for k, v in state.issues[iid].items() if k != "notes"})
                return self._send(405, {"message": "405 Method Not Allowed"})
            issue = state.issues.get(int(match["issue"]))
            if issue is None:
                return self._send(404, {"message": "404 Issue Not Found"})
            if match["notes"] is None and self.command == "PUT":
                for key in ("title", "description"):
                    if key in body:
                        issue[key] = body[key]
                if body.get("state_event") == "close":
                    issue["state"] = "closed"
                return self._send(200, {k: v for k, v in issue.items() if k != "notes"})
            if match["notes"] is not None and match["note"] is None:
                if self.command == "GET":
                    return self._page(issue["notes"], query)
                if self.command == "POST":
                    state.next_id += 1
                    note = {"id": state.next_id, "body": body.get("body")}
                    issue["notes"].append(note)
                    return self._send(201, note)
            return self._send(405, {"message": "405 Method Not Allowed"})

        do_GET = do_POST = do_PUT = _handle

    return Handler


class GitLabStub:
    """Run the stub in a thread: ``with GitLabStub(state) as api_url: ...``."""

    def __init__(self, state: StubState | None = None, port: int = 0) -> None:
        self.state = state or StubState()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/api/v4"

    def __enter__(self) -> str:
        self.thread.start()
        return self.api_url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token")
    parser.add_argument("--artifact", action="append", default=[], help="REF/JOB/PATH=FILE")
    parser.add_argument("--artifact-dir", action="append", default=[], help="REF/JOB=DIR")
    parser.add_argument("--fail-with", type=int, metavar="STATUS", help="answer with this status (a fault)")
    parser.add_argument("--fail-count", type=int, metavar="N", help="... the first N requests only")
    parser.add_argument("--retry-after", metavar="SECONDS", help="... with this Retry-After header")
    parser.add_argument("--redirect-to", metavar="URL", help="answer 302 to URL + the request's path")
    parser.add_argument("--endless-pages", action="store_true", help="the notes listing never ends")
    parser.add_argument("--drip", type=float, metavar="SECONDS", help="send bodies one byte every SECONDS")
    parser.add_argument("--huge-body", type=int, metavar="BYTES", help="answer GETs with a body of BYTES bytes")
    args = parser.parse_args()
    # every fault option is the StubState field of its name
    state = StubState(**{f.name: getattr(args, f.name) for f in fields(StubState) if hasattr(args, f.name)})
    for spec in args.artifact:
        key, _, filename = spec.partition("=")
        ref, job, path = key.split("/", 2)
        with open(filename, "rb") as handle:
            state.artifacts[(ref, job, path)] = handle.read()
    for spec in args.artifact_dir:
        key, _, directory = spec.partition("=")
        ref, _, job = key.partition("/")
        state.artifact_dirs[(ref, job)] = Path(directory)
    stub = GitLabStub(state, args.port)
    print(f"listening on {stub.api_url}", flush=True)
    stub.server.serve_forever()


if __name__ == "__main__":
    main()
