"""The one patching engine shared by the MongoDB capture and the race interception."""

from __future__ import annotations

import asyncio
from typing import Any

import mongomock
import mongomock.collection as mc
import pytest

from pytest_perfgate._patch import Patches, SharedPatches, method_wrapper
from pytest_perfgate.mongo.capture import CaptureHub, MongomockCapture, QueryLog
from pytest_perfgate.race.intercept import INTERCEPTOR


class Base:
    def inherited(self, x: int) -> int:
        return x

    def own(self, x: int) -> int:
        return x + 1

    async def later(self, x: int) -> int:
        return x + 2


class Child(Base):
    def own(self, x: int) -> int:
        return x + 10


def _doubling(original: Any) -> Any:
    return method_wrapper(
        original,
        lambda orig, self, args, kwargs: 2 * orig(self, *args, **kwargs),
        _adoubling,
    )


async def _adoubling(orig: Any, self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return 2 * await orig(self, *args, **kwargs)


def test_wrap_and_restore_own_inherited_and_async_attributes() -> None:
    before = dict(vars(Child))
    patches = Patches(mark="__test_mark__")
    assert patches.wrap(Child, "inherited", _doubling) is None  # not on the class itself
    assert patches.wrap(Child, "inherited", _doubling, inherited=True) is not None
    assert patches.wrap(Child, "own", _doubling) is not None
    assert patches.wrap(Child, "later", _doubling, inherited=True) is not None
    assert patches.wrap(Child, "missing", _doubling, inherited=True) is None
    assert patches.wrap(Child, "own", _doubling) is None  # already ours (marked)
    child = Child()
    assert (child.inherited(1), child.own(1), asyncio.run(child.later(1))) == (2, 22, 6)
    assert Child.own.__wrapped__ is before["own"]  # type: ignore[attr-defined]
    patches.restore()
    assert dict(vars(Child)) == before  # the inherited ones deleted again, not set on the subclass
    assert (child.inherited(1), child.own(1), asyncio.run(child.later(1))) == (1, 11, 3)
    patches.restore()  # twice: nothing left to do


def test_a_wrapper_stacked_on_ours_stays_when_we_restore() -> None:
    original = vars(Child)["own"]
    patches = Patches()
    ours = patches.wrap(Child, "own", _doubling)

    def theirs(self: Any, x: int) -> int:
        return ours(self, x) + 1  # type: ignore[misc]

    Child.own = theirs  # type: ignore[method-assign]
    try:
        patches.restore()
        assert vars(Child)["own"] is theirs
    finally:
        Child.own = original  # type: ignore[method-assign]


def test_shared_patches_apply_once_and_restore_with_the_last_user() -> None:
    applied: list[int] = []

    def apply(patches: Patches) -> None:
        applied.append(1)
        patches.wrap(Child, "own", _doubling)

    shared = SharedPatches(apply)
    shared.install()
    shared.install()
    assert applied == [1] and Child().own(1) == 22
    shared.uninstall()
    assert shared.installed and Child().own(1) == 22
    shared.uninstall()
    assert not shared.installed and Child().own(1) == 11
    shared.uninstall()  # one too many: nothing happens
    assert not shared.installed


def test_shared_patches_that_fail_to_apply_are_undone() -> None:
    def apply(patches: Patches) -> None:
        patches.wrap(Child, "own", _doubling)
        raise RuntimeError("half way")

    shared = SharedPatches(apply)
    with pytest.raises(RuntimeError, match="half way"):
        shared.install()
    assert not shared.installed and Child().own(1) == 11


@pytest.mark.parametrize("capture_first", [True, False])
@pytest.mark.parametrize("capture_leaves_first", [True, False])
def test_capture_and_race_interception_at_once_in_any_order(capture_first: bool, capture_leaves_first: bool) -> None:
    """Both wrap mongomock's Collection methods: installed in either order, both work, and once
    both are off a find_one calls the original (possibly through a pass-through left behind)."""
    original = vars(mc.Collection)["find_one"]
    hub = CaptureHub()
    capture = MongomockCapture(hub)
    steps = [capture.install, INTERCEPTOR.install] if capture_first else [INTERCEPTOR.install, capture.install]
    for step in steps:
        step()
    try:
        log = QueryLog()
        hub.arm(log)
        coll = mongomock.MongoClient().db.c
        assert coll.find_one({"a": 1}) is None
        assert [r.command for r in log.records] == ["find"]
        assert INTERCEPTOR.installed
    finally:
        hub.disarm()
        for step in [capture.uninstall, INTERCEPTOR.uninstall][:: 1 if capture_leaves_first else -1]:
            step()
    assert not INTERCEPTOR.installed
    top = vars(mc.Collection)["find_one"]
    chain = [top]
    while hasattr(chain[-1], "__wrapped__"):
        chain.append(chain[-1].__wrapped__)
    assert chain[-1] is original
    log = QueryLog()
    hub.arm(log)
    assert mongomock.MongoClient().db.c.find_one({}) is None
    assert log.records == ()  # what is left behind calls straight through
    if top is not original:  # left behind by the race interception under the capture: reused next time
        INTERCEPTOR.install()
        INTERCEPTOR.uninstall()
        assert vars(mc.Collection)["find_one"] is top
        mc.Collection.find_one = original  # type: ignore[method-assign]
