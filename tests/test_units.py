from __future__ import annotations

import contextlib
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_perfgate.errors import UnitError
from pytest_perfgate.units import Kind, format_value, parse, parse_threshold, record_unit


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


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("1h30m", 5400.0), ("2m 30s", 150.0), ("1min30s", 90.0), ("1h30m15s", 5415.0), ("2s500ms", 2.5)],
)
def test_durations_in_parts_largest_first(raw: str, seconds: float) -> None:
    """locust's run-time forms parse here too: units is the one parser of durations."""
    assert parse(raw, Kind.TIME) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("30s1h", "parts must go from the largest unit to the smallest, each once"),
        ("1m1min", "parts must go from the largest unit to the smallest, each once"),
        ("1h30", "unknown unit 'h30'"),
        ("-1h30m", "unknown unit 'h30m'"),
    ],
)
def test_durations_in_parts_refused(raw: str, fragment: str) -> None:
    with pytest.raises(UnitError, match="accepted: ") as info:
        parse(raw, Kind.TIME)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("raw", "below", "message"),
    [
        ("0", None, "'0' must be above 0"),
        (0.7, 0.5, "0.7 must be above 0 and below 50%"),
        ("100%", 1.0, "'100%' must be above 0 and below 100%"),
    ],
)
def test_threshold_is_an_open_interval(raw: object, below: float | None, message: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_threshold(raw, below=below)
    assert str(info.value) == message


def test_threshold_accepts_and_refuses_what_a_ratio_refuses() -> None:
    assert parse_threshold("5%", below=0.5) == pytest.approx(0.05)
    with pytest.raises(UnitError, match="'lots' is not a valid ratio"):
        parse_threshold("lots")


#: the units perf.record knew before units.record_unit (recorder's own table): unchanged
_OLD_RECORD_UNITS = {
    "ns": (Kind.TIME, 1e-9),
    "us": (Kind.TIME, 1e-6),
    "ms": (Kind.TIME, 1e-3),
    "s": (Kind.TIME, 1.0),
    "B": (Kind.SIZE, 1),
    "kB": (Kind.SIZE, 1e3),
    "KB": (Kind.SIZE, 1e3),
    "MB": (Kind.SIZE, 1e6),
    "GB": (Kind.SIZE, 1e9),
    "KiB": (Kind.SIZE, 2**10),
    "MiB": (Kind.SIZE, 2**20),
    "GiB": (Kind.SIZE, 2**30),
    "/s": (Kind.RATE, 1.0),
    "rps": (Kind.RATE, 1.0),
    "%": (Kind.RATIO, 0.01),
    "ratio": (Kind.RATIO, 1.0),
    "count": (Kind.COUNT, 1.0),
}


@pytest.mark.parametrize(("label", "expected"), sorted(_OLD_RECORD_UNITS.items()))
def test_record_units_known_before_are_unchanged(label: str, expected: tuple[Kind, float]) -> None:
    assert record_unit(label) == expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("mb", (Kind.SIZE, 1e6)),  # was a unitless number: the defect of issue 17
        ("µs", (Kind.TIME, 1e-6)),  # MICRO SIGN
        ("μs", (Kind.TIME, 1e-6)),  # GREEK SMALL LETTER MU
        ("gib", (Kind.SIZE, 2**30)),
        ("RPS", (Kind.RATE, 1.0)),
        ("/ min", (Kind.RATE, 1 / 60)),
        ("min", (Kind.TIME, 60.0)),
        (" ms ", (Kind.TIME, 1e-3)),
        ("Count", (Kind.COUNT, 1.0)),
    ],
)
def test_record_unit_knows_every_unit_parse_knows(label: str, expected: tuple[Kind, float]) -> None:
    kind, factor = expected
    assert record_unit(label) == (kind, pytest.approx(factor))


@pytest.mark.parametrize("label", ["requests", "items", "ops", "MB/s", "req/s", "", "queries per call"])
def test_record_unit_free_form_labels(label: str) -> None:
    assert record_unit(label) is None


@pytest.mark.parametrize(("label", "unit"), [("MS", "ms"), ("Sec", "sec"), ("NS", "ns"), ("µS", "µs"), ("H", "h")])
def test_record_unit_refuses_a_time_unit_in_another_case(label: str, unit: str) -> None:
    with pytest.raises(UnitError) as info:
        record_unit(label)
    message = str(info.value)
    assert message.startswith(
        f"unit {label!r} is the time unit {unit!r} in another case (time units are case-sensitive)"
    )
    assert (
        "accepted: time (ns, us, µs, μs, ms, s, sec, m, min, h), size (B, kB, MB, GB, KiB, MiB, GiB, any case)"
        in message
    )


