"""The WeChat Pay and Alipay adapters over real HTTP, against the simulator's
WeChat Pay v3 and Alipay endpoints (signed with the simulator's own test keys)."""

from __future__ import annotations

import pytest
import requests

from app import bootstrap
from app.domain.payment import PaymentError, PaymentState, ProviderStatus
from app.services.payments import InvalidNotification
from devices.payment.alipay import AlipayAdapter, fen, sign_params, yuan
from devices.payment.wechatpay import WeChatPayAdapter
from devices.sim.payprovider import PayServer
from tests.unit.factories import paid_sale


@pytest.fixture(scope="module")
def sim():
    server = PayServer(0).start()
    yield server
    server.stop()


ADAPTERS = {
    "wechat": lambda sim: WeChatPayAdapter.from_options(sim.keys.wechat_options, "lane-01"),
    "alipay": lambda sim: AlipayAdapter.from_options(sim.keys.alipay_options, "lane-01"),
}


@pytest.fixture(params=sorted(ADAPTERS))
def wire(request, sim, kiosk):
    provider = ADAPTERS[request.param](sim)
    desk = bootstrap.build_payment_desk(kiosk, provider)
    return request.param, provider, desk


def script(sim, no, outcome, **kw):
    assert requests.post(f"{sim.url}/sim/script",
                         json={"order": no, "outcome": outcome, **kw}, timeout=5).ok


def pay(sim, no):
    return requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).status_code


def test_a_sale_is_paid_and_learned_by_polling(wire, sim):
    fmt, provider, desk = wire
    p = desk.start("cart-1", paid_sale(), "Scan & Go")
    assert p.state is PaymentState.PENDING
    assert p.qr_payload.startswith("weixin://wxpay/" if fmt == "wechat" else
                                   "https://qr.alipay.com/")
    assert desk.poll(p.out_trade_no).state is PaymentState.PENDING
    assert pay(sim, p.out_trade_no) == 200
    p = desk.poll(p.out_trade_no)
    assert p.state is PaymentState.PAID and p.paid_minor == paid_sale().total.minor
    assert p.provider_ref.startswith("SIM")
    # The simulator counts status queries (fault tests wait on it to know a kiosk polls).
    orders = requests.get(f"{sim.url}/sim/state", timeout=5).json()["orders"]
    assert orders[p.out_trade_no]["queries"] == 2


def test_a_signed_notification_is_verified_decrypted_and_applied_once(wire, sim):
    fmt, provider, desk = wire
    p = desk.start("cart-2", paid_sale(), "Scan & Go")
    pay(sim, p.out_trade_no)
    notice = requests.get(f"{sim.url}/sim/orders/{p.out_trade_no}/notification",
                          params={"format": fmt}, timeout=5).json()
    headers, body = notice["headers"], notice["body"].encode()
    tampered = body.replace(b"62.13", b"0.01") if fmt == "alipay" else body[:-10] + b'"}}'
    with pytest.raises(InvalidNotification):
        desk.notify(headers, tampered)
    assert desk.notify(headers, body).state is PaymentState.PAID
    assert desk.notify(headers, body).state is PaymentState.PAID  # replay: nothing new
    assert desk.repo.count_sales(p.out_trade_no) == 1


def test_replies_that_fail_verification_are_not_believed(wire, sim):
    fmt, provider, desk = wire
    p = desk.start("cart-3", paid_sale(), "Scan & Go")
    pay(sim, p.out_trade_no)
    script(sim, p.out_trade_no, "bad_signature")
    with pytest.raises(PaymentError, match="signature"):
        provider.query(p.out_trade_no)
    assert desk.poll(p.out_trade_no).state is PaymentState.PENDING
    script(sim, p.out_trade_no, "manual")
    assert desk.poll(p.out_trade_no).state is PaymentState.PAID


def test_cancel_closes_an_unpaid_order(wire, sim):
    fmt, provider, desk = wire
    p = desk.start("cart-4", paid_sale(), "Scan & Go")
    assert desk.cancel(p.out_trade_no).state is PaymentState.CANCELLED
    assert pay(sim, p.out_trade_no) == 409


def test_a_refund_goes_through(wire, sim):
    fmt, provider, desk = wire
    p = desk.start("cart-5", paid_sale(), "Scan & Go")
    pay(sim, p.out_trade_no)
    desk.poll(p.out_trade_no)
    assert desk.refund(p.out_trade_no)
    orders = requests.get(f"{sim.url}/sim/state", timeout=5).json()["orders"]
    assert orders[p.out_trade_no]["status"] == "refunded"


