"""WeChat Pay v3 and Alipay wire formats for the payment simulator.

Enough of each protocol to run the real adapters against it: the simulator
generates its own test keys (the merchant's and the provider's), checks
every request's signature as the provider would, and signs its replies and
notifications with the provider's key. ``SimKeys.create`` writes the files
the kiosk needs, plus ``wechatpay.toml`` and ``alipay.toml`` with the
``[payment]`` settings that point an adapter at this simulator.

WeChat Pay holds two platform keys, as during a real switch-over: an (old)
platform certificate, serial ``PLATFORM_SERIAL``, and the newer "WeChat Pay
public key", id ``PUBLIC_KEY_ID``. Which one signs a reply: the one the
request's ``Wechatpay-Serial`` header names (public-key mode), else the
certificate, unless ``POST /sim/wechat/signer`` forces one (or ``unknown``: a
key the kiosk does not hold). Error replies to requests that fail
authentication, and 429/5xx replies, are unsigned, as WeChat leaves them.
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.domain.payment_code import ALIPAY, WECHAT, wallet_of
from devices.payment.alipay import sign_params, yuan
from devices.payment.wechatpay import rsa_sign, rsa_verify
from devices.sim.payorders import Order, Provider, expiry, misbehave

MCHID, APPID, MERCHANT_SERIAL = "1900000109", "wxsim0000000001", "SIMMERCH01"
# A platform certificate's serial is its serial number in upper-case hex, as WeChat sends it in
# Wechatpay-Serial (the wechatpayv3 SDK reads it with int(serial, 16)); a public key's id
# starts PUB_KEY_ID_.
PLATFORM_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F7E1A3"
PUBLIC_KEY_ID = "PUB_KEY_ID_0119000001092025010100000000SIM1"
UNKNOWN_SERIAL = "7E57000000000000000000000000000000000BAD"  # a certificate nobody holds
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
SIGNERS = ("auto", "certificate", "public_key", "unknown")
# WeChat Pay APIv3 Native: amount.total is an integer number of fen, at least 1 (native
# prepay API, "amount.total: 订单总金额，单位为分"); the wechatpayv3 SDK passes it through
# unchecked. WeChat types it int: the official wechatpay-java SDK models it as Integer, so
# 2^31 - 1 fen is the most it can carry; the ceiling of 100,000,000 yuan (Alipay's
# documented total_amount maximum) is above that, so the int limit is the one that binds.
WECHAT_MAX_TOTAL_FEN = 2**31 - 1
ALIPAY_APP_ID = "2021000000000001"
# "paying" is a payment-code charge's own: the shopper is asked for a password (WeChat
# USERPAYING; Alipay's trade waits, WAIT_BUYER_PAY). A code charge the kiosk reversed unpaid
# is "closed" in the simulator's model; WeChat says REVOKED for it ("已撤销（仅付款码支付会
# 返回）", see _wechat_transaction), Alipay TRADE_CLOSED.
WECHAT_STATES = {"waiting": "NOTPAY", "paid": "SUCCESS", "closed": "CLOSED",
                 "declined": "PAYERROR", "refunded": "REFUND", "paying": "USERPAYING"}
ALIPAY_STATES = {"waiting": "WAIT_BUYER_PAY", "paid": "TRADE_SUCCESS", "closed": "TRADE_CLOSED",
                 "declined": "TRADE_CLOSED", "refunded": "TRADE_CLOSED",
                 "paying": "WAIT_BUYER_PAY"}
# What WeChat Pay's codepay answers for a code the wallet refuses at once (status, code,
# message), by the simulator's decline reason (Order.decline, from Wallets.redeem).
WECHAT_CODE_REFUSALS = {
    "insufficient_funds": (403, "NOTENOUGH", "用户余额不足，请用户更换支付方式"),
    "code_expired": (403, "AUTHCODEEXPIRE", "付款码已过期，请用户在微信上刷新后再试"),
    "code_used": (403, "AUTH_CODE_INVALID", "每个二维码仅限使用一次，请刷新再试"),
    "code_invalid": (403, "AUTH_CODE_INVALID", "付款码无效，请用户刷新付款码后重新扫码"),
}


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_public(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def platform_certificate(key: rsa.RSAPrivateKey, serial: str = PLATFORM_SERIAL,
                         not_before: datetime | None = None,
                         not_after: datetime | None = None) -> bytes:
    """A self-signed X.509 platform certificate (PEM) for ``key``, serial ``serial`` (hex).

    Valid from a day ago for five years unless ``not_before``/``not_after`` (UTC) say
    otherwise (tests make expired and not-yet-valid ones).
    """
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME,
                                         "WeChat Pay simulator platform certificate")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(int(serial, 16))
            .not_valid_before(not_before or now - timedelta(days=1))
            .not_valid_after(not_after or now + timedelta(days=5 * 365))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class WeChatSim:
    """The simulated WeChat Pay's own switches: who signs, failures to serve, what it saw.

    ``signer``: one of ``SIGNERS``; ``failures``: replies to serve instead of the next
    requests, each ``(status, code, message)``, unsigned (WeChat's 429/5xx); ``requests``:
    the last 50 requests, ``{"method", "path", "headers", "body"}``, for tests that judge
    the kiosk's requests with the SDK.
    """

    signer: str = "auto"
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    unknown: rsa.RSAPrivateKey | None = None  # made on first use


@dataclass
class SimKeys:
    merchant: rsa.RSAPrivateKey  # the kiosk signs WeChat requests with this
    platform: rsa.RSAPrivateKey  # the simulated WeChat Pay's platform certificate key
    public: rsa.RSAPrivateKey  # the simulated "WeChat Pay public key" (PUBLIC_KEY_ID)
    apiv3_key: bytes
    alipay_app: rsa.RSAPrivateKey  # the kiosk signs Alipay requests with this
    alipay: rsa.RSAPrivateKey  # the simulated Alipay signs with this
    wechat_options: dict[str, Any]
    alipay_options: dict[str, Any]
    folder: Path  # where write() puts the files the options name
    platform_cert: bytes = b""  # the platform certificate (PEM) of ``platform``
    wechat: WeChatSim = field(default_factory=WeChatSim)

    @classmethod
    def create(cls, folder: Path, url: str) -> SimKeys:
        """New keys for a simulator at ``url``, written into ``folder`` (which must exist)."""
        keys = cls.generate(folder, url)
        keys.write()
        return keys

    @classmethod
    def generate(cls, folder: Path, url: str) -> SimKeys:
        """New keys in memory (~0.4 s: five 2048-bit RSA keys); the options name files in
        ``folder`` that exist only once ``write()`` has run.

        ``wechat_options`` hold both WeChat Pay platform keys (the certificate and the
        public key: a kiosk mid switch-over); ``wechat_legacy_options`` the older single
        ``platform_public_key_file`` + ``platform_serial`` pair (the certificate's key)."""
        def new() -> rsa.RSAPrivateKey:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)

        merchant, platform, public, app, alipay = new(), new(), new(), new(), new()
        apiv3 = secrets.token_hex(16).encode()  # 32 ASCII bytes, as WeChat Pay issues them
        wechat = {"mchid": MCHID, "appid": APPID, "serial_no": MERCHANT_SERIAL,
                  "private_key_file": str(folder / "wechat-merchant-private.pem"),
                  "platform_cert_files": [str(folder / "wechat-platform-cert.pem")],
                  "public_key_file": str(folder / "wechat-pay-public-key.pem"),
                  "public_key_id": PUBLIC_KEY_ID,
                  "apiv3_key_file": str(folder / "wechat-apiv3.key"), "base_url": url}
        ali = {"app_id": ALIPAY_APP_ID,
               "app_private_key_file": str(folder / "alipay-app-private.pem"),
               "alipay_public_key_file": str(folder / "alipay-public.pem"),
               "base_url": url + "/gateway.do"}
        return cls(merchant, platform, public, apiv3, app, alipay, wechat, ali, folder,
                   platform_certificate(platform))

    @property
    def wechat_legacy_options(self) -> dict[str, Any]:
        """The WeChat options as they were before key sets: one bare key and its serial."""
        options = {k: v for k, v in self.wechat_options.items()
                   if k not in ("platform_cert_files", "public_key_file", "public_key_id")}
        return options | {
            "platform_public_key_file": str(self.folder / "wechat-platform-public.pem"),
            "platform_serial": PLATFORM_SERIAL}

    def write(self) -> None:
        """Write the kiosk's key files, ``wechatpay.toml`` and ``alipay.toml`` into ``folder``.

        Raises OSError if the folder is missing or not writable.
        """
        files = {
            "wechat-merchant-private.pem": _pem_private(self.merchant),
            "wechat-platform-public.pem": _pem_public(self.platform.public_key()),
            "wechat-platform-cert.pem": self.platform_cert,
            "wechat-pay-public-key.pem": _pem_public(self.public.public_key()),
            "wechat-apiv3.key": self.apiv3_key,
            "alipay-app-private.pem": _pem_private(self.alipay_app),
            "alipay-public.pem": _pem_public(self.alipay.public_key()),
        }
        for name, data in files.items():
            (self.folder / name).write_bytes(data)
        for name, options in (("wechatpay", self.wechat_options),
                              ("alipay", self.alipay_options)):
            inline = ", ".join(f"{k} = {_toml(v)}" for k, v in options.items())
            (self.folder / f"{name}.toml").write_text(
                f'[payment]\nadapter = "{name}"\noptions = {{ {inline} }}\n', encoding="utf-8")


def _toml(value: Any) -> str:
    """A string or a list of strings as a TOML value (JSON string escapes are TOML's)."""
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(str(v)) for v in value) + "]"
    return json.dumps(str(value))


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
def _wechat_signer(keys: SimKeys, asked_serial: str = "",
                   signer: str = "") -> tuple[rsa.RSAPrivateKey, str]:
    """The key and serial that sign a reply: ``signer`` (or the simulator's switch), with
    ``auto`` choosing the public key when the request named it in ``Wechatpay-Serial`` (as
    WeChat does during a switch-over), else the platform certificate."""
    mode = signer or keys.wechat.signer
    if mode == "auto":
        mode = "public_key" if asked_serial == PUBLIC_KEY_ID else "certificate"
    if mode == "public_key":
        return keys.public, PUBLIC_KEY_ID
    if mode == "unknown":
        if keys.wechat.unknown is None:
            keys.wechat.unknown = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return keys.wechat.unknown, UNKNOWN_SERIAL
    return keys.platform, PLATFORM_SERIAL


