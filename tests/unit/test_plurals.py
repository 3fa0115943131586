"""Counts and labels read as words in both languages (issue 19: "1 items", "Lane lane-01")."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from app.ui.strings import STRINGS, lane_name, say

ROOT = Path(__file__).resolve().parents[2]


def counted_keys() -> list[str]:
    """Every string that takes a ``{count}`` (not a ``_one`` variant itself)."""
    return sorted(k for k, text in STRINGS["en"].items() if "{count}" in text
                  and not k.endswith("_one"))


def filled(language: str, key: str, count: int) -> str:
    names = {n for _, n, _, _ in string.Formatter().parse(STRINGS[language][key]) if n}
    return say(language, key, **{n: "X" for n in names} | {"count": count})


def test_item_counts_0_1_2_in_both_languages():
    assert [say("en", "items", count=n) for n in (0, 1, 2)] == ["0 items", "1 item", "2 items"]
    assert [say("zh", "items", count=n) for n in (0, 1, 2)] == ["0 件", "1 件", "2 件"]


@pytest.mark.parametrize("key", counted_keys())
def test_no_english_count_reads_one_plural(key):
    """Every counted string: 1 takes the singular (``<key>_one``), 0 and 2 the plural."""
    one = filled("en", key, 1)
    assert not re.search(r"\b1 [a-z]+s\b", one), one
    if re.search(r"\{count\} [a-z]+s\b", STRINGS["en"][key]):
        assert f"{key}_one" in STRINGS["en"], f"{key}: no singular for a count of 1"
    for language in ("zh", "en"):
        for n in (0, 1, 2):
            assert str(n) in filled(language, key, n)


def test_the_lane_label_does_not_say_lane_twice():
    assert say("en", "lane_label", lane=lane_name("lane-01")) == "Lane 01"
    assert say("zh", "lane_label", lane=lane_name("lane-01")) == "收银通道 01"
    assert lane_name("K3") == "K3" and lane_name("lane") == "lane"
    kv = (ROOT / "kiosk.kv").read_text(encoding="utf-8")
    assert 'app.text["lane"] + " " + app.settings.kiosk.lane_id' not in kv
