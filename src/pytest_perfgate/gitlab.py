"""GitLab's API, the few endpoints the gate needs: download another ref's job artifact (the
default branch's baseline) and create-or-update one merge-request note (the report).

Plain ``http.client`` (no dependency). The client does not trust the server (docs/gitlab.md,
"What perfgate does not take from the server"):

* it follows **no redirect**: a 3xx answer is an error naming where it points, so the token is
  never sent to another address;
* every answer must arrive **whole within a deadline** (not only each read), and no larger than
  ``max_bytes``; the notes listing is read for at most ``max_pages`` pages;
* 429 (honouring ``Retry-After`` up to ``max_wait``), 502, 503, 504 and timeouts are **retried**
  with exponential backoff, at most ``attempts`` times and within ``budget`` seconds per call; a
  note is never created twice (a create that may have reached GitLab is retried by looking for
  the note again first);
* an answer of the wrong shape is a :class:`GitLabError`, never a traceback;
* the token is never printed, logged or put in an error: every message is scrubbed of it, and of
  any fragment of it, before it is cut.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import GitLabError

#: the hidden marker that identifies perfgate's note on a merge request
NOTE_MARKER = "<!-- perfgate-report -->"

#: GitLab keeps a note body of at most this many characters
MAX_NOTE_CHARS = 1_000_000

#: the label of perfgate's issues (alerts on the default branch's history); they are found by it
ISSUE_LABEL = "perfgate-history"
#: GitLab keeps an issue title of at most this many characters
MAX_TITLE_CHARS = 255


@dataclass(frozen=True)
class Issue:
    """What perfgate reads of a GitLab issue."""

    iid: int
    title: str
    description: str
    web_url: str = ""


def check_issue_iid(value: object, source: str = "issue") -> int:
    """An issue's IID (the N of #N), else a :class:`GitLabError`."""
    text = str(value).strip()
    if not re.fullmatch(r"[1-9][0-9]{0,17}", text):
        raise GitLabError(f"{source} {_excerpt(str(value), 60)!r} is not an issue IID: expected a whole number above 0")
    return int(text)


