"""Parsing and formatting of values with units: ``"200ms"``, ``"50MB"``, ``"1000/s"``, ``"10%"``.

Conventions (documented in docs/budgets.md):

* durations are stored in **seconds**; a bare number means seconds;
* sizes are stored in **bytes**; ``kB``/``MB``/``GB`` are decimal (10^3, 10^6, 10^9),
  ``KiB``/``MiB``/``GiB`` binary (2^10, 2^20, 2^30); a bare number means bytes;
* rates are stored **per second**; ``"1000/s"``, ``"60/min"``, ``"1000 rps"``;
* ratios are stored as fractions: ``"10%"`` is ``0.1``; a bare number is the fraction itself;
* counts are non-negative whole numbers; ``k``/``K``, ``M``, ``G`` and ``T`` are decimal
  multipliers (``"40M"`` is 40,000,000, ``"1.5k"`` is 1500; ``m`` is refused: it reads as milli)
  and the result must be whole (``"1.2345k"`` is not). Large counts print the same way: ``"40.2M"``.

The only parser of these forms: options, ``perfgate.yml``, markers, the commands and the unit
labels of ``perf.record`` (:func:`record_unit`) all go through it.
"""

from __future__ import annotations

import itertools
import math
import re
from decimal import Decimal, InvalidOperation
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
    "B": 1,
    "kB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
}
_SIZE_UNITS_ANY_CASE = {unit.lower(): factor for unit, factor in _SIZE_UNITS.items()}
#: decimal multipliers of a count (case-sensitive but for ``k``: ``m`` would read as milli); ``T``
#: only so that every count :func:`format_count` prints reads back
_COUNT_UNITS = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_RATE_UNITS = {"/s": 1.0, "/sec": 1.0, "rps": 1.0, "/min": 1 / 60, "rpm": 1 / 60, "/h": 1 / 3600}

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_VALUE_RE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[^\d\s].*?)?\s*$")

ACCEPTED = {
    Kind.TIME: "a number of seconds or a string such as '250us', '2ms', '1.5s', '1h30m' (units: ns, us, ms, s, min, h)",
    Kind.SIZE: "a number of bytes or a string such as '512kB', '50MB', '1.5GiB' (units: B, kB, MB, GB, KiB, MiB, GiB)",
    Kind.RATE: "a number per second or a string such as '1000/s', '60/min', '500 rps'",
    Kind.RATIO: "a fraction such as 0.05 or a percentage such as '5%'",
    Kind.COUNT: "a whole number such as 3, or with a multiplier: '1.5k', '40M', '2G' (k = 10^3, M = 10^6, G = 10^9)",
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
    if kind is Kind.COUNT:
        return _parse_count(raw, match.group("num"), unit)
    factor = _factor(unit, kind)
    if factor is None:
        if kind is Kind.TIME and _COMPOUND_RE.match(raw):
            return _parse_compound(raw)
        raise _fail(raw, kind, f"unknown unit {unit!r}")
    return number * factor


def _parse_count(raw: str, number: str, unit: str) -> float:
    """A count with a multiplier, computed in decimal so that ``"40.2M"`` is exactly 40,200,000."""
    factor = _COUNT_UNITS.get(unit)
    if factor is None:
        hint = "; 'm' would be milli: write 'M' for millions" if unit == "m" else ""
        raise _fail(raw, Kind.COUNT, f"unknown multiplier {unit!r}{hint}")
    try:
        exact = Decimal(number) * factor
    except InvalidOperation:  # pragma: no cover - the regular expression admits only decimal numbers
        raise _fail(raw, Kind.COUNT) from None
    if exact != exact.to_integral_value():
        raise _fail(raw, Kind.COUNT, "not a whole number")
    return float(exact)


def _factor(unit: str, kind: Kind) -> float | None:
    """How many base units of ``kind`` one ``unit`` is; None for a unit ``kind`` does not know.
    Time units are case-sensitive (``ms`` is not ``Ms``), sizes and rates are not."""
    if kind is Kind.TIME:
        return _TIME_UNITS.get(unit)
    if kind is Kind.SIZE:
        return _SIZE_UNITS_ANY_CASE.get(unit.lower())
    if kind is Kind.RATE:
        return _RATE_UNITS.get(unit.replace(" ", "").lower())
    if kind is Kind.RATIO:
        return 0.01 if unit == "%" else None
    return None


# a duration in parts, largest unit first: "1h30m", "2m 30s", "1min30s" (locust's run-time forms)
_PART = r"(?:\d+(?:\.\d*)?|\.\d+)\s*(?:ns|us|µs|μs|ms|sec|min|s|m|h)"
_COMPOUND_RE = re.compile(rf"^\s*(?:{_PART}\s*){{2,}}$")
_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|μs|ms|sec|min|s|m|h)")


