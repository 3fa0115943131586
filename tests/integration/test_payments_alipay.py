"""Alipay as the platform behaves, with python-alipay-sdk (``alipay.AliPay``) as the judge.

- The SDK calls the simulator (it sends every call as a GET with query parameters) and
  verifies its replies: precreate, query, cancel, refund, and the refusals Alipay answers
  for amounts it does not take.
- The SDK judges the kiosk: the form the adapter posts carries the sign the SDK makes for
  the same parameters, and the simulator's notifications pass the SDK's ``verify``.
- Unsigned refusals (issue 15, fault 4): Alipay's gateway answers some refusals without a
  ``sign``; the kiosk reports them as the provider's refusal with its code and the setting
  to check, never as a forgery and never as "paid" or "not paid".

No special casing: the SDK is configured as a merchant would configure it, with the
simulator's gateway URL (``_gateway``, which is where ``AliPay`` keeps it) and keys.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl

import pytest
import requests
from alipay import AliPay
from alipay.exceptions import AliPayException
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app import bootstrap
from app.domain.payment import PaymentError, PaymentState, ProviderRefused
from app.services.payment_port import OrderRequest
from devices.payment.alipay import AlipayAdapter
from devices.sim.payprotocols import ALIPAY_APP_ID
from devices.sim.payprovider import PayServer
from tests.unit.factories import paid_sale

BEIJING = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def sim():
    server = PayServer(0).start()
    yield server
    server.stop()


def _pem(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def _other_key(tmp_path: Path) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "other-app-private.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


def sdk(sim, *, app_id: str = ALIPAY_APP_ID, app_key_file: str | None = None) -> AliPay:
    """python-alipay-sdk as a merchant configures it, pointed at the simulator's gateway."""
    o = sim.keys.alipay_options
    client = AliPay(appid=app_id,
                    app_private_key_string=_pem(app_key_file or o["app_private_key_file"]),
                    alipay_public_key_string=_pem(o["alipay_public_key_file"]))
    client._gateway = o["base_url"]  # AliPay keeps its gateway URL here (debug= picks one)
    return client


def sdk_post(client: AliPay, method: str, biz: dict) -> dict:
    """A call the SDK builds and signs, sent as a form POST (as the kiosk sends its own),
    and the reply checked by the SDK's own verification of a sync reply."""
    body = client.sign_data(client.build_body(method, biz))
    raw = requests.post(client._gateway, data=body, timeout=5,
                        headers={"Content-Type": "application/x-www-form-urlencoded"}).text
    return client._verify_and_return_sync_response(raw, method.replace(".", "_") + "_response")


def pay(sim, no: str) -> None:
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).status_code == 200


def adapter(sim, **options) -> AlipayAdapter:
    return AlipayAdapter.from_options(sim.keys.alipay_options | options, "lane-01")


def order(no: str, amount: int = 6213) -> OrderRequest:
    return OrderRequest(no, amount, "CNY", "Scan & Go",
                        datetime.now(BEIJING) + timedelta(minutes=2))


# --- the SDK calls the simulator ------------------------------------------------------------
def test_the_sdk_precreates_queries_refunds_and_cancels_with_verified_replies(sim):
    client = sdk(sim)
    made = client.api_alipay_trade_precreate("Scan & Go", "SDK-1", "62.13")
    assert made["code"] == "10000" and made["qr_code"].startswith("https://qr.alipay.com/")
    # Not scanned yet: the trade does not exist (a signed business answer the SDK verifies).
    assert client.api_alipay_trade_query(out_trade_no="SDK-1")["sub_code"] == \
        "ACQ.TRADE_NOT_EXIST"
    pay(sim, "SDK-1")
    paid = client.api_alipay_trade_query(out_trade_no="SDK-1")
    assert paid["trade_status"] == "TRADE_SUCCESS" and paid["total_amount"] == "62.13"
    by_alipay_id = client.api_alipay_trade_query(trade_no=paid["trade_no"])
    assert by_alipay_id["out_trade_no"] == "SDK-1"
    refund = client.api_alipay_trade_refund("10.00", out_trade_no="SDK-1",
                                            out_request_no="SDK-1-R1")
    assert refund["code"] == "10000" and refund["refund_fee"] == "10.00"
    too_much = client.api_alipay_trade_refund("60.00", out_trade_no="SDK-1",
                                              out_request_no="SDK-1-R2")
    assert too_much["code"] == "40004"
    # Cancel: an unpaid trade is closed; a paid one is refunded.
    client.api_alipay_trade_precreate("Scan & Go", "SDK-2", "1.00")
    assert client.api_alipay_trade_cancel(out_trade_no="SDK-2")["action"] == "close"
    client.api_alipay_trade_precreate("Scan & Go", "SDK-3", "1.00")
    pay(sim, "SDK-3")
    assert client.api_alipay_trade_cancel(out_trade_no="SDK-3")["action"] == "refund"
    state = requests.get(f"{sim.url}/sim/state", timeout=5).json()["orders"]
    assert state["SDK-2"]["status"] == "closed" and state["SDK-3"]["status"] == "refunded"