def issue_title(title: str) -> str:
    """A title GitLab takes: one line, printable, at most :data:`MAX_TITLE_CHARS` characters."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in title).split()) or "perfgate"
    return flat if len(flat) <= MAX_TITLE_CHARS else flat[: MAX_TITLE_CHARS - 3].rstrip() + "..."


def issue_text(text: str, marker: str) -> str:
    """An issue's description or note: ``marker`` (a hidden HTML comment) first unless it is in
    already, the text's quick-action lines neutralised, within GitLab's size."""
    body = neutralise_quick_actions(text.rstrip())
    body = body if marker in body else f"{marker}\n{body}"
    if len(body) > MAX_NOTE_CHARS:
        body = body[: MAX_NOTE_CHARS - 40].rstrip() + "\n\n... (cut: more than GitLab keeps)"
    return body


_STATUS_HINTS = {
    401: "the token was refused (expired, revoked or mistyped)",
    403: "the token may not do this (posting notes needs a token with the 'api' scope; CI_JOB_TOKEN cannot post notes)",
    404: "not found (wrong project, merge request, ref, job name or path, or no access)",
    429: "GitLab's rate limit; try again later",
}
#: answers worth asking again: rate limited, or a proxy in front of GitLab that could not reach it
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
#: a fragment of the token this long or longer is scrubbed wherever it appears in a message
TOKEN_FRAGMENT = 8
#: what of a server's error answer is read, and shown (after scrubbing)
_ERROR_READ, _ERROR_SHOWN = 4096, 300


@dataclass(frozen=True)
class Limits:
    """How long and how much the client waits for and reads from GitLab."""

    timeout: float = 10.0  # to connect, and for each read
    deadline: float = 60.0  # one whole answer, headers and body
    max_bytes: int = 64 * 2**20  # one answer's body
    max_pages: int = 50  # of the notes listing, 100 notes each
    attempts: int = 3  # per call, the first included
    backoff: float = 1.0  # the first wait before asking again; doubled each time
    max_wait: float = 60.0  # the longest Retry-After honoured
    budget: float = 180.0  # one call: all its attempts and waits

    def wait(self, attempt: int) -> float:
        """The backoff before attempt ``attempt + 1``."""
        return min(self.max_wait, self.backoff * 2.0 ** (attempt - 1))


#: the limits a client gets unless given others (tests make the backoff small here)
LIMITS = Limits()


def _default_limits() -> Limits:
    return LIMITS


def scrub(text: str, secret: str | None, *, fragment: int = TOKEN_FRAGMENT) -> str:
    """``text`` with ``secret`` (also URL-encoded) and every piece of it of ``fragment`` or more
    characters replaced by ``***``. Scrub a message before cutting it, so that no cut leaves a
    piece of the secret behind."""
    if not secret:
        return text
    variants = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, "***")
    if len(secret) < fragment:
        return text
    pieces = {v[i : i + fragment] for v in variants for i in range(len(v) - fragment + 1)}
    covered = [False] * len(text)
    for i in range(len(text) - fragment + 1):
        if text[i : i + fragment] in pieces:
            covered[i : i + fragment] = [True] * fragment
    out: list[str] = []
    for i, ch in enumerate(text):
        if not covered[i]:
            out.append(ch)
        elif i == 0 or not covered[i - 1]:
            out.append("***")
    return "".join(out)


def _excerpt(text: str, limit: int = _ERROR_SHOWN) -> str:
    """A server's text fit for one line of a message: control characters (terminal escapes, line
    breaks) as spaces, runs of spaces as one, at most ``limit`` characters. Scrub first."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def check_api_url(url: str, source: str = "the API address") -> str:
    """``url`` if it is an http(s) URL with a host (and no user name, password, query or
    fragment), else a :class:`GitLabError` naming ``source``."""
    accepted = "expected an http:// or https:// URL such as https://gitlab.example.com/api/v4"
    text = url.strip() if isinstance(url, str) else ""
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        parts = urllib.parse.urlsplit("")
    if parts.username is not None or parts.password is not None:
        raise GitLabError(f"{source} carries a user name or password: {accepted}, and the token in its own variable")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(ch.isspace() or not ch.isprintable() for ch in text)
    ):
        raise GitLabError(f"{source} {_excerpt(str(url), 100)!r} is not a GitLab API address: {accepted}")
    return text.rstrip("/")


def check_mr_iid(value: object, source: str = "--mr") -> int:
    """A merge request's IID (the N of !N) from ``value``, else a :class:`GitLabError`."""
    text = str(value).strip()
    if not re.fullmatch(r"[1-9][0-9]{0,17}", text):
        raise GitLabError(
            f"{source} {_excerpt(str(value), 60)!r} is not a merge request IID: expected a positive whole number "
            "(the N of !N in the merge request's title)"
        )
    return int(text)


def _check_token(token: str, variable: str) -> None:
    if any(not (ch.isascii() and ch.isprintable()) or ch.isspace() for ch in token):
        raise GitLabError(
            f"{variable} holds a character no GitLab token has (a space, a line break or a control character; "
            "was it pasted with a trailing newline?)"
        )


_HEADLINE = re.compile(r"[ ]{0,3}(?:#{1,6}[ \t]+)?(?::[a-z0-9_+-]+:[ \t]+)?perfgate(?: ab)?: \S")
_QUICK_ACTION = re.compile(r"^([^\S\n]*)/", re.MULTILINE)


def neutralise_quick_actions(text: str) -> str:
    """Every line GitLab could run as a quick action (``/approve``, ``/merge``: a ``/`` at the
    start of a line, after optional spaces) with that ``/`` backslash-escaped: GitLab Markdown
    shows ``\\/approve`` as ``/approve`` and runs nothing (in a code block the backslash shows)."""
    return _QUICK_ACTION.sub(lambda m: m[1] + "\\/", text)


