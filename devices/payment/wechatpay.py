"""WeChat Pay APIv3 Native: a QR (``code_url``) the shopper scans with WeChat.

What the adapter does, as WeChat Pay's APIv3 documents it:

- create ``POST /v3/pay/transactions/native`` (amount in integer fen,
  ``time_expire`` RFC 3339); query ``GET /v3/pay/transactions/out-trade-no/{no}``;
  close ``POST .../out-trade-no/{no}/close``; refund ``POST /v3/refund/domestic/refunds``;
- every request signed ``WECHATPAY2-SHA256-RSA2048`` (SHA256 with RSA over
  ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` with the merchant key); in
  public-key mode every request also carries ``Wechatpay-Serial: PUB_KEY_ID_...``
  (as the ``wechatpayv3`` SDK sends it: WeChat signs the reply with that key);
- every 2xx response and every notification verified over
  ``TIMESTAMP\\nNONCE\\nBODY\\n`` with the platform key named by its
  ``Wechatpay-Serial`` header, with a 5-minute timestamp window; a reply that
  fails, or is signed with a key the kiosk does not hold, is not believed;
- error replies: WeChat leaves 401, 429 and 5xx bodies unsigned (its APIv3
  signing guide; the SDK verifies 2xx replies only). An error reply that does
  not verify is read as WeChat's refusal (``ProviderRefused``: its ``code``,
  ``message`` and the setting to check), never as "paid" or "not paid";
- notifications decrypted with the APIv3 key (AEAD_AES_256_GCM);
- payment codes (付款码, customer-presented; issue 18): ``charge_code`` is
  ``POST /v3/pay/transactions/codepay`` (pay.weixin.qq.com/doc/v3/merchant/4012382150:
  appid, mchid, description, out_trade_no, amount, ``payer.auth_code`` and the required
  ``scene_info.store_info.out_id``); ``reverse`` is ``POST /v3/pay/transactions/
  out-trade-no/{out_trade_no}/reverse`` with appid and mchid (as ``wechatpayv3``'s
  ``codepay_reverse`` sends it): an unpaid charge is revoked (trade_state ``REVOKED``), a
  paid one refunded. WeChat's guide for payment codes: on ``USERPAYING`` query until a
  final state, on a system error query, and when it stays unclear reverse, retrying a
  reverse that fails.

Options (``payment.options``; docs/payments.md "WeChat Pay keys and key
rotation"): ``mchid``, ``appid``, ``private_key_file`` (merchant key, PEM),
``serial_no`` (the merchant certificate's serial), ``apiv3_key_file`` (32
bytes), ``notify_url``, ``base_url`` (default the real API; tests point it at
``kiosk sim pay``), and the keys WeChat Pay signs with, any of:

- ``public_key_file`` + ``public_key_id``: the "WeChat Pay public key" (PEM)
  and its id ``PUB_KEY_ID_...``;
- ``platform_cert_files``: platform certificates (X.509 PEM, one path or a
  list); each certificate's own serial and key are used, and an expired or
  not-yet-valid one is refused;
- ``platform_public_key_file`` + ``platform_serial``: one bare key and its
  serial (the older setting, still read).

With the store-gateway adapter none of these keys need to be on the kiosk:
the recommended setup.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.domain.payment import PaymentError, ProviderRefused, ProviderStatus, ProviderView
from app.services.payment_port import (
    CodeCharge,
    CredentialCheck,
    InvalidNotification,
    Notification,
    OrderRequest,
)

API = "https://api.mch.weixin.qq.com"
WINDOW_S = 300
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
PUBLIC_KEY_PREFIX = "PUB_KEY_ID_"  # the id of a "WeChat Pay public key"; else a certificate
TRADE_STATES = {
    "SUCCESS": ProviderStatus.PAID,
    # REFUND (转入退款): paid, then refunded. Money that went back is not a sale: the desk
    # closes such a payment for good and tells staff (a payment the provider refunded
    # never becomes a sale).
    "REFUND": ProviderStatus.REFUNDED,
    "NOTPAY": ProviderStatus.WAITING, "USERPAYING": ProviderStatus.PAYING,
    "CLOSED": ProviderStatus.CLOSED, "REVOKED": ProviderStatus.CLOSED,
    "PAYERROR": ProviderStatus.DECLINED,
}
CLOCK = "the kiosk's clock (NTP): WeChat Pay allows 5 minutes"
# Payment-code charges refused at once, by WeChat Pay's error code (APIv3 付款码支付 error
# codes, with the v2 micropay spellings WeChat still answers some of): the kiosk's decline
# reason (app.domain.payment_code.DECLINES). No money moved; the desk still queries and
# reverses the order so nothing is left open.
CODE_DECLINES = {
    "NOTENOUGH": "insufficient_funds",  # 余额不足
    "AUTHCODEEXPIRE": "code_expired", "AUTH_CODE_EXPIRE": "code_expired",  # 付款码已过期
    "AUTH_CODE_INVALID": "code_invalid", "AUTH_CODE_ERROR": "code_invalid",  # 付款码无效
    "AUTH_CODE_USED": "code_used",
    "PAYER_ACCOUNT_ABNORMAL": "declined", "BUYER_MISMATCH": "declined",
    "TRADE_ERROR": "declined", "NOT_SUPPORT_CARD": "declined", "PAYERROR": "declined",
}
# WeChat's text for a code already used ("每个二维码仅限使用一次，请刷新再试"), which it
# answers under AUTH_CODE_INVALID: the shopper is told to refresh, not that it is invalid.
CODE_USED_TEXT = "仅限使用一次"
# Unknown outcome: the charge may have gone through (WeChat: "系统错误/银行端超时: 请立即
# 调用查询订单API"); the kiosk queries, never charges again.
CODE_UNKNOWN = ("SYSTEMERROR", "SYSTEM_ERROR", "BANKERROR", "BANK_ERROR")
DIGIT_RUN = re.compile(r"[0-9]{10,}")


def scrub(text: str) -> str:
    """``text`` with every run of 10 or more digits replaced: a provider's message may
    quote the shopper's payment code (a bearer credential), and such messages reach logs
    and payment notes. Order ids keep their letters and survive."""
    return DIGIT_RUN.sub("[digits]", text)


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """Base64 SHA256-with-RSA (PKCS#1 v1.5) signature of ``message``, as APIv3 signs."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """True if ``signature`` (base64) is ``key``'s SHA256-with-RSA signature of ``message``."""
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def load_private_key(path: str, setting: str) -> rsa.RSAPrivateKey:
    """The RSA private key in the PEM file ``path``; ValueError naming ``setting`` if not."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"payment.options.{setting}: cannot read an RSA key from {path!r}: "
                         f"{exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"payment.options.{setting}: {path!r} is not an RSA private key")
    return key


def load_public_key(path: str, setting: str) -> rsa.RSAPublicKey:
    """The RSA public key in the PEM file ``path``; ValueError naming ``setting`` if not."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"payment.options.{setting}: cannot read a public key from {path!r}: "
                         f"{exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"payment.options.{setting}: {path!r} is not an RSA public key")
    return key


@dataclass(frozen=True, slots=True)
class PlatformKey:
    """One key WeChat Pay may sign replies and notifications with.

    ``serial``: as WeChat names it in ``Wechatpay-Serial`` (a certificate's serial in
    upper-case hex, or a public key's ``PUB_KEY_ID_...``); ``setting``: the option it came
    from; ``not_before``/``not_after``: a certificate's validity (UTC), None for a bare key.
    """

    serial: str
    key: rsa.RSAPublicKey
    setting: str
    not_before: datetime | None = None
    not_after: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        """False once a certificate has expired (or before it starts); bare keys: True."""
        return ((self.not_before is None or now >= self.not_before)
                and (self.not_after is None or now <= self.not_after))


def load_platform_certificate(path: str, setting: str = "platform_cert_files",
                              now: datetime | None = None) -> PlatformKey:
    """The key and serial of a WeChat Pay platform certificate (X.509 PEM) at ``path``.

    The serial is the certificate's serial number in upper-case hex, as WeChat sends it in
    ``Wechatpay-Serial`` (the ``wechatpayv3`` SDK compares ``int(serial, 16)`` with the
    certificate's serial number: the same rule). ``now`` (UTC, default the current time)
    must fall within the certificate's validity: an expired or not-yet-valid certificate
    raises ValueError naming ``payment.options.<setting>`` (WeChat Pay signs with a
    certificate only while it is valid; the SDK skips the others too).
    """
    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"payment.options.{setting}: cannot read an X.509 certificate from "
                         f"{path!r}: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"payment.options.{setting}: {path!r} does not hold an RSA key")
    serial = format(cert.serial_number, "X")
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    now = now or datetime.now(UTC)
    if now < start:
        raise ValueError(f"payment.options.{setting}: the platform certificate {path!r} "
                         f"(serial {serial}) is not valid until {start:%Y-%m-%d %H:%M} UTC")
    if now > end:
        raise ValueError(f"payment.options.{setting}: the platform certificate {path!r} "
                         f"(serial {serial}) expired on {end:%Y-%m-%d %H:%M} UTC; WeChat Pay "
                         "no longer signs with it: add its successor, or the WeChat Pay "
                         "public key (public_key_file, public_key_id), and remove it")
    return PlatformKey(serial, key, setting, start, end)


class PlatformKeys:
    """The set of keys WeChat Pay may sign with, looked up by ``Wechatpay-Serial``.

    During a switch-over (a certificate replaced, or certificates replaced by the public
    key) WeChat signs with either key; the serial in each reply says which. A serial the
    set does not hold finds nothing: that reply is not verified.
    """

    def __init__(self, keys: Iterable[PlatformKey]) -> None:
        self.keys: dict[str, PlatformKey] = {}
        for k in keys:
            self.keys.setdefault(k.serial.upper(), k)
        if not self.keys:
            raise ValueError("wechatpay needs the keys WeChat Pay signs with: "
                             "payment.options.public_key_file and public_key_id, or "
                             "payment.options.platform_cert_files")

    def find(self, serial: str) -> PlatformKey | None:
        """The key for ``serial`` (case-insensitive; certificate serials compared as hex
        numbers, as the SDK does), or None."""
        wanted = serial.strip().upper()
        if not wanted:
            return None
        found = self.keys.get(wanted)
        if found is not None or wanted.startswith(PUBLIC_KEY_PREFIX):
            return found
        try:
            number = int(wanted, 16)
        except ValueError:
            return None
        for k in self.keys.values():
            if k.not_after is not None and int(k.serial, 16) == number:
                return k
        return None

    @property
    def public_key_id(self) -> str:
        """The ``PUB_KEY_ID_...`` held, or '' (certificate mode)."""
        return next((s for s in self.keys if s.startswith(PUBLIC_KEY_PREFIX)), "")

    @property
    def serials(self) -> list[str]:
        return sorted(self.keys)

    @classmethod
    def from_options(cls, o: Mapping[str, Any], now: datetime | None = None) -> PlatformKeys:
        """The keys named by ``payment.options`` (see the module docstring); ValueError naming
        the setting for a missing half of a pair, an unreadable file, an expired certificate
        or a public key id without the ``PUB_KEY_ID_`` prefix."""
        keys: list[PlatformKey] = []
        certs = o.get("platform_cert_files") or []
        for path in [certs] if isinstance(certs, str) else list(certs):
            keys.append(load_platform_certificate(str(path), "platform_cert_files", now))
        for file_opt, id_opt in (("public_key_file", "public_key_id"),
                                 ("platform_public_key_file", "platform_serial")):
            if not (o.get(file_opt) or o.get(id_opt)):
                continue
            for needed in (file_opt, id_opt):
                if not o.get(needed):
                    raise ValueError(f"payment.options.{needed} is required with "
                                     f"payment.options.{file_opt if needed == id_opt else id_opt}")
            serial = str(o[id_opt]).strip()
            if id_opt == "public_key_id" and not serial.startswith(PUBLIC_KEY_PREFIX):
                raise ValueError(f"payment.options.public_key_id must be the WeChat Pay public "
                                 f"key's id, {PUBLIC_KEY_PREFIX}..., got {serial!r}")
            keys.append(PlatformKey(serial, load_public_key(str(o[file_opt]), file_opt),
                                    file_opt))
        return cls(keys)


def refusal_setting(status: int, code: str, message: str) -> str:
    """The kiosk setting a WeChat Pay refusal points to, or '' if none does.

    From the APIv3 error codes (pay.weixin.qq.com, "错误码"): 401 ``SIGN_ERROR`` is a
    request signature WeChat could not verify (the merchant key, or a certificate serial
    that is not the merchant's); ``INVALID_REQUEST`` naming the timestamp is clock skew
    over five minutes; ``MCH_NOT_EXISTS``/``APPID_MCHID_NOT_MATCH``/``NO_AUTH`` point to
    the merchant id and app id.
    """
    text = message.lower()
    if code in ("MCH_NOT_EXISTS", "MCHID_NOT_EXIST", "NO_AUTH"):
        return "payment.options.mchid"
    if code in ("APPID_MCHID_NOT_MATCH", "APPID_NOT_EXIST"):
        return "payment.options.appid"
    if code in ("SIGN_ERROR", "INVALID_REQUEST") or status == 401:
        if "timestamp" in text or "时间戳" in message:
            return CLOCK
        if "serial" in text or "序列号" in message:
            return "payment.options.serial_no"
        if "mchid" in text or "商户号" in message:
            return "payment.options.mchid"
        if code == "SIGN_ERROR" or status == 401:
            return "payment.options.private_key_file"
    return ""


class WeChatPayAdapter:
    name = "wechatpay"
    code_wallets = frozenset({"wechat"})
    aggregated_qr = False  # its QR is this wallet's own: only its app scans it

    def __init__(self, *, mchid: str, appid: str, private_key: rsa.RSAPrivateKey,
                 serial_no: str, platform_keys: PlatformKeys, apiv3_key: bytes,
                 notify_url: str, base_url: str = API, connect_timeout: float = 3.0,
                 read_timeout: float = 10.0, store_id: str = "kiosk") -> None:
        if len(apiv3_key) != 32:
            raise ValueError("payment.options.apiv3_key_file must hold the 32-byte APIv3 key")
        self.mchid, self.appid = mchid, appid
        self.key, self.serial_no = private_key, serial_no
        self.platform_keys = platform_keys
        self.apiv3_key, self.notify_url = apiv3_key, notify_url
        self.base_url = base_url.rstrip("/")
        # scene_info.store_info.out_id of a payment-code charge: the merchant's own store
        # code, required by codepay (payment.options.store_id, default the kiosk's id).
        self.store_id = store_id[:32] or "kiosk"
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()

    @classmethod
    def from_options(cls, o: Mapping[str, Any], kiosk_id: str) -> WeChatPayAdapter:
        for needed in ("mchid", "appid", "private_key_file", "serial_no", "apiv3_key_file"):
            if not o.get(needed):
                raise ValueError(f"payment.options.{needed} is required for wechatpay")
        try:
            apiv3 = Path(str(o["apiv3_key_file"])).read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"payment.options.apiv3_key_file: {exc}") from None
        return cls(mchid=str(o["mchid"]), appid=str(o["appid"]),
                   private_key=load_private_key(str(o["private_key_file"]), "private_key_file"),
                   serial_no=str(o["serial_no"]), platform_keys=PlatformKeys.from_options(o),
                   apiv3_key=apiv3,
                   notify_url=str(o.get("notify_url", "https://kiosk.invalid/notify")),
                   base_url=str(o.get("base_url", API)),
                   connect_timeout=float(o.get("connect_timeout_s", 3.0)),
                   read_timeout=float(o.get("read_timeout_s", 10.0)),
                   store_id=str(o.get("store_id") or kiosk_id))

    # -- transport ---------------------------------------------------------------------------
    def _authorization(self, method: str, url_path: str, body: str) -> str:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{method}\n{url_path}\n{timestamp}\n{nonce}\n{body}\n".encode()
        return (f'WECHATPAY2-SHA256-RSA2048 mchid="{self.mchid}",nonce_str="{nonce}",'
                f'signature="{rsa_sign(self.key, message)}",timestamp="{timestamp}",'
                f'serial_no="{self.serial_no}"')

    def _unverified(self, headers: Mapping[str, str], body: bytes) -> str:
        """Why a reply or notification is not verified, or '' if it is.

        ``headers``: ``Wechatpay-Timestamp`` (Unix seconds), ``-Nonce``, ``-Signature``
        (base64), ``-Serial`` (which platform key signed) and ``-Signature-Type`` (checked
        when present: WECHATPAY2-SHA256-RSA2048), names in any case; ``body``: the bytes
        as received. Rule: WeChat Pay APIv3 "验证签名" (verify over
        ``TIMESTAMP\\nNONCE\\nBODY\\n``), 5-minute window.
        """
        lower = {k.lower(): v for k, v in headers.items()}
        timestamp = lower.get("wechatpay-timestamp", "")
        nonce = lower.get("wechatpay-nonce", "")
        signature = lower.get("wechatpay-signature", "")
        serial = lower.get("wechatpay-serial", "")
        kind = lower.get("wechatpay-signature-type", SIGNATURE_TYPE)
        if not signature:
            return "unsigned"
        if kind != SIGNATURE_TYPE:
            return f"signature type {kind!r} unknown"
        found = self.platform_keys.find(serial)
        if found is None:
            return f"signed with platform key {serial!r}, which the kiosk does not hold"
        if not found.valid_at(datetime.now(UTC)):
            return f"signed with platform certificate {serial}, which has expired"
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > WINDOW_S:
            return "timestamp missing or outside the 5-minute window"
        if not rsa_verify(found.key, f"{timestamp}\n{nonce}\n".encode() + body + b"\n",
                          signature):
            return "signature does not match"
        return ""

    def _where_keys_go(self, serial: str) -> str:
        return ("payment.options.public_key_file" if serial.upper().startswith(PUBLIC_KEY_PREFIX)
                else "payment.options.platform_cert_files")

    def refused(self, status: int, data: Mapping[str, Any], text: str = "",
                note: str = "") -> ProviderRefused:
        """WeChat Pay's refusal as ``ProviderRefused``: its ``code``, its ``message``, the
        setting to check (``refusal_setting``), ``maybe_done`` for 429 and 5xx (the request
        may have been accepted before the error: WeChat's guide says retry with the same
        parameters) and not for other 4xx (refused before acting)."""
        code = str(data.get("code") or "")
        message = scrub(str(data.get("message") or text[:200]).strip())
        return ProviderRefused(
            f"WeChat Pay refused: HTTP {status} {code or '(no code)'}: {message}"
            + (f" ({note})" if note else ""),
            maybe_done=status >= 500 or status == 429, code=code,
            setting=refusal_setting(status, code, message))

    def _call(self, method: str, url_path: str, payload: dict[str, Any] | None = None
              ) -> tuple[int, dict[str, Any]]:
        """One signed request; the status and the JSON object of a verified reply.

        Raises PaymentError for a transport failure or a 2xx reply that does not verify
        (a forgery, or a key the kiosk does not hold: ``setting`` says where keys go), and
        ProviderRefused for an error reply (4xx/5xx) that does not verify: WeChat leaves
        401, 429 and 5xx bodies unsigned. A verified error reply is returned, for the
        caller to read its ``code``.
        """
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False) \
            if payload is not None else ""
        headers = {"Authorization": self._authorization(method, url_path, body),
                   "Accept": "application/json", "Content-Type": "application/json"}
        if self.platform_keys.public_key_id:
            # Public-key mode: as the wechatpayv3 SDK (core.py, Core.request) does on every
            # request. WeChat signs the reply with the key this names during a switch-over.
            headers["Wechatpay-Serial"] = self.platform_keys.public_key_id
        try:
            response = self.http.request(method, self.base_url + url_path,
                                         data=body.encode() or None, headers=headers,
                                         timeout=self.timeout)
        except requests.ConnectionError as exc:
            refused = "refused" in str(exc).lower()
            raise PaymentError(f"WeChat Pay unreachable: {exc}", maybe_done=not refused) \
                from None
        except requests.RequestException as exc:
            raise PaymentError(f"WeChat Pay did not answer: {exc}", maybe_done=True) from None
        status = response.status_code
        problem = self._unverified(response.headers, response.content)
        try:
            parsed = response.json() if response.content else {}
        except (ValueError, TypeError):
            parsed = None
        data: dict[str, Any] = dict(parsed) if isinstance(parsed, dict) else {}
        if 200 <= status < 300:
            if problem:
                serial = {k.lower(): v for k, v in response.headers.items()}.get(
                    "wechatpay-serial", "")
                raise PaymentError(
                    f"WeChat Pay reply failed signature verification ({problem}): "
                    "not believed", maybe_done=True,
                    setting=self._where_keys_go(serial) if "does not hold" in problem else "")
            if response.content and not isinstance(parsed, dict):
                raise PaymentError("WeChat Pay reply is not a JSON object", maybe_done=True)
            return status, data
        if problem:
            raise self.refused(status, data, response.text,
                               "unsigned, as WeChat Pay leaves its error replies"
                               if problem == "unsigned" else f"unverified: {problem}")
        return status, data

    # -- the port ----------------------------------------------------------------------------
    def create(self, order: OrderRequest) -> str:
        if order.currency != "CNY":
            raise PaymentError("WeChat Pay Native takes CNY only", maybe_done=False)
        status, data = self._call("POST", "/v3/pay/transactions/native", {
            "appid": self.appid, "mchid": self.mchid, "description": order.description[:127],
            "out_trade_no": order.out_trade_no,
            "time_expire": order.expires_at.isoformat(timespec="seconds"),
            "notify_url": self.notify_url,
            "amount": {"total": order.amount_minor, "currency": "CNY"}})
        if status != 200:
            raise self.refused(status, data)
        if not data.get("code_url"):
            raise PaymentError("WeChat Pay create answered without a code_url", maybe_done=True)
        return str(data["code_url"])

    def _view(self, data: Mapping[str, Any]) -> ProviderView:
        state = str(data.get("trade_state", ""))
        if state not in TRADE_STATES:
            raise PaymentError(f"unexpected trade_state {state!r}", maybe_done=True)
        amount = data.get("amount") or {}
        # total is what the order cost; payer_total is what the shopper's own money paid,
        # less any coupon: the kiosk compares the order's amount.
        paid = amount.get("total") if state in ("SUCCESS", "REFUND") else None
        try:
            paid_minor = int(paid) if paid is not None else None
        except (TypeError, ValueError):
            raise PaymentError(f"unreadable amount {paid!r}", maybe_done=True) from None
        return ProviderView(TRADE_STATES[state], paid_minor,
                            str(data.get("transaction_id") or ""))

    def query(self, out_trade_no: str) -> ProviderView:
        status, data = self._call(
            "GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={self.mchid}")
        if status == 404 or data.get("code") == "ORDER_NOT_EXIST":
            return ProviderView(ProviderStatus.NOT_FOUND)
        if status != 200:
            raise self.refused(status, data)
        return self._view(data)

    def close(self, out_trade_no: str) -> ProviderView | None:
        status, data = self._call(
            "POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            {"mchid": self.mchid})
        if status == 204:
            return None
        if data.get("code") == "ORDERPAID":
            return self.query(out_trade_no)
        if status == 404 or data.get("code") == "ORDER_NOT_EXIST":
            return None
        raise self.refused(status, data)

    # -- payment codes -----------------------------------------------------------------------
    def charge_code(self, charge: CodeCharge) -> ProviderView:
        """``POST /v3/pay/transactions/codepay`` (pay.weixin.qq.com/doc/v3/merchant/
        4012382150), once per out_trade_no. Returns PAID (trade_state SUCCESS), PAYING
        (``USERPAYING``, as a 202 or an error code, or trade_state USERPAYING: the shopper
        is asked for a password), DECLINED with ``decline`` (``CODE_DECLINES``). Raises
        ``PaymentError`` maybe_done for SYSTEMERROR/BANKERROR, 429/5xx, a timeout or a lost
        or unverified reply (query, never charge again), and ``ProviderRefused`` not
        maybe_done for a request WeChat refused (PARAM_ERROR, a key, the merchant id).
        The code is revealed only into the request body, which is never logged; WeChat's
        messages are kept with long digit runs scrubbed (``scrub``)."""
        if charge.currency != "CNY":
            raise ProviderRefused("WeChat Pay takes CNY only", maybe_done=False)
        payload = {
            "appid": self.appid, "mchid": self.mchid, "description": charge.description[:127],
            "out_trade_no": charge.out_trade_no,
            "amount": {"total": charge.amount_minor, "currency": "CNY"},
            "payer": {"auth_code": charge.code.reveal()},
            "scene_info": {"store_info": {"out_id": self.store_id}}}
        try:
            status, data = self._call("POST", "/v3/pay/transactions/codepay", payload)
        except ProviderRefused as exc:
            # An unsigned error reply: WeChat's own refusal, read by its code as below (a
            # decline is still queried and reversed by the desk, so a forged one costs no
            # money); anything else stays what _call made of it.
            status, data = 0, {"code": exc.code, "message": str(exc)}
            if exc.code not in CODE_DECLINES and exc.code != "USERPAYING":
                raise
        finally:
            del payload  # the only copy of the code this adapter made
        code = str(data.get("code") or "")
        if status == 200:
            return self._view(data)
        if status == 202 or code == "USERPAYING":
            return ProviderView(ProviderStatus.PAYING)
        if code in CODE_DECLINES:
            decline = CODE_DECLINES[code]
            if CODE_USED_TEXT in str(data.get("message", "")):
                decline = "code_used"
            return ProviderView(ProviderStatus.DECLINED, decline=decline)
        if code in ("ORDERPAID", "OUT_TRADE_NO_USED"):
            # Charged under this id already (the desk never sends twice; a second process
            # might): what that charge became, never a second one.
            return self.query(charge.out_trade_no)
        if code in CODE_UNKNOWN:
            raise PaymentError(f"WeChat Pay charge outcome unknown: {code}: "
                               f"{scrub(str(data.get('message', '')))}", maybe_done=True,
                               code=code)
        raise self.refused(status, data)

    def reverse(self, out_trade_no: str) -> ProviderView | None:
        """``POST /v3/pay/transactions/out-trade-no/{no}/reverse`` with appid and mchid
        (as wechatpayv3 ``codepay_reverse``): revokes an unpaid charge, refunds a paid one.
        Returns None when done (the desk's query confirms REVOKED or REFUND) or when WeChat
        has no such order (nothing was charged). Raises ``PaymentError`` to be asked again:
        ``USERPAYING`` (the shopper is mid-password), SYSTEMERROR/BANKERROR, 429/5xx, a lost
        reply (WeChat's guide: "撤销无返回或错误时，请再次调用")."""
        try:
            status, data = self._call(
                "POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/reverse",
                {"appid": self.appid, "mchid": self.mchid})
        except ProviderRefused as exc:
            raise PaymentError(f"WeChat Pay reverse not done, ask again: {exc}",
                               maybe_done=True, code=exc.code, setting=exc.setting) from None
        code = str(data.get("code") or "")
        if 200 <= status < 300:
            return None
        if status == 404 or code == "ORDER_NOT_EXIST":
            return None
        if code == "USERPAYING":
            raise PaymentError("WeChat Pay refused the reverse: the shopper is entering a "
                               "password; ask again when the charge ends", maybe_done=True,
                               code=code)
        if code == "ORDER_REVERSED" or code == "ORDERREVERSED":
            return None  # reversed before: done
        raise PaymentError(f"WeChat Pay reverse not done, ask again: HTTP {status} {code}: "
                           f"{scrub(str(data.get('message', '')))}", maybe_done=True, code=code)

    def refund(self, out_trade_no: str, refund_no: str, amount_minor: int, total_minor: int,
               reason: str) -> str:
        status, data = self._call("POST", "/v3/refund/domestic/refunds", {
            "out_trade_no": out_trade_no, "out_refund_no": refund_no, "reason": reason[:80],
            "amount": {"refund": amount_minor, "total": total_minor, "currency": "CNY"}})
        if status != 200:
            raise self.refused(status, data)
        return str(data.get("refund_id", ""))

    def check_credentials(self) -> CredentialCheck:
        """A query for an order that cannot exist, signed as every request: see
        ``devices.payment.probe_credentials`` (for ``kiosk doctor``)."""
        from devices.payment import probe_credentials

        return probe_credentials(self.query, self.http, "WeChat Pay")

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        problem = self._unverified(headers, body)
        if problem:
            raise InvalidNotification(f"not verified: {problem}")
        try:
            data = json.loads(body)
            resource = data["resource"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise InvalidNotification("unknown encryption")
            plain = AESGCM(self.apiv3_key).decrypt(
                resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
                str(resource.get("associated_data", "")).encode())
            transaction = json.loads(plain)
            return Notification(str(data["id"]), str(transaction["out_trade_no"]),
                                self._view(transaction))
        except InvalidNotification:
            raise
        except Exception:  # noqa: BLE001 - any decode failure means "not a notification we trust"
            raise InvalidNotification("malformed or undecryptable notification") from None
