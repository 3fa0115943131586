"""Chinese line breaking (app/ui/linebreak.py): clreq / JIS X 4051 kinsoku over UAX #14."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from app.ui.linebreak import NO_LINE_END, NO_LINE_START, breaks_rules, has_cjk, wrap_lines
from app.ui.strings import STRINGS


def measure(text: str) -> float:
    """A fixed-pitch font: full-width characters 2 units, the rest 1."""
    return sum(2 if has_cjk(c) else 1 for c in text)


NOTICE = "未找到该商品。请重新扫描、手动输入条码，或呼叫店员。"


def test_the_refusal_seen_on_the_shopping_screen_never_starts_a_line_with_punctuation():
    # Kivy cut it after 描 at this width: the second line began with "、" (issue 19).
    for width in range(4, 60):
        lines = wrap_lines(NOTICE, width, measure)
        assert breaks_rules(lines) == [], (width, lines)
        assert "".join(lines) == NOTICE
        assert all(measure(line) <= width for line in lines), (width, lines)


def test_a_closing_quote_never_sits_alone_and_an_opening_one_never_ends_a_line():
    text = "请扫描会员码，或点击“开始购物”"
    for width in range(4, 34):
        lines = wrap_lines(text, width, measure)
        assert breaks_rules(lines) == [], (width, lines)
        assert "”" not in lines[1:] and all(not ln.endswith("“") for ln in lines), lines
    # The break falls before the quotation, not between “ and 开.
    assert wrap_lines(text, 20, measure) == ["请扫描会员码，或点击", "“开始购物”"]


def test_closing_brackets_and_full_stops_go_with_the_character_before():
    text = "大白菜 1.234 千克（称重码）。已加入购物车。"
    for width in range(6, 40):
        lines = wrap_lines(text, width, measure)
        assert breaks_rules(lines) == [], (width, lines)


def test_english_wraps_at_spaces_and_drops_them_at_the_break():
    assert wrap_lines("Whole Milk 250ml Family Pack", 12, measure) == [
        "Whole Milk", "250ml Family", "Pack"]


def test_newlines_are_kept_and_a_text_that_fits_is_left_as_it_is():
    assert wrap_lines("会员价 -¥1.20\n满减 -¥5.00", 100, measure) == ["会员价 -¥1.20",
                                                                      "满减 -¥5.00"]
    assert wrap_lines("", 10, measure) == [""]
    assert wrap_lines("abc", 0, measure) == ["abc"]


def test_an_unbreakable_run_wider_than_the_line_is_cut_between_characters():
    assert wrap_lines("6900000000014", 5, measure) == ["69000", "00000", "014"]


def test_every_chinese_string_the_screens_show_obeys_the_rules_at_every_width():
    for key, text in STRINGS["zh"].items():
        filled = re.sub(r"\{[a-z_]+\}", "12", text)
        for width in range(8, 80, 3):
            lines = wrap_lines(filled, width, measure)
            assert breaks_rules(lines) == [], (key, width, lines)


IDEOGRAPHS = st.text(alphabet="商品条码扫描手动输入会员价呼叫店员", min_size=1, max_size=6)
CLOSE = st.sampled_from(sorted(NO_LINE_START - set(",.;:?!)]}")) + [""])
OPEN = st.sampled_from(sorted(NO_LINE_END - set("([{")) + [""])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(OPEN, IDEOGRAPHS, CLOSE), min_size=1, max_size=12),
       st.integers(min_value=8, max_value=40))
def test_any_run_of_words_and_punctuation_breaks_only_where_allowed(words, width):
    text = "".join(o + w + c for o, w, c in words)
    lines = wrap_lines(text, width, measure)
    assert "".join(lines) == text
    assert breaks_rules(lines) == [], lines
    # Only closing punctuation may hang past the width (burasage), where a run has no
    # allowed break and must be cut between characters.
    assert all(measure(line.rstrip("".join(NO_LINE_START))) <= width for line in lines), lines


def test_a_cut_run_never_ends_a_line_with_an_opening_quote():
    # Found by the property test below: "‘价’‘价’" has no break opportunity (quotes are
    # ambiguous in UAX #14), and the cut left "‘" at the end of the first line.
    assert wrap_lines("‘价’‘价’", 8, measure) == ["‘价’", "‘价’"]
    # ... and a first run wider than the line is cut too, not only the ones after a break.
    assert wrap_lines("‘价’‘价价’", 8, measure) == ["‘价’", "‘价价’"]


def test_breaks_rules_names_the_bad_lines():
    assert breaks_rules(["请重新扫描", "、手动输入"]) == ["、手动输入"]
    assert breaks_rules(["或点击“", "开始购物”"]) == ["或点击“"]
    assert breaks_rules(["一行"]) == []
