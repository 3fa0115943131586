"""Payment codes (付款码, issue 18) charged through WeChat Pay and Alipay, against the twins.

Over real HTTP on 127.0.0.1 against ``kiosk sim pay``, for each platform: the adapters'
``charge_code``/``reverse``/``query`` for every outcome the platforms return (paid at once,
a password then paid or declined or never answered, insufficient funds, an expired code, a
reused code, a lost reply, a reverse refused while the shopper is mid-password); the
official SDKs (``wechatpayv3``, python-alipay-sdk) as judges: they call the twins and
verify the twins' replies, and they verify the kiosk's own signed requests; and
``PaymentDesk.charge_code`` end to end, checking that the code never reaches the database
file, the payment notes, the outbox or the log.

Every code is issued by the simulator's wallets (``Provider.wallets.issue``: the wallet's
prefix and length, its scripted behaviour), the one model every protocol charges through; the
wallets' clock is stepped by the tests: a code's minute and the shopper's password delay pass
without sleeping.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs, parse_qsl

import pytest
import requests
from alipay import AliPay
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3 import utils as sdk_utils

from app import bootstrap
from app.domain.payment import PaymentError, PaymentState, ProviderStatus
from app.domain.payment_code import ALIPAY, WECHAT, PaymentCode
from app.services.payment_port import CodeCharge
from devices.payment.alipay import AlipayAdapter
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
from devices.payment.wechatpay import WeChatPayAdapter, scrub
from devices.sim.payorders import CODE_LIFETIME_S
from devices.sim.payprotocols import ALIPAY_APP_ID, APPID, MCHID, MERCHANT_SERIAL, PUBLIC_KEY_ID
from devices.sim.payprovider import PayServer
from tests.unit.factories import paid_sale

PLATFORMS = ("wechatpay", "alipay")


@pytest.fixture(scope="module")
def sim():
    server = PayServer(0).start()
    yield server
    server.stop()


class SimClock:
    """The simulator's wallets' clock, stepped by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def simclock(sim):
    c = SimClock()
    sim.provider.wallets.clock = c
    yield c
    sim.provider.wallets.clock = time.monotonic


def adapter(sim, platform):
    if platform == "wechatpay":
        return WeChatPayAdapter.from_options(sim.keys.wechat_options, "lane-01")
    return AlipayAdapter.from_options(sim.keys.alipay_options, "lane-01")


def new_code(sim, platform: str, then: str = "approve", *,
             lose_reply: bool = False) -> PaymentCode:
    """A fresh code the platform's wallet in the simulator issues (its published prefix and
    length), charged as ``then`` says (payorders.Behaviour: approve, password:N, decline:N,
    never, insufficient); ``lose_reply``: its charge's reply is dropped."""
    wallet = WECHAT if platform == "wechatpay" else ALIPAY
    issued = sim.provider.wallets.issue(wallet, then, lose_reply=lose_reply)
    return PaymentCode(issued.code, wallet)


def charge(no, code, amount=1234):
    return CodeCharge(no, amount, "CNY", "Scan & Go", code)


def no(prefix):
    return f"{prefix}{secrets.token_hex(6)}"