@pytest.mark.parametrize(("amount", "sub_code"), [
    ("0", "ACQ.INVALID_PARAMETER"), ("0.00", "ACQ.INVALID_PARAMETER"),
    ("-1.00", "ACQ.INVALID_PARAMETER"), ("12.345", "ACQ.INVALID_PARAMETER"),
    ("1e3", "ACQ.INVALID_PARAMETER"), ("100000000.01", "ACQ.TOTAL_FEE_EXCEED"),
])
def test_amounts_alipay_refuses_are_refused(sim, amount, sub_code):
    # alipay.trade.precreate: total_amount in yuan, two decimals at most, [0.01, 100000000].
    no = f"AMT-{amount}"
    node = sdk_post(sdk(sim), "alipay.trade.precreate",
                    {"out_trade_no": no, "total_amount": amount, "subject": "Scan & Go"})
    assert (node["code"], node["sub_code"]) == ("40004", sub_code)
    assert no not in requests.get(f"{sim.url}/sim/state", timeout=5).json()["orders"]


def test_the_largest_amount_and_one_fen_are_taken(sim):
    client = sdk(sim)
    assert client.api_alipay_trade_precreate("t", "AMT-MAX", "100000000.00")["code"] == "10000"
    assert client.api_alipay_trade_precreate("t", "AMT-MIN", "0.01")["code"] == "10000"


def test_the_same_out_trade_no_with_another_amount_is_refused(sim):
    client = sdk(sim)

    def precreate(amount: str) -> dict:
        return sdk_post(client, "alipay.trade.precreate",
                        {"out_trade_no": "SAME-1", "total_amount": amount, "subject": "t"})

    assert precreate("5.00")["code"] == "10000"
    assert precreate("5.00")["code"] == "10000"  # the same order again: found, not refused
    again = precreate("6.00")
    assert again["sub_code"] == "ACQ.CONTEXT_INCONSISTENT"


def test_the_gateway_leaves_its_own_refusals_unsigned(sim, tmp_path):
    # The SDK reads a reply without a sign as Alipay's refusal (AliPayException with the
    # code), not as a forgery (AliPayValidationError).
    with pytest.raises(AliPayException, match="isv.invalid-signature"):
        sdk(sim, app_key_file=_other_key(tmp_path)).api_alipay_trade_query(out_trade_no="X")
    with pytest.raises(AliPayException, match="isv.invalid-app-id"):
        sdk(sim, app_id="2021000000009999").api_alipay_trade_query(out_trade_no="X")
    # A request without its sign, over POST as the kiosk sends it.
    reply = requests.post(sim.keys.alipay_options["base_url"],
                          data={"app_id": ALIPAY_APP_ID, "method": "alipay.trade.query",
                                "sign_type": "RSA2", "version": "1.0", "charset": "utf-8",
                                "timestamp": "2026-11-25 10:00:00", "biz_content": "{}"},
                          timeout=5).json()
    assert reply == {"alipay_trade_query_response": {
        "code": "40001", "msg": "Missing Required Arguments",
        "sub_code": "isv.missing-signature", "sub_msg": "缺少签名参数"}}
    unknown = requests.get(sim.keys.alipay_options["base_url"],
                           params={"method": "alipay.no.such"}, timeout=5).json()
    assert unknown["error_response"]["sub_code"] == "isv.invalid-method"
    assert "sign" not in unknown