def _wechat_signature(key: rsa.RSAPrivateKey, serial: str, body: bytes) -> dict[str, str]:
    """The ``Wechatpay-*`` headers that sign ``body`` (APIv3 "应答签名": SHA256-RSA over
    ``TIMESTAMP\\nNONCE\\nBODY\\n``), ``Wechatpay-Signature-Type`` included: the wechatpayv3
    SDK refuses a reply without it."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": rsa_sign(key, f"{timestamp}\n{nonce}\n".encode()
                                            + body + b"\n"),
            "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": SIGNATURE_TYPE}


def _wechat_reply(h: WireHandler, status: int, data: dict[str, Any] | None,
                  order: Order | None = None, signed: bool | None = None) -> None:
    """Send a reply. Signed unless ``signed`` is False or the status is 401, 429 or 5xx:
    WeChat Pay leaves those error bodies unsigned (the SDK verifies 2xx replies only)."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() \
        if data is not None else b""
    if signed is None:
        signed = status not in (401, 429) and status < 500
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    if signed:
        key, serial = _wechat_signer(h.keys, h.headers.get("Wechatpay-Serial", ""))
        headers |= _wechat_signature(key, serial, body)
        if order is not None and order.script.outcome == "bad_signature":
            headers["Wechatpay-Signature"] = base64.b64encode(b"\0" * 256).decode()
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(body)


