"""The store's time zone (``store.time_zone``): receipts, reports and the exit-pass check
show the store's local time; what is signed and stored stays in Unix seconds / UTC.

Issue 19: a receipt printed at 18:30 in Shanghai said ``10:30:05 +0000``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.config import SettingsError, load_settings
from app.domain.exit_pass import ExitPass, decode
from app.services.exit_pass import PassSigner, check_pass, public_key_text
from app.services.receipts import exit_pass_for
from app.services.reports import Report
from devices.receipt import ReceiptStyle, render_document, render_receipt
from tests.unit.factories import paid_sale

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 10:30:05 UTC is 18:30:05 in Shanghai: what a kiosk's clock (UTC) records for a sale.
PAID_UTC = datetime(2026, 11, 25, 10, 30, 5, tzinfo=UTC)


def test_the_store_time_zone_defaults_to_shanghai_and_is_checked_at_load(tmp_path):
    settings = load_settings(None, tmp_path, environ={})
    assert settings.store.time_zone == "Asia/Shanghai"
    assert settings.store.zone() == SHANGHAI
    berlin = load_settings(None, tmp_path, environ={"KIOSK_STORE__TIME_ZONE": "Europe/Berlin"})
    assert berlin.store.zone() == ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("name", ["Asia/Beijing", "CST+8", "../../etc/passwd", ""])
def test_a_time_zone_the_system_does_not_know_is_refused_naming_the_setting(tmp_path, name):
    with pytest.raises(SettingsError, match=r"store\.time_zone .*IANA.*Asia/Shanghai"):
        load_settings(None, tmp_path, environ={"KIOSK_STORE__TIME_ZONE": name})


def test_the_receipt_prints_the_store_local_time_not_utc():
    sale = replace(paid_sale(), paid_at=PAID_UTC)
    local = render_receipt(sale, "EP1:X", ReceiptStyle(time_zone=SHANGHAI))
    assert b"2026-11-25 18:30:05 +0800" in local
    assert b"+0000" not in local
    # Without a zone the time prints as the sale carries it: the old behaviour.
    assert b"2026-11-25 10:30:05 +0000" in render_receipt(sale, "EP1:X", ReceiptStyle())


def test_the_signed_exit_pass_is_the_same_whatever_the_store_zone():
    """The pass signs Unix seconds: a zone never changes its bytes."""
    utc = exit_pass_for(replace(paid_sale(), paid_at=PAID_UTC))
    local = exit_pass_for(replace(paid_sale(), paid_at=PAID_UTC.astimezone(SHANGHAI)))
    assert utc == local and utc.issued_at == int(PAID_UTC.timestamp())


def test_staff_exit_pass_check_shows_the_issue_time_in_the_store_zone(tmp_path):
    key = Ed25519PrivateKey.generate()
    keys = tmp_path / "store-keys.toml"
    keys.write_text(f'"lane-01" = "{public_key_text(key.public_key())}"\n')
    held = ExitPass("lane-01", "K1", 1250, "CNY", 2, int(PAID_UTC.timestamp()))
    text = PassSigner(key).sign(held)
    now = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    valid, what = check_pass(text, keys_path=keys, now=now, max_age_h=24,
                             refunded_minor=lambda _o: 0, zone=SHANGHAI)
    assert valid and "issued 2026-11-25 18:30 +0800" in what
    assert decode(text)[0].issued_at == int(PAID_UTC.timestamp())  # signed as it was


def test_reports_show_their_period_in_the_store_zone():
    body = {"sales_count": 0, "sales_minor": 0, "by_method": {}, "refunds_count": 0,
            "refunds_minor": 0, "net_minor": 0, "voids": 0, "price_overrides": 0,
            "abandoned_carts": 0, "exit_audits": 0, "payments_flagged": 0, "audit_seq": 1,
            "audit_hash": "ab" * 32}
    report = Report("X", None, "0000", PAID_UTC.isoformat(), "lane-01", "CNY", body, SHANGHAI)
    text = report.text()
    assert "To   2026-11-25 18:30:05 +0800" in text and "From the first sale" in text
    assert b"2026-11-25 18:30:05 +0800" in render_document(text, ReceiptStyle())


def test_the_pass_verdict_says_1_item_and_names_the_lane_once(tmp_path):
    """Review of issue 19 ("1 items", "Lane lane-01"): staff checking a one-item pass read
    "1 items" and "lane lane-01"; the verdict is English and Chinese, as its other lines."""
    key = Ed25519PrivateKey.generate()
    keys = tmp_path / "store-keys.toml"
    keys.write_text(f'"lane-01" = "{public_key_text(key.public_key())}"\n')
    now = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    for count, words in ((1, "1 item, 12.50 CNY / 1 件"), (3, "3 items, 12.50 CNY / 3 件")):
        held = ExitPass("lane-01", "K1", 1250, "CNY", count, int(PAID_UTC.timestamp()))
        valid, what = check_pass(PassSigner(key).sign(held), keys_path=keys, now=now,
                                 max_age_h=24, refunded_minor=lambda _o: 0, zone=SHANGHAI)
        assert valid and words in what.splitlines(), what
        assert "lane lane-01" not in what.lower() and "lane-01" in what, what