def _parse_compound(raw: str) -> float:
    factors = [(float(number), _TIME_UNITS[unit]) for number, unit in _PART_RE.findall(raw)]
    if any(later >= earlier for (_, earlier), (_, later) in itertools.pairwise(factors)):
        raise _fail(raw, Kind.TIME, "parts must go from the largest unit to the smallest, each once, e.g. '1h30m'")
    return sum(number * factor for number, factor in factors)


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
        return format_count(value)
    return f"{_sig(value)}{unit}" if not unit else f"{_sig(value)} {unit}"


#: counts from this size on print with a multiplier (``"40.2M"``); below it in full (``"9999"``)
_COUNT_SHORT_FROM = 10_000


def format_count(value: float) -> str:
    """A count readably: whole numbers below 10,000 in full (``"3"``, ``"9999"``), larger ones with
    three significant digits and the multiplier :func:`parse` reads back (``"12.3k"``, ``"40.2M"``,
    ``"2.7G"``, ``"1.5T"`` beyond that); a fraction (the median of two counts) keeps its digits."""
    if not math.isfinite(value):
        return _sig(value)
    size = abs(value)
    if size < _COUNT_SHORT_FROM:
        return f"{value:.0f}" if float(value).is_integer() else _sig(value)
    for limit, suffix, factor in ((1e6, "k", 1e-3), (1e9, "M", 1e-6), (1e12, "G", 1e-9), (1e15, "T", 1e-12)):
        if size < limit:
            text = _sig(value * factor)
            if abs(float(text)) >= 1000 and suffix != "T":  # 999,950 rounds to "1000k": say "1M"
                continue
            return f"{text}{suffix}"
    return _sig(value)


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
    """Seconds from ``"250ms"``, ``"1h30m"`` or a number of seconds."""
    return parse(raw, Kind.TIME)


def parse_size(raw: object) -> float:
    """Bytes from ``"50MB"``, ``"1.5GiB"`` or a number of bytes."""
    return parse(raw, Kind.SIZE)


def parse_threshold(raw: object, *, below: float | None = None) -> float:
    """A ratio above 0 (and below ``below`` when given): a gate threshold such as
    ``max_regression`` (0 would flag every change) or ``alpha``."""
    value = parse(raw, Kind.RATIO)
    if value <= 0 or (below is not None and value >= below):
        bound = f" and below {below:.0%}" if below is not None else ""
        raise UnitError(f"{shown(raw)} must be above 0{bound}")
    return value


#: unit labels of ``perf.record`` that name a kind rather than a unit
_KIND_LABELS = {"ratio": Kind.RATIO, "count": Kind.COUNT}


def record_unit(label: str) -> tuple[Kind, float] | None:
    """What the ``unit=`` label of ``perf.record(name, value, unit=label)`` means: ``(kind,
    factor)`` (a value times ``factor`` is in the kind's base unit), or None for a free-form label.

    The rule: a label is a unit when :func:`parse` knows it, with parse's case rules (time units
    are case-sensitive and take ``µs``/``μs``; sizes and rates are not: ``"mb"`` is ``MB``,
    ``"RPS"`` is ``rps``); ``"%"`` is a ratio in percent; ``"ratio"`` and ``"count"`` (any case)
    name those kinds. A label that is a time unit in another case (``"MS"``, ``"Sec"``) is
    neither a unit nor clearly free-form and raises :class:`UnitError`; anything else
    (``"requests"``, ``"items"``, ``"MB/s"``) is a free-form label (None).
    """
    if not isinstance(label, str):
        raise UnitError(f"unit {shown(label)} is not a string; accepted: {_RECORD_UNITS_TEXT}, or a free-form label")
    unit = label.strip()
    for kind in (Kind.TIME, Kind.SIZE, Kind.RATE, Kind.RATIO):
        factor = _factor(unit, kind)
        if factor is not None:
            return kind, factor
    named = _KIND_LABELS.get(unit.lower())
    if named is not None:
        return named, 1.0
    spelled = [known for known in _TIME_UNITS if known.lower() == unit.lower()]
    if spelled:
        raise UnitError(
            f"unit {label!r} is the time unit {spelled[0]!r} in another case (time units are case-sensitive); "
            f"accepted: {_RECORD_UNITS_TEXT}, or a free-form label that spells no unit (e.g. 'requests')"
        )
    return None


_RECORD_UNITS_TEXT = (
    f"time ({', '.join(_TIME_UNITS)}), size ({', '.join(_SIZE_UNITS)}, any case), "
    f"rate ({', '.join(_RATE_UNITS)}), ratio (%, ratio), count"
)
