"""A fake Docker Engine API on 127.0.0.1 that answers like a real engine that lacks an image:
``_ping``/``version`` succeed, image inspect is 404 "No such image", pull is 404 "manifest
unknown". Lets the docker backend's image-missing path run without Docker."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    requests: list[tuple[str, str]]

    def _send(self, code: int, body: object, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _path(self) -> str:
        self.server.requests.append((self.command, self.path))  # type: ignore[attr-defined]
        return re.sub(r"^/v[0-9.]+", "", self.path.split("?")[0])

    def do_GET(self) -> None:
        path = self._path()
        if path == "/_ping":
            return self._send(200, None, raw=b"OK")
        if path == "/version":
            return self._send(200, {"ApiVersion": "1.43", "Version": "24.0.0", "Os": "linux", "Arch": "amd64"})
        if path.startswith("/images/") and path.endswith("/json"):
            return self._send(404, {"message": "No such image: " + path[len("/images/") : -len("/json")]})
        return self._send(404, {"message": f"page not found {path}"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self._path()
        if path == "/images/create":
            return self._send(404, {"message": "manifest unknown: manifest unknown"})
        return self._send(404, {"message": f"page not found {path}"})

    def log_message(self, *args: object) -> None:
        pass


class FakeDockerEngine:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server.server_address[1]}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.server.requests  # type: ignore[attr-defined, no-any-return]

    def __enter__(self) -> FakeDockerEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
