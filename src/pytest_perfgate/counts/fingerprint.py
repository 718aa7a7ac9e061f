"""The environment fingerprint of a counted run: counts are compared only between runs whose
fingerprints are equal; otherwise "environment changed: counters not compared", naming the fields
that changed (:func:`differences`). Pytest-free, JSON round trip (:meth:`Fingerprint.to_json`,
:meth:`Fingerprint.from_json`).

What matters for instruction counts: the interpreter (version, implementation, the compiler and
the build flags: ``--enable-optimizations``/LTO/debug builds change every count), the machine
(instruction set), the libc (many calls end in it), valgrind's version (its simulation), the hash
seed, and the installed distributions (a new version of a dependency changes the code measured).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from typing import Any

from pytest_perfgate.errors import ResultsFileError

#: sysconfig variables that change the machine code of the interpreter
BUILD_VARS = ("CONFIG_ARGS", "PY_CFLAGS", "PY_CFLAGS_NODIST", "Py_DEBUG", "Py_ENABLE_SHARED", "WITH_PYMALLOC")


@dataclass(frozen=True)
class Fingerprint:
    """What must be equal for two runs' counts to be compared (strings; ``None``: not known)."""

    python: str  # "3.11.7"
    implementation: str  # "cpython"
    python_build: str  # sys.version: the build date and compiler ("main, May  9 2026, 07:35:25) [GCC 12.2.0]")
    build_flags: str  # sha256 (12 hex digits) of BUILD_VARS from sysconfig
    machine: str  # "x86_64"
    platform: str  # "linux"
    libc: str  # "glibc 2.36"
    valgrind: str | None  # "3.19.0", None when counts were not taken under valgrind
    distributions: str  # sha256 (12 hex digits) of the sorted "name==version" of the installed distributions
    hash_seed: str | None  # PYTHONHASHSEED ("0"), None when unset (random)
    #: how instructions were counted (:data:`~pytest_perfgate.counts.callgrind.METHOD`); None: not
    #: counted, or by a perfgate that did not record it (before the canonical heap)
    method: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, *, source: str = "fingerprint") -> Fingerprint:
        """The fingerprint in ``data``; :class:`ResultsFileError` naming ``source`` and the field
        when a field is missing or not a string (unknown keys are ignored: newer writers;
        ``method`` may be absent: older writers)."""
        if not isinstance(data, dict):
            raise ResultsFileError(source, f"the fingerprint must be an object, got {type(data).__name__}")
        values: dict[str, str | None] = {}
        for item in fields(cls):
            value = data.get(item.name)
            optional = item.name in _OPTIONAL
            if item.name == "method" and item.name not in data:
                value = None
            elif item.name not in data or (value is None and not optional) or not isinstance(value, (str, type(None))):
                raise ResultsFileError(source, f"fingerprint field {item.name!r} must be a string, got {value!r}")
            values[item.name] = value
        return cls(**values)  # type: ignore[arg-type]


_OPTIONAL = ("valgrind", "hash_seed", "method")


def _short_hash(lines: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def distributions_hash() -> str:
    """A hash of the installed distributions (``name==version``, names normalised, sorted)."""
    found = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            found.add(f"{name.lower().replace('_', '-')}=={dist.version}")
    return _short_hash(sorted(found))


def build_flags_hash() -> str:
    """A hash of the interpreter's build variables that change its machine code (:data:`BUILD_VARS`)."""
    return _short_hash(f"{name}={sysconfig.get_config_var(name)!r}" for name in BUILD_VARS)


def current(
    *, valgrind: str | None = None, hash_seed: str | int | None = None, method: str | None = None
) -> Fingerprint:
    """This process's fingerprint; ``valgrind`` the version counts are taken with,
    ``hash_seed`` the seed used (default: this process's ``PYTHONHASHSEED``), ``method`` how
    instructions were counted."""
    libc_name, libc_version = platform.libc_ver()
    seed = os.environ.get("PYTHONHASHSEED") if hash_seed is None else str(hash_seed)
    return Fingerprint(
        python=platform.python_version(),
        implementation=sys.implementation.name,
        python_build=sys.version,
        build_flags=build_flags_hash(),
        machine=platform.machine(),
        platform=sys.platform,
        libc=f"{libc_name} {libc_version}".strip() or "unknown",
        valgrind=valgrind,
        distributions=distributions_hash(),
        hash_seed=seed,
        method=method,
    )


@dataclass(frozen=True)
class Difference:
    """One field that differs: ``python: 3.11.7 -> 3.11.8``."""

    field: str
    before: str | None
    after: str | None


def differences(before: Fingerprint, after: Fingerprint) -> tuple[Difference, ...]:
    """The fields that differ, in the order of :class:`Fingerprint`; empty: counts comparable."""
    return tuple(
        Difference(item.name, getattr(before, item.name), getattr(after, item.name))
        for item in fields(Fingerprint)
        if getattr(before, item.name) != getattr(after, item.name)
    )