# --- each outcome, adapter against the twin ----------------------------------------------------
@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_code_that_pays_at_once_is_paid_and_charged_once(sim, simclock, platform):
    a, code, n = adapter(sim, platform), new_code(sim, platform), no("PAID")
    view = a.charge_code(charge(n, code))
    assert view.status is ProviderStatus.PAID and view.paid_minor == 1234 and view.provider_ref
    assert a.query(n).status is ProviderStatus.PAID
    assert sim.provider.charges[n] == 1


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("then", ["approve", "decline"])
def test_a_password_step_is_paying_until_the_shopper_answers(sim, simclock, platform, then):
    behaviour = "password:8" if then == "approve" else "decline:8"
    a, code, n = adapter(sim, platform), new_code(sim, platform, behaviour), no("PWD")
    assert a.charge_code(charge(n, code)).status is ProviderStatus.PAYING
    simclock.now += 5
    # WeChat USERPAYING; Alipay's query of such a trade says WAIT_BUYER_PAY: open either way
    assert a.query(n).status in (ProviderStatus.PAYING, ProviderStatus.WAITING)
    simclock.now += 4
    final = a.query(n).status
    if then == "approve":
        assert final is ProviderStatus.PAID and sim.provider.charges[n] == 1
    else:  # WeChat PAYERROR; Alipay closes the trade
        assert final in (ProviderStatus.DECLINED, ProviderStatus.CLOSED)
        assert n not in sim.provider.charges


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_reverse_is_refused_mid_password_and_succeeds_once_the_charge_ends(
        sim, simclock, platform):
    a, code, n = adapter(sim, platform), new_code(sim, platform, "password:20"), no("REV")
    assert a.charge_code(charge(n, code)).status is ProviderStatus.PAYING
    with pytest.raises(PaymentError) as refused:
        a.reverse(n)  # WeChat USERPAYING; Alipay retry_flag Y: ask again
    assert refused.value.maybe_done
    simclock.now += 21  # the shopper approved meanwhile: the reverse now refunds it
    said = a.reverse(n)
    after = a.query(n)
    if platform == "alipay":
        assert said is not None and said.status is ProviderStatus.REFUNDED
    assert after.status in (ProviderStatus.REFUNDED, ProviderStatus.CLOSED)
    assert sim.provider.orders[n].status == "refunded"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_password_never_answered_is_withdrawn_and_the_next_reverse_closes_it(
        sim, simclock, platform):
    a, code, n = adapter(sim, platform), new_code(sim, platform, "never"), no("NEVER")
    assert a.charge_code(charge(n, code)).status is ProviderStatus.PAYING
    simclock.now += 30
    with pytest.raises(PaymentError):
        a.reverse(n)  # still at the prompt: refused, and the wallet withdraws the prompt
    simclock.now += 60
    said = a.reverse(n)
    assert said is None or said.status is ProviderStatus.CLOSED
    assert a.query(n).status is ProviderStatus.CLOSED  # WeChat REVOKED, Alipay TRADE_CLOSED
    assert sim.provider.orders[n].status == "closed" and n not in sim.provider.charges


@pytest.mark.parametrize("platform", PLATFORMS)
def test_insufficient_funds_is_a_decline_with_its_reason(sim, simclock, platform):
    a, code, n = adapter(sim, platform), new_code(sim, platform, "insufficient"), no("POOR")
    view = a.charge_code(charge(n, code, amount=1234))
    assert view.status is ProviderStatus.DECLINED and view.decline == "insufficient_funds"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_expired_code_is_declined(sim, simclock, platform):
    a, code, n = adapter(sim, platform), new_code(sim, platform), no("OLD")
    simclock.now += CODE_LIFETIME_S + 1  # the phone showed it over a minute ago
    view = a.charge_code(charge(n, code))
    # Alipay answers one sub_code for any code it cannot use: the kiosk cannot say "expired"
    assert view.status is ProviderStatus.DECLINED
    assert view.decline == ("code_expired" if platform == "wechatpay" else "code_invalid")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_code_pays_once_a_second_use_is_declined(sim, simclock, platform):
    a, code = adapter(sim, platform), new_code(sim, platform)
    first, second = no("ONCE"), no("TWICE")
    assert a.charge_code(charge(first, code)).status is ProviderStatus.PAID
    view = a.charge_code(charge(second, code))
    assert view.status is ProviderStatus.DECLINED
    assert view.decline == ("code_used" if platform == "wechatpay" else "code_invalid")
    assert second not in sim.provider.charges


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_lost_reply_is_unknown_and_a_query_finds_the_charge(sim, simclock, platform):
    a, n = adapter(sim, platform), no("LOST")
    code = new_code(sim, platform, lose_reply=True)
    with pytest.raises(PaymentError) as lost:
        a.charge_code(charge(n, code))
    assert lost.value.maybe_done
    assert a.query(n).status is ProviderStatus.PAID and sim.provider.charges[n] == 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_out_trade_no_is_charged_once_even_with_another_code(sim, simclock, platform):
    a, n = adapter(sim, platform), no("DUP")
    assert a.charge_code(charge(n, new_code(sim, platform))).status is ProviderStatus.PAID
    # Sent again (which the desk never does): not a second charge; the answer is what the
    # first charge became (WeChat OUT_TRADE_NO_USED, Alipay ACQ.TRADE_HAS_SUCCESS: a query).
    again = a.charge_code(charge(n, new_code(sim, platform)))
    assert again.status is ProviderStatus.PAID
    assert sim.provider.charges[n] == 1 and sim.provider.orders[n].charge_calls == 2


