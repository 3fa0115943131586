"""WeChat Pay as the platform behaves, with the ``wechatpayv3`` SDK as the judge.

Over real HTTP on 127.0.0.1 against ``kiosk sim pay``: key rotation (a set of platform keys
chosen by ``Wechatpay-Serial``: certificates and the WeChat Pay public key), the
``Wechatpay-Serial`` request header in public-key mode, unsigned error replies read as
WeChat's refusal (its code and the setting to check), the simulator refusing what WeChat
refuses, and the SDK calling the simulator and checking the kiosk's own requests and the
simulator's notifications. The SDK is used as shipped; the only thing set on it is its
gateway (``Core._gate_way``, which it has no parameter for) so it calls the simulator.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3 import utils as sdk_utils

from app import bootstrap
from app.domain.payment import PaymentError, PaymentState, ProviderRefused, ProviderStatus
from app.services.payment_port import OrderRequest
from app.services.payments import InvalidNotification
from devices.payment import wechatpay as wx
from devices.payment.wechatpay import (
    CLOCK,
    PlatformKeys,
    WeChatPayAdapter,
    load_platform_certificate,
)
from devices.sim.payprotocols import (
    APPID,
    MCHID,
    MERCHANT_SERIAL,
    PLATFORM_SERIAL,
    PUBLIC_KEY_ID,
    UNKNOWN_SERIAL,
    WECHAT_MAX_TOTAL_FEN,
    platform_certificate,
)
from devices.sim.payprovider import PayServer
from tests.unit.factories import paid_sale

BEIJING = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def sim():
    server = PayServer(0).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_switches(sim):
    """Every test starts with WeChat choosing the signer itself, no failures queued and no
    requests recorded."""
    sim.keys.wechat.signer = "auto"
    sim.keys.wechat.failures.clear()
    sim.keys.wechat.requests.clear()
    yield
    sim.keys.wechat.signer = "auto"
    sim.keys.wechat.failures.clear()


def signer(sim, who):
    assert requests.post(f"{sim.url}/sim/wechat/signer", json={"signer": who}, timeout=5).ok


def fail_next(sim, status, code, message="", count=1):
    assert requests.post(f"{sim.url}/sim/wechat/fail", json={
        "status": status, "code": code, "message": message, "count": count}, timeout=5).ok


def seen(sim):
    return requests.get(f"{sim.url}/sim/wechat/requests", timeout=5).json()["requests"]


def pay(sim, no):
    return requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).status_code


def order(no, amount=1234):
    return OrderRequest(no, amount, "CNY", "Scan & Go", datetime.now(BEIJING)
                        + timedelta(minutes=2))


def adapter(sim, **options):
    return WeChatPayAdapter.from_options(sim.keys.wechat_options | options, "lane-01")


def legacy(sim, **options):
    """The adapter with the older single-key options (these ran before key sets existed)."""
    return WeChatPayAdapter.from_options(sim.keys.wechat_legacy_options | options, "lane-01")


def only(sim, *keep):
    """The simulator's WeChat options with only the named key options kept."""
    o = dict(sim.keys.wechat_options)
    for name in ("platform_cert_files", "public_key_file", "public_key_id"):
        if name not in keep:
            o.pop(name)
    return o


def notification(sim, no, who):
    n = requests.get(f"{sim.url}/sim/orders/{no}/notification",
                     params={"format": "wechat", "signer": who}, timeout=5).json()
    return n["headers"], n["body"].encode()


# --- fault 2: a set of platform keys, chosen by Wechatpay-Serial -----------------------------
def test_a_platform_certificate_gives_its_key_and_serial(sim):
    k = load_platform_certificate(sim.keys.wechat_options["platform_cert_files"][0])
    assert k.serial == PLATFORM_SERIAL and k.not_after is not None
    assert k.key.public_numbers() == sim.keys.platform.public_key().public_numbers()
    keys = PlatformKeys([k])
    assert keys.find(PLATFORM_SERIAL.lower()) is k  # serials are hex numbers, as the SDK reads
    assert keys.find("0" + PLATFORM_SERIAL) is k
    assert keys.find(UNKNOWN_SERIAL) is None and keys.public_key_id == ""


