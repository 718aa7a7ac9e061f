"""A tiny MongoDB *wire-protocol* fake on 127.0.0.1, for exercising the real-server code paths
(pymongo client, CommandListener capture, explain, index listing, profiler, drop) where no
MongoDB server can run. It is NOT MongoDB: it knows a handful of commands, matches filters by
top-level equality only, and answers ``explain`` with a COLLSCAN plan (SBE shape) unless an
index's first key is an equality field of the filter (then an IXSCAN plan, classic shape).
"""

from __future__ import annotations

import datetime
import socketserver
import struct
import threading
from typing import Any

import bson

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\x00", pos)
    return data[pos:end].decode(), end + 1


class Store:
    def __init__(self, set_name: str | None = None) -> None:
        self.set_name = set_name
        self.dbs: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.indexes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.commands: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def coll(self, db: str, name: str) -> list[dict[str, Any]]:
        return self.dbs.setdefault(db, {}).setdefault(name, [])

    def _match(self, doc: dict[str, Any], flt: dict[str, Any]) -> bool:
        for key, value in flt.items():
            if isinstance(value, dict) and any(k.startswith("$") for k in value):
                continue  # operators: not evaluated by this fake
            if doc.get(key) != value:
                return False
        return True

    def _explain(self, db: str, inner: dict[str, Any]) -> dict[str, Any]:
        name = next(iter(inner))
        coll = str(inner[name])
        flt = inner.get("filter") or inner.get("query") or {}
        docs = self.coll(db, coll)
        matched = [d for d in docs if self._match(d, flt)]
        for index in self.indexes.get((db, coll), []):
            first = next(iter(index["key"]))
            if first in flt:
                return {
                    "explainVersion": "1",
                    "queryPlanner": {
                        "winningPlan": {"stage": "FETCH", "inputStage": {"stage": "IXSCAN", "indexName": index["name"]}}
                    },
                    "executionStats": {
                        "nReturned": len(matched),
                        "totalKeysExamined": len(matched),
                        "totalDocsExamined": len(matched),
                    },
                    "ok": 1.0,
                }
        return {
            "explainVersion": "2",
            "queryPlanner": {
                "winningPlan": {
                    "queryPlan": {"stage": "COLLSCAN", "planNodeId": 1},
                    "slotBasedPlan": {"stages": "scan"},
                }
            },
            "executionStats": {"nReturned": len(matched), "totalKeysExamined": 0, "totalDocsExamined": len(docs)},
            "ok": 1.0,
        }

    def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        name = next(iter(cmd))
        db = cmd.get("$db", "admin")
        with self.lock:
            self.commands.append(cmd)
            if name.lower() in ("hello", "ismaster"):
                reply: dict[str, Any] = {
                    "ismaster": True,
                    "isWritablePrimary": True,
                    "helloOk": True,
                    "maxWireVersion": 21,
                    "minWireVersion": 0,
                    "maxBsonObjectSize": 16 * 1024 * 1024,
                    "maxMessageSizeBytes": 48000000,
                    "maxWriteBatchSize": 100000,
                    "localTime": datetime.datetime.now(datetime.timezone.utc),
                    "logicalSessionTimeoutMinutes": 30,
                    "connectionId": 1,
                    "ok": 1.0,
                }
                if self.set_name:
                    reply.update(setName=self.set_name, hosts=["127.0.0.1"], primary="127.0.0.1", me="127.0.0.1")
                return reply
            if name == "buildInfo" or name == "buildinfo":
                return {"version": "7.0.99-fake", "versionArray": [7, 0, 99, 0], "ok": 1.0}
            if name in ("ping", "endSessions", "killCursors"):
                return {"ok": 1.0}
            if name == "insert":
                docs = cmd.get("documents", [])
                self.coll(db, cmd[name]).extend(docs)
                return {"n": len(docs), "ok": 1.0}
            if name == "find":
                coll = cmd[name]
                if coll == "system.profile":
                    batch = [
                        {
                            "op": "query",
                            "ns": f"{db}.events",
                            "millis": 7,
                            "docsExamined": 3,
                            "keysExamined": 0,
                            "planSummary": "COLLSCAN",
                        }
                    ]
                else:
                    batch = [d for d in self.coll(db, coll) if self._match(d, cmd.get("filter") or {})]
                    if cmd.get("limit"):
                        batch = batch[: abs(int(cmd["limit"]))]
                return {"cursor": {"id": bson.int64.Int64(0), "ns": f"{db}.{coll}", "firstBatch": batch}, "ok": 1.0}
            if name == "aggregate":  # $match (equality) and a counting $group only
                rows = list(self.coll(db, cmd[name]))
                for stage in cmd.get("pipeline", []):
                    if "$match" in stage:
                        rows = [d for d in rows if self._match(d, stage["$match"])]
                    elif "$group" in stage:
                        key = str(stage["$group"]["_id"]).lstrip("$")
                        counts: dict[Any, int] = {}
                        for d in rows:
                            counts[d.get(key)] = counts.get(d.get(key), 0) + 1
                        rows = [{"_id": k, "n": v} for k, v in counts.items()]
                return {"cursor": {"id": bson.int64.Int64(0), "ns": f"{db}.{cmd[name]}", "firstBatch": rows}, "ok": 1.0}
            if name == "explain":
                return self._explain(db, cmd["explain"])
            if name == "createIndexes":
                for index in cmd["indexes"]:
                    self.indexes.setdefault((db, cmd[name]), []).append({"key": index["key"], "name": index["name"]})
                return {"ok": 1.0, "numIndexesBefore": 1, "numIndexesAfter": 2}
            if name == "dropIndexes":
                kept = [ix for ix in self.indexes.get((db, cmd[name]), []) if ix["name"] != cmd.get("index")]
                self.indexes[(db, cmd[name])] = kept
                return {"ok": 1.0, "nIndexesWas": len(kept) + 2}
            if name == "listIndexes":
                batch = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}] + [
                    {"v": 2, **ix} for ix in self.indexes.get((db, cmd[name]), [])
                ]
                return {
                    "cursor": {"id": bson.int64.Int64(0), "ns": f"{db}.{cmd[name]}", "firstBatch": batch},
                    "ok": 1.0,
                }
            if name == "dropDatabase":
                self.dbs.pop(db, None)
                for key in [k for k in self.indexes if k[0] == db]:
                    del self.indexes[key]
                return {"ok": 1.0}
            if name == "listDatabases":
                return {"databases": [{"name": n, "sizeOnDisk": 1, "empty": False} for n in self.dbs], "ok": 1.0}
            if name == "replSetInitiate":
                self.set_name = cmd[name]["_id"]
                return {"ok": 1.0}
            if name == "profile":
                return {"was": 0, "slowms": 100, "ok": 1.0}
            return {"ok": 0.0, "errmsg": f"no such command: '{name}' (fake server)", "code": 59}


