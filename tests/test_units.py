from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_perfgate.errors import UnitError
from pytest_perfgate.units import Kind, format_value, parse


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("200ms", Kind.TIME, 0.2),
        ("1.5s", Kind.TIME, 1.5),
        ("250us", Kind.TIME, 250e-6),
        ("250 µs", Kind.TIME, 250e-6),
        ("10ns", Kind.TIME, 1e-8),
        ("2min", Kind.TIME, 120.0),
        (0.25, Kind.TIME, 0.25),
        ("50MB", Kind.SIZE, 50e6),
        ("50mb", Kind.SIZE, 50e6),
        ("1.5GiB", Kind.SIZE, 1.5 * 2**30),
        ("512 kB", Kind.SIZE, 512e3),
        (1024, Kind.SIZE, 1024.0),
        ("1000/s", Kind.RATE, 1000.0),
        ("60/min", Kind.RATE, 1.0),
        ("500 rps", Kind.RATE, 500.0),
        ("10%", Kind.RATIO, 0.1),
        (0.05, Kind.RATIO, 0.05),
        (3, Kind.COUNT, 3.0),
        ("3", Kind.COUNT, 3.0),
    ],
)
def test_parse_accepts(raw: object, kind: Kind, expected: float) -> None:
    assert parse(raw, kind) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("raw", "kind", "fragment"),
    [
        ("2 parsecs", Kind.TIME, "unknown unit 'parsecs'"),
        ("fast", Kind.TIME, "is not a valid time"),
        ("-5ms", Kind.TIME, "negative"),
        (-1, Kind.SIZE, "negative"),
        ("5 furlongs", Kind.SIZE, "unknown unit 'furlongs'"),
        (True, Kind.TIME, "a boolean is not a quantity"),
        ([1], Kind.TIME, "expected a number or a string, got list"),
        (float("nan"), Kind.TIME, "not a finite number"),
        (float("inf"), Kind.SIZE, "not a finite number"),
        (2.5, Kind.COUNT, "not a whole number"),
        ("2.5", Kind.COUNT, "not a whole number"),
        ("10ms", Kind.RATIO, "unknown unit 'ms'"),
        ("", Kind.TIME, "is not a valid time"),
    ],
)
def test_parse_rejects_with_accepted_forms(raw: object, kind: Kind, fragment: str) -> None:
    with pytest.raises(UnitError) as info:
        parse(raw, kind)
    message = str(info.value)
    assert fragment in message
    assert "accepted:" in message


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (0.0123, Kind.TIME, "12.3ms"),
        (1.5e-7, Kind.TIME, "150ns"),
        (2.5e-5, Kind.TIME, "25us"),
        (3.0, Kind.TIME, "3s"),
        (6_070_000, Kind.SIZE, "6.07MB"),
        (512, Kind.SIZE, "512B"),
        (0.1, Kind.RATIO, "10%"),
        (1000.0, Kind.RATE, "1000/s"),
        (3, Kind.COUNT, "3"),
    ],
)
def test_format_value(value: float, kind: Kind, text: str) -> None:
    assert format_value(value, kind) == text


_UNIT_TEXT = {Kind.TIME: ("ns", "us", "ms", "s"), Kind.SIZE: ("B", "kB", "MB", "GB", "KiB", "MiB")}


@given(
    kind=st.sampled_from([Kind.TIME, Kind.SIZE]),
    value=st.floats(min_value=1e-9, max_value=1e6, allow_nan=False, allow_infinity=False),
)
def test_format_then_parse_round_trips_within_display_precision(kind: Kind, value: float) -> None:
    if kind is Kind.SIZE:
        value = value * 1e3
    back = parse(format_value(value, kind), kind)
    assert math.isclose(back, value, rel_tol=6e-3)


@given(st.text(max_size=12))
def test_parse_never_raises_anything_but_unit_error(text: str) -> None:
    for kind in Kind:
        try:
            value = parse(text, kind)
        except UnitError:
            continue
        assert math.isfinite(value) and value >= 0


@given(number=st.floats(min_value=0, max_value=1e9, allow_nan=False), unit=st.sampled_from(["ms", "s", "us", "ns"]))
def test_time_units_scale_consistently(number: float, unit: str) -> None:
    factor = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
    assert parse(f"{number!r}{unit}", Kind.TIME) == pytest.approx(number * factor)
