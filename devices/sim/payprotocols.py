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
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
# As the Alipay open platform gateway behaves (https://opendocs.alipay.com/common/02km9f, the
# public error codes; https://opendocs.alipay.com/open/02ekfg, alipay.trade.precreate):
# the gateway's own refusals (20000, 20001, 40001, 40002) come back *unsigned*: it stopped
# before knowing the request was the app's (python-alipay-sdk reads a reply without ``sign``
# as an error with its code); business answers (10000, 40004 ACQ.*) are signed.
ALIPAY_METHODS = ("alipay.trade.precreate", "alipay.trade.query", "alipay.trade.cancel",
                  "alipay.trade.refund")
ALIPAY_MSG = {"10000": "Success", "20000": "Service Currently Unavailable",
              "20001": "Insufficient Token Permissions", "40001": "Missing Required Arguments",
              "40002": "Invalid Arguments", "40004": "Business Failed"}
ALIPAY_SUB_MSG = {
    "isv.missing-method": "缺少方法名参数", "isv.missing-signature": "缺少签名参数",
    "isv.missing-signature-type": "缺少签名类型参数", "isv.missing-app-id": "缺少AppID参数",
    "isv.missing-timestamp": "缺少时间戳参数", "isv.missing-version": "缺少版本参数",
    "isv.invalid-method": "不存在的方法名", "isv.invalid-format": "无效的数据格式",
    "isv.invalid-signature-type": "无效的签名类型", "isv.invalid-signature": "无效签名",
    "isv.invalid-app-id": "无效的AppID参数", "isv.invalid-timestamp": "非法的时间戳参数",
    "ACQ.INVALID_PARAMETER": "参数无效", "ACQ.TOTAL_FEE_EXCEED": "订单金额超过限额",
    "ACQ.CONTEXT_INCONSISTENT": "交易信息被篡改", "ACQ.TRADE_NOT_EXIST": "交易不存在",
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": "退款金额超限",
}
# total_amount: "单位为元，精确到小数点后两位，取值范围为[0.01,100000000]" (alipay.trade.precreate,
# request parameters); refund_amount has the same form. Outside it: 40004 ACQ.INVALID_PARAMETER,
# above the limit ACQ.TOTAL_FEE_EXCEED (the failed reply python-alipay-sdk documents for
# api_alipay_trade_precreate).
ALIPAY_AMOUNT = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
ALIPAY_MAX_FEN = 100_000_000 * 100
BEIJING = timezone(timedelta(hours=8))  # Alipay's timestamps and notifications


def beijing(unix: float | None = None) -> str:
    """Unix seconds (default now) as Alipay writes times: Beijing time, ``%Y-%m-%d %H:%M:%S``."""
    when = datetime.now(BEIJING) if unix is None else datetime.fromtimestamp(unix, BEIJING)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def alipay_fen(text: Any) -> int | None:
    """An Alipay amount in yuan ("62.13", "7", "0.5") as fen, or None if Alipay refuses its
    form: not a plain decimal, negative, or more than two decimals ("12.345")."""
    if not isinstance(text, str) or not ALIPAY_AMOUNT.fullmatch(text):
        return None
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def _alipay_refusal(code: str, sub_code: str = "", sub_msg: str = "") -> dict[str, Any]:
    node = {"code": code, "msg": ALIPAY_MSG.get(code, "Business Failed")}
    if sub_code:
        node |= {"sub_code": sub_code, "sub_msg": sub_msg or ALIPAY_SUB_MSG.get(sub_code, "")}
    return node


def _alipay_reply(h: WireHandler, method: str, node: dict[str, Any], order: Order | None,
                  *, signed: bool = True) -> None:
    """Send ``{"<method>_response": node, "sign": ...}``; ``signed=False`` leaves ``sign``
    out, as the gateway does for its own refusals; an unknown method answers under
    ``error_response``."""
    key = method.replace(".", "_") + "_response" if method in ALIPAY_METHODS \
        else "error_response"
    node_text = json.dumps(node, separators=(",", ":"), ensure_ascii=False)
    body_text = f'{{"{key}":{node_text}'
    if signed:
        signature = rsa_sign(h.keys.alipay, node_text.encode())
        if order is not None and order.script.outcome == "bad_signature":
            signature = base64.b64encode(b"\0" * 256).decode()
        body_text += f',"sign":"{signature}"'
    body = (body_text + "}").encode()
    h.send_response(200)  # the gateway answers 200 whatever the code
    h.send_header("Content-Type", "application/json;charset=utf-8")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _alipay_gateway_refusal(params: dict[str, str]) -> tuple[str, str] | None:
    """What the gateway refuses before any business (code, sub_code), or None."""
    method = params.get("method", "")
    if not method:
        return "40001", "isv.missing-method"
    if method not in ALIPAY_METHODS:
        return "40002", "isv.invalid-method"
    for name, sub in (("app_id", "isv.missing-app-id"), ("sign", "isv.missing-signature"),
                      ("sign_type", "isv.missing-signature-type"),
                      ("timestamp", "isv.missing-timestamp"), ("version", "isv.missing-version")):
        if not params.get(name):
            return "40001", sub
    if params["app_id"] != ALIPAY_APP_ID:
        return "40002", "isv.invalid-app-id"
    if params["sign_type"] != "RSA2":  # the simulator's app has an RSA2 key only
        return "40002", "isv.invalid-signature-type"
    if params.get("format", "JSON").upper() != "JSON":
        return "40002", "isv.invalid-format"
    try:  # its form only: Alipay documents no clock window for requests
        datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "40002", "isv.invalid-timestamp"
    return None


