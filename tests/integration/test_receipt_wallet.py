"""The receipt names the wallet the shopper paid with, and the receipt screen shows the savings.

Issue 19: after choosing WeChat the receipt said "Paid by 模拟支付 Payment simulator" (the
provider, not the wallet), and the receipt screen did not show what the shopper saved.
A real lane over the payment simulator (HTTP on 127.0.0.1) and a real SQLite file.
"""

from __future__ import annotations

from app.domain.money import Money
from app.lane import Screen
from app.storage.print_jobs import PrintJobs
from devices.receipt import ReceiptStyle, render_receipt
from tests.integration import test_lane, test_lane_codes
from tests.integration.test_lane import MILK, pay_on_phone

# The lanes of the lane tests: over the payment simulator, and over its wallets' codes.
make_lane = test_lane.make_lane
lane_of, wallet = test_lane_codes.lane_of, test_lane_codes.wallet


def printed(kiosk, order_id: str, style: ReceiptStyle | None = None) -> str:
    style = style or ReceiptStyle()
    job = PrintJobs(kiosk.db).first_for(order_id)
    assert job is not None and job.sale is not None
    return render_receipt(job.sale, job.exit_pass, style).decode("gb18030", "replace")


def paid_by_qr(lane, sim, clock, wallet_name: str):
    lane.scan(MILK)
    lane.pay()
    lane.choose_wallet(wallet_name)
    pay_on_phone(sim, lane)
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.screen is Screen.RECEIPT
    return lane.view.receipt


def test_a_qr_paid_with_wechat_prints_wechat_pay_and_the_provider_apart(make_lane, demo_kiosk,
                                                                       sim, clock):
    receipt = paid_by_qr(make_lane(), sim, clock, "wechat")
    text = printed(demo_kiosk, receipt.order_id)
    paid_by = next(line for line in text.splitlines() if "Paid by" in line)
    assert "微信支付 WeChat Pay" in paid_by and "simulator" not in paid_by
    assert any("Via" in line and "模拟支付 Payment simulator" in line
               for line in text.splitlines())
    english = render_receipt(PrintJobs(demo_kiosk.db).first_for(receipt.order_id).sale, "EP1:X",
                             ReceiptStyle(encoding="ascii")).decode("ascii")
    assert "WeChat Pay" in next(line for line in english.splitlines() if "Paid by" in line)


def test_a_qr_paid_with_alipay_prints_alipay(make_lane, demo_kiosk, sim, clock):
    receipt = paid_by_qr(make_lane(), sim, clock, "alipay")
    paid_by = next(line for line in printed(demo_kiosk, receipt.order_id).splitlines()
                   if "Paid by" in line)
    assert "支付宝 Alipay" in paid_by


def test_a_payment_code_prints_the_wallet_whose_code_was_charged(lane_of, wallet, demo_kiosk):
    lane = lane_of()
    lane.scan(MILK)
    lane.pay()
    lane.choose_wallet("wechat")  # a QR for WeChat is up, then an Alipay code is shown
    lane.scan(wallet.code("alipay"), how="camera")
    assert lane.view.screen is Screen.RECEIPT
    paid_by = next(line for line in printed(demo_kiosk, lane.view.receipt.order_id).splitlines()
                   if "Paid by" in line)
    assert "支付宝 Alipay" in paid_by


def test_the_receipt_screen_carries_the_savings(make_lane, demo_kiosk, sim, clock):
    lane = make_lane(lookup=lambda phone: "M000001" if phone == "13800000001" else None)
    lane.start()
    lane.member_phone("13800000001")
    receipt = paid_by_qr(lane, sim, clock, "wechat")
    assert receipt.savings == Money(60, "CNY")  # member price 5.90 for 6.50
    assert "You saved" in printed(demo_kiosk, receipt.order_id)