def _wechat_auth_problem(h: WireHandler, method: str, url_path: str,
                         body: bytes) -> tuple[int, str, str] | None:
    """Why WeChat Pay would refuse the request's ``Authorization``, as (status, code,
    message), or None. Codes as WeChat answers them (APIv3 错误码): SIGN_ERROR for a
    signature, merchant or certificate serial it cannot verify; INVALID_REQUEST for a
    timestamp more than five minutes from its clock."""
    auth = h.headers.get("Authorization", "")
    if not auth.startswith(SIGNATURE_TYPE + " "):
        return 401, "SIGN_ERROR", "Authorization is missing or not WECHATPAY2-SHA256-RSA2048"
    try:
        fields = {k: v.strip('"') for k, v in
                  (part.split("=", 1) for part in auth.split(" ", 1)[1].split(","))}
    except ValueError:
        return 401, "SIGN_ERROR", "Authorization is malformed"
    if fields.get("mchid") != MCHID:
        return 401, "SIGN_ERROR", f"mchid {fields.get('mchid')!r} is unknown (商户号有误)"
    if fields.get("serial_no") != MERCHANT_SERIAL:
        return 401, "SIGN_ERROR", (f"serial_no {fields.get('serial_no')!r} is not this "
                                   "merchant's API certificate serial (商户证书序列号有误)")
    timestamp = fields.get("timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        return 400, "INVALID_REQUEST", (f"timestamp {timestamp!r} is more than 5 minutes from "
                                        "WeChat Pay's clock (时间戳超出有效期)")
    message = f"{method}\n{url_path}\n{timestamp}\n{fields.get('nonce_str', '')}\n".encode() \
        + body + b"\n"
    if not rsa_verify(h.keys.merchant.public_key(), message, fields.get("signature", "")):
        return 401, "SIGN_ERROR", "signature does not verify with the merchant's key (签名错误)"
    return None


