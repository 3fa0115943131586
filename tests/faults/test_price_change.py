"""Issue 16, fault 1: a price change during a session never changes the cart.

A shopper scans milk 250 ml (6.50) and a 1 L pack (20.80); staff import a new catalogue
with ``kiosk catalog import --replace`` (the 250 ml withdrawn, the 1 L at 99.00) or new
promotions with ``kiosk promotions import``; the lane restarts (a new process on the same
data directory) or the shopper taps Back on the error screen (which boots the lane again).
The cart must come back exactly as it was, priced as it was scanned, and be charged that;
only a session started after the change uses the new prices (docs/pricing.md, "A
session's prices").
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from app import bootstrap
from app.config import load_settings
from app.lane import Screen
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
from tests.helpers import run_kiosk

ROOT = Path(__file__).resolve().parents[2]
MILK = "6900000000014"  # Whole Milk 250ml, 6.50
LITRE = "6900000000045"  # Whole Milk 1L, 20.80
KEYS = ["0" + MILK, "0" + LITRE]


def kiosk_cli(data_dir: Path, *args: str) -> None:
    ran = run_kiosk(*args, env={"KIOSK_DATA_DIR": str(data_dir)})
    assert ran.returncode == 0, ran.stderr


def new_catalogue(tmp_path: Path) -> Path:
    """The demo catalogue with the 250 ml withdrawn and the 1 L at 99.00."""
    with (ROOT / "seeds/catalogue.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    kept = [r for r in rows if r["code"] != MILK]
    for r in kept:
        if r["code"] == LITRE:
            r["price"], r["member_price"] = "99.00", ""
    path = tmp_path / "new-catalogue.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(kept)
    return path


def promotions_file(tmp_path: Path, name: str, percent: int) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        "[[promotion]]\n"
        f'promo_id = "DAIRY-{percent}"\nkind = "percent_off"\n'
        f'name_zh = "乳品{percent}%折扣"\nname_en = "Dairy {percent}% off"\n'
        f'departments = ["dairy"]\npercent = {percent}\n', encoding="utf-8")
    return path


@pytest.fixture
def lanes(demo_kiosk, sim, clock, data_dir):
    """``lanes(new_process=False)``: a booted lane; ``True``: as a restarted kiosk would
    be, a new kiosk (database connection, catalogue) on the same data directory."""
    opened = []

    def make(new_process: bool = False):
        k = demo_kiosk
        if new_process:
            k = bootstrap.build(load_settings(data_dir=data_dir, environ={}), clock=clock)
            opened.append(k)
        k.settings.payment.wallets = []
        provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
        lane = bootstrap.build_lane(k, provider=provider, receipt_notice=lambda: None)
        lane.boot()
        return lane
    yield make
    for k in opened:
        k.close()


def cart(lane) -> tuple[list[tuple[str, str, int]], str]:
    priced = lane.view.priced
    return ([(pl.line.product.code, pl.line.product.name_en, pl.total.minor)
             for pl in priced.lines], priced.total.to_decimal_string())


AS_SCANNED = ([(KEYS[0], "Whole Milk 250ml", 650), (KEYS[1], "Whole Milk 1L", 2080)], "27.30")


def test_a_new_catalogue_and_a_restart_leave_the_cart_as_it_was_scanned(
        lanes, data_dir, tmp_path, sim):
    lane = lanes()
    lane.scan(MILK)
    lane.scan(LITRE)
    assert cart(lane) == AS_SCANNED
    kiosk_cli(data_dir, "catalog", "import", str(new_catalogue(tmp_path)), "--replace")
    again = lanes(new_process=True)  # the lane restarts
    assert again.view.screen is Screen.SHOPPING
    assert cart(again) == AS_SCANNED  # not one line gone and the other at 99.00
    again.pay()
    assert again.view.payment is not None and again.view.payment.amount.minor == 2730


def test_back_from_the_error_screen_keeps_the_cart_as_scanned(lanes, data_dir, tmp_path):
    lane = lanes()
    lane.scan(MILK)
    lane.scan(LITRE)
    kiosk_cli(data_dir, "catalog", "import", str(new_catalogue(tmp_path)), "--replace")
    lane.failed(RuntimeError("something broke"))
    assert lane.view.screen is Screen.ERROR
    lane.recover_from_error()  # Back: the lane boots again from the database
    assert lane.view.screen is Screen.SHOPPING
    assert cart(lane) == AS_SCANNED


def test_a_promotion_change_mid_session_does_not_reprice_the_cart(lanes, data_dir, tmp_path):
    kiosk_cli(data_dir, "promotions", "import", str(promotions_file(tmp_path, "old", 10)))
    lane = lanes()
    lane.scan(MILK)
    lane.scan(LITRE)
    assert cart(lane)[1] == "24.57"  # 27.30 less the session's 10% off dairy
    kiosk_cli(data_dir, "promotions", "import", str(promotions_file(tmp_path, "new", 50)))
    lane.scan(MILK)  # the session goes on with the promotions it started with
    assert cart(lane)[1] == "30.42"
    again = lanes(new_process=True)
    assert cart(again)[1] == "30.42"  # not 16.90 at the new 50%
    again.failed(RuntimeError("something broke"))
    again.recover_from_error()
    assert cart(again)[1] == "30.42"


def test_a_session_started_after_the_change_uses_the_new_prices(lanes, data_dir, tmp_path):
    kiosk_cli(data_dir, "promotions", "import", str(promotions_file(tmp_path, "old", 10)))
    lane = lanes()
    lane.scan(MILK)
    lane.scan(LITRE)
    kiosk_cli(data_dir, "catalog", "import", str(new_catalogue(tmp_path)), "--replace")
    kiosk_cli(data_dir, "promotions", "import", str(promotions_file(tmp_path, "new", 50)))
    lane.scan(LITRE)  # scanned after the change: a line of its own, at today's 99.00
    lines, _ = cart(lane)
    assert [(code, total) for code, _, total in lines] == [
        (KEYS[0], 585), (KEYS[1], 1872), (KEYS[1], 8910)]  # all at the session's 10% off
    lane.abandon("timeout")
    fresh = lanes(new_process=True)
    assert fresh.view.screen is Screen.ATTRACT  # nothing left open
    fresh.scan(LITRE)
    assert cart(fresh) == ([(KEYS[1], "Whole Milk 1L", 4950)], "49.50")  # 99.00 at 50% off
    fresh.scan(MILK)
    assert fresh.view.notice is not None and ("code", "unknown_product") in \
        fresh.view.notice.values  # withdrawn for the new session
    assert len(fresh.view.priced.lines) == 1
