"""GitLab's API, the few endpoints the gate needs: download another ref's job artifact (the
default branch's baseline) and create-or-update one merge-request note (the report).

Plain ``urllib`` (no dependency); every request bounded by a timeout. A token is never printed,
logged or put in an error: :class:`GitLabError` messages are scrubbed of it.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import PerfgateError

#: the hidden marker that identifies perfgate's note on a merge request
NOTE_MARKER = "<!-- perfgate-report -->"

_STATUS_HINTS = {
    401: "the token was refused (expired, revoked or mistyped)",
    403: "the token may not do this (posting notes needs a token with the 'api' scope; CI_JOB_TOKEN cannot post notes)",
    404: "not found (wrong project, merge request, ref, job name or path, or no access)",
}


class GitLabError(PerfgateError):
    """A GitLab API call failed; the message never contains the token."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class GitLab:
    """Where the API is and how to authenticate. ``token_header`` is ``PRIVATE-TOKEN`` for
    personal, project and group access tokens, ``JOB-TOKEN`` for ``CI_JOB_TOKEN``."""

    api_url: str  # e.g. https://gitlab.example.com/api/v4 (CI_API_V4_URL)
    project: str  # numeric id or "group/project"
    token: str | None = None
    token_header: str = "PRIVATE-TOKEN"
    timeout: float = 10.0

    def __repr__(self) -> str:  # never show the token, even in a debugger or a traceback
        return f"GitLab(api_url={self.api_url!r}, project={self.project!r}, token={'***' if self.token else None})"

    @property
    def project_path(self) -> str:
        return f"{self.api_url.rstrip('/')}/projects/{urllib.parse.quote(str(self.project), safe='')}"

    def _scrub(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    def request(self, method: str, url: str, body: Mapping[str, Any] | None = None) -> tuple[bytes, Mapping[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if self.token:
            req.add_header(self.token_header, self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        where = self._scrub(f"{method} {url}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            detail = self._scrub(exc.read(300).decode("utf-8", "replace").strip())
            hint = _STATUS_HINTS.get(exc.code, "GitLab had a server error; try again later" if exc.code >= 500 else "")
            message = f"GitLab API {where} answered {exc.code}" + (f": {hint}" if hint else "")
            raise GitLabError(message + (f" ({detail})" if detail else ""), status=exc.code) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise GitLabError(
                f"GitLab API {where} failed: {self._scrub(str(reason))} (timeout {self.timeout:g}s)"
            ) from None

    def json(self, method: str, url: str, body: Mapping[str, Any] | None = None) -> tuple[Any, Mapping[str, str]]:
        raw, headers = self.request(method, url, body)
        try:
            return json.loads(raw or b"null"), headers
        except json.JSONDecodeError:
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
        return f"{self.project_path}/merge_requests/{mr_iid}/notes"

    def find_note(self, mr_iid: str | int, marker: str = NOTE_MARKER) -> int | None:
        """The id of the first note on the merge request carrying ``marker``."""
        page: str | None = "1"
        while page:
            notes, headers = self.json("GET", f"{self._notes_url(mr_iid)}?per_page=100&sort=asc&page={page}")
            for note in notes or []:
                if isinstance(note, Mapping) and marker in str(note.get("body", "")):
                    return int(note["id"])
            page = {k.lower(): v for k, v in headers.items()}.get("x-next-page") or None
        return None

    def upsert_note(self, mr_iid: str | int, body: str, marker: str = NOTE_MARKER) -> tuple[str, int]:
        """Create perfgate's note, or update it in place; returns ("created"|"updated", note id)."""
        text = body if marker in body else f"{marker}\n{body}"
        existing = self.find_note(mr_iid, marker)
        if existing is None:
            note, _ = self.json("POST", self._notes_url(mr_iid), {"body": text})
            return "created", int(note["id"])
        self.json("PUT", f"{self._notes_url(mr_iid)}/{existing}", {"body": text})
        return "updated", existing


def from_environment(
    env: Mapping[str, str] | None = None, *, token_variable: str = "PERFGATE_GITLAB_TOKEN", job_token: bool = False
) -> GitLab:
    """A client from GitLab CI's variables (CI_API_V4_URL, CI_PROJECT_ID) and a token variable;
    ``job_token`` uses CI_JOB_TOKEN (enough for artifacts, not for notes)."""
    env = os.environ if env is None else env
    missing = [name for name in ("CI_API_V4_URL", "CI_PROJECT_ID") if not env.get(name)]
    if missing:
        raise GitLabError(
            f"{' and '.join(missing)} not set: run inside a GitLab CI job or pass --api-url and --project"
        )
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
    return GitLab(api_url=env["CI_API_V4_URL"], project=env["CI_PROJECT_ID"], token=token, token_header=header)