@pytest.mark.parametrize("when", ["expired", "not yet valid"])
def test_an_expired_or_not_yet_valid_certificate_is_refused_naming_the_setting(
        sim, tmp_path, when):
    now = datetime.now(UTC)
    span = ((now - timedelta(days=400), now - timedelta(days=1)) if when == "expired"
            else (now + timedelta(days=1), now + timedelta(days=400)))
    path = tmp_path / "old.pem"
    path.write_bytes(platform_certificate(sim.keys.platform, "4A1B", *span))
    with pytest.raises(ValueError, match=r"payment\.options\.platform_cert_files.*4A1B.*"
                       + ("expired" if when == "expired" else "not valid until")):
        adapter(sim, platform_cert_files=[str(path)])


def test_key_options_are_checked_and_name_the_setting(sim):
    with pytest.raises(ValueError, match=r"payment\.options\.public_key_id must be"):
        adapter(sim, public_key_id="SIMPLATFORM01")
    with pytest.raises(ValueError, match=r"payment\.options\.public_key_file is required"):
        WeChatPayAdapter.from_options(only(sim) | {"public_key_id": PUBLIC_KEY_ID}, "l")
    with pytest.raises(ValueError, match=r"platform_cert_files"):
        WeChatPayAdapter.from_options(only(sim), "lane-01")
    with pytest.raises(ValueError, match=r"cannot read an X\.509"):
        adapter(sim, platform_cert_files=sim.keys.wechat_options["public_key_file"])


def test_the_old_single_key_options_still_work(sim, kiosk):
    provider = WeChatPayAdapter.from_options(sim.keys.wechat_legacy_options, "lane-01")
    assert provider.platform_keys.serials == [PLATFORM_SERIAL]
    desk = bootstrap.build_payment_desk(kiosk, provider)
    p = desk.start("cart-legacy", paid_sale(), "Scan & Go")
    pay(sim, p.out_trade_no)
    assert desk.poll(p.out_trade_no).state is PaymentState.PAID
    assert seen(sim) and all("Wechatpay-Serial" not in r["headers"] for r in seen(sim))


def test_during_a_switch_over_replies_signed_with_either_key_verify_and_a_third_does_not(
        sim, kiosk):
    provider = adapter(sim)  # the old platform certificate and the new public key
    assert provider.platform_keys.serials == sorted([PLATFORM_SERIAL, PUBLIC_KEY_ID])
    desk = bootstrap.build_payment_desk(kiosk, provider)
    signer(sim, "certificate")
    p = desk.start("cart-switch", paid_sale(), "Scan & Go")
    assert provider.query(p.out_trade_no).status is ProviderStatus.WAITING
    signer(sim, "public_key")
    pay(sim, p.out_trade_no)
    assert provider.query(p.out_trade_no).status is ProviderStatus.PAID
    signer(sim, "unknown")
    with pytest.raises(PaymentError, match="does not hold") as refused:
        provider.query(p.out_trade_no)
    assert refused.value.setting == "payment.options.platform_cert_files"  # where keys go
    assert desk.poll(p.out_trade_no).state is PaymentState.PENDING  # never believed
    signer(sim, "public_key")
    assert desk.poll(p.out_trade_no).state is PaymentState.PAID


def test_notifications_signed_with_either_key_verify_and_an_unknown_key_does_not(sim, kiosk):
    provider = adapter(sim)
    desk = bootstrap.build_payment_desk(kiosk, provider)
    p = desk.start("cart-notify", paid_sale(), "Scan & Go")
    pay(sim, p.out_trade_no)
    for who in ("certificate", "public_key"):
        headers, body = notification(sim, p.out_trade_no, who)
        assert provider.parse_notification(headers, body).view.status is ProviderStatus.PAID
    headers, body = notification(sim, p.out_trade_no, "unknown")
    assert headers["Wechatpay-Serial"] == UNKNOWN_SERIAL
    with pytest.raises(InvalidNotification, match="does not hold"):
        desk.notify(headers, body)
    assert desk.repo.count_sales(p.out_trade_no) == 0


def test_a_certificate_that_expires_while_the_kiosk_runs_stops_verifying(sim):
    provider = adapter(sim)
    signer(sim, "certificate")
    provider.create(order("WXEXPIRING1"))
    later = datetime.now(UTC) + timedelta(days=6 * 365)
    with mock.patch.object(wx, "datetime", wraps=datetime) as clock:
        clock.now.return_value = later
        with pytest.raises(PaymentError, match="expired"):
            provider.query("WXEXPIRING1")


