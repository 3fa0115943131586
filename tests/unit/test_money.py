from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.money import CurrencyMismatch, Money, round_half_away


def test_refuses_float_and_bool():
    with pytest.raises(TypeError):
        Money(12.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "CNY")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(100, "CNY") * 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        Money(100, "CNY").times(0.5)  # type: ignore[arg-type]


def test_unknown_currency_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(1, "XYZ")


def test_currencies_do_not_mix():
    with pytest.raises(CurrencyMismatch):
        Money(1, "CNY") + Money(1, "USD")


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "CNY", 1250),
        ("12.5", "CNY", 1250),
        ("0.01", "CNY", 1),
        ("7", "CNY", 700),
        (".5", "USD", 50),
        ("-3.20", "EUR", -320),
        ("500", "JPY", 500),
        ("1.234", "KWD", 1234),
    ],
)
def test_parse_exact(text, currency, minor):
    assert Money.parse(text, currency) == Money(minor, currency)


@pytest.mark.parametrize("text", ["12.345", "1,50", "abc", "", "1.", "１２", "1e3", "nan"])
def test_parse_refuses(text):
    with pytest.raises(ValueError):
        Money.parse(text, "CNY")


def test_round_half_away_from_zero():
    assert round_half_away(Fraction(5, 2)) == 3
    assert round_half_away(Fraction(-5, 2)) == -3
    assert round_half_away(Fraction(249, 100)) == 2
    assert round_half_away(Fraction(7, 3)) == 2


def test_format():
    assert Money(1250, "CNY").format() == "¥12.50"
    assert Money(-300, "USD").format("en") == "-$3.00"
    assert Money(500, "JPY").format() == "¥500"
    assert Money(100, "SEK").format() == "SEK 1.00"


@given(st.integers(-(10**9), 10**9), st.lists(st.integers(0, 1000), min_size=1, max_size=20))
def test_allocate_adds_up_and_is_proportional(amount, weights):
    parts = Money(amount, "CNY").allocate(weights)
    assert sum(p.minor for p in parts) == amount
    total_weight = sum(weights) or len(weights)
    for part, weight in zip(parts, weights if sum(weights) else [1] * len(weights), strict=True):
        exact = Fraction(amount * weight, total_weight)
        assert abs(part.minor - exact) < 1


@given(
    st.integers(-(10**12), 10**12), st.fractions(min_value=0, max_value=10, max_denominator=1000)
)
def test_times_is_exact_then_rounded(minor, factor):
    result = Money(minor, "CNY").times(factor)
    assert type(result.minor) is int
    assert abs(result.minor - Fraction(minor) * factor) <= Fraction(1, 2)


@given(st.integers(-(10**9), 10**9))
def test_decimal_string_round_trip(minor):
    m = Money(minor, "CNY")
    assert Money.parse(m.to_decimal_string(), "CNY") == m
