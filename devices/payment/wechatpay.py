"""WeChat Pay APIv3 Native: a QR (``code_url``) the shopper scans with WeChat.

What the adapter does, as WeChat Pay's APIv3 documents it:

- create ``POST /v3/pay/transactions/native`` (amount in integer fen,
  ``time_expire`` RFC 3339); query ``GET /v3/pay/transactions/out-trade-no/{no}``;
  close ``POST .../out-trade-no/{no}/close``; refund ``POST /v3/refund/domestic/refunds``;
- every request signed ``WECHATPAY2-SHA256-RSA2048`` (SHA256 with RSA over
  ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` with the merchant key);
- every response and notification verified with the platform public key over
  ``TIMESTAMP\\nNONCE\\nBODY\\n``, with a 5-minute timestamp window; a reply
  that fails is not believed;
- notifications decrypted with the APIv3 key (AEAD_AES_256_GCM).

Options (``payment.options``): ``mchid``, ``appid``, ``private_key_file``
(merchant key, PEM), ``serial_no`` (the merchant certificate's serial),
``platform_public_key_file``, ``platform_serial``, ``apiv3_key_file`` (32
bytes), ``notify_url``, ``base_url`` (default the real API; tests point it at
``kiosk sim pay``). With the store-gateway adapter none of these keys need
to be on the kiosk: the recommended setup.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.domain.payment import PaymentError, ProviderStatus, ProviderView
from app.services.payment_port import InvalidNotification, Notification, OrderRequest

API = "https://api.mch.weixin.qq.com"
WINDOW_S = 300
TRADE_STATES = {
    "SUCCESS": ProviderStatus.PAID, "REFUND": ProviderStatus.PAID,  # paid, then refunds began
    "NOTPAY": ProviderStatus.WAITING, "USERPAYING": ProviderStatus.PAYING,
    "CLOSED": ProviderStatus.CLOSED, "REVOKED": ProviderStatus.CLOSED,
    "PAYERROR": ProviderStatus.DECLINED,
}


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def load_private_key(path: str, setting: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"payment.options.{setting}: cannot read an RSA key from {path!r}: "
                         f"{exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"payment.options.{setting}: {path!r} is not an RSA private key")
    return key


def load_public_key(path: str, setting: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"payment.options.{setting}: cannot read a public key from {path!r}: "
                         f"{exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"payment.options.{setting}: {path!r} is not an RSA public key")
    return key


class WeChatPayAdapter:
    name = "wechatpay"

    def __init__(self, *, mchid: str, appid: str, private_key: rsa.RSAPrivateKey,
                 serial_no: str, platform_key: rsa.RSAPublicKey, platform_serial: str,
                 apiv3_key: bytes, notify_url: str, base_url: str = API,
                 connect_timeout: float = 3.0, read_timeout: float = 10.0) -> None:
        if len(apiv3_key) != 32:
            raise ValueError("payment.options.apiv3_key_file must hold the 32-byte APIv3 key")
        self.mchid, self.appid = mchid, appid
        self.key, self.serial_no = private_key, serial_no
        self.platform_key, self.platform_serial = platform_key, platform_serial
        self.apiv3_key, self.notify_url = apiv3_key, notify_url
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()

    @classmethod
    def from_options(cls, o: Mapping[str, Any], kiosk_id: str) -> WeChatPayAdapter:
        for needed in ("mchid", "appid", "private_key_file", "serial_no",
                       "platform_public_key_file", "platform_serial", "apiv3_key_file"):
            if not o.get(needed):
                raise ValueError(f"payment.options.{needed} is required for wechatpay")
        try:
            apiv3 = Path(str(o["apiv3_key_file"])).read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"payment.options.apiv3_key_file: {exc}") from None
        return cls(mchid=str(o["mchid"]), appid=str(o["appid"]),
                   private_key=load_private_key(str(o["private_key_file"]), "private_key_file"),
                   serial_no=str(o["serial_no"]),
                   platform_key=load_public_key(str(o["platform_public_key_file"]),
                                            "platform_public_key_file"),
                   platform_serial=str(o["platform_serial"]), apiv3_key=apiv3,
                   notify_url=str(o.get("notify_url", "https://kiosk.invalid/notify")),
                   base_url=str(o.get("base_url", API)),
                   connect_timeout=float(o.get("connect_timeout_s", 3.0)),
                   read_timeout=float(o.get("read_timeout_s", 10.0)))

    # -- transport ---------------------------------------------------------------------------
    def _authorization(self, method: str, url_path: str, body: str) -> str:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{method}\n{url_path}\n{timestamp}\n{nonce}\n{body}\n".encode()
        return (f'WECHATPAY2-SHA256-RSA2048 mchid="{self.mchid}",nonce_str="{nonce}",'
                f'signature="{rsa_sign(self.key, message)}",timestamp="{timestamp}",'
                f'serial_no="{self.serial_no}"')

    def _verified(self, headers: Mapping[str, str], body: bytes) -> bool:
        lower = {k.lower(): v for k, v in headers.items()}
        timestamp = lower.get("wechatpay-timestamp", "")
        nonce = lower.get("wechatpay-nonce", "")
        signature = lower.get("wechatpay-signature", "")
        serial = lower.get("wechatpay-serial", "")
        if serial != self.platform_serial or not timestamp.isdigit():
            return False
        if abs(time.time() - int(timestamp)) > WINDOW_S:
            return False
        return rsa_verify(self.platform_key, f"{timestamp}\n{nonce}\n".encode() + body + b"\n",
                          signature)

    def _call(self, method: str, url_path: str, payload: dict[str, Any] | None = None
              ) -> tuple[int, dict[str, Any]]:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False) \
            if payload is not None else ""
        headers = {"Authorization": self._authorization(method, url_path, body),
                   "Accept": "application/json", "Content-Type": "application/json"}
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
        if not self._verified(response.headers, response.content):
            raise PaymentError("WeChat Pay reply failed signature verification: not believed",
                               maybe_done=True)
        data: dict[str, Any] = {}
        if response.content:
            try:
                data = dict(response.json())
            except (ValueError, TypeError):
                raise PaymentError("WeChat Pay reply is not a JSON object", maybe_done=True) \
                    from None
        return response.status_code, data

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
        if status != 200 or not data.get("code_url"):
            raise PaymentError(f"WeChat Pay create failed: {status} {data.get('code')}",
                               maybe_done=status >= 500)
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
            raise PaymentError(f"WeChat Pay query failed: {status} {data.get('code')}")
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
        raise PaymentError(f"WeChat Pay close failed: {status} {data.get('code')}")

    def refund(self, out_trade_no: str, refund_no: str, amount_minor: int, total_minor: int,
               reason: str) -> str:
        status, data = self._call("POST", "/v3/refund/domestic/refunds", {
            "out_trade_no": out_trade_no, "out_refund_no": refund_no, "reason": reason[:80],
            "amount": {"refund": amount_minor, "total": total_minor, "currency": "CNY"}})
        if status != 200:
            raise PaymentError(f"WeChat Pay refund failed: {status} {data.get('code')}")
        return str(data.get("refund_id", ""))

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        if not self._verified(headers, body):
            raise InvalidNotification("bad signature, unknown platform serial or stale time")
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
