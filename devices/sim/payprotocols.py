"""WeChat Pay v3 and Alipay wire formats for the payment simulator.

Enough of each protocol to run the real adapters against it: the simulator
generates its own test keys (the merchant's and the provider's), checks
every request's signature as the provider would, and signs its replies and
notifications with the provider's key. ``SimKeys.create`` writes the files
the kiosk needs, plus ``wechatpay.toml`` and ``alipay.toml`` with the
``[payment]`` settings that point an adapter at this simulator.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlparse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devices.payment.alipay import sign_params, yuan
from devices.payment.wechatpay import rsa_sign, rsa_verify
from devices.sim.payorders import Order, Provider, expiry, misbehave

MCHID, APPID, MERCHANT_SERIAL, PLATFORM_SERIAL = "1900000109", "wxsim0000000001", "SIMMERCH01", \
    "SIMPLATFORM01"
ALIPAY_APP_ID = "2021000000000001"
WECHAT_STATES = {"waiting": "NOTPAY", "paid": "SUCCESS", "closed": "CLOSED",
                 "declined": "PAYERROR", "refunded": "REFUND"}
ALIPAY_STATES = {"waiting": "WAIT_BUYER_PAY", "paid": "TRADE_SUCCESS", "closed": "TRADE_CLOSED",
                 "declined": "TRADE_CLOSED", "refunded": "TRADE_CLOSED"}


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_public(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class SimKeys:
    merchant: rsa.RSAPrivateKey  # the kiosk signs WeChat requests with this
    platform: rsa.RSAPrivateKey  # the simulated WeChat Pay signs with this
    apiv3_key: bytes
    alipay_app: rsa.RSAPrivateKey  # the kiosk signs Alipay requests with this
    alipay: rsa.RSAPrivateKey  # the simulated Alipay signs with this
    wechat_options: dict[str, Any]
    alipay_options: dict[str, Any]
    folder: Path  # where write() puts the files the options name

    @classmethod
    def create(cls, folder: Path, url: str) -> SimKeys:
        """New keys for a simulator at ``url``, written into ``folder`` (which must exist)."""
        keys = cls.generate(folder, url)
        keys.write()
        return keys

    @classmethod
    def generate(cls, folder: Path, url: str) -> SimKeys:
        """New keys in memory (~0.3 s: four 2048-bit RSA keys); the options name files in
        ``folder`` that exist only once ``write()`` has run."""
        def new() -> rsa.RSAPrivateKey:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)

        merchant, platform, app, alipay = new(), new(), new(), new()
        apiv3 = secrets.token_hex(16).encode()  # 32 ASCII bytes, as WeChat Pay issues them
        wechat = {"mchid": MCHID, "appid": APPID, "serial_no": MERCHANT_SERIAL,
                  "private_key_file": str(folder / "wechat-merchant-private.pem"),
                  "platform_public_key_file": str(folder / "wechat-platform-public.pem"),
                  "platform_serial": PLATFORM_SERIAL,
                  "apiv3_key_file": str(folder / "wechat-apiv3.key"), "base_url": url}
        ali = {"app_id": ALIPAY_APP_ID,
               "app_private_key_file": str(folder / "alipay-app-private.pem"),
               "alipay_public_key_file": str(folder / "alipay-public.pem"),
               "base_url": url + "/gateway.do"}
        return cls(merchant, platform, apiv3, app, alipay, wechat, ali, folder)

    def write(self) -> None:
        """Write the kiosk's key files, ``wechatpay.toml`` and ``alipay.toml`` into ``folder``.

        Raises OSError if the folder is missing or not writable.
        """
        files = {
            "wechat-merchant-private.pem": _pem_private(self.merchant),
            "wechat-platform-public.pem": _pem_public(self.platform.public_key()),
            "wechat-apiv3.key": self.apiv3_key,
            "alipay-app-private.pem": _pem_private(self.alipay_app),
            "alipay-public.pem": _pem_public(self.alipay.public_key()),
        }
        for name, data in files.items():
            (self.folder / name).write_bytes(data)
        for name, options in (("wechatpay", self.wechat_options),
                              ("alipay", self.alipay_options)):
            inline = ", ".join(f'{k} = "{v}"' for k, v in options.items())
            (self.folder / f"{name}.toml").write_text(
                f'[payment]\nadapter = "{name}"\noptions = {{ {inline} }}\n', encoding="utf-8")


class WireHandler(Protocol):
    """What the wire formats need of the simulator's HTTP request handler.

    ``devices.sim.payprovider.Handler`` is one; naming it here as a Protocol
    keeps this module from importing the server that routes requests to it.
    """

    headers: Message
    wfile: io.BufferedIOBase

    @property
    def provider(self) -> Provider: ...

    @property
    def keys(self) -> SimKeys: ...

    def send_response(self, code: int, message: str | None = None) -> None: ...

    def send_header(self, keyword: str, value: str) -> None: ...

    def end_headers(self) -> None: ...


# --- WeChat Pay v3 ----------------------------------------------------------------------------
def _wechat_reply(h: WireHandler, status: int, data: dict[str, Any] | None,
                  order: Order | None = None) -> None:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() \
        if data is not None else b""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    signature = rsa_sign(h.keys.platform,
                         f"{timestamp}\n{nonce}\n".encode() + body + b"\n")
    if order is not None and order.script.outcome == "bad_signature":
        signature = base64.b64encode(b"\0" * 256).decode()
    h.send_response(status)
    for name, value in (("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))), ("Wechatpay-Timestamp", timestamp),
                        ("Wechatpay-Nonce", nonce), ("Wechatpay-Signature", signature),
                        ("Wechatpay-Serial", PLATFORM_SERIAL)):
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(body)


def _wechat_authorised(h: WireHandler, method: str, url_path: str, body: bytes) -> bool:
    auth = h.headers.get("Authorization", "")
    if not auth.startswith("WECHATPAY2-SHA256-RSA2048 "):
        return False
    fields = dict(part.split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    fields = {k: v.strip('"') for k, v in fields.items()}
    if fields.get("mchid") != MCHID or fields.get("serial_no") != MERCHANT_SERIAL:
        return False
    timestamp = fields.get("timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        return False
    message = f"{method}\n{url_path}\n{timestamp}\n{fields.get('nonce_str', '')}\n".encode() \
        + body + b"\n"
    return rsa_verify(h.keys.merchant.public_key(), message,
                      fields.get("signature", ""))


def _wechat_transaction(order: Order) -> dict[str, Any]:
    data: dict[str, Any] = {"appid": APPID, "mchid": MCHID, "out_trade_no": order.out_trade_no,
                            "trade_state": WECHAT_STATES[order.status],
                            "amount": {"total": order.amount_minor, "currency": "CNY"}}
    if order.status in ("paid", "refunded"):
        data["transaction_id"] = order.provider_ref
        # What the provider took: differs from the order's amount only under the
        # simulator's wrong_amount script.
        data["amount"]["total"] = order.paid_minor
        data["amount"]["payer_total"] = order.paid_minor
    return data


def wechat(h: WireHandler, method: str, url_path: str, body: bytes) -> None:
    p = h.provider
    if not _wechat_authorised(h, method, url_path, body):
        return _wechat_reply(h, 401, {"code": "SIGN_ERROR", "message": "bad signature"})
    path = urlparse(url_path).path
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        return _wechat_reply(h, 400, {"code": "PARAM_ERROR", "message": "not JSON"})
    if method == "POST" and path == "/v3/pay/transactions/native":
        no = str(payload.get("out_trade_no", ""))
        total = int((payload.get("amount") or {}).get("total", 0))
        if not no or total <= 0:
            return _wechat_reply(h, 400, {"code": "PARAM_ERROR", "message": "bad order"})
        order = p.create(no, total, "CNY", str(payload.get("description", "")),
                         expiry(payload.get("time_expire")))
        if misbehave(order):
            return None
        return _wechat_reply(h, 200, {"code_url": f"weixin://wxpay/bizpayurl?pr=SIM{no}"}, order)
    if path == "/v3/refund/domestic/refunds":
        order = p.orders.get(str(payload.get("out_trade_no", "")))
        if order is None:
            return _wechat_reply(h, 404, {"code": "RESOURCE_NOT_EXISTS"})
        try:
            r = p.refund(order, str(payload.get("out_refund_no", "")),
                         int((payload.get("amount") or {}).get("refund", 0)))
        except ValueError as exc:
            return _wechat_reply(h, 400, {"code": "INVALID_REQUEST", "message": str(exc)})
        return _wechat_reply(h, 200, {"refund_id": r["refund_id"], "status": "SUCCESS"})
    parts = [x for x in path.split("/") if x]
    if parts[:4] != ["v3", "pay", "transactions", "out-trade-no"] or len(parts) < 5:
        return _wechat_reply(h, 404, {"code": "NOT_FOUND"})
    order = p.orders.get(parts[4])
    if order is None:
        return _wechat_reply(h, 404, {"code": "ORDER_NOT_EXIST", "message": "no such order"})
    if misbehave(order):
        return None
    with p.lock:
        p.advance(order)
        if method == "GET":
            order.queries += 1
            return _wechat_reply(h, 200, _wechat_transaction(order), order)
        if len(parts) == 6 and parts[5] == "close":
            p.close(order)
            if order.status == "paid":
                return _wechat_reply(h, 400, {"code": "ORDERPAID", "message": "order paid"})
            return _wechat_reply(h, 204, None, order)
    return _wechat_reply(h, 404, {"code": "NOT_FOUND"})


def wechat_notification(keys: SimKeys, order: Order) -> tuple[dict[str, str], bytes]:
    plain = json.dumps(_wechat_transaction(order), separators=(",", ":")).encode()
    nonce = secrets.token_hex(6)
    ciphertext = AESGCM(keys.apiv3_key).encrypt(nonce.encode(), plain, b"transaction")
    body = json.dumps({
        "id": str(uuid.uuid4()), "create_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
        "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
        "summary": "支付成功", "resource": {
            "algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": "transaction", "original_type": "transaction", "nonce": nonce}},
        separators=(",", ":"), ensure_ascii=False).encode()
    timestamp, wnonce = str(int(time.time())), secrets.token_hex(16)
    signature = rsa_sign(keys.platform, f"{timestamp}\n{wnonce}\n".encode() + body + b"\n")
    return ({"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": wnonce,
             "Wechatpay-Signature": signature, "Wechatpay-Serial": PLATFORM_SERIAL}, body)


# --- Alipay -----------------------------------------------------------------------------------
def _alipay_reply(h: WireHandler, method: str, node: dict[str, Any], order: Order | None) -> None:
    key = method.replace(".", "_") + "_response"
    node_text = json.dumps(node, separators=(",", ":"), ensure_ascii=False)
    signature = rsa_sign(h.keys.alipay, node_text.encode())
    if order is not None and order.script.outcome == "bad_signature":
        signature = base64.b64encode(b"\0" * 256).decode()
    body = f'{{"{key}":{node_text},"sign":"{signature}"}}'.encode()
    h.send_response(200)
    h.send_header("Content-Type", "application/json; charset=utf-8")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def alipay(h: WireHandler, body: bytes) -> None:
    p = h.provider
    params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    method = params.get("method", "")
    given = params.pop("sign", "")
    if params.get("app_id") != ALIPAY_APP_ID or not rsa_verify(
            h.keys.alipay_app.public_key(), sign_params(params).encode(), given):
        return _alipay_reply(h, method or "alipay.error", {
            "code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"},
            None)
    try:
        biz = json.loads(params.get("biz_content", "{}"))
    except ValueError:
        return _alipay_reply(h, method, {"code": "40002", "msg": "Invalid Arguments"}, None)
    no = str(biz.get("out_trade_no", ""))
    not_exist = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                 "sub_msg": "交易不存在"}
    if method == "alipay.trade.precreate":
        cents = round(float(biz.get("total_amount", "0")) * 100)
        order = p.create(no, cents, "CNY", str(biz.get("subject", "")),
                         expiry(biz.get("time_expire", "").replace(" ", "T") + "+08:00"
                                 if biz.get("time_expire") else None))
        if misbehave(order):
            return None
        return _alipay_reply(h, method, {"code": "10000", "msg": "Success", "out_trade_no": no,
                                         "qr_code": f"https://qr.alipay.com/SIM{no}"}, order)
    order = p.orders.get(no)
    if order is not None and misbehave(order):
        return None
    with p.lock:
        if order is not None:
            p.advance(order)
        if method == "alipay.trade.query":
            if order is not None:
                order.queries += 1
            if order is None or (not order.scanned and order.status == "waiting"):
                return _alipay_reply(h, method, not_exist, order)
            node = {"code": "10000", "msg": "Success", "out_trade_no": no,
                    "trade_status": ALIPAY_STATES[order.status],
                    "total_amount": yuan(order.paid_minor or order.amount_minor)}
            if order.status in ("paid", "refunded"):
                node |= {"trade_no": order.provider_ref,
                         "buyer_pay_amount": yuan(order.paid_minor or 0)}
            return _alipay_reply(h, method, node, order)
        if method == "alipay.trade.cancel":
            if order is None:
                return _alipay_reply(h, method, {"code": "10000", "msg": "Success",
                                                 "out_trade_no": no, "retry_flag": "N",
                                                 "action": "close"}, None)
            action = "close"
            p.close(order)
            if order.status == "paid":  # Alipay's cancel refunds a paid trade
                p.refund(order, "cancel-" + no, order.paid_minor or 0)
                action = "refund"
            return _alipay_reply(h, method, {"code": "10000", "msg": "Success",
                                             "out_trade_no": no, "retry_flag": "N",
                                             "action": action}, order)
        if method == "alipay.trade.refund":
            if order is None:
                return _alipay_reply(h, method, not_exist, None)
            try:
                cents = round(float(biz.get("refund_amount", "0")) * 100)
                p.refund(order, str(biz.get("out_request_no", "")), cents)
            except ValueError as exc:
                return _alipay_reply(h, method, {"code": "40004", "msg": "Business Failed",
                                                 "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                                                 "sub_msg": str(exc)}, order)
            return _alipay_reply(h, method, {"code": "10000", "msg": "Success",
                                             "out_trade_no": no, "trade_no": order.provider_ref,
                                             "fund_change": "Y", "refund_fee": yuan(cents)},
                                 order)
    return _alipay_reply(h, method or "alipay.error", {"code": "40004", "msg": "unknown method"},
                         None)


def alipay_notification(keys: SimKeys, order: Order,
                        moment: str = "now") -> tuple[dict[str, str], bytes]:
    """The signed ``trade_status_sync`` notification Alipay sends about ``order``.

    ``moment``: "now" describes the order as it is; "paid" is the TRADE_SUCCESS
    notification of the moment the shopper paid, which Alipay keeps retrying (for
    about 25 hours, until the merchant answers ``success``) even after a cancel has
    refunded the trade (Alipay open API: 异步通知, alipay.trade.cancel). Raises
    ValueError for "paid" if the order was never paid, and for any other moment.
    """
    if moment == "paid":
        if not order.provider_ref:
            raise ValueError(f"order {order.out_trade_no} was never paid")
        status = "TRADE_SUCCESS"
    elif moment == "now":
        status = ALIPAY_STATES[order.status]
    else:
        raise ValueError(f"moment must be 'now' or 'paid', not {moment!r}")
    params = {"notify_id": uuid.uuid4().hex, "notify_time": time.strftime("%Y-%m-%d %H:%M:%S"),
              "notify_type": "trade_status_sync", "app_id": ALIPAY_APP_ID, "charset": "utf-8",
              "version": "1.0", "out_trade_no": order.out_trade_no,
              "trade_status": status,
              "total_amount": yuan(order.amount_minor), "trade_no": order.provider_ref,
              "buyer_pay_amount": yuan(order.paid_minor or 0)}
    params["sign"] = rsa_sign(keys.alipay, sign_params(params).encode())
    params["sign_type"] = "RSA2"
    return ({"Content-Type": "application/x-www-form-urlencoded"}, urlencode(params).encode())