def test_wechat_close_on_a_paid_order_completes_the_sale(sim, kiosk):
    desk = bootstrap.build_payment_desk(kiosk, ADAPTERS["wechat"](sim))
    p = desk.start("cart-6", paid_sale(), "Scan & Go")
    script(sim, p.out_trade_no, "pay_on_close")
    p = desk.cancel(p.out_trade_no)
    assert p.state is PaymentState.PAID and "paid after the kiosk gave up" in p.staff_flag


def test_alipay_trade_does_not_exist_until_scanned_and_stays_open(sim, kiosk):
    provider = ADAPTERS["alipay"](sim)
    desk = bootstrap.build_payment_desk(kiosk, provider)
    p = desk.start("cart-7", paid_sale(), "Scan & Go")
    assert provider.query(p.out_trade_no).status is ProviderStatus.NOT_FOUND
    assert desk.poll(p.out_trade_no).state is PaymentState.PENDING  # not "failed"


def test_alipay_cancel_of_a_just_paid_trade_refunds_it_and_tells_staff(sim, kiosk):
    desk = bootstrap.build_payment_desk(kiosk, ADAPTERS["alipay"](sim))
    p = desk.start("cart-8", paid_sale(), "Scan & Go")
    script(sim, p.out_trade_no, "pay_on_close")
    p = desk.cancel(p.out_trade_no)
    assert p.state is PaymentState.CANCELLED and "refunded" in p.staff_flag
    orders = requests.get(f"{sim.url}/sim/state", timeout=5).json()["orders"]
    assert orders[p.out_trade_no]["status"] == "refunded"  # the shopper has the money back
    assert desk.repo.count_sales(p.out_trade_no) == 0


def test_a_request_signed_with_another_key_is_refused_by_the_provider(sim, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "other.pem"
    path.write_bytes(other.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    wechat = WeChatPayAdapter.from_options(sim.keys.wechat_options | {
        "private_key_file": str(path)}, "lane-01")
    with pytest.raises(PaymentError):
        wechat.query("anything")
    alipay = AlipayAdapter.from_options(sim.keys.alipay_options | {
        "app_private_key_file": str(path)}, "lane-01")
    with pytest.raises(PaymentError, match="precreate failed|signature|isv"):
        from datetime import datetime, timedelta, timezone

        from app.services.payments import OrderRequest
        now = datetime.now(timezone(timedelta(hours=8)))
        alipay.create(OrderRequest("X1", 100, "CNY", "t", now + timedelta(minutes=2)))


def test_missing_options_name_the_setting(sim):
    with pytest.raises(ValueError, match="payment.options.mchid"):
        WeChatPayAdapter.from_options({}, "lane-01")
    with pytest.raises(ValueError, match="payment.options.app_private_key_file"):
        AlipayAdapter.from_options({"app_id": "1"}, "lane-01")


def test_alipay_amounts_and_signing_string():
    assert yuan(6213) == "62.13" and yuan(5) == "0.05" and fen("62.13") == 6213
    assert fen("7") == 700 and fen("0.5") == 50
    with pytest.raises(ValueError):
        fen("1.234")
    assert sign_params({"b": "2", "a": "1", "sign": "x", "c": ""}) == "a=1&b=2"


@pytest.mark.parametrize("payload", ["weixin://wxpay/bizpayurl?pr=SIMlane01261125",
                                     "https://qr.alipay.com/SIMlane012611252125206f0d4c83"])
def test_the_payment_qr_is_readable_with_a_quiet_zone_and_big_modules(payload):
    import numpy as np

    from devices.decoder import Decoder
    from devices.payment.qr import QUIET_ZONE, module_px_for, payment_qr

    px = module_px_for(160)  # a 15.6" 1920x1080 kiosk screen is ~140-160 dpi
    assert px * 25.4 / 160 >= 0.8
    image = payment_qr(payload, px)
    pixels = np.array(image)
    border = QUIET_ZONE * px
    assert pixels[:border].min() == 255 and pixels[:, :border].min() == 255  # quiet zone
    assert [r.text for r in Decoder().read_image(pixels).reads] == [payload]
    with pytest.raises(ValueError):
        payment_qr("")
