"""The graph service's HTTP API, as a small ASGI app (Starlette, FastAPI) and a WSGI one (Flask).

``DELETE /edges/{id}``, ``DELETE /nodes/{id}`` (``?cascade=false`` refuses while the node has
edges), ``POST /edges`` (``{"id", "src", "dst"}``). Not found is 404, a node with edges 409; any
other error is the server's (500, or raised in the test client). Sync endpoints run in the ASGI
server's thread pool, async ones on its event loop: both are what the race tests go through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from graphstore import EdgeNotFound, Graph, GraphError, NodeHasEdges, NodeNotFound

STATUS = {NodeHasEdges: 409}
ERRORS = {cls.__name__: cls for cls in (NodeNotFound, EdgeNotFound, NodeHasEdges)}

#: sends one request: (method, path, JSON body or None) -> (status, JSON body or None)
Send = Callable[[str, str, "dict[str, str] | None"], "tuple[int, Any]"]


def _status(error: GraphError) -> int:
    return STATUS.get(type(error), 404)


class HttpGraph:
    """The graph's operations as a client of the API: the scenarios' operations run unchanged
    over HTTP, and a 404 / 409 becomes the error the service raised (its name is in the body)."""

    def __init__(self, send: Send) -> None:
        self.send = send

    def _call(self, method: str, path: str, body: dict[str, str] | None = None) -> None:
        status, data = self.send(method, path, body)
        if status in (404, 409) and isinstance(data, dict) and data.get("error") in ERRORS:
            raise ERRORS[data["error"]](data.get("id"))
        assert status in (201, 204), f"{method} {path} answered {status}"

    def add_edge(self, eid: str, src: str, dst: str) -> None:
        self._call("POST", "/edges", {"id": eid, "src": src, "dst": dst})

    def delete_edge(self, eid: str) -> None:
        self._call("DELETE", f"/edges/{eid}")

    def delete_node(self, nid: str, cascade: bool = True) -> None:
        self._call("DELETE", f"/nodes/{nid}" + ("" if cascade else "?cascade=false"))


def asgi_app(graph: Graph, *, asynchronous: bool = False) -> Any:
    """The API on Starlette: sync endpoints (the thread pool), or ``asynchronous`` ones (the loop)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def delete_edge(request: Request) -> Response:
        graph.delete_edge(request.path_params["eid"])
        return Response(status_code=204)

    def delete_node(request: Request) -> Response:
        graph.delete_node(request.path_params["nid"], cascade=request.query_params.get("cascade") != "false")
        return Response(status_code=204)

    def add_edge(body: dict[str, str]) -> Response:
        graph.add_edge(body["id"], body["src"], body["dst"])
        return JSONResponse({"id": body["id"]}, status_code=201)

    async def add_edge_endpoint(request: Request) -> Response:
        return add_edge(await request.json())

    async def delete_edge_async(request: Request) -> Response:
        return delete_edge(request)

    async def delete_node_async(request: Request) -> Response:
        return delete_node(request)

    async def graph_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GraphError)
        return JSONResponse({"error": type(exc).__name__, "id": str(exc)}, status_code=_status(exc))

    routes = [
        Route("/edges/{eid}", delete_edge_async if asynchronous else delete_edge, methods=["DELETE"]),
        Route("/nodes/{nid}", delete_node_async if asynchronous else delete_node, methods=["DELETE"]),
        Route("/edges", add_edge_endpoint, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={GraphError: graph_error})


def fastapi_app(graph: Graph) -> Any:
    """The same API on FastAPI (sync path operations run in its thread pool)."""
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.delete("/edges/{eid}")
    def delete_edge(eid: str) -> Response:
        graph.delete_edge(eid)
        return Response(status_code=204)

    @app.delete("/nodes/{nid}")
    def delete_node(nid: str, cascade: bool = True) -> Response:
        graph.delete_node(nid, cascade=cascade)
        return Response(status_code=204)

    @app.post("/edges", status_code=201)
    def add_edge(body: dict[str, str]) -> dict[str, str]:
        graph.add_edge(body["id"], body["src"], body["dst"])
        return {"id": body["id"]}

    @app.exception_handler(GraphError)
    async def graph_error(request: Request, exc: GraphError) -> JSONResponse:
        return JSONResponse({"error": type(exc).__name__, "id": str(exc)}, status_code=_status(exc))

    return app


def wsgi_app(graph: Graph) -> Any:
    """The same API on Flask (WSGI: its test client runs a request in the calling thread)."""
    from flask import Flask, jsonify, request

    app = Flask("graph_service")

    @app.delete("/edges/<eid>")
    def delete_edge(eid: str) -> Any:
        graph.delete_edge(eid)
        return "", 204

    @app.delete("/nodes/<nid>")
    def delete_node(nid: str) -> Any:
        graph.delete_node(nid, cascade=request.args.get("cascade") != "false")
        return "", 204

    @app.post("/edges")
    def add_edge() -> Any:
        body = request.get_json()
        graph.add_edge(body["id"], body["src"], body["dst"])
        return jsonify({"id": body["id"]}), 201

    @app.errorhandler(GraphError)
    def graph_error(exc: GraphError) -> Any:
        return jsonify({"error": type(exc).__name__, "id": str(exc)}), _status(exc)

    return app


# --------------------------------------------------------------------------- clients of the API


def _test_client(client: Any) -> Send:
    def send(method: str, path: str, body: dict[str, str] | None) -> tuple[int, Any]:
        response = client.request(method, path, json=body)
        return response.status_code, response.json() if response.content else None

    return send


def starlette(graph: Graph, *, asynchronous: bool = False) -> Send:
    from starlette.testclient import TestClient

    return _test_client(TestClient(asgi_app(graph, asynchronous=asynchronous)))


def fastapi(graph: Graph) -> Send:
    from fastapi.testclient import TestClient

    return _test_client(TestClient(fastapi_app(graph)))


def httpx_asgi(graph: Graph) -> Send:
    """httpx's AsyncClient on ASGITransport: each request runs in its operation's own event loop."""
    import httpx

    app = asgi_app(graph)

    async def request(method: str, path: str, body: dict[str, str] | None) -> tuple[int, Any]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://graph") as client:
            response = await client.request(method, path, json=body)
        return response.status_code, response.json() if response.content else None

    return lambda method, path, body: asyncio.run(request(method, path, body))


def flask(graph: Graph) -> Send:
    client = wsgi_app(graph).test_client()

    def send(method: str, path: str, body: dict[str, str] | None) -> tuple[int, Any]:
        response = client.open(path, method=method, json=body)
        return response.status_code, response.get_json(silent=True)

    return send


CLIENTS: dict[str, Callable[[Graph], Send]] = {
    "starlette-sync-endpoints": starlette,
    "starlette-async-endpoints": lambda graph: starlette(graph, asynchronous=True),
    "fastapi": fastapi,
    "httpx-asgi-transport": httpx_asgi,
    "flask-wsgi": flask,
}