def _wechat_transaction(order: Order) -> dict[str, Any]:
    data: dict[str, Any] = {"appid": APPID, "mchid": MCHID, "out_trade_no": order.out_trade_no,
                            "trade_state": "REVOKED" if _revoked(order)
                            else WECHAT_STATES[order.status],
                            "amount": {"total": order.amount_minor, "currency": "CNY"}}
    if order.status in ("paid", "refunded"):
        data["transaction_id"] = order.provider_ref
        # What the provider took: differs from the order's amount only under the
        # simulator's wrong_amount script.
        data["amount"]["total"] = order.paid_minor
        data["amount"]["payer_total"] = order.paid_minor
    return data


def _revoked(order: Order) -> bool:
    """A payment-code charge closed unpaid by a reverse (WeChat's REVOKED)."""
    return order.charge is not None and order.status == "closed" and order.reverses > 0


def _wechat_order_problem(payload: dict[str, Any]) -> str:
    """Why WeChat Pay's native prepay API would refuse this order (PARAM_ERROR), or ''."""
    amount = payload.get("amount")
    total = amount.get("total") if isinstance(amount, dict) else None
    if not isinstance(total, int) or isinstance(total, bool):
        return "amount.total must be an integer number of fen"
    if not 1 <= total <= WECHAT_MAX_TOTAL_FEN:
        return f"amount.total must be from 1 to {WECHAT_MAX_TOTAL_FEN} fen, got {total}"
    if (amount or {}).get("currency", "CNY") != "CNY":
        return "amount.currency must be CNY"
    if payload.get("appid") != APPID or payload.get("mchid") != MCHID:
        return "appid and mchid must be this merchant's"
    if not payload.get("out_trade_no") or not payload.get("description"):
        return "out_trade_no and description are required"
    return ""


def _wechat_codepay(h: WireHandler, payload: dict[str, Any]) -> None:
    """``POST /v3/pay/transactions/codepay`` (pay.weixin.qq.com/doc/v3/merchant/4012382150):
    the order's fields as for Native, plus ``payer.auth_code`` (a WeChat payment code: 18
    digits beginning 10-15) and ``scene_info.store_info.out_id`` (required). Answers 200
    with the transaction (SUCCESS, or USERPAYING while the shopper types a password), 403
    with NOTENOUGH / AUTHCODEEXPIRE / AUTH_CODE_INVALID for a code the wallet refuses (a
    used code: "仅限使用一次"), 403 OUT_TRADE_NO_USED for an out_trade_no already charged
    (a code charge is never repeated), 400 PARAM_ERROR for a malformed request."""
    p = h.provider
    problem = _wechat_order_problem(payload)
    payer, scene = payload.get("payer"), payload.get("scene_info")
    auth_code = payer.get("auth_code") if isinstance(payer, dict) else None
    store = scene.get("store_info") if isinstance(scene, dict) else None
    if not problem and not isinstance(auth_code, str):
        problem = "payer.auth_code is required"
    if not problem and not (isinstance(store, dict) and store.get("out_id")):
        problem = "scene_info.store_info.out_id is required"
    if problem:
        return _wechat_reply(h, 400, {"code": "PARAM_ERROR", "message": problem})
    assert isinstance(auth_code, str)
    if wallet_of(auth_code) != WECHAT:
        status, code, message = WECHAT_CODE_REFUSALS["code_invalid"]
        return _wechat_reply(h, status, {"code": code, "message": message})
    no = str(payload["out_trade_no"])
    try:  # the simulator's wallets resolve the code and mark it used (payorders.Wallets)
        order, charged_now = p.charge_code(no, int(payload["amount"]["total"]), "CNY",
                                           str(payload["description"]), WECHAT, auth_code)
    except ValueError:  # the out_trade_no names another order (a QR order, another amount)
        charged_now = False
    if not charged_now:  # charged before: never again; the kiosk's answer is a query
        return _wechat_reply(h, 403, {"code": "OUT_TRADE_NO_USED", "message": "商户订单号重复"})
    if order.status == "declined" and order.decline in WECHAT_CODE_REFUSALS:
        status, code, message = WECHAT_CODE_REFUSALS[order.decline]
        return _wechat_reply(h, status, {"code": code, "message": message}, order)
    if order.lose_charge_reply or misbehave(order):
        return None
    return _wechat_reply(h, 200, _wechat_transaction(order), order)