def note_body(report: str, source: str) -> str:
    """The note to post for the Markdown ``report`` read from ``source``: perfgate's marker, then
    the report with its quick-action lines neutralised. A :class:`GitLabError` unless the report
    is a perfgate report: not empty, its first line a headline ``perfgate: ...`` (``perfgate
    compare --markdown`` and ``perfgate ab --markdown`` write one; ``perfgate ab: ...`` is
    accepted too), within GitLab's note size."""
    lines = [line for line in report.splitlines() if line.strip() and line.strip() != NOTE_MARKER]
    if not lines:
        raise GitLabError(
            f"{source}: is empty: nothing to post (perfgate's note on the merge request is left as it was)"
        )
    if not _HEADLINE.match(lines[0]):
        raise GitLabError(
            f"{source}: is not a perfgate report: its first line is {_excerpt(lines[0], 80)!r}, expected the "
            "headline 'perfgate: ...' that perfgate compare --markdown (or perfgate ab --markdown) writes first"
        )
    body = neutralise_quick_actions(report.rstrip())
    text = body if NOTE_MARKER in body else f"{NOTE_MARKER}\n{body}"
    if len(text) > MAX_NOTE_CHARS:
        raise GitLabError(
            f"{source}: the note would have {len(text):,} characters, more than GitLab keeps in one note "
            f"({MAX_NOTE_CHARS:,}): post a shorter report"
        )
    return text


