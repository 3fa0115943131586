"""Every screen string exists in both languages with the same placeholders; the presenter's
wording and money formatting, without a window."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

from app.domain.money import Money
from app.lane import LaneView, Notice, Screen
from app.ui import present
from app.ui.strings import STRINGS, say


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_every_key_with_the_same_placeholders():
    zh, en = STRINGS["zh"], STRINGS["en"]
    assert set(zh) == set(en)
    for key in zh:
        assert zh[key] and en[key], key
        # A placeholder may name the language's own field (name_zh / name_en).
        norm = {f.replace("_zh", "").replace("_en", "") for f in fields(zh[key])}
        assert norm == {f.replace("_zh", "").replace("_en", "") for f in fields(en[key])}, key


def test_every_notice_the_lane_can_raise_has_words():
    import re
    from pathlib import Path

    lane_dir = Path(__file__).resolve().parents[2] / "app/lane"
    source = "\n".join(p.read_text() for p in sorted(lane_dir.glob("*.py")))
    keys = set(re.findall(r'Notice\.of\(\s*"([a-z_]+)"', source))
    assert "added" in keys and "payment_connecting" in keys  # the lane's modules were read
    keys |= {f"payment_{k}" for k in ("cancelled", "expired", "failed")}
    keys |= {f"member_{c}" for c in ("malformed", "bad_signature", "expired",
                                     "credential_expired")}
    missing = sorted(k for k in keys if k not in STRINGS["en"])
    assert not missing, missing


def test_a_refusal_is_shown_in_the_shoppers_language():
    notice = Notice.of("refused", "error", code="x", message_zh="未找到", message_en="Not found")
    assert present.notice_text(notice, "zh") == "未找到"
    assert present.notice_text(notice, "en") == "Not found"
    assert present.notice_text(None, "en") == ""


def test_money_countdowns_and_members_are_worded_for_the_screen():
    assert present.money(Money(1180, "CNY"), "en") == "¥11.80"
    now = datetime(2026, 11, 25, tzinfo=UTC)
    assert present.seconds_left(now + timedelta(seconds=29.2), now) == 30
    assert present.seconds_left(now - timedelta(seconds=5), now) == 0
    view = LaneView(Screen.SHOPPING, member_id="P0123456789abcdef", member_provisional=True)
    line = present.member_line(view, "en")
    assert "0123456789" not in line and line.endswith("(to be confirmed)")
    assert say("en", "items", count=3) == "3 items"