# --- one model: the gateway contract and the platforms' twins share the wallets -------------
@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_code_used_on_one_protocol_is_used_on_every_other(sim, simclock, platform):
    gateway = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=5.0)
    a = adapter(sim, platform)
    first = new_code(sim, platform)
    assert a.charge_code(charge(no("WIRE"), first)).status is ProviderStatus.PAID
    again = gateway.charge_code(charge(no("GATE"), first))
    assert (again.status, again.decline) == (ProviderStatus.DECLINED, "code_used")
    second = new_code(sim, platform)
    assert gateway.charge_code(charge(no("GATE"), second)).status is ProviderStatus.PAID
    assert a.charge_code(charge(no("WIRE"), second)).status is ProviderStatus.DECLINED
    assert sim.provider.wallets.codes[second.reveal()].used_by.startswith("GATE")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_charge_made_on_a_twin_is_reversed_by_the_gateway_by_the_same_rules(
        sim, simclock, platform):
    gateway = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=5.0)
    a, n = adapter(sim, platform), no("MIXED")
    assert a.charge_code(charge(n, new_code(sim, platform, "password:20"))).status \
        is ProviderStatus.PAYING
    with pytest.raises(PaymentError) as mid_password:
        gateway.reverse(n)  # 409 USERPAYING: the prompt is withdrawn, ask again
    assert mid_password.value.maybe_done
    said = a.reverse(n)  # the platform's own reverse: the withdrawn prompt closes
    assert said is None or said.status is ProviderStatus.CLOSED
    assert a.query(n).status is ProviderStatus.CLOSED and sim.provider.orders[n].reverses == 2
    assert n not in sim.provider.charges


def test_a_wechat_system_error_is_unknown_and_its_message_loses_the_code(sim, simclock):
    a, code, n = adapter(sim, "wechatpay"), new_code(sim, "wechatpay"), no("SYS")
    requests.post(f"{sim.url}/sim/wechat/fail", json={
        "status": 500, "code": "SYSTEMERROR", "count": 1,
        "message": f"系统错误 auth_code={code.reveal()}"}, timeout=5).raise_for_status()
    with pytest.raises(PaymentError) as unknown:
        a.charge_code(charge(n, code))
    assert unknown.value.maybe_done and code.reveal() not in str(unknown.value)
    assert "[digits]" in str(unknown.value)