def _proxy_for(parts: urllib.parse.SplitResult) -> tuple[urllib.parse.SplitResult | None, dict[str, str]]:
    """The proxy the environment names for this URL (``https_proxy`` / ``http_proxy``, unless
    ``no_proxy`` covers its host), as urllib chooses it, and the headers the proxy wants."""
    found = urllib.request.getproxies_environment().get(parts.scheme)
    if not found or urllib.request.proxy_bypass(parts.hostname or ""):
        return None, {}
    proxy = urllib.parse.urlsplit(found if "://" in found else f"http://{found}")
    if proxy.scheme != "http" or not proxy.hostname:
        return None, {}
    headers = {}
    if proxy.username is not None:
        import base64

        user = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
    return proxy, headers


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}(?:\.[0-9]+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


class _Failed(Exception):
    """One attempt got no usable answer: ``reason`` (scrubbed), ``transient`` if worth retrying."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        self.reason = reason
        self.transient = transient
        super().__init__(reason)


@dataclass(frozen=True)
class GitLab:
    """Where the API is and how to authenticate. ``token_header`` is ``PRIVATE-TOKEN`` for
    personal, project and group access tokens, ``JOB-TOKEN`` for ``CI_JOB_TOKEN``."""

    api_url: str  # e.g. https://gitlab.example.com/api/v4 (CI_API_V4_URL)
    project: str  # numeric id or "group/project"
    token: str | None = None
    token_header: str = "PRIVATE-TOKEN"
    limits: Limits = field(default_factory=_default_limits)
    #: how to wait between attempts (tests record the waits instead)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_url", check_api_url(self.api_url))
        if self.token:
            _check_token(self.token, "the token")

    def __repr__(self) -> str:  # never show the token, even in a debugger or a traceback
        return f"GitLab(api_url={self.api_url!r}, project={self.project!r}, token={'***' if self.token else None})"

    @property
    def project_path(self) -> str:
        return f"{self.api_url}/projects/{urllib.parse.quote(str(self.project), safe='')}"

    def _scrub(self, text: str) -> str:
        return scrub(text, self.token)

    # ------------------------------------------------------------------ one request

    def _once(self, method: str, url: str, data: bytes | None, budget_end: float) -> _Answer:
        """One attempt, bounded as a whole by the deadline: a timer shuts the connection down
        when it passes, whatever the server is doing (dripping a byte at a time, say)."""
        limits = self.limits
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Failed(f"{self._scrub(url)!r} is not an http(s) URL", transient=False)
        start = time.monotonic()
        end = min(start + limits.deadline, budget_end)
        allowed = max(0.001, end - start)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        proxy, proxy_headers = _proxy_for(parts)
        if proxy is None:
            conn = kind(parts.hostname, parts.port, timeout=min(limits.timeout, allowed))
        elif parts.scheme == "https":  # through a CONNECT tunnel: the proxy never sees the token
            conn = kind(proxy.hostname or "", proxy.port or 80, timeout=min(limits.timeout, allowed))
            conn.set_tunnel(parts.hostname, parts.port, headers=proxy_headers)
        else:  # plain http through a proxy, as urllib does it
            conn = kind(proxy.hostname or "", proxy.port or 80, timeout=min(limits.timeout, allowed))
            target = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
        expired = threading.Event()
        # the connection's socket, kept here: http.client drops its own reference to it once it
        # knows the server closes after this answer, while the answer is still being read from it
        sockets: list[socket.socket] = []

        def expire() -> None:
            expired.set()
            for sock in sockets:
                with contextlib.suppress(OSError):  # the plain socket's shutdown, also under TLS: wakes a read
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

        timer = threading.Timer(allowed, expire)
        timer.daemon = True
        timer.start()
        try:
            headers = {"Accept": "application/json", "User-Agent": "perfgate"}
            if self.token:
                headers[self.token_header.title()] = self.token  # Private-Token, Job-Token
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.connect()
            if conn.sock is not None:
                sockets.append(conn.sock)
            if expired.is_set():
                raise TimeoutError
            if proxy is not None and parts.scheme == "http":
                headers.update(proxy_headers)
            conn.request(method, target, body=data, headers=headers)
            response = conn.getresponse()
            answer_headers = {name.lower(): value for name, value in response.getheaders()}
            if 200 <= response.status < 300:
                body = self._read(response, answer_headers)
            else:
                body = response.read(_ERROR_READ) if response.status >= 400 else b""
            if expired.is_set():  # cut off by the deadline: what was read may look whole, and is not
                raise TimeoutError
            return _Answer(response.status, answer_headers, body)
        except (OSError, http.client.HTTPException, _Failed) as exc:
            if expired.is_set():
                raise _Failed(
                    f"no whole answer within {allowed:g}s (the deadline for one answer)", transient=True
                ) from None
            if isinstance(exc, _Failed):
                raise
            if isinstance(exc, TimeoutError):
                raise _Failed(f"no answer within {limits.timeout:g}s (timeout)", transient=True) from None
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise _Failed(f"{self._scrub(str(reason))} (timeout {limits.timeout:g}s)", transient=False) from None
        finally:
            timer.cancel()
            conn.close()

    def _read(self, response: http.client.HTTPResponse, headers: Mapping[str, str]) -> bytes:
        """The body, at most ``max_bytes`` of it; a body cut short is an error."""
        most = self.limits.max_bytes
        declared = headers.get("content-length", "").strip()
        expected = int(declared) if declared.isdigit() else None
        if expected is not None and expected > most:
            raise _Failed(
                f"the answer is {expected:,} bytes, more than perfgate reads ({most:,} bytes)", transient=False
            )
        chunks, size = [], 0
        while True:
            chunk = response.read1(64 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > most:
                raise _Failed(f"the answer is more than perfgate reads ({most:,} bytes)", transient=False)
            chunks.append(chunk)
        if expected is not None and size != expected:
            raise _Failed(f"the answer was cut short ({size:,} of {expected:,} bytes)", transient=True)
        return b"".join(chunks)

    def _status_error(self, where: str, answer: _Answer) -> GitLabError:
        status = answer.status
        if 300 <= status < 400:
            location = _excerpt(self._scrub(answer.headers.get("location", "")), 200) or "(no Location)"
            return GitLabError(
                f"GitLab API {where} answered {status}, a redirect to {location}: perfgate follows no redirect "
                "(the token would go with it); set CI_API_V4_URL to the address GitLab's API answers at",
                status=status,
            )
        detail = _excerpt(self._scrub(answer.body.decode("utf-8", "replace")))
        hint = _STATUS_HINTS.get(status, "GitLab had a server error; try again later" if status >= 500 else "")
        message = f"GitLab API {where} answered {status}" + (f": {hint}" if hint else "")
        return GitLabError(
            message + (f" ({detail})" if detail else ""), status=status, transient=status in RETRIED_STATUSES
        )

    def request(
        self, method: str, url: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = True
    ) -> tuple[bytes, Mapping[str, str]]:
        """The body and headers (names in lower case) of a 2xx answer, else a :class:`GitLabError`.
        Retries 429, 502-504 and timeouts; a request that is not ``idempotent`` (creating a note)
        only 429 (GitLab did not act on it), the rest is left to the caller."""
        limits = self.limits
        data = json.dumps(body).encode() if body is not None else None
        where = self._scrub(f"{method} {url}")
        start = time.monotonic()
        end = start + limits.budget
        attempt = 0
        while True:
            attempt += 1
            wait_hint: float | None = None
            try:
                answer = self._once(method, url, data, end)
            except _Failed as failed:
                error = GitLabError(f"GitLab API {where} failed: {failed.reason}", transient=failed.transient)
            else:
                if 200 <= answer.status < 300:
                    return answer.body, answer.headers
                error = self._status_error(where, answer)
                wait_hint = _retry_after(answer.headers.get("retry-after"))
            retried = error.transient and (idempotent or error.status == 429)
            if not retried or attempt >= limits.attempts:
                raise self._tried(error, attempt)
            wait = limits.wait(attempt) if wait_hint is None else wait_hint
            if wait_hint is not None and wait_hint > limits.max_wait:
                raise GitLabError(
                    f"{error}; GitLab asks to wait {wait_hint:.0f}s (Retry-After), longer than perfgate waits "
                    f"({limits.max_wait:g}s)",
                    status=error.status,
                    transient=True,
                )
            if time.monotonic() + wait >= end:
                raise self._tried(error, attempt)
            self.sleep(wait)

    def _tried(self, error: GitLabError, attempts: int) -> GitLabError:
        if attempts == 1:
            return error
        return GitLabError(f"{error} (after {attempts} attempts)", status=error.status, transient=error.transient)

    def json(
        self, method: str, url: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = True
    ) -> tuple[Any, Mapping[str, str]]:
        raw, headers = self.request(method, url, body, idempotent=idempotent)
        try:
            return json.loads(raw or b"null"), headers
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
            raise GitLabError(f"GitLab API {self._scrub(method + ' ' + url)} did not answer JSON") from None

    # ------------------------------------------------------------------ artifacts

    def artifact(self, ref: str, path: str, job: str) -> bytes | None:
        """A file of the latest successful ``job`` on ``ref`` (``None`` when there is none yet)."""
        url = (
            f"{self.project_path}/jobs/artifacts/{urllib.parse.quote(ref, safe='')}/raw/"
            f"{urllib.parse.quote(path)}?job={urllib.parse.quote(job, safe='')}"
        )
        try:
            body, _ = self.request("GET", url)
        except GitLabError as exc:
            if exc.status == 404:
                return None
            raise
        return body

    # ------------------------------------------------------------------ notes

    def _notes_url(self, mr_iid: str | int) -> str:
        return f"{self.project_path}/merge_requests/{check_mr_iid(mr_iid, 'merge request')}/notes"

    def _note_id(self, note: Any, where: str) -> int:
        """The id of a note GitLab answered with; a :class:`GitLabError` for anything else."""
        if not isinstance(note, Mapping):
            raise GitLabError(f"GitLab API {where} answered {_shape(note)} where a note (a JSON object) was expected")
        value = note.get("id")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            found = "no id" if "id" not in note else f"the id {_excerpt(self._scrub(repr(value)), 40)}"
            raise GitLabError(f"GitLab API {where} answered a note with {found}: expected a positive whole number")
        return value

    def _pages(self, base: str, what: str) -> Iterator[tuple[list[Mapping[str, Any]], str]]:
        """The JSON objects of a listing, page by page (100 each, at most ``limits.max_pages``
        pages, oldest first), each page with how its request is named in a message; ``what`` names
        the objects ("notes", "issues")."""
        page, joiner = 1, "&" if "?" in base else "?"
        for _ in range(self.limits.max_pages):
            url = f"{base}{joiner}per_page=100&sort=asc&page={page}"
            where = self._scrub(f"GET {url}")
            items, headers = self.json("GET", url)
            if not isinstance(items, list):
                raise GitLabError(f"GitLab API {where} answered {_shape(items)} where a list of {what} was expected")
            for item in items:
                if not isinstance(item, Mapping):
                    raise GitLabError(
                        f"GitLab API {where} answered a list holding {_shape(item)} where {what} (JSON objects) "
                        "were expected"
                    )
            yield items, where
            following = headers.get("x-next-page", "").strip()
            if not following:
                return
            if not re.fullmatch(r"[0-9]{1,9}", following) or int(following) <= page:
                raise GitLabError(
                    f"GitLab API {where} answered X-Next-Page {_excerpt(self._scrub(following), 40)!r} after page "
                    f"{page}: expected a later page number"
                )
            page = int(following)
        raise GitLabError(
            f"GitLab API GET {self._scrub(base)}: still more {what} after {self.limits.max_pages} pages (perfgate "
            f"looks through at most {self.limits.max_pages * 100:,} {what} for its own)"
        )

    def _find_marked(self, base: str, what: str, marker: str, text_field: str) -> tuple[Mapping[str, Any], str] | None:
        """The first object of a listing whose ``text_field`` holds ``marker``, and its request's name."""
        for items, where in self._pages(base, what):
            for item in items:
                text = item.get(text_field)
                if isinstance(text, str) and marker in text:
                    return item, where
        return None

    def find_note(self, mr_iid: str | int, marker: str = NOTE_MARKER) -> int | None:
        """The id of the first note on the merge request carrying ``marker`` (pages of 100 notes,
        at most ``limits.max_pages`` of them)."""
        found = self._find_marked(self._notes_url(mr_iid), "notes", marker, "body")
        return None if found is None else self._note_id(*found)

    def upsert_note(self, mr_iid: str | int, body: str, marker: str = NOTE_MARKER) -> tuple[str, int]:
        """Create perfgate's note, or update it in place; returns ("created"|"updated", note id).
        A create that failed in a way that may have reached GitLab (502-504, a timeout) is retried
        by looking for the note again first, so that the merge request never gets two."""
        text = body if marker in body else f"{marker}\n{body}"
        url = self._notes_url(mr_iid)
        attempt = 0
        while True:
            attempt += 1
            existing = self.find_note(mr_iid, marker)
            if existing is not None:
                where = self._scrub(f"PUT {url}/{existing}")
                note, _ = self.json("PUT", f"{url}/{existing}", {"body": text})
                if not isinstance(note, Mapping):
                    raise GitLabError(f"GitLab API {where} answered {_shape(note)} where the note was expected")
                return "updated", existing
            try:
                note, _ = self.json("POST", url, {"body": text}, idempotent=False)
            except GitLabError as exc:
                if not exc.transient or exc.status == 429 or attempt >= self.limits.attempts:
                    raise  # 429 was retried already
                self.sleep(self.limits.wait(attempt))
                continue
            return "created", self._note_id(note, self._scrub(f"POST {url}"))

    # ------------------------------------------------------------------ issues (alerts on the default branch)

    def _issue(self, value: Any, where: str) -> Issue:
        """An issue GitLab answered with; a :class:`GitLabError` for anything else."""
        if not isinstance(value, Mapping):
            raise GitLabError(f"GitLab API {where} answered {_shape(value)} where an issue (JSON object) was expected")
        iid = value.get("iid")
        if isinstance(iid, bool) or not isinstance(iid, int) or iid <= 0:
            found = "no iid" if "iid" not in value else f"the iid {_excerpt(self._scrub(repr(iid)), 40)}"
            raise GitLabError(f"GitLab API {where} answered an issue with {found}: expected a positive whole number")
        texts = {name: value.get(name) for name in ("title", "description", "web_url")}
        title, description, web_url = (text if isinstance(text, str) else "" for text in texts.values())
        return Issue(iid=iid, title=title, description=description, web_url=web_url)

    def _issues_url(self, iid: int | None = None) -> str:
        return f"{self.project_path}/issues" + ("" if iid is None else f"/{check_issue_iid(iid)}")

    def find_issue(self, marker: str, label: str = ISSUE_LABEL) -> Issue | None:
        """The oldest open issue labelled ``label`` whose description carries ``marker`` (pages of
        100 issues, at most ``limits.max_pages`` of them)."""
        base = f"{self._issues_url()}?state=opened&labels={urllib.parse.quote(label, safe='')}&order_by=created_at"
        found = self._find_marked(base, "issues", marker, "description")
        return None if found is None else self._issue(*found)

    def open_issue(self, title: str, description: str, marker: str, label: str = ISSUE_LABEL) -> tuple[str, Issue]:
        """The open issue carrying ``marker`` ("found"), else a new one ("created") with this title,
        the marker and the description (its quick-action lines neutralised), labelled ``label``. A
        create that may have reached GitLab is retried by looking for the issue again first, so a
        retried pipeline never opens two."""
        body = issue_text(description, marker)
        attempt = 0
        while True:
            attempt += 1
            existing = self.find_issue(marker, label)
            if existing is not None:
                return "found", existing
            payload = {"title": issue_title(title), "description": body, "labels": label}
            try:
                issue, _ = self.json("POST", self._issues_url(), payload, idempotent=False)
            except GitLabError as exc:
                if not exc.transient or exc.status == 429 or attempt >= self.limits.attempts:
                    raise
                self.sleep(self.limits.wait(attempt))
                continue
            return "created", self._issue(issue, self._scrub(f"POST {self._issues_url()}"))

    def update_issue(
        self, iid: int, *, title: str | None = None, description: str | None = None, close: bool = False
    ) -> Issue:
        """Change an issue's title or description (its quick-action lines neutralised; the caller
        keeps the marker in it), or close it. Each is the same whatever times it is sent."""
        payload: dict[str, str] = {}
        if title is not None:
            payload["title"] = issue_title(title)
        if description is not None:
            payload["description"] = neutralise_quick_actions(description)
        if close:
            payload["state_event"] = "close"
        issue, _ = self.json("PUT", self._issues_url(iid), payload)
        return self._issue(issue, self._scrub(f"PUT {self._issues_url(iid)}"))

    def add_issue_note(self, iid: int, body: str, marker: str) -> tuple[str, int]:
        """A note on the issue carrying ``marker``: ("exists", id) when one does already (a retried
        pipeline), else ("created", id). As :meth:`open_issue`, a create that may have reached GitLab
        is retried by looking for the note first."""
        url = f"{self._issues_url(iid)}/notes"
        text = issue_text(body, marker)
        attempt = 0
        while True:
            attempt += 1
            found = self._find_marked(url, "notes", marker, "body")
            if found is not None:
                return "exists", self._note_id(*found)
            try:
                note, _ = self.json("POST", url, {"body": text}, idempotent=False)
            except GitLabError as exc:
                if not exc.transient or exc.status == 429 or attempt >= self.limits.attempts:
                    raise
                self.sleep(self.limits.wait(attempt))
                continue
            return "created", self._note_id(note, self._scrub(f"POST {url}"))


def _shape(value: Any) -> str:
    """What a JSON value is, in words: 'a JSON object', 'a list', 'a string', 'null'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {dict: "a JSON object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def from_environment(
    env: Mapping[str, str] | None = None, *, token_variable: str = "PERFGATE_GITLAB_TOKEN", job_token: bool = False
) -> GitLab:
    """A client from GitLab CI's variables (CI_API_V4_URL, CI_PROJECT_ID) and a token variable;
    ``job_token`` uses CI_JOB_TOKEN (enough for artifacts, not for notes)."""
    env = os.environ if env is None else env
    missing = [name for name in ("CI_API_V4_URL", "CI_PROJECT_ID") if not env.get(name, "").strip()]
    if missing:
        raise GitLabError(
            f"{' and '.join(missing)} not set: run inside a GitLab CI job, or set CI_API_V4_URL (e.g. "
            "https://gitlab.example.com/api/v4) and CI_PROJECT_ID (the project's id or path) in the environment"
        )
    api_url = check_api_url(env["CI_API_V4_URL"], "CI_API_V4_URL")
    variable = "CI_JOB_TOKEN" if job_token else token_variable
    if job_token:
        token, header = env.get("CI_JOB_TOKEN"), "JOB-TOKEN"
        if not token:
            raise GitLabError("CI_JOB_TOKEN is not set (it exists only inside a GitLab CI job)")
    else:
        token, header = env.get(token_variable), "PRIVATE-TOKEN"
        if not token:
            raise GitLabError(
                f"{token_variable} is not set: add a project access token with the 'api' scope as a masked "
                "CI/CD variable of that name"
            )
    _check_token(token, variable)
    return GitLab(api_url=api_url, project=env["CI_PROJECT_ID"].strip(), token=token, token_header=header)