class _Handler(socketserver.BaseRequestHandler):
    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk:
                raise ConnectionError
            data += chunk
        return data

    def handle(self) -> None:
        store: Store = self.server.store  # type: ignore[attr-defined]
        try:
            while True:
                length, request_id, _to, opcode = struct.unpack("<iiii", self._read(16))
                body = self._read(length - 16)
                if opcode == OP_MSG:
                    pos, cmd = 4, {}
                    while pos < len(body):
                        kind = body[pos]
                        pos += 1
                        size = struct.unpack("<i", body[pos : pos + 4])[0]
                        if kind == 0:
                            cmd.update(bson.decode(body[pos : pos + size]))
                        else:
                            ident, start = _cstring(body, pos + 4)
                            cmd[ident] = list(bson.decode_all(body[start : pos + size]))
                        pos += size
                    payload = struct.pack("<i", 0) + b"\x00" + bson.encode(store.command(cmd))
                    out_op = OP_MSG
                else:  # OP_QUERY (legacy handshake)
                    _name, pos = _cstring(body, 4)
                    size = struct.unpack("<i", body[pos + 8 : pos + 12])[0]
                    cmd = dict(bson.decode(body[pos + 8 : pos + 8 + size]))
                    doc = bson.encode(store.command(cmd))
                    payload = struct.pack("<iqii", 0, 0, 0, 1) + doc
                    out_op = OP_REPLY
                header = struct.pack("<iiii", 16 + len(payload), request_id + 1, request_id, out_op)
                self.request.sendall(header + payload)
        except (ConnectionError, OSError):
            return


class FakeMongoServer:
    def __init__(self, set_name: str | None = None, port: int = 0) -> None:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.store = Store(set_name)
        self.server.store = self.store  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.server.server_address[1]}/?directConnection=true"

    def __enter__(self) -> FakeMongoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    """Run as a fake ``mongod``: ``--port N --logpath FILE [--replSet NAME]``; SIGTERM stops it."""
    import os
    import signal
    import sys

    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    logpath = args[args.index("--logpath") + 1]
    with open(os.environ.get("FAKE_PIDFILE", os.devnull), "w") as fh:
        fh.write(str(os.getpid()))
    server = FakeMongoServer(port=port)
    with open(logpath, "a") as log:
        log.write(f'{{"msg":"Waiting for connections (fake)","port":{port}}}\n')
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    with server:
        stop.wait()
    with open(logpath, "a") as log:
        log.write('{"msg":"shutting down (fake)"}\n')


if __name__ == "__main__":
    main()