def test_an_alipay_20000_or_system_error_is_unknown_and_loses_the_code(sim, simclock):
    code = new_code(sim, "alipay")
    replies = [{"alipay_trade_pay_response": {
        "code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error",
        "sub_msg": f"系统繁忙 {code.reveal()}"}}]

    class Canned(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps(replies[0], ensure_ascii=False).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        a = AlipayAdapter.from_options(sim.keys.alipay_options | {
            "base_url": f"http://127.0.0.1:{server.server_address[1]}/gateway.do"}, "lane-01")
        with pytest.raises(PaymentError) as unknown:
            a.charge_code(charge(no("BUSY"), code))
        assert unknown.value.maybe_done and code.reveal() not in str(unknown.value)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_another_wallets_code_is_refused_by_the_platform(sim, simclock, platform):
    a, n = adapter(sim, platform), no("ALIEN")
    other = new_code(sim, "alipay" if platform == "wechatpay" else "wechatpay")
    view = a.charge_code(charge(n, other))
    assert view.status is ProviderStatus.DECLINED and view.decline == "code_invalid"


def test_a_provider_message_quoting_digits_is_scrubbed():
    assert scrub("付款码 134567890123456789 无效, order L01abc") == \
        "付款码 [digits] 无效, order L01abc"


# --- the SDKs as judges -----------------------------------------------------------------------
def wechat_sdk(sim) -> WeChatPay:
    o = sim.keys.wechat_options
    client = WeChatPay(wechatpay_type=WeChatPayType.CODEPAY, mchid=MCHID,
                       private_key=Path(o["private_key_file"]).read_text(),
                       cert_serial_no=MERCHANT_SERIAL, appid=APPID,
                       apiv3_key=sim.keys.apiv3_key.decode(), notify_url="https://k.invalid/n",
                       public_key=Path(o["public_key_file"]).read_text(),
                       public_key_id=PUBLIC_KEY_ID, timeout=(3, 10))
    client._core._gate_way = sim.url  # the SDK's only handle on the host it calls
    return client


def alipay_sdk(sim) -> AliPay:
    o = sim.keys.alipay_options
    client = AliPay(appid=ALIPAY_APP_ID,
                    app_private_key_string=Path(o["app_private_key_file"]).read_text(),
                    alipay_public_key_string=Path(o["alipay_public_key_file"]).read_text())
    client._gateway = o["base_url"]
    return client


def test_the_wechat_sdk_charges_a_code_and_reverses_with_verified_replies(sim, simclock):
    client, code, n = wechat_sdk(sim), new_code(sim, "wechatpay", "decline:5"), no("SDKWX")
    status, body = client.pay(description="Scan & Go", out_trade_no=n,
                              amount={"total": 620, "currency": "CNY"},
                              payer={"auth_code": code.reveal()},
                              scene_info={"store_info": {"out_id": "store-1"}},
                              pay_type=WeChatPayType.CODEPAY)  # the SDK verifies any 2xx
    assert status == 200 and json.loads(body)["trade_state"] == "USERPAYING"
    status, body = client.codepay_reverse(out_trade_no=n)
    assert status == 403 and json.loads(body)["code"] == "USERPAYING"
    simclock.now += 6
    status, body = client.query(out_trade_no=n)
    assert json.loads(body)["trade_state"] == "PAYERROR"
    status, _ = client.codepay_reverse(out_trade_no=n)
    assert status == 200
    assert json.loads(client.query(out_trade_no=n)[1])["trade_state"] == "REVOKED"
    # What WeChat refuses: no scene_info.store_info.out_id, no auth_code.
    status, body = client.pay(description="x", out_trade_no=no("SDKWX"),
                              amount={"total": 1, "currency": "CNY"},
                              payer={"auth_code": new_code(sim, "wechatpay").reveal()},
                              pay_type=WeChatPayType.CODEPAY)
    assert status == 400 and "out_id" in json.loads(body)["message"]


def test_the_wechat_sdk_rebuilds_the_kiosks_codepay_and_reverse_signatures(sim, simclock):
    client, kiosk, n = wechat_sdk(sim), adapter(sim, "wechatpay"), no("WXJ")
    sim.keys.wechat.requests.clear()
    kiosk.charge_code(charge(n, new_code(sim, "wechatpay")))
    kiosk.reverse(n)
    sent = list(sim.keys.wechat.requests)
    assert [r["path"] for r in sent] == ["/v3/pay/transactions/codepay",
                                         f"/v3/pay/transactions/out-trade-no/{n}/reverse"]
    body = json.loads(sent[0]["body"])
    assert body["payer"]["auth_code"] and body["scene_info"]["store_info"]["out_id"]
    for r in sent:
        auth = r["headers"]["Authorization"]
        fields = dict(part.split("=", 1) for part in auth.split(" ", 1)[1].split(","))
        fields = {k: v.strip('"') for k, v in fields.items()}
        with mock.patch.object(sdk_utils.time, "time", return_value=int(fields["timestamp"])):
            rebuilt = sdk_utils.build_authorization(
                r["path"], r["method"], MCHID, MERCHANT_SERIAL, client._core._private_key,
                data=r["body"], nonce_str=fields["nonce_str"])
        assert rebuilt == auth


def test_the_alipay_sdk_pays_by_code_and_cancels_with_verified_replies(sim, simclock):
    client, code, n = alipay_sdk(sim), new_code(sim, "alipay", "password:5"), no("SDKALI")
    paying = client.api_alipay_trade_pay(n, "bar_code", code.reveal(), "Scan & Go",
                                         total_amount="6.20")
    assert paying["code"] == "10003"
    assert client.api_alipay_trade_cancel(out_trade_no=n)["retry_flag"] == "Y"
    simclock.now += 6
    assert client.api_alipay_trade_query(out_trade_no=n)["trade_status"] == "TRADE_SUCCESS"
    cancelled = client.api_alipay_trade_cancel(out_trade_no=n)
    assert cancelled["retry_flag"] == "N" and cancelled["action"] == "refund"
    reused = client.api_alipay_trade_pay(no("SDKALI"), "bar_code", code.reveal(), "x",
                                         total_amount="1.00")
    assert reused["code"] == "40004" and reused["sub_code"] == "ACQ.PAYMENT_AUTH_CODE_INVALID"
    paid = client.api_alipay_trade_pay(no("SDKALI"), "bar_code", new_code(sim, "alipay").reveal(),
                                       "x", total_amount="1.00")
    assert paid["code"] == "10000" and paid["trade_no"] and paid["total_amount"] == "1.00"


def test_the_alipay_sdk_signs_the_kiosks_pay_and_cancel_as_sent(sim, simclock):
    kiosk, n = adapter(sim, "alipay"), no("ALJ")
    sent: list[str] = []
    kiosk.http.hooks["response"].append(lambda r, *a, **k: sent.append(r.request.body))
    kiosk.charge_code(charge(n, new_code(sim, "alipay")))
    kiosk.reverse(n)
    judge = alipay_sdk(sim)
    methods = []
    for body in sent:
        params = dict(parse_qsl(body, keep_blank_values=True, strict_parsing=True))
        given = params.pop("sign")
        methods.append(params["method"])
        assert parse_qs(judge.sign_data(dict(params)))["sign"] == [given]
    biz = json.loads(dict(parse_qsl(sent[0]))["biz_content"])
    assert biz["scene"] == "bar_code" and biz["total_amount"] == "12.34"
    assert methods == ["alipay.trade.pay", "alipay.trade.cancel"]


# --- PaymentDesk.charge_code end to end --------------------------------------------------------
def _no_code_anywhere(kiosk, digits: str, caplog) -> None:
    folder = Path(kiosk.settings.data_dir)
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert any(path.suffix in (".db", ".sqlite", ".sqlite3") or "-wal" in path.name
               for path in files), files  # the database file (and its WAL) are read
    for path in files:
        assert digits.encode() not in path.read_bytes(), path
    for table in ("payment_steps", "outbox", "payments"):
        rows = list(kiosk.db.query(f"SELECT * FROM {table}"))  # noqa: S608 - fixed names
        assert digits not in json.dumps(rows, default=str, ensure_ascii=False), table
    assert digits not in caplog.text


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("rule", ["approve", "password_approve", "password_never",
                                  "insufficient", "lost"])
def test_the_desk_ends_paid_or_reversed_never_waiting_and_never_keeps_the_code(
        sim, simclock, kiosk, caplog, platform, rule):
    caplog.set_level(logging.DEBUG)
    desk = bootstrap.build_payment_desk(kiosk, adapter(sim, platform))
    then = {"approve": "approve", "password_approve": "password:5",
            "password_never": "never", "insufficient": "insufficient", "lost": "approve"}[rule]
    code = new_code(sim, platform, then, lose_reply=rule == "lost")
    digits = code.reveal()
    p = desk.charge_code(f"cart-{rule}-{platform}", paid_sale(), "Scan & Go", code)
    n = p.out_trade_no
    if rule == "approve":
        assert p.state is PaymentState.PAID
    elif rule == "insufficient":
        assert p.state is PaymentState.FAILED and p.decline == "insufficient_funds"
    else:
        assert p.open  # the lane polls, "confirm on your phone"
        simclock.now += 6
        p = desk.poll(n)
        if rule in ("password_approve", "lost"):
            assert p.state is PaymentState.PAID
        else:
            assert p.open
            p = desk.cancel(n)  # the deadline (or Cancel): reverse is refused mid-password
            assert p.open and sim.provider.orders[n].reverses == 1
            simclock.now += 60  # the prompt was withdrawn; the next try (expire_due) closes it
            p = desk.expire_due()[0]
            assert not p.open and p.state is not PaymentState.PAID
            assert sim.provider.orders[n].status == "closed"  # WeChat REVOKED
    assert sim.provider.charges.get(n, 0) == (1 if p.state is PaymentState.PAID else 0)
    assert sim.provider.orders[n].charge_calls == 1  # the code was sent once
    _no_code_anywhere(kiosk, digits, caplog)