def alipay(h: WireHandler, query: str, body: bytes) -> None:
    """One call to ``/gateway.do``: its parameters in the URL ``query`` (python-alipay-sdk
    sends every call as a GET so), in a form ``body`` (the kiosk's POST), or both (the
    official SDKs' POST: common parameters in the URL, ``biz_content`` in the body)."""
    p = h.provider
    params = dict(parse_qsl(query, keep_blank_values=True))
    params |= dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    method = params.get("method", "")
    refusal = _alipay_gateway_refusal(params)
    given = params.pop("sign", "")
    if refusal is None and not rsa_verify(h.keys.alipay_app.public_key(),
                                          sign_params(params).encode(), given):
        refusal = ("40002", "isv.invalid-signature")
    if refusal is not None:
        return _alipay_reply(h, method, _alipay_refusal(*refusal), None, signed=False)
    try:
        biz = json.loads(params.get("biz_content") or "{}")
        if not isinstance(biz, dict):
            raise ValueError(biz)
    except ValueError:
        return _alipay_reply(h, method, _alipay_refusal("40004", "ACQ.INVALID_PARAMETER",
                                                        "biz_content is not a JSON object"),
                             None)
    no = str(biz.get("out_trade_no", ""))
    not_exist = _alipay_refusal("40004", "ACQ.TRADE_NOT_EXIST")
    if method == "alipay.trade.precreate":
        cents = alipay_fen(biz.get("total_amount"))
        if not no or len(no) > 64 or not biz.get("subject") or cents is None or cents <= 0:
            return _alipay_reply(h, method, _alipay_refusal(
                "40004", "ACQ.INVALID_PARAMETER",
                "out_trade_no, subject and total_amount in [0.01,100000000] with at most "
                "two decimals are required"), None)
        if cents > ALIPAY_MAX_FEN:
            return _alipay_reply(h, method, _alipay_refusal("40004", "ACQ.TOTAL_FEE_EXCEED"),
                                 None)
        known = p.orders.get(no)
        if known is not None and known.amount_minor != cents:
            return _alipay_reply(h, method, _alipay_refusal("40004", "ACQ.CONTEXT_INCONSISTENT"),
                                 known)
        order = p.create(no, cents, "CNY", str(biz.get("subject", "")),
                         expiry(biz.get("time_expire", "").replace(" ", "T") + "+08:00"
                                 if biz.get("time_expire") else None))
        if misbehave(order):
            return None
        return _alipay_reply(h, method, {"code": "10000", "msg": "Success", "out_trade_no": no,
                                         "qr_code": f"https://qr.alipay.com/SIM{no}"}, order)
    if not no and biz.get("trade_no"):  # python-alipay-sdk may name the trade by Alipay's id
        no = next((o.out_trade_no for o in p.orders.values()
                   if o.provider_ref and o.provider_ref == biz["trade_no"]), "")
        if not no:
            return _alipay_reply(h, method, not_exist, None)
    if not no:
        return _alipay_reply(h, method, _alipay_refusal(
            "40004", "ACQ.INVALID_PARAMETER", "out_trade_no or trade_no is required"), None)
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
            if order.status == "paid":  # Alipay's cancel refunds a paid trade (what is left
                # of it after partial refunds)
                left = (order.paid_minor or 0) - sum(r["amount_minor"] for r in order.refunds)
                p.refund(order, "cancel-" + no, left)
                action = "refund"
            return _alipay_reply(h, method, {"code": "10000", "msg": "Success",
                                             "out_trade_no": no, "retry_flag": "N",
                                             "action": action}, order)
        # alipay.trade.refund
        if order is None:
            return _alipay_reply(h, method, not_exist, None)
        cents = alipay_fen(biz.get("refund_amount"))
        if cents is None or cents <= 0:
            return _alipay_reply(h, method, _alipay_refusal(
                "40004", "ACQ.INVALID_PARAMETER",
                "refund_amount in yuan with at most two decimals is required"), order)
        try:
            p.refund(order, str(biz.get("out_request_no") or no), cents)
        except ValueError as exc:
            return _alipay_reply(h, method, _alipay_refusal(
                "40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", str(exc)), order)
        return _alipay_reply(h, method, {"code": "10000", "msg": "Success",
                                         "out_trade_no": no, "trade_no": order.provider_ref,
                                         "fund_change": "Y", "refund_fee": yuan(cents)}, order)


def alipay_notification(keys: SimKeys, order: Order) -> tuple[dict[str, str], bytes]:
    """The asynchronous notification Alipay would post for ``order``: a signed form.

    Times are Beijing time (``notify_time``, ``gmt_create``, ``gmt_payment``), as Alipay
    sends them; parameters without a value are left out (python-alipay-sdk's ``verify``
    signs every parameter it is given, Alipay's own SDKs skip empty ones: both agree on a
    notification that has none)."""
    params = {"notify_id": uuid.uuid4().hex, "notify_time": beijing(),
              "notify_type": "trade_status_sync", "app_id": ALIPAY_APP_ID, "charset": "utf-8",
              "version": "1.0", "out_trade_no": order.out_trade_no,
              "trade_status": ALIPAY_STATES[order.status],
              "total_amount": yuan(order.amount_minor), "trade_no": order.provider_ref,
              "buyer_pay_amount": yuan(order.paid_minor or 0),
              "gmt_create": beijing(order.created),
              "gmt_payment": beijing(order.paid_at) if order.paid_at is not None else ""}
    params = {k: v for k, v in params.items() if v}
    params["sign"] = rsa_sign(keys.alipay, sign_params(params).encode())
    params["sign_type"] = "RSA2"
    return ({"Content-Type": "application/x-www-form-urlencoded"}, urlencode(params).encode())
