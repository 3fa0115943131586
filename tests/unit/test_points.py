"""Member points earned by a sale."""

from app.domain.money import Money
from app.domain.points import points_for


def test_members_earn_a_point_per_whole_yuan_and_guests_none():
    assert points_for(Money(6213, "CNY"), member=True) == 62
    assert points_for(Money(99, "CNY"), member=True) == 0
    assert points_for(Money(6213, "CNY"), member=False) == 0
    assert points_for(Money(6213, "CNY"), member=True, points_per_unit=2) == 124
    assert points_for(Money(500, "JPY"), member=True) == 500  # no minor unit in yen
