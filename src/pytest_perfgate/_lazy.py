"""Lazy imports: package exports (PEP 562) whose modules are imported on first use, so loading
the pytest plugin (it runs in every pytest process) does not import every subsystem whole."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


def lazy_module(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__`` serving ``names`` (public name -> submodule)
    from ``package``: ``__getattr__, __dir__ = lazy_module(__name__, EXPORTS)``."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """Only the ``__getattr__`` of :func:`lazy_module` (the subpackages' form until they move to it)."""
    return lazy_module(package, names)[0]


def forget_unloaded(package_name: str) -> None:
    """Drop the attributes of a package (and of its subpackages) that name submodules no longer
    in ``sys.modules``.

    pytest's ``pytester`` restores ``sys.modules`` after each in-process run, but a package keeps
    the attribute the import system set on it for every submodule imported during that run. A later
    ``from . import x`` (which looks at that attribute first) would then get the old module while
    ``from .x import y`` imports a new one, and the two disagree (two ``Kind`` enums, ...). The
    plugin imports the core lazily, inside sessions, so it calls this as each session starts."""
    package = sys.modules.get(package_name)
    if package is not None:
        _forget_unloaded(package)


def _forget_unloaded(package: ModuleType) -> None:
    for attr, value in list(vars(package).items()):
        if isinstance(value, ModuleType) and value.__name__ == f"{package.__name__}.{attr}":
            if sys.modules.get(value.__name__) is not value:
                delattr(package, attr)
            elif hasattr(value, "__path__"):
                _forget_unloaded(value)
