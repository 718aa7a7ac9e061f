"""Parsing and formatting of values with units: ``"200ms"``, ``"50MB"``, ``"1000/s"``, ``"10%"``.

Conventions (documented in docs/budgets.md):

* durations are stored in **seconds**; a bare number means seconds;
* sizes are stored in **bytes**; ``kB``/``MB``/``GB`` are decimal (10^3, 10^6, 10^9),
  ``KiB``/``MiB``/``GiB`` binary (2^10, 2^20, 2^30); a bare number means bytes;
* rates are stored **per second**; ``"1000/s"``, ``"60/min"``, ``"1000 rps"``;
* ratios are stored as fractions: ``"10%"`` is ``0.1``; a bare number is the fraction itself;
* counts are non-negative whole numbers.
"""

from __future__ import annotations

import math
import re
from enum import Enum

from .errors import UnitError


class Kind(str, Enum):
    """What a metric measures; decides how its values parse and print."""

    TIME = "time"
    SIZE = "size"
    RATE = "rate"
    RATIO = "ratio"
    COUNT = "count"
    NUMBER = "number"  # a custom figure with a free-form unit (or none)

    @property
    def base_unit(self) -> str:
        return _BASE_UNITS[self]


_BASE_UNITS = {
    Kind.TIME: "s",
    Kind.SIZE: "B",
    Kind.RATE: "/s",
    Kind.RATIO: "",
    Kind.COUNT: "",
    Kind.NUMBER: "",
}

_TIME_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_RATE_UNITS = {"/s": 1.0, "/sec": 1.0, "rps": 1.0, "/min": 1 / 60, "rpm": 1 / 60, "/h": 1 / 3600}

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_VALUE_RE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[^\d\s].*?)?\s*$")

ACCEPTED = {
    Kind.TIME: "a number of seconds or a string such as '250us', '2ms', '1.5s' (units: ns, us, ms, s, min, h)",
    Kind.SIZE: "a number of bytes or a string such as '512kB', '50MB', '1.5GiB' (units: B, kB, MB, GB, KiB, MiB, GiB)",
    Kind.RATE: "a number per second or a string such as '1000/s', '60/min', '500 rps'",
    Kind.RATIO: "a fraction such as 0.05 or a percentage such as '5%'",
    Kind.COUNT: "a whole number such as 3",
    Kind.NUMBER: "a number",
}


def shown(raw: object) -> str:
    """``repr(raw)``, cut to a readable length (a 400-digit integer, a long list)."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 200:
        return f"an integer of {len(str(abs(raw))) if raw.bit_length() < 13000 else 'thousands of'} digits"
    text = repr(raw)
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} characters)"


def _fail(raw: object, kind: Kind, why: str = "") -> UnitError:
    detail = f" ({why})" if why else ""
    return UnitError(f"{shown(raw)} is not a valid {kind.value}{detail}; accepted: {ACCEPTED[kind]}")


def parse(raw: object, kind: Kind, *, allow_negative: bool = False) -> float:
    """Parse ``raw`` (a number or a string with a unit) into the base unit of ``kind``."""
    kind = Kind(kind)  # by value: a Kind of a module reloaded by an in-process pytester run still works
    if isinstance(raw, bool):
        raise _fail(raw, kind, "a boolean is not a quantity")
    if isinstance(raw, (int, float)):
        try:
            value = float(raw)
        except OverflowError:  # an integer past the float range (YAML and JSON integers are unbounded)
            raise _fail(raw, kind, "past the float range, about 1.8e308") from None
        if kind is Kind.COUNT and not value.is_integer():
            raise _fail(raw, kind, "not a whole number")
    elif isinstance(raw, str):
        value = _parse_string(raw, kind)
    else:
        raise _fail(raw, kind, f"expected a number or a string, got {type(raw).__name__}")
    if not math.isfinite(value):
        raise _fail(raw, kind, "not a finite number within +-1.8e308")
    if value < 0 and not allow_negative:
        raise _fail(raw, kind, "negative")
    return value


def _parse_string(raw: str, kind: Kind) -> float:
    match = _VALUE_RE.match(raw)
    if not match:
        raise _fail(raw, kind)
    number = float(match.group("num"))
    unit = (match.group("unit") or "").strip()
    if not unit:
        if kind is Kind.COUNT and not number.is_integer():
            raise _fail(raw, kind, "not a whole number")
        return number
    if kind is Kind.TIME:
        factor = _TIME_UNITS.get(unit)
    elif kind is Kind.SIZE:
        factor = _SIZE_UNITS.get(unit.lower())
    elif kind is Kind.RATE:
        factor = _RATE_UNITS.get(unit.replace(" ", "").lower())
    elif kind is Kind.RATIO:
        factor = 0.01 if unit == "%" else None
    else:
        factor = None
    if factor is None:
        raise _fail(raw, kind, f"unknown unit {unit!r}")
    return number * factor


def format_value(value: float, kind: Kind, unit: str = "") -> str:
    """Human-readable text for a value in base units: ``0.0123`` s -> ``"12.3ms"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind is Kind.TIME:
        for limit, suffix, factor in ((1e-6, "ns", 1e9), (1e-3, "us", 1e6), (1.0, "ms", 1e3)):
            if abs(value) < limit:
                return f"{_sig(value * factor)}{suffix}"
        return f"{_sig(value)}s"
    if kind is Kind.SIZE:
        for limit, suffix, factor in ((1e3, "B", 1), (1e6, "kB", 1e-3), (1e9, "MB", 1e-6)):
            if abs(value) < limit:
                return f"{_sig(value * factor)}{suffix}"
        return f"{_sig(value * 1e-9)}GB"
    if kind is Kind.RATE:
        return f"{_sig(value)}/s"
    if kind is Kind.RATIO:
        return f"{_sig(value * 100)}%"
    if kind is Kind.COUNT:
        return f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e15 else _sig(value)
    return f"{_sig(value)}{unit}" if not unit else f"{_sig(value)} {unit}"


def _sig(value: float, digits: int = 3) -> str:
    """Three significant digits, no exponent for everyday magnitudes."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "-"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 9 or magnitude <= -9:  # beyond everyday magnitudes: an exponent, not 300 digits
        return f"{value:.{digits - 1}e}"
    decimals = max(0, digits - 1 - magnitude)
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def parse_ratio(raw: object, *, upper: float | None = None) -> float:
    """A fraction from ``"10%"`` or ``0.1``; above ``upper`` (when given) is an error."""
    value = parse(raw, Kind.RATIO)
    if upper is not None and value > upper:
        raise _fail(raw, Kind.RATIO, f"at most {format_value(upper, Kind.RATIO)}")
    return value


def parse_duration(raw: object) -> float:
    return parse(raw, Kind.TIME)


def parse_size(raw: object) -> float:
    return parse(raw, Kind.SIZE)
