"""Member points: what a paid sale earns a member.

The store's rule: ``points_per_unit`` points per whole currency unit paid
(1 per yuan by default), rounded down; provisional members earn them too, and
the backend credits them once it confirms who the member is. Guests earn none.
"""

from __future__ import annotations

from app.domain.money import Money, exponent_of


def points_for(paid: Money, *, member: bool, points_per_unit: int = 1) -> int:
    if not member or paid.minor <= 0:
        return 0
    return int(paid.minor // 10 ** exponent_of(paid.currency)) * points_per_unit
