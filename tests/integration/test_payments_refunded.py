"""Fault 1 of issue 15 end to end: an Alipay cancel refunds a trade paid a moment before,
and the genuine TRADE_SUCCESS notification of that moment is relayed afterwards.

The Alipay adapter talks to the simulator's Alipay gateway over real HTTP on
127.0.0.1; ``python-alipay-sdk`` is the judge of what the simulator says (the
cancel's signed ``action: refund`` reply, the notification's signature).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
import requests
from alipay import AliPay

from app import bootstrap
from app.domain.payment import PaymentError, PaymentState
from devices.payment.alipay import AlipayAdapter
from tests.unit.factories import paid_sale


@pytest.fixture
def sdk(sim) -> AliPay:
    """python-alipay-sdk with the kiosk's app key and the simulated Alipay's public key."""
    options = sim.keys.alipay_options
    with open(options["app_private_key_file"]) as app, \
            open(options["alipay_public_key_file"]) as ali:
        return AliPay(appid=options["app_id"], app_private_key_string=app.read(),
                      alipay_public_key_string=ali.read(), sign_type="RSA2")


@pytest.fixture
def adapter(sim) -> AlipayAdapter:
    return AlipayAdapter.from_options(sim.keys.alipay_options, "lane-01")


def script(sim, no: str, outcome: str) -> None:
    assert requests.post(f"{sim.url}/sim/script", json={"order": no, "outcome": outcome},
                         timeout=5).ok


def paid_moment_notification(sim, sdk, no: str) -> tuple[dict[str, str], bytes]:
    """The simulator's TRADE_SUCCESS notification of the moment ``no`` was paid, checked
    genuine by the SDK (signature and fields) before the test relays it."""
    reply = requests.get(f"{sim.url}/sim/orders/{no}/notification",
                         params={"format": "alipay", "moment": "paid"}, timeout=5)
    assert reply.status_code == 200, reply.text
    notice = reply.json()
    params = dict(parse_qsl(notice["body"], keep_blank_values=True))
    signature = params.pop("sign")
    assert params["trade_status"] == "TRADE_SUCCESS" and params["out_trade_no"] == no
    assert sdk.verify(dict(params), signature)  # genuine: Alipay's key signed it
    return notice["headers"], notice["body"].encode()


def refunded_sales(desk, sim) -> int:
    """Sales recorded for payments the provider refunded at the kiosk's cancel."""
    refunded = [no for no, o in sim.provider.orders.items()
                if any(r["refund_no"].startswith("cancel-") for r in o.refunds)]
    return sum(desk.repo.count_sales(no) for no in refunded)


def test_the_simulator_cancel_of_a_paid_trade_refunds_it_as_alipay_says(sim, sdk, adapter,
                                                                        kiosk):
    desk = bootstrap.build_payment_desk(kiosk, adapter)
    p = desk.start("cart-1", paid_sale(), "Scan & Go")
    assert requests.post(f"{sim.url}/sim/orders/{p.out_trade_no}/pay", timeout=5).ok
    body = sdk.client_api("alipay.trade.cancel", {"out_trade_no": p.out_trade_no})
    raw = requests.post(f"{sim.url}/gateway.do", data=body, timeout=5,
                        headers={"Content-Type": "application/x-www-form-urlencoded"}).text
    node = sdk._verify_and_return_sync_response(raw, "alipay_trade_cancel_response")
    assert node["code"] == "10000" and node["action"] == "refund" and node["retry_flag"] == "N"
    assert sim.provider.orders[p.out_trade_no].status == "refunded"
    # A never-paid order has no paid moment to notify about.
    q = desk.start("cart-2", paid_sale(), "Scan & Go")
    assert requests.get(f"{sim.url}/sim/orders/{q.out_trade_no}/notification",
                        params={"format": "alipay", "moment": "paid"},
                        timeout=5).status_code == 409


def test_a_genuine_late_trade_success_after_a_refunding_cancel_is_no_sale(sim, sdk, adapter,
                                                                         kiosk):
    desk = bootstrap.build_payment_desk(kiosk, adapter)
    p = desk.start("cart-1", paid_sale(), "Scan & Go")
    script(sim, p.out_trade_no, "pay_on_close")  # the shopper pays as the kiosk gives up
    cancelled = desk.cancel(p.out_trade_no)
    assert cancelled.state is PaymentState.CANCELLED and cancelled.provider_refunded
    headers, body = paid_moment_notification(sim, sdk, p.out_trade_no)
    after = desk.notify(headers, body)  # relayed later: Alipay retries it for about a day
    assert after.state is PaymentState.CANCELLED and after.provider_refunded
    assert desk.repo.count_sales(p.out_trade_no) == 0
    assert kiosk.db.execute("SELECT count(*) FROM print_jobs").fetchone()[0] == 0
    assert any(ref == p.out_trade_no for ref, _ in desk.repo.alerts())
    assert refunded_sales(desk, sim) == 0


def test_the_same_when_the_cancel_reply_was_lost(sim, sdk, adapter, kiosk):
    # The cancel refunded the trade, but its reply never reached the kiosk: the kiosk does
    # not know of the refund. The late "paid" is checked by a query (TRADE_CLOSED).
    real_close = adapter.close

    def close_reply_lost(no: str):
        real_close(no)
        raise PaymentError("Alipay cancel: read timed out", maybe_done=True)

    adapter.close = close_reply_lost  # type: ignore[method-assign]
    desk = bootstrap.build_payment_desk(kiosk, adapter)
    p = desk.start("cart-1", paid_sale(), "Scan & Go")
    script(sim, p.out_trade_no, "pay_on_close")
    assert desk.cancel(p.out_trade_no).open
    assert sim.provider.orders[p.out_trade_no].status == "refunded"
    after = desk.notify(*paid_moment_notification(sim, sdk, p.out_trade_no))
    assert after.state is PaymentState.CANCELLED and after.provider_refunded
    assert "refunded" in after.staff_flag
    assert refunded_sales(desk, sim) == 0 and desk.repo.count_sales(p.out_trade_no) == 0


def test_a_wechat_order_refunded_before_the_kiosk_heard_of_it_is_no_sale(sim, kiosk):
    # WeChat Pay's trade_state REFUND (转入退款): the shopper paid, then the order was
    # refunded (by the store's back office, say) before the kiosk learned it was paid.
    # Money that went back is not a sale: no sale, no receipt, and staff are told.
    from devices.payment.wechatpay import WeChatPayAdapter

    adapter = WeChatPayAdapter.from_options(sim.keys.wechat_options, "lane-01")
    desk = bootstrap.build_payment_desk(kiosk, adapter)
    p = desk.start("cart-1", paid_sale(), "Scan & Go")
    assert requests.post(f"{sim.url}/sim/orders/{p.out_trade_no}/pay", timeout=5).ok
    order = sim.provider.orders[p.out_trade_no]
    sim.provider.refund(order, "back-office-1", order.amount_minor)
    assert adapter.query(p.out_trade_no).status.value == "refunded"
    after = desk.poll(p.out_trade_no)
    assert after.state is not PaymentState.PAID and after.provider_refunded
    assert desk.repo.count_sales(p.out_trade_no) == 0
    assert kiosk.db.execute("SELECT count(*) FROM print_jobs").fetchone()[0] == 0