# --- the SDK judges the kiosk ---------------------------------------------------------------
def test_the_kiosk_signs_each_request_as_the_sdk_does(sim):
    kiosk = adapter(sim)
    sent: list[str] = []
    kiosk.http.hooks["response"].append(lambda r, *a, **k: sent.append(r.request.body))
    kiosk.create(order("JUDGE-1"))
    kiosk.query("JUDGE-1")
    pay(sim, "JUDGE-1")
    kiosk.refund("JUDGE-1", "JUDGE-1-R1", 100, 6213, "test")
    kiosk.close("JUDGE-1")
    # The SDK, holding the same app key, signs the same parameters to the same sign
    # (RSA2 with PKCS#1 v1.5 is deterministic), and Alipay's check of it passes.
    judge = sdk(sim)
    methods = []
    for body in sent:
        params = dict(parse_qsl(body, keep_blank_values=True, strict_parsing=True))
        given = params.pop("sign")
        methods.append(params["method"])
        assert parse_qs(judge.sign_data(dict(params)))["sign"] == [given]
    assert methods == ["alipay.trade.precreate", "alipay.trade.query", "alipay.trade.refund",
                       "alipay.trade.cancel"]


def test_the_simulators_notifications_pass_the_sdks_verify_in_beijing_time(sim, monkeypatch):
    # The simulator runs in this process: with the process's clock in UTC, a notification
    # stamped with local time would be eight hours behind Beijing.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        client, kiosk = sdk(sim), adapter(sim)
        kiosk.create(order("NOTE-1"))
        kiosk.create(order("NOTE-2"))
        pay(sim, "NOTE-1")
        kiosk.close("NOTE-2")  # closed unpaid: no trade_no, no gmt_payment
        for no in ("NOTE-1", "NOTE-2"):
            notice = requests.get(f"{sim.url}/sim/orders/{no}/notification",
                                  params={"format": "alipay"}, timeout=5).json()
            data = dict(parse_qsl(notice["body"], keep_blank_values=True))
            signature = data.pop("sign")
            assert client.verify(dict(data), signature), no
            now = datetime.now(BEIJING)
            for field in ("notify_time", "gmt_create") + (("gmt_payment",)
                                                           if no == "NOTE-1" else ()):
                stamped = datetime.strptime(data[field], "%Y-%m-%d %H:%M:%S").replace(
                    tzinfo=BEIJING)
                assert abs((now - stamped).total_seconds()) < 120, (field, data[field])
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


# --- fault 4: unsigned refusals reach the kiosk as refusals ---------------------------------
def test_a_wrong_app_key_is_alipays_refusal_naming_the_setting(sim, tmp_path):
    kiosk = adapter(sim, app_private_key_file=_other_key(tmp_path))
    with pytest.raises(ProviderRefused) as refused:
        kiosk.create(order("WRONGKEY-1"))
    e = refused.value
    assert (e.code, e.setting, e.maybe_done) == (
        "isv.invalid-signature", "payment.options.app_private_key_file", False)
    assert "40002" in str(e) and "无效签名" in str(e)


def test_a_wrong_app_id_is_alipays_refusal_naming_the_setting(sim):
    with pytest.raises(ProviderRefused) as refused:
        adapter(sim, app_id="2021000000009999").query("WRONGID-1")
    assert (refused.value.code, refused.value.setting) == ("isv.invalid-app-id",
                                                           "payment.options.app_id")


def test_an_unsigned_refusal_leaves_the_payment_as_the_code_means(sim, kiosk, tmp_path):
    # A create refused for a bad signature did nothing: no QR, not "unknown", not paid; the
    # payment fails at once (the same order would be refused again).
    bad = adapter(sim, app_private_key_file=_other_key(tmp_path))
    desk = bootstrap.build_payment_desk(kiosk, bad)
    p = desk.start("cart-refused", paid_sale(), "Scan & Go")
    assert p.state is PaymentState.FAILED and not p.qr_payload
    assert "isv.invalid-signature" in p.last_error
    # A pending payment whose query is refused (the key changed under it) stays pending,
    # with Alipay's code where staff look; it is neither paid nor given up.
    good = bootstrap.build_payment_desk(kiosk, adapter(sim))
    q = good.start("cart-refused-2", paid_sale(), "Scan & Go")
    pay(sim, q.out_trade_no)
    q = desk.poll(q.out_trade_no)
    assert q.state is PaymentState.PENDING and "isv.invalid-signature" in q.last_error
    assert good.poll(q.out_trade_no).state is PaymentState.PAID