# --- fault 3: Wechatpay-Serial on every request in public-key mode ---------------------------
@pytest.mark.parametrize("form", ["public_key_file", "platform_public_key_file"])
def test_public_key_mode_sends_wechatpay_serial_on_every_request(sim, form):
    """Only the public key held: WeChat signs with it only if the request names it."""
    if form == "public_key_file":
        provider = WeChatPayAdapter.from_options(only(sim, "public_key_file", "public_key_id"),
                                                 "lane-01")
    else:  # the older options given the public key and its PUB_KEY_ID_ id
        provider = legacy(sim, platform_public_key_file=only(sim, "public_key_file")[
            "public_key_file"], platform_serial=PUBLIC_KEY_ID)
    no = f"WXSERIAL{len(form)}"
    provider.create(order(no))  # auto: WeChat signs with the key the header names
    pay(sim, no)
    assert provider.query(no).status is ProviderStatus.PAID
    assert provider.refund(no, "R-" + no, 1234, 1234, "test")
    assert provider.close(no + "X") is None  # no such order: nothing to close
    sent = seen(sim)
    assert len(sent) == 4
    assert [r["headers"].get("Wechatpay-Serial") for r in sent] == [PUBLIC_KEY_ID] * 4


# --- fault 4: unsigned error replies are WeChat's refusal, not a forgery ---------------------
def other_key_file(tmp_path: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "other.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


@pytest.mark.parametrize(("change", "code", "setting"), [
    ("private_key_file", "SIGN_ERROR", "payment.options.private_key_file"),
    ("serial_no", "SIGN_ERROR", "payment.options.serial_no"),
    ("mchid", "SIGN_ERROR", "payment.options.mchid"),
    ("clock", "INVALID_REQUEST", CLOCK),
])
def test_a_misconfiguration_shows_wechats_code_and_the_setting_to_change(
        sim, tmp_path, change, code, setting):
    options = {"private_key_file": other_key_file(tmp_path)} if change == "private_key_file" \
        else {"serial_no": "0123ABCD"} if change == "serial_no" \
        else {"mchid": "1900000999"} if change == "mchid" else {}
    provider = legacy(sim, **options)
    real = wx.time.time
    # The kiosk's clock ten minutes slow (the simulator, in this process, keeps the real one).
    skewed = mock.patch.object(wx, "time", SimpleNamespace(time=lambda: real() - 600)) \
        if change == "clock" else mock.patch.object(wx, "WINDOW_S", wx.WINDOW_S)
    with skewed, pytest.raises(ProviderRefused) as refused:
        provider.create(order("WXMISCONF-" + change))
    assert refused.value.code == code and refused.value.setting == setting
    assert refused.value.maybe_done is False  # refused before it acted
    assert "signature verification" not in str(refused.value)
    assert "unsigned" in str(refused.value)


@pytest.mark.parametrize(("status", "code"), [(500, "SYSTEM_ERROR"), (503, "SYSTEM_ERROR"),
                                              (429, "FREQUENCY_LIMITED")])
def test_an_unsigned_429_or_5xx_is_a_refusal_that_may_have_taken_effect(sim, kiosk, status,
                                                                        code):
    provider = legacy(sim)
    desk = bootstrap.build_payment_desk(kiosk, provider)
    p = desk.start(f"cart-{status}", paid_sale(), "Scan & Go")
    pay(sim, p.out_trade_no)
    fail_next(sim, status, code, "系统繁忙")
    with pytest.raises(ProviderRefused) as refused:
        provider.query(p.out_trade_no)
    assert refused.value.code == code and refused.value.maybe_done is True
    assert "signature verification" not in str(refused.value)
    fail_next(sim, status, code)
    assert desk.poll(p.out_trade_no).state is PaymentState.PENDING  # not paid, not failed
    assert desk.poll(p.out_trade_no).state is PaymentState.PAID


def test_an_unsigned_not_found_is_not_taken_as_no_such_order(sim):
    provider = legacy(sim)
    provider.create(order("WXUNSIGNED404"))
    fail_next(sim, 404, "ORDER_NOT_EXIST", "订单不存在")
    with pytest.raises(ProviderRefused, match="ORDER_NOT_EXIST"):
        provider.query("WXUNSIGNED404")  # unsigned: anyone could have said it
    assert provider.query("WXUNSIGNED404").status is ProviderStatus.WAITING
    assert provider.query("WXNEVERMADE").status is ProviderStatus.NOT_FOUND  # signed 404


def test_a_signed_success_that_fails_verification_is_still_a_forgery(sim):
    provider = legacy(sim)
    provider.create(order("WXFORGED01"))
    requests.post(f"{sim.url}/sim/script", json={"order": "WXFORGED01",
                                                 "outcome": "bad_signature"}, timeout=5)
    with pytest.raises(PaymentError, match="signature verification") as forged:
        provider.query("WXFORGED01")
    assert not isinstance(forged.value, ProviderRefused)


# --- the simulator refuses what WeChat refuses, and the SDK is the judge -----------------------
def sdk(sim, mode="public_key", cert_dir=None) -> WeChatPay:
    k = sim.keys
    o = k.wechat_options
    keys = {"public_key": Path(o["public_key_file"]).read_text(),
            "public_key_id": PUBLIC_KEY_ID} if mode == "public_key" else {"cert_dir": cert_dir}
    client = WeChatPay(wechatpay_type=WeChatPayType.NATIVE, mchid=MCHID,
                       private_key=Path(o["private_key_file"]).read_text(),
                       cert_serial_no=MERCHANT_SERIAL, appid=APPID,
                       apiv3_key=k.apiv3_key.decode(), notify_url="https://kiosk.invalid/n",
                       timeout=(3, 10), **keys)
    client._core._gate_way = sim.url  # the SDK's only handle on the host it calls
    return client


@pytest.fixture
def cert_dir(sim, tmp_path):
    (tmp_path / f"{PLATFORM_SERIAL}.pem").write_bytes(sim.keys.platform_cert)
    return str(tmp_path)


@pytest.mark.parametrize("mode", ["public_key", "certificate"])
def test_the_sdk_creates_queries_closes_and_refunds_with_verified_replies(sim, cert_dir, mode):
    client = sdk(sim, mode, cert_dir)
    no = f"SDK{mode[:4].upper()}01"
    expire = (datetime.now(BEIJING) + timedelta(minutes=2)).isoformat(timespec="seconds")
    code, body = client.pay(description="Scan & Go", out_trade_no=no,
                            amount={"total": 620, "currency": "CNY"}, time_expire=expire)
    assert code == 200 and json.loads(body)["code_url"].startswith("weixin://wxpay/")
    code, body = client.query(out_trade_no=no)  # the SDK raises if a 2xx does not verify
    assert code == 200 and json.loads(body)["trade_state"] == "NOTPAY"
    assert pay(sim, no) == 200
    code, body = client.query(out_trade_no=no)
    assert json.loads(body)["trade_state"] == "SUCCESS"
    code, body = client.refund(out_refund_no=no + "-R", out_trade_no=no,
                               amount={"refund": 620, "total": 620, "currency": "CNY"})
    assert code == 200 and json.loads(body)["refund_id"].startswith("SIMR")
    other = no + "C"
    client.pay(description="Scan & Go", out_trade_no=other,
               amount={"total": 100, "currency": "CNY"})
    code, _ = client.close(out_trade_no=other)
    assert code == 204
    code, body = client.query(out_trade_no=other)
    assert json.loads(body)["trade_state"] == "CLOSED"
    signer(sim, "unknown")  # a key the SDK does not hold either: the SDK refuses the reply
    with pytest.raises(Exception, match="failed to verify the signature"):  # noqa: PT011
        client.query(out_trade_no=no)


def test_the_sdk_downloads_the_platform_certificate_from_the_simulator(sim, cert_dir):
    client = sdk(sim, "certificate", cert_dir)
    client._core._update_certificates()  # GET /v3/certificates, decrypted with the APIv3 key
    serials = [format(c.serial_number, "X") for c in client._core._certificates]
    assert serials == [PLATFORM_SERIAL]


@pytest.mark.parametrize("total", [0, -100, 1234.5, "1234", True, WECHAT_MAX_TOTAL_FEN + 1])
def test_the_simulator_refuses_amounts_wechat_refuses(sim, total):
    code, body = sdk(sim).pay(description="x", out_trade_no=f"SDKAMT{abs(hash(str(total)))}",
                              amount={"total": total, "currency": "CNY"})
    assert code == 400 and json.loads(body)["code"] == "PARAM_ERROR"


def test_the_same_out_trade_no_with_other_parameters_is_refused(sim):
    client = sdk(sim)
    first = client.pay(description="Scan & Go", out_trade_no="SDKREPEAT1",
                       amount={"total": 500, "currency": "CNY"})
    assert client.pay(description="Scan & Go", out_trade_no="SDKREPEAT1",
                      amount={"total": 500, "currency": "CNY"}) == first  # the same order
    for change in ({"amount": {"total": 501, "currency": "CNY"}, "description": "Scan & Go"},
                   {"amount": {"total": 500, "currency": "CNY"}, "description": "other"}):
        code, body = client.pay(out_trade_no="SDKREPEAT1", **change)
        assert code == 403 and json.loads(body)["code"] == "OUT_TRADE_NO_USED"
    with pytest.raises(ProviderRefused) as refused:  # the kiosk reads it as WeChat's refusal
        adapter(sim).create(order("SDKREPEAT1", 999))
    assert refused.value.code == "OUT_TRADE_NO_USED" and refused.value.maybe_done is False


def test_error_replies_are_unsigned_only_where_wechat_leaves_them_unsigned(sim):
    reply = requests.get(f"{sim.url}/v3/pay/transactions/out-trade-no/X?mchid={MCHID}",
                         timeout=5)  # no Authorization: 401, unsigned
    assert reply.status_code == 401 and "Wechatpay-Signature" not in reply.headers
    assert reply.json()["code"] == "SIGN_ERROR"
    client = sdk(sim)
    path = f"/v3/pay/transactions/out-trade-no/SDKNOSUCHORDER?mchid={MCHID}"
    reply = requests.get(sim.url + path, timeout=5, headers={
        "Authorization": sdk_utils.build_authorization(path, "GET", MCHID, MERCHANT_SERIAL,
                                                       client._core._private_key),
        "Wechatpay-Serial": PUBLIC_KEY_ID})
    assert reply.status_code == 404 and reply.json()["code"] == "ORDER_NOT_EXIST"
    # An authenticated business refusal is signed: the SDK's own check accepts it.
    assert client._core._verify_signature(reply.headers, reply.text)


def test_the_sdk_verifies_the_kiosks_requests(sim):
    """Each Authorization the kiosk sent, rebuilt by the SDK from the same timestamp, nonce,
    path and body, is byte-identical: the SDK would have signed exactly that."""
    client = sdk(sim)
    provider = adapter(sim)
    provider.create(order("WXJUDGED01"))
    provider.query("WXJUDGED01")
    provider.close("WXJUDGED01")
    sent = seen(sim)
    assert [r["method"] for r in sent] == ["POST", "GET", "POST"]
    for r in sent:
        auth = r["headers"]["Authorization"]
        fields = dict(part.split("=", 1) for part in auth.split(" ", 1)[1].split(","))
        fields = {k: v.strip('"') for k, v in fields.items()}
        with mock.patch.object(sdk_utils.time, "time", return_value=int(fields["timestamp"])):
            rebuilt = sdk_utils.build_authorization(
                r["path"], r["method"], MCHID, MERCHANT_SERIAL, client._core._private_key,
                data=r["body"], nonce_str=fields["nonce_str"])
        assert rebuilt == auth


@pytest.mark.parametrize("who", ["certificate", "public_key"])
def test_the_sdk_verifies_and_decrypts_the_simulators_notifications(sim, cert_dir, who):
    client = sdk(sim, who, cert_dir)
    provider = adapter(sim)
    provider.create(order(f"WXNOTE{who[:4].upper()}"))
    pay(sim, f"WXNOTE{who[:4].upper()}")
    headers, body = notification(sim, f"WXNOTE{who[:4].upper()}", who)
    result = client.callback(headers, body)
    assert result is not None, "the SDK did not verify the notification"
    assert result["event_type"] == "TRANSACTION.SUCCESS"
    assert result["resource"]["out_trade_no"] == f"WXNOTE{who[:4].upper()}"
    assert result["resource"]["trade_state"] == "SUCCESS"
    assert client.callback(headers, body.replace(b"SUCCESS", b"SUCCESX")) is None