def _wechat_reverse(h: WireHandler, order: Order, payload: dict[str, Any]) -> None:
    """``POST .../out-trade-no/{no}/reverse`` with appid and mchid: 200 when revoked (unpaid)
    or refunded (paid); 403 USERPAYING while the shopper is mid-password (ask again once
    the charge ends); 400 PARAM_ERROR without appid/mchid, or for an order that is not a
    payment-code charge."""
    if payload.get("appid") != APPID or payload.get("mchid") != MCHID:
        return _wechat_reply(h, 400, {"code": "PARAM_ERROR",
                                      "message": "appid and mchid must be this merchant's"})
    if order.charge is None:
        return _wechat_reply(h, 400, {"code": "INVALID_REQUEST",
                                      "message": "only a payment-code order can be reversed"})
    if not h.provider.reverse(order):
        return _wechat_reply(h, 403, {"code": "USERPAYING",
                                      "message": "用户支付中，请稍后再撤销"}, order)
    return _wechat_reply(h, 200, {"out_trade_no": order.out_trade_no}, order)


def _wechat_certificates(h: WireHandler) -> None:
    """``GET /v3/certificates``: the platform certificate, encrypted with the APIv3 key
    (AEAD_AES_256_GCM, associated data "certificate"), as the SDK downloads it."""
    cert = x509.load_pem_x509_certificate(h.keys.platform_cert)
    nonce = secrets.token_hex(6)
    ciphertext = AESGCM(h.keys.apiv3_key).encrypt(nonce.encode(), h.keys.platform_cert,
                                                  b"certificate")
    beijing = timezone(timedelta(hours=8))
    return _wechat_reply(h, 200, {"data": [{
        "serial_no": PLATFORM_SERIAL,
        "effective_time": cert.not_valid_before_utc.astimezone(beijing).isoformat(),
        "expire_time": cert.not_valid_after_utc.astimezone(beijing).isoformat(),
        "encrypt_certificate": {"algorithm": "AEAD_AES_256_GCM", "nonce": nonce,
                                "associated_data": "certificate",
                                "ciphertext": base64.b64encode(ciphertext).decode()}}]})