@given(st.text(max_size=8) | st.sampled_from(["ms", "mb", "/ MIN", "kib", "%", " s", "RATIO", "ms/op"]))
def test_record_unit_agrees_with_parse(label: str) -> None:
    """A label is a unit exactly when parse knows it (or it names a kind); a time unit in
    another case is the only label refused; everything else is free-form."""
    try:
        known = record_unit(label)
    except UnitError:
        assert label.strip().lower() in {"ns", "us", "µs", "μs", "ms", "s", "sec", "m", "min", "h"}
        return
    if re.search(r"\d", label) or not label.strip():  # no unit has a digit: "1 h30m" would parse as one duration
        assert known is None
        return
    if label.strip().lower() in ("ratio", "count"):
        assert known is not None and known[1] == 1.0
        return
    parsed = []
    for kind in (Kind.TIME, Kind.SIZE, Kind.RATE, Kind.RATIO):
        with contextlib.suppress(UnitError):
            parsed.append((kind, parse(f"1 {label}", kind)))
    if known is None:
        assert parsed == []
    else:
        assert parsed and parsed[0] == (known[0], pytest.approx(known[1]))


@given(
    hours=st.integers(0, 99), minutes=st.integers(0, 59), seconds=st.integers(0, 59), space=st.sampled_from(["", " "])
)
def test_durations_in_parts_add_up(hours: int, minutes: int, seconds: int, space: str) -> None:
    assert parse(f"{hours}h{space}{minutes}m{space}{seconds}s", Kind.TIME) == 3600 * hours + 60 * minutes + seconds


# --------------------------------------------------------------------------- counts with multipliers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("40M", 40_000_000.0),
        ("40.2M", 40_200_000.0),
        ("1.5k", 1500.0),
        ("1.5K", 1500.0),
        ("2G", 2_000_000_000.0),
        (" 3 M ", 3_000_000.0),
        ("0.000001M", 1.0),
        ("7", 7.0),
    ],
)
def test_counts_accept_si_multipliers(raw: str, expected: float) -> None:
    assert parse(raw, Kind.COUNT) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("1.2345k", "not a whole number"),
        ("3m", "unknown multiplier 'm'; 'm' would be milli: write 'M' for millions"),
        ("3g", "unknown multiplier 'g'"),
        ("40Mi", "unknown multiplier 'Mi'"),
        ("-1k", "negative"),
        ("k", ""),
    ],
)
def test_bad_counts_name_the_accepted_forms(raw: str, why: str) -> None:
    with pytest.raises(UnitError) as info:
        parse(raw, Kind.COUNT)
    message = str(info.value)
    assert message.startswith(f"{raw!r} is not a valid count")
    assert why in message
    assert message.endswith(
        "accepted: a whole number such as 3, or with a multiplier: '1.5k', '40M', '2G' (k = 10^3, M = 10^6, G = 10^9)"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (3, "3"),
        (9999, "9999"),
        (10_000, "10k"),
        (12_345, "12.3k"),
        (999_950, "1M"),
        (40_200_000, "40.2M"),
        (83_556_990, "83.6M"),
        (2_697_110_000, "2.7G"),
        (1.5e12, "1.5T"),
        (2.5, "2.5"),
    ],
)
def test_large_counts_print_readably(value: float, text: str) -> None:
    assert format_value(value, Kind.COUNT) == text


@given(
    whole=st.integers(min_value=0, max_value=10**6),
    decimals=st.integers(min_value=0, max_value=3),
    suffix=st.sampled_from(["", "k", "K", "M", "G"]),
)
def test_a_count_with_a_multiplier_is_the_exact_whole_number_it_spells(whole: int, decimals: int, suffix: str) -> None:
    """``"<d>.<ddd><suffix>"`` parses to exactly whole * 10^(power - decimals) when that is a whole
    number, and is refused as "not a whole number" otherwise, never rounded."""
    from decimal import Decimal

    text = str(whole) if decimals == 0 else f"{whole // 10**decimals}.{whole % 10**decimals:0{decimals}d}"
    power = {"": 0, "k": 3, "K": 3, "M": 6, "G": 9}[suffix]
    exact = Decimal(text) * 10**power
    if exact == exact.to_integral_value():
        assert parse(text + suffix, Kind.COUNT) == float(exact)
    else:
        with pytest.raises(UnitError, match="not a whole number"):
            parse(text + suffix, Kind.COUNT)


@given(st.integers(min_value=0, max_value=10**14))
def test_a_printed_count_reads_back_within_its_three_significant_digits(value: int) -> None:
    text = format_value(value, Kind.COUNT)
    if value < 10_000:
        assert text == str(value)
    back = parse(text, Kind.COUNT)
    assert back == pytest.approx(value, rel=0.005, abs=0.5)


@given(st.text(max_size=10))
def test_the_count_parser_raises_only_unit_errors(raw: str) -> None:
    with contextlib.suppress(UnitError):
        value = parse(raw, Kind.COUNT)
        assert value >= 0 and value.is_integer()
