"""The member summary's rules (hq.member_summary), without a server."""

from __future__ import annotations

from hq.member_summary import Summary, apply, member_sale


def _ended(member: str | None, total: int = 1250, points: int = 12) -> dict:
    return {"type": "session_ended", "member_id": member,
            "payload": {"order_id": "o1", "total_minor": total, "item_count": 2,
                        "points_earned": points}}


def test_only_a_members_paid_sale_counts():
    assert member_sale(_ended("M000001")) == ("M000001", 1250, 12)
    assert member_sale(_ended(None)) is None  # a guest
    assert member_sale(dict(_ended("M000001"), type="item_scanned")) is None
    assert member_sale(dict(_ended("M.1"))) is None  # not a key the bucket can hold
    assert member_sale({"type": "session_ended", "member_id": "M1",
                        "payload": {"total_minor": "12.50"}}) is None
    # A lane from before points travelled in the event: a visit and spend, no points.
    old = _ended("M000002")
    del old["payload"]["points_earned"]
    assert member_sale(old) == ("M000002", 1250, 0)


def test_a_sale_is_applied_once_by_its_stream_sequence():
    s = Summary()
    assert apply(s, 10, 1250, 12) and apply(s, 14, 500, 5)
    assert not apply(s, 10, 1250, 12)  # redelivered after a crash
    assert not apply(s, 14, 500, 5)
    assert (s.visits, s.spend_minor, s.points, s.last_seq) == (2, 1750, 17, 14)
    assert Summary.from_json(s.to_json()) == s