def wechat(h: WireHandler, method: str, url_path: str, body: bytes) -> None:
    p = h.provider
    h.keys.wechat.requests.append({"method": method, "path": url_path,
                                   "headers": dict(h.headers.items()),
                                   "body": body.decode("utf-8", "replace")})
    refused = _wechat_auth_problem(h, method, url_path, body)
    if refused is not None:  # WeChat answers a request it cannot authenticate unsigned
        status, code, message = refused
        return _wechat_reply(h, status, {"code": code, "message": message}, signed=False)
    if h.keys.wechat.failures:
        status, code, message = h.keys.wechat.failures.pop(0)
        return _wechat_reply(h, status, {"code": code, "message": message}, signed=False)
    path = urlparse(url_path).path
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        return _wechat_reply(h, 400, {"code": "PARAM_ERROR", "message": "not JSON"})
    if method == "GET" and path == "/v3/certificates":
        return _wechat_certificates(h)
    if method == "POST" and path == "/v3/pay/transactions/native":
        problem = _wechat_order_problem(payload)
        if problem:
            return _wechat_reply(h, 400, {"code": "PARAM_ERROR", "message": problem})
        no, total = str(payload["out_trade_no"]), int(payload["amount"]["total"])
        description = str(payload["description"])
        with p.lock:
            known = p.orders.get(no)
            if known is not None and (known.amount_minor, known.description) != (total,
                                                                                 description):
                # The same out_trade_no again with other parameters: APIv3 error code table,
                # 403 OUT_TRADE_NO_USED "商户订单号重复" (v2 said INVALID_REQUEST "201 商户订单号
                # 重复"). The same parameters again find the same order.
                return _wechat_reply(h, 403, {"code": "OUT_TRADE_NO_USED",
                                              "message": "商户订单号重复"})
            made = p.create(no, total, "CNY", description, expiry(payload.get("time_expire")))
        if misbehave(made):
            return None
        return _wechat_reply(h, 200, {"code_url": f"weixin://wxpay/bizpayurl?pr=SIM{no}"}, made)
    if method == "POST" and path == "/v3/pay/transactions/codepay":
        return _wechat_codepay(h, payload)
    if method == "POST" and path == "/v3/refund/domestic/refunds":
        paid = p.orders.get(str(payload.get("out_trade_no", "")))
        if paid is None:
            return _wechat_reply(h, 404, {"code": "RESOURCE_NOT_EXISTS",
                                          "message": "订单不存在"})
        refund = (payload.get("amount") or {}).get("refund")
        if not isinstance(refund, int) or isinstance(refund, bool) or refund < 1:
            return _wechat_reply(h, 400, {"code": "PARAM_ERROR",
                                          "message": "amount.refund must be a whole number of "
                                                     "fen, at least 1"})
        try:
            r = p.refund(paid, str(payload.get("out_refund_no", "")), refund)
        except ValueError as exc:
            return _wechat_reply(h, 400, {"code": "INVALID_REQUEST", "message": str(exc)})
        return _wechat_reply(h, 200, {
            "refund_id": r["refund_id"], "out_refund_no": r["refund_no"],
            "transaction_id": paid.provider_ref, "out_trade_no": paid.out_trade_no,
            "status": "SUCCESS", "amount": {"refund": r["amount_minor"],
                                            "total": paid.amount_minor, "currency": "CNY"}})
    parts = [x for x in path.split("/") if x]
    if parts[:4] != ["v3", "pay", "transactions", "out-trade-no"] or len(parts) < 5:
        return _wechat_reply(h, 404, {"code": "NOT_FOUND", "message": "no such API"})
    order = p.orders.get(parts[4])
    if order is None:
        return _wechat_reply(h, 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
    if misbehave(order):
        return None
    with p.lock:
        p.advance(order)
        if method == "GET" and len(parts) == 5:
            order.queries += 1
            return _wechat_reply(h, 200, _wechat_transaction(order), order)
        if method == "POST" and len(parts) == 6 and parts[5] == "reverse":
            return _wechat_reverse(h, order, payload)
        if method == "POST" and len(parts) == 6 and parts[5] == "close":
            p.close(order)
            if order.status == "paid":
                return _wechat_reply(h, 400, {"code": "ORDERPAID", "message": "订单已支付"})
            return _wechat_reply(h, 204, None, order)
    return _wechat_reply(h, 404, {"code": "NOT_FOUND", "message": "no such API"})


def wechat_notification(keys: SimKeys, order: Order,
                        signer: str = "") -> tuple[dict[str, str], bytes]:
    """The signed, encrypted TRANSACTION.SUCCESS notification WeChat Pay would send for
    ``order``; ``signer`` (one of ``SIGNERS``, default the simulator's switch, where
    ``auto`` means the platform certificate) picks the signing key."""
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
    key, serial = _wechat_signer(keys, "", signer)
    return _wechat_signature(key, serial, body), body


def wechat_control(h: WireHandler, method: str, what: str, body: bytes) -> None:
    """The simulated WeChat Pay's test switches (unsigned JSON replies):

    ``POST /sim/wechat/signer {"signer": one of SIGNERS}``; ``POST /sim/wechat/fail
    {"status": 500, "code": "SYSTEM_ERROR", "message": "...", "count": 1}`` (the next
    ``count`` authenticated requests get that unsigned error); ``GET /sim/wechat/requests``
    (the last requests as received, oldest first).
    """
    sim = h.keys.wechat
    status, data = 200, dict[str, Any]()
    try:
        given = json.loads(body) if body else {}
        if method == "POST" and what == "signer":
            if given.get("signer") not in SIGNERS:
                raise ValueError(f"signer must be one of {', '.join(SIGNERS)}")
            sim.signer = given["signer"]
            data = {"signer": sim.signer}
        elif method == "POST" and what == "fail":
            failure = (int(given.get("status", 500)), str(given.get("code", "SYSTEM_ERROR")),
                       str(given.get("message", "系统错误")))
            sim.failures.extend([failure] * int(given.get("count", 1)))
            data = {"failures": len(sim.failures)}
        elif method == "GET" and what == "requests":
            data = {"requests": list(sim.requests)}
        else:
            status, data = 404, {"error": "not found"}
    except (ValueError, TypeError, AttributeError) as exc:
        status, data = 400, {"error": str(exc)}
    reply = json.dumps(data, ensure_ascii=False).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(reply)))
    h.end_headers()
    h.wfile.write(reply)


