import pytest

from app.domain.rejections import Refused, safe_preview
from app.domain.scan_input import clean_scan


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("690\x1b[2J", "escape_character"),
        ("6900000000083\x00", "control_character"),
        ("69000\x07", "control_character"),
        ("6900\u200b000083", "not_ascii"),  # zero-width space hidden in a code
        ("\u202e6900000000083", "not_ascii"),  # right-to-left override
        ("６９００", "not_ascii"),  # full-width digits
        (b"\xff\xfe69", "invalid_utf8"),
        ("", "empty"),
        ("\r\n", "empty"),
        ("1" * 513, "too_long"),
        ("]E0", "empty"),
    ],
)
def test_refuses_hostile_input(raw, code):
    with pytest.raises(Refused) as info:
        clean_scan(raw)
    refusal = info.value.refusal
    assert refusal.code == code
    assert refusal.message_en and refusal.message_zh
    # The raw input never survives into the refusal unescaped.
    assert "\x1b" not in refusal.preview and "\x00" not in refusal.preview
    assert len(refusal.preview) <= 45


def test_strips_scanner_suffix_and_symbology_identifier():
    assert clean_scan("6900000000083\r\n").text == "6900000000083"
    scan = clean_scan("]C1010690000000008331030001\x1d10AB\r")
    assert scan.symbology == "]C1"
    assert scan.text == "010690000000008331030001\x1d10AB"


def test_bytes_are_decoded():
    assert clean_scan(b"6900000000083\n").text == "6900000000083"


def test_max_length_is_configurable():
    with pytest.raises(Refused):
        clean_scan("1" * 40, max_length=32)


def test_safe_preview_escapes_and_truncates():
    assert safe_preview("a\x1bb") == "a\\x1bb"
    assert safe_preview("x" * 100).endswith("…")
    assert safe_preview(b"\xff") == "\\\\xff"
