"""Real pymongo calls as scheduling points, against the wire-protocol fake in fake_mongo_server.py:
a call blocked by a server-side lock is left in flight, so it cannot deadlock the scheduler."""

from __future__ import annotations

import threading
from typing import Any

import pymongo
import pytest

from fake_mongo_server import FakeMongoServer, Store
from pytest_perfgate.race import Race, RaceFailure, Timing
from pytest_perfgate.race.scheduler import Schedule
from pytest_perfgate.race.strategies import Guided
from pytest_perfgate.race.token import Choice
from pytest_perfgate.race.trace import StepKind


class LockingStore(Store):
    """An insert into ``orders`` waits (server-side, as behind a lock a transaction holds) until a
    ``find`` on ``locks`` releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        name = next(iter(cmd))
        if name == "insert" and cmd[name] == "orders":
            self.released.wait(5)
        if name == "find" and cmd[name] == "locks":
            self.released.set()
        return super().command(cmd)


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    fake = FakeMongoServer()
    fake.store = fake.server.store = LockingStore()  # type: ignore[attr-defined]
    with fake:
        yield fake


def test_a_call_held_by_a_server_side_lock_is_left_in_flight(server: FakeMongoServer) -> None:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=3000)
    db = client.shop
    db.command("ping")  # connect outside the race

    def place_order() -> None:
        db.orders.insert_one({"_id": 1})

    def release_lock() -> None:
        list(db.locks.find({"owner": "t1"}))

    from pytest_perfgate.race.intercept import intercepting

    with intercepting():
        execution = Schedule(
            [("place_order", place_order), ("release_lock", release_lock)],
            Guided([Choice(0), Choice(0)]),  # the blocked insert goes first
            # release_lock's find must return before in_flight_after, or it too is left in flight and
            # the steps differ: 0.5 s, not the 50 ms of a quick round trip, outlasts a busy runner's
            # scheduling delays and a full garbage collection in a big test process
            timing=Timing(hang_timeout=3, in_flight_after=0.5),
        ).run()
    assert execution.hang is None
    assert [o.error for o in execution.outcomes] == [None, None]
    steps = [(s.thread, s.kind, s.point.describe()) for s in execution.trace.steps]
    assert steps == [
        (0, StepKind.RUN, "start"),
        (0, StepKind.RUN, "orders.insert_one"),
        (0, StepKind.RELEASE, "orders.insert_one"),
        (1, StepKind.RUN, "start"),
        (1, StepKind.RUN, "locks.find {owner: ?}"),
        (0, StepKind.RETURN, "orders.insert_one"),
    ]
    client.close()


def test_pymongo_lost_update_is_found_through_the_wire(server: FakeMongoServer) -> None:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=3000)
    orders = client.shop.orders
    server.store.released.set()
    seen: list[int] = []

    def reset() -> None:
        server.store.dbs.clear()
        seen.clear()

    def count_then_insert(order_id: int) -> None:
        seen.append(len(list(orders.find({}))))
        orders.insert_one({"_id": order_id, "number": seen[-1] + 1})

    def check() -> None:
        numbers = sorted(doc["number"] for doc in orders.find({}))
        assert numbers == [1, 2], f"order numbers {numbers}"

    with pytest.raises(RaceFailure) as raised:
        Race().run(lambda: count_then_insert(1), lambda: count_then_insert(2), setup=reset, invariant=check)
    assert raised.value.report.failure is not None
    assert raised.value.report.failure.summary == "invariant violated: AssertionError: order numbers [1, 1]"
    assert "orders.find {}" in raised.value.report.failure.execution.trace.format()
    client.close()


def _motor_client(uri: str) -> Any:
    motor = pytest.importorskip("motor.motor_asyncio")
    return motor.AsyncIOMotorClient(uri, serverSelectionTimeoutMS=3000)


def _async_client(uri: str) -> Any:
    from pymongo import AsyncMongoClient

    return AsyncMongoClient(uri, serverSelectionTimeoutMS=3000)


#: what each async driver's race through one event loop ends with
DRIVERS = {
    # each request waits for its turn in its coroutine; the loop runs the other meanwhile
    "AsyncMongoClient": (_async_client, "invariant violated: AssertionError: order numbers [1, 1]"),
    # motor binds pymongo's functions when it is imported: its calls are not seen, and the race says
    # so instead of passing (use AsyncMongoClient, motor's successor)
    "motor": (_motor_client, "T0 place_1, T1 place_2 never reached a scheduling point in 300 schedules"),
}


@pytest.mark.parametrize("name", list(DRIVERS))
def test_async_endpoints_on_one_event_loop_are_interleaved_at_the_async_drivers_calls(
    server: FakeMongoServer, name: str
) -> None:
    """An ASGI app whose async endpoints await an async driver, served by one TestClient (one
    event loop for every request, as in production): the lost update of "count, then insert" is
    found through the wire with pymongo's AsyncMongoClient; with motor the race fails closed."""
    driver, summary = DRIVERS[name]
    pytest.importorskip("httpx")
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    server.store.released.set()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        state["client"] = driver(server.uri)
        yield
        closed = state["client"].close()
        if closed is not None:  # AsyncMongoClient.close is a coroutine; motor's is not
            await closed

    async def place(request: Request) -> JSONResponse:
        orders = state["client"].shop.orders
        number = len(await orders.find({}).to_list(None)) + 1
        await orders.insert_one({"_id": request.path_params["oid"], "number": number})
        return JSONResponse({"number": number}, status_code=201)

    app = Starlette(routes=[Route("/orders/{oid}", place, methods=["POST"])], lifespan=lifespan)
    sync = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=3000).shop.orders

    def check() -> None:
        numbers = sorted(doc["number"] for doc in sync.find({}))
        assert numbers == [1, 2], f"order numbers {numbers}"

    with TestClient(app) as client:
        ops = [Race.op(f"place_{n}", lambda n=n: client.post(f"/orders/o{n}")) for n in (1, 2)]
        with pytest.raises(RaceFailure) as raised:
            Race().run(*ops, setup=server.store.dbs.clear, invariant=check, seed=1)
    failure = raised.value.report.failure
    assert failure is not None
    assert failure.summary.startswith(summary), failure.summary
    if name == "AsyncMongoClient":
        trace = failure.execution.trace.format()
        assert "orders.find {}" in trace and "orders.insert_one" in trace
        assert failure.replay_verified