# --- Alipay -----------------------------------------------------------------------------------
# As the Alipay open platform gateway behaves (https://opendocs.alipay.com/common/02km9f, the
# public error codes; https://opendocs.alipay.com/open/02ekfg, alipay.trade.precreate):
# the gateway's own refusals (20000, 20001, 40001, 40002) come back *unsigned*: it stopped
# before knowing the request was the app's (python-alipay-sdk reads a reply without ``sign``
# as an error with its code); business answers (10000, 40004 ACQ.*) are signed.
ALIPAY_METHODS = ("alipay.trade.precreate", "alipay.trade.query", "alipay.trade.cancel",
                  "alipay.trade.refund", "alipay.trade.pay")
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
    "ACQ.PAYMENT_AUTH_CODE_INVALID": "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款",
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": "买家余额不足", "ACQ.TRADE_HAS_SUCCESS": "交易已被支付",
    "ACQ.TRADE_HAS_CLOSE": "交易已经关闭",
}
# alipay.trade.pay's answer for a code the wallet refuses, by the simulator's reason: Alipay
# answers one sub_code for any code it cannot use (expired, used, not a code).
ALIPAY_CODE_REFUSALS = {"insufficient_funds": "ACQ.BUYER_BALANCE_NOT_ENOUGH",
                        "code_expired": "ACQ.PAYMENT_AUTH_CODE_INVALID",
                        "code_used": "ACQ.PAYMENT_AUTH_CODE_INVALID",
                        "code_invalid": "ACQ.PAYMENT_AUTH_CODE_INVALID"}
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
    if method == "alipay.trade.pay":
        return _alipay_pay(h, biz)
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
        if method == "alipay.trade.cancel" and order is not None and order.charge is not None:
            if not p.reverse(order):  # the shopper is mid-password: Alipay says ask again
                return _alipay_reply(h, method, {"code": "10000", "msg": "Success",
                                                 "out_trade_no": no, "retry_flag": "Y"}, order)
            return _alipay_reply(h, method, {
                "code": "10000", "msg": "Success", "out_trade_no": no, "retry_flag": "N",
                "action": "refund" if order.status == "refunded" else "close"}, order)
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