class _Canned(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def canned(sim):
    """A gateway on 127.0.0.1 that answers what the test sets: replies the simulator has no
    script for (20000, 20001...) as Alipay words them."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def answer(reply: dict) -> AlipayAdapter:
        _Canned.body = json.dumps(reply, ensure_ascii=False).encode()
        return adapter(sim, base_url=f"http://127.0.0.1:{server.server_address[1]}/gateway.do")

    yield answer
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("node", "code", "maybe_done", "setting"), [
    ({"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error",
      "sub_msg": "系统繁忙"}, "isp.unknow-error", True, ""),
    ({"code": "20001", "msg": "Insufficient Token Permissions",
      "sub_code": "aop.invalid-auth-token", "sub_msg": "无效的访问令牌"},
     "aop.invalid-auth-token", False, "payment.options.app_id"),
    ({"code": "40001", "msg": "Missing Required Arguments",
      "sub_code": "isv.missing-signature", "sub_msg": "缺少签名参数"},
     "isv.missing-signature", False, ""),
    ({"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
      "sub_msg": "无效签名"}, "isv.invalid-signature", False,
     "payment.options.app_private_key_file"),
    ({"code": "40006", "msg": "Insufficient Permissions",
      "sub_code": "isv.insufficient-isv-permissions", "sub_msg": "ISV权限不足"},
     "isv.insufficient-isv-permissions", False, "payment.options.app_id"),
    ({"code": "20000", "msg": "Service Currently Unavailable"}, "20000", True, ""),
])
def test_each_unsigned_refusal_carries_its_code_and_meaning(canned, node, code, maybe_done,
                                                            setting):
    kiosk = canned({"alipay_trade_query_response": node})
    with pytest.raises(ProviderRefused) as refused:
        kiosk.query("CANNED-1")
    e = refused.value
    assert (e.code, e.maybe_done, e.setting) == (code, maybe_done, setting)
    assert node["code"] in str(e) and "unsigned" in str(e)


def test_the_gateways_error_response_is_a_refusal_too(canned):
    kiosk = canned({"error_response": {"code": "40002", "msg": "Invalid Arguments",
                                       "sub_code": "isv.invalid-app-id",
                                       "sub_msg": "无效的AppID参数"}, "sign": ""})
    with pytest.raises(ProviderRefused) as refused:
        kiosk.create(order("CANNED-2"))
    assert (refused.value.code, refused.value.setting) == ("isv.invalid-app-id",
                                                           "payment.options.app_id")


def test_an_unsigned_or_forged_success_is_still_not_believed(canned):
    paid = {"code": "10000", "msg": "Success", "out_trade_no": "CANNED-3",
            "trade_status": "TRADE_SUCCESS", "total_amount": "62.13", "trade_no": "X"}
    with pytest.raises(PaymentError, match="not believed") as unsigned:
        canned({"alipay_trade_query_response": paid}).query("CANNED-3")
    assert not isinstance(unsigned.value, ProviderRefused) and unsigned.value.maybe_done
    with pytest.raises(PaymentError, match="signature verification") as forged:
        canned({"alipay_trade_query_response": paid, "sign": "AAAA"}).query("CANNED-3")
    assert not isinstance(forged.value, ProviderRefused)
    assert forged.value.setting == "payment.options.alipay_public_key_file"
    # A forged refusal is not a refusal either: a signature that fails is never believed.
    with pytest.raises(PaymentError, match="signature verification") as forged_refusal:
        canned({"alipay_trade_query_response": {"code": "40004", "msg": "Business Failed",
                                                "sub_code": "ACQ.TRADE_NOT_EXIST"},
                "sign": "AAAA"}).query("CANNED-3")
    assert not isinstance(forged_refusal.value, ProviderRefused)
