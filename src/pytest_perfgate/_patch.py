"""Wrappers on class attributes, installed and restored exactly: the one patching engine of the
MongoDB command capture (``mongo/capture.py``) and the race interception (``race/intercept.py``).

Both wrap the same mongomock (and pymongo) methods and may be installed at once, in either order
(a capture inside a race run). So every wrapper calls whatever was there before it (the other's
wrapper included), and restoring puts the previous attribute back only where our wrapper is still
the one on the class: a wrapper someone stacked on ours since stays, and ours under it calls
straight through once its owner is off. An attribute that was inherited is deleted again rather
than set on the subclass.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

#: the positional and keyword arguments of a wrapped call: the caller's, anything
Args = tuple[Any, ...]
Kwargs = dict[str, Any]
#: ``hook(original, self, args, kwargs)``: what a wrapper does in place of ``original(self, ...)``
Hook = Callable[[Callable[..., Any], Any, Args, Kwargs], Any]
AsyncHook = Callable[[Callable[..., Any], Any, Args, Kwargs], Awaitable[Any]]


def method_wrapper(original: Callable[..., Any], hook: Hook, async_hook: AsyncHook | None = None) -> Callable[..., Any]:
    """A method that runs ``hook`` in place of ``original`` (``functools.wraps``: it keeps the
    name and ``__wrapped__``); a coroutine method awaits ``async_hook`` instead."""
    if async_hook is not None and inspect.iscoroutinefunction(original):
        awaited = async_hook

        @functools.wraps(original)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await awaited(original, self, args, kwargs)

        return async_wrapper

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return hook(original, self, args, kwargs)

    return wrapper


@dataclass(frozen=True)
class _Applied:
    owner: type
    name: str
    original: Any
    wrapper: Any
    own: bool  # the attribute was defined on the class itself (else inherited)


class Patches:
    """The wrappers one owner put on classes, undone in reverse order by :meth:`restore`.

    ``mark`` (an attribute name) is set on every wrapper made here; :meth:`wrap` leaves an
    attribute alone that already carries it (this owner's wrapper, left under another's)."""

    def __init__(self, mark: str | None = None) -> None:
        self.mark = mark
        self._applied: list[_Applied] = []

    def __len__(self) -> int:
        return len(self._applied)

    def wrap(
        self, owner: type, name: str, make: Callable[[Any], Any], *, inherited: bool = False
    ) -> Callable[..., Any] | None:
        """Replace ``owner.name`` by ``make(original)``: the wrapper, or None when there is nothing
        to wrap (no such attribute on the class itself, or an inherited one unless ``inherited``;
        or already one of ours)."""
        original = getattr(owner, name, None) if inherited else vars(owner).get(name)
        if original is None or (self.mark is not None and getattr(original, self.mark, False)):
            return None
        wrapper: Callable[..., Any] = make(original)
        if self.mark is not None:
            setattr(wrapper, self.mark, True)
        self.put(owner, name, wrapper)
        return wrapper

    def put(self, owner: type, name: str, wrapper: Any) -> None:
        """Set ``owner.name`` to ``wrapper`` (e.g. a wrapper already made, under a second name)."""
        self._applied.append(_Applied(owner, name, getattr(owner, name, None), wrapper, name in vars(owner)))
        setattr(owner, name, wrapper)

    def restore(self) -> None:
        """Put back what each wrapper replaced, where that wrapper is still on the class."""
        for applied in reversed(self._applied):
            if vars(applied.owner).get(applied.name) is not applied.wrapper:
                continue  # someone wrapped ours since: leave it (ours calls through when idle)
            if applied.own:
                setattr(applied.owner, applied.name, applied.original)
            else:
                delattr(applied.owner, applied.name)
        self._applied.clear()


class SharedPatches:
    """Patches applied by ``apply`` for as long as anyone uses them: the first :meth:`install`
    applies them, the last :meth:`uninstall` restores them (nested and concurrent users)."""

    def __init__(self, apply: Callable[[Patches], None], *, mark: str | None = None) -> None:
        self._apply = apply
        self._lock = threading.Lock()
        self._users = 0
        self.patches = Patches(mark)

    @property
    def installed(self) -> bool:
        return self._users > 0

    def install(self) -> None:
        with self._lock:
            if self._users == 0:
                try:
                    self._apply(self.patches)
                except BaseException:
                    self.patches.restore()  # what was applied before the error
                    raise
            self._users += 1

    def uninstall(self) -> None:
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                self.patches.restore()