def _alipay_pay(h: WireHandler, biz: dict[str, Any]) -> None:
    """``alipay.trade.pay`` (https://opendocs.alipay.com/open/02ekfp): ``out_trade_no``,
    ``scene`` ``bar_code`` or ``wave_code``, ``auth_code`` (an Alipay payment code: 16-24
    digits beginning 25-30), ``subject``, ``total_amount``. Answers 10000 (paid), 10003
    (the shopper is asked for a password: "order success pay inprocess"), 40004
    ACQ.PAYMENT_AUTH_CODE_INVALID / ACQ.BUYER_BALANCE_NOT_ENOUGH for a code refused,
    ACQ.TRADE_HAS_SUCCESS / ACQ.TRADE_HAS_CLOSE for an out_trade_no charged before (never
    charged again), ACQ.INVALID_PARAMETER for a malformed request."""
    p, method = h.provider, "alipay.trade.pay"
    no, auth_code = str(biz.get("out_trade_no", "")), biz.get("auth_code")
    cents = alipay_fen(biz.get("total_amount"))
    if not no or len(no) > 64 or not biz.get("subject") or cents is None or cents <= 0 \
            or biz.get("scene") not in ("bar_code", "wave_code") \
            or not isinstance(auth_code, str) or not auth_code:
        return _alipay_reply(h, method, _alipay_refusal(
            "40004", "ACQ.INVALID_PARAMETER",
            "out_trade_no, scene (bar_code/wave_code), auth_code, subject and total_amount "
            "in [0.01,100000000] are required"), None)
    if cents > ALIPAY_MAX_FEN:
        return _alipay_reply(h, method, _alipay_refusal("40004", "ACQ.TOTAL_FEE_EXCEED"), None)
    if wallet_of(auth_code) != ALIPAY:
        return _alipay_reply(h, method, _alipay_refusal(
            "40004", ALIPAY_CODE_REFUSALS["code_invalid"]), None)
    try:  # the simulator's wallets resolve the code and mark it used (payorders.Wallets)
        order, charged_now = p.charge_code(no, cents, "CNY", str(biz["subject"]), ALIPAY,
                                           auth_code)
    except ValueError:  # the out_trade_no names another order (a QR order, another amount)
        order, charged_now = p.orders[no], False
    if not charged_now:  # charged before: never again; the kiosk's answer is a query
        sub = "ACQ.TRADE_HAS_SUCCESS" if order.status in ("paid", "refunded") \
            else "ACQ.TRADE_HAS_CLOSE"
        return _alipay_reply(h, method, _alipay_refusal("40004", sub), order)
    if order.status == "declined" and order.decline in ALIPAY_CODE_REFUSALS:
        return _alipay_reply(h, method, _alipay_refusal(
            "40004", ALIPAY_CODE_REFUSALS[order.decline]), order)
    if order.lose_charge_reply or misbehave(order):
        return None
    node: dict[str, Any] = {"out_trade_no": no, "total_amount": yuan(order.amount_minor)}
    if order.status == "paying":
        node = {"code": "10003", "msg": " order success pay inprocess"} | node
    else:
        node = {"code": "10000", "msg": "Success"} | node | {
            "trade_no": order.provider_ref, "buyer_pay_amount": yuan(order.paid_minor or 0),
            "receipt_amount": yuan(order.paid_minor or 0),
            "gmt_payment": beijing(order.paid_at)}
    return _alipay_reply(h, method, node, order)


def alipay_notification(keys: SimKeys, order: Order,
                        moment: str = "now") -> tuple[dict[str, str], bytes]:
    """The signed ``trade_status_sync`` notification Alipay sends about ``order``.

    ``moment``: "now" describes the order as it is; "paid" is the TRADE_SUCCESS
    notification of the moment the shopper paid, which Alipay keeps retrying (for
    about 25 hours, until the merchant answers ``success``) even after a cancel has
    refunded the trade (Alipay open API: 异步通知, alipay.trade.cancel). Raises
    ValueError for "paid" if the order was never paid, and for any other moment.

    Times are Beijing time (``notify_time``, ``gmt_create``, ``gmt_payment``), as Alipay
    sends them; parameters without a value are left out (python-alipay-sdk's ``verify``
    signs every parameter it is given, Alipay's own SDKs skip empty ones: both agree on a
    notification that has none)."""
    if moment == "paid":
        if not order.provider_ref:
            raise ValueError(f"order {order.out_trade_no} was never paid")
        status = "TRADE_SUCCESS"
    elif moment == "now":
        status = ALIPAY_STATES[order.status]
    else:
        raise ValueError(f"moment must be 'now' or 'paid', not {moment!r}")
    params = {"notify_id": uuid.uuid4().hex, "notify_time": beijing(),
              "notify_type": "trade_status_sync", "app_id": ALIPAY_APP_ID, "charset": "utf-8",
              "version": "1.0", "out_trade_no": order.out_trade_no,
              "trade_status": status,
              "total_amount": yuan(order.amount_minor), "trade_no": order.provider_ref,
              "buyer_pay_amount": yuan(order.paid_minor or 0),
              "gmt_create": beijing(order.created),
              "gmt_payment": beijing(order.paid_at) if order.paid_at is not None else ""}
    params = {k: v for k, v in params.items() if v}
    params["sign"] = rsa_sign(keys.alipay, sign_params(params).encode())
    params["sign_type"] = "RSA2"
    return ({"Content-Type": "application/x-www-form-urlencoded"}, urlencode(params).encode())
