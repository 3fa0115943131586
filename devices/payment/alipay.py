"""Alipay face-to-face ``precreate``: a QR (``qr_code``) the shopper scans with Alipay.

As Alipay's open API documents it:

- every call is a form POST to the gateway (``alipay.trade.precreate``,
  ``.query``, ``.cancel``, ``.refund``) with ``biz_content`` JSON, signed RSA2
  (SHA256 with RSA over the parameters sorted by name, ``k=v`` joined by
  ``&``, without ``sign``) with the app's private key;
- every reply is verified with Alipay's public key over the exact text of its
  ``*_response`` object; notifications over their sorted parameters without
  ``sign`` and ``sign_type``;
- Alipay leaves some refusals unsigned: the gateway's own (``40001`` missing
  parameter, ``40002`` invalid parameter such as ``isv.invalid-signature`` or
  ``isv.invalid-app-id``, ``20001`` authorisation, ``20000`` service unavailable),
  where it did not get as far as knowing which key to sign with. python-alipay-sdk
  reads any reply without ``sign`` (or with an ``error_response``) as an error
  carrying its ``code`` (``AliPayException``), not as a forgery. The adapter does
  the same: an unsigned reply whose ``code`` is not ``10000`` is a
  ``ProviderRefused`` with Alipay's code, sub_code and sub_msg and the setting to
  check (see ``REFUSALS``); it is never read as "paid" or "not paid". An unsigned
  *success* (``10000``), and a signed reply that fails verification, are not
  believed (``PaymentError``, maybe done);
- amounts are yuan with two decimals ("62.13"); CNY only.

Note that a precreated trade does not exist at Alipay until the shopper
scans the QR: until then a query answers ``ACQ.TRADE_NOT_EXIST``, which the
adapter reports as "not found" and the kiosk treats as still open. To give up,
the kiosk uses ``alipay.trade.cancel``, which closes a trade not yet paid and
*refunds* one that was (``action=refund``): the kiosk then records the payment
as cancelled with a refund, and staff are told.

Payment codes (付款码, customer-presented; issue 18): ``charge_code`` is
``alipay.trade.pay`` with ``scene=bar_code`` and ``auth_code``
(https://opendocs.alipay.com/open/02ekfp): ``10000`` is paid; ``10003`` (or
``WAIT_BUYER_PAY``) means the shopper is asked for a password: query until a final
state; ``40004`` with a sub_code is a decline (``CODE_DECLINES``); ``20000``,
``ACQ.SYSTEM_ERROR`` or no answer is unknown: query, never pay again. ``reverse`` is
``alipay.trade.cancel``: ``action`` ``close`` (unpaid, closed) or ``refund`` (paid,
money back); ``retry_flag=Y`` means ask again (Alipay: "retry_flag 为 Y 时需要重试").

Options (``payment.options``): ``app_id``, ``app_private_key_file``,
``alipay_public_key_file``, ``notify_url``, ``base_url`` (default the real
gateway; tests point it at ``kiosk sim pay``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from app.domain.payment import PaymentError, ProviderRefused, ProviderStatus, ProviderView
from app.services.payment_port import (
    CodeCharge,
    CredentialCheck,
    InvalidNotification,
    Notification,
    OrderRequest,
)
from devices.payment.wechatpay import (
    load_private_key,
    load_public_key,
    rsa_sign,
    rsa_verify,
    scrub,
)

GATEWAY = "https://openapi.alipay.com/gateway.do"
CHINA = timezone(timedelta(hours=8))  # Alipay's timestamps are Beijing time
NOTIFY_WINDOW_S = 25 * 3600
TRADE_STATES = {"WAIT_BUYER_PAY": ProviderStatus.WAITING, "TRADE_SUCCESS": ProviderStatus.PAID,
                "TRADE_FINISHED": ProviderStatus.PAID, "TRADE_CLOSED": ProviderStatus.CLOSED}


# What each of Alipay's public error codes means for the kiosk: (may the refused call
# have taken effect?, the setting to check). Source: Alipay open platform, "公共错误码"
# (https://opendocs.alipay.com/common/02km9f): 20000 service unavailable (isp.unknow-error,
# aop.unknow-error: retry), 20001 insufficient authorisation (aop.invalid-auth-token, ...),
# 40001 missing required parameter (isv.missing-*), 40002 invalid parameter (isv.invalid-*),
# 40004 business failure (ACQ.*, per API), 40006 insufficient permissions
# (isv.insufficient-isv-permissions: the app has not signed the product).
CODES: dict[str, tuple[bool, str]] = {
    "20000": (True, ""),
    "20001": (False, "payment.options.app_id"),
    "40001": (False, ""),
    "40002": (False, ""),
    "40004": (False, ""),
    "40006": (False, "payment.options.app_id"),
}
# sub_codes that name a kiosk setting (same source; isv.invalid-signature: Alipay checked
# the request with the app public key uploaded for app_id, and it is not the pair of
# payment.options.app_private_key_file; isv.missing-signature-config: no app public key
# (for RSA2) is uploaded for this app_id at all).
SUB_CODES: dict[str, tuple[bool, str]] = {
    "isv.invalid-signature": (False, "payment.options.app_private_key_file"),
    "isv.missing-signature-config": (False, "payment.options.app_private_key_file"),
    "isv.invalid-signature-type": (False, "payment.options.app_private_key_file"),
    "isv.invalid-app-id": (False, "payment.options.app_id"),
    "isv.missing-app-id": (False, "payment.options.app_id"),
    "isv.invalid-timestamp": (False, "the kiosk's clock (Beijing time is sent)"),
    "ACQ.SYSTEM_ERROR": (True, ""),  # "系统异常": retry; the call may have been done
}
PUBLIC_KEY_SETTING = "payment.options.alipay_public_key_file"
# alipay.trade.pay's business failures (40004 sub_codes, https://opendocs.alipay.com/open/
# 02ekfp, 业务错误码) that are the shopper's wallet declining at once, as the kiosk's decline
# reasons (app.domain.payment_code.DECLINES). ACQ.PAYMENT_AUTH_CODE_INVALID is Alipay's one
# answer for a code it cannot use (expired, used, not a code: "请顾客刷新付款码后重新收款"),
# so the kiosk cannot tell those apart: "code_invalid" (the shopper refreshes the code).
CODE_DECLINES = {
    "ACQ.PAYMENT_AUTH_CODE_INVALID": "code_invalid",
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": "insufficient_funds",
    "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH": "insufficient_funds",
    "ACQ.PAYMENT_FAIL": "declined", "ACQ.BUYER_SELLER_EQUAL": "declined",
    "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT": "declined",
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR": "declined",
    "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR": "declined",
    "ACQ.PAYMENT_REQUEST_HAS_RISK": "declined", "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE": "declined",
    "ACQ.USER_FACE_PAYMENT_SWITCH_OFF": "declined", "ACQ.TRADE_HAS_CLOSE": "declined",
}


def refused(action: str, node: Mapping[str, Any], *, signed: bool) -> ProviderRefused:
    """Alipay's refusal ``node`` (a ``*_response`` object whose ``code`` is not ``10000``)
    as a ``ProviderRefused``: its message names code, msg, sub_code and sub_msg;
    ``code`` is the sub_code (or the code when there is none); ``setting`` and
    ``maybe_done`` come from ``SUB_CODES``, else ``CODES``; an unknown code may have
    been done (the kiosk asks again). ``signed`` only says so in the message."""
    code, sub = str(node.get("code", "")), str(node.get("sub_code", ""))
    maybe_done, setting = SUB_CODES.get(sub) or CODES.get(code) or (True, "")
    message = (f"Alipay {action} refused ({'signed' if signed else 'unsigned'}): "
               f"{code} {scrub(str(node.get('msg', '')))}")
    if sub:
        message += f"; {sub}: {scrub(str(node.get('sub_msg', '')))}"
    if setting:
        message += f" (check {setting})"
    return ProviderRefused(message, maybe_done=maybe_done, code=sub or code, setting=setting)


def yuan(minor: int) -> str:
    """Fen as Alipay writes amounts: yuan with exactly two decimals."""
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def fen(text: str) -> int:
    whole, _, frac = text.strip().partition(".")
    if not whole.lstrip("-").isdigit() or (frac and not frac.isdigit()) or len(frac) > 2:
        raise ValueError(f"not a yuan amount: {text!r}")
    value = int(whole.lstrip("-")) * 100 + int((frac + "00")[:2])
    return -value if whole.startswith("-") else value


def sign_params(params: Mapping[str, str]) -> str:
    """The string Alipay signs: parameters sorted by name, empty ones left out."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items())
                    if k != "sign" and v not in ("", None))


class AlipayAdapter:
    name = "alipay"
    code_wallets = frozenset({"alipay"})
    aggregated_qr = False  # its QR is this wallet's own: only its app scans it

    def __init__(self, *, app_id: str, app_key: rsa.RSAPrivateKey,
                 alipay_key: rsa.RSAPublicKey, notify_url: str = "", base_url: str = GATEWAY,
                 connect_timeout: float = 3.0, read_timeout: float = 10.0) -> None:
        self.app_id, self.app_key, self.alipay_key = app_id, app_key, alipay_key
        self.notify_url, self.base_url = notify_url, base_url
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()

    @classmethod
    def from_options(cls, o: Mapping[str, Any], kiosk_id: str) -> AlipayAdapter:
        for needed in ("app_id", "app_private_key_file", "alipay_public_key_file"):
            if not o.get(needed):
                raise ValueError(f"payment.options.{needed} is required for alipay")
        return cls(app_id=str(o["app_id"]),
                   app_key=load_private_key(str(o["app_private_key_file"]),
                                            "app_private_key_file"),
                   alipay_key=load_public_key(str(o["alipay_public_key_file"]),
                                              "alipay_public_key_file"),
                   notify_url=str(o.get("notify_url", "")),
                   base_url=str(o.get("base_url", GATEWAY)),
                   connect_timeout=float(o.get("connect_timeout_s", 3.0)),
                   read_timeout=float(o.get("read_timeout_s", 10.0)))

    def _call(self, method: str, biz: dict[str, Any]) -> dict[str, Any]:
        params = {"app_id": self.app_id, "method": method, "format": "JSON",
                  "charset": "utf-8", "sign_type": "RSA2", "version": "1.0",
                  "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(
                      time.time() + 8 * 3600)),
                  "biz_content": json.dumps(biz, separators=(",", ":"), ensure_ascii=False)}
        if self.notify_url:
            params["notify_url"] = self.notify_url
        params["sign"] = rsa_sign(self.app_key, sign_params(params).encode())
        try:
            response = self.http.post(self.base_url, data=params, timeout=self.timeout)
        except requests.ConnectionError as exc:
            refused = "refused" in str(exc).lower()
            raise PaymentError(f"Alipay unreachable: {exc}", maybe_done=not refused) from None
        except requests.RequestException as exc:
            raise PaymentError(f"Alipay did not answer: {exc}", maybe_done=True) from None
        return self._verified_node(method, response.content.decode("utf-8", "replace"))

    def _verified_node(self, method: str, text: str) -> dict[str, Any]:
        """The ``*_response`` object of a reply whose ``sign`` verifies (any code).

        Raises ``ProviderRefused`` for an unsigned refusal (no ``sign``, or an empty one,
        and a ``code`` other than ``10000``, under ``<method>_response`` or Alipay's
        ``error_response``), and ``PaymentError`` (maybe done) for anything not believed:
        not JSON, no response object, an unsigned success, a signature that fails."""
        try:
            reply = json.loads(text)
        except ValueError:
            raise PaymentError("Alipay reply is not the JSON it should be", maybe_done=True) \
                from None
        name = method.replace(".", "_") + "_response"
        if not isinstance(reply, dict) or not isinstance(
                reply.get(name, reply.get("error_response")), dict):
            raise PaymentError(f"Alipay reply has no {name}", maybe_done=True)
        if name not in reply:
            name = "error_response"  # the gateway's own refusals (python-alipay-sdk reads it)
        signature = reply.get("sign")
        if not signature or name == "error_response":
            node = reply[name]
            if str(node.get("code", "")) not in ("", "10000"):
                raise refused(method.rsplit(".", 1)[-1], node, signed=False)
            raise PaymentError("Alipay reply is unsigned and not a refusal: not believed",
                               maybe_done=True)
        # The signed text is the object exactly as sent, so it is cut from the reply.
        key = f'"{name}":'
        start = text.find(key) + len(key)
        while text[start:start + 1].isspace():
            start += 1
        try:
            node, end = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            raise PaymentError("Alipay reply is not the JSON it should be", maybe_done=True) \
                from None
        if not isinstance(signature, str) or not rsa_verify(
                self.alipay_key, text[start:end].encode(), signature):
            raise PaymentError("Alipay reply failed signature verification: not believed "
                               f"(check {PUBLIC_KEY_SETTING})", maybe_done=True,
                               setting=PUBLIC_KEY_SETTING)
        return dict(node)

    @staticmethod
    def _ok(node: Mapping[str, Any]) -> bool:
        return node.get("code") == "10000"

    def create(self, order: OrderRequest) -> str:
        if order.currency != "CNY":
            raise PaymentError("Alipay takes CNY only", maybe_done=False)
        node = self._call("alipay.trade.precreate", {
            "out_trade_no": order.out_trade_no, "total_amount": yuan(order.amount_minor),
            "subject": order.description[:256],
            "time_expire": order.expires_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")})
        if not self._ok(node):
            raise refused("precreate", node, signed=True)
        if not node.get("qr_code"):
            raise PaymentError(f"Alipay precreate answered without a qr_code: {node}",
                               maybe_done=False)
        return str(node["qr_code"])

    def _view(self, data: Mapping[str, Any]) -> ProviderView:
        status = TRADE_STATES.get(str(data.get("trade_status", "")))
        if status is None:
            raise PaymentError(f"unexpected trade_status in {dict(data)!r}")
        # total_amount is what the order cost; buyer_pay_amount is what the shopper's own
        # money paid, less any Alipay coupon: the kiosk compares the order's amount.
        paid = data.get("total_amount") or data.get("buyer_pay_amount")
        try:
            paid_minor = fen(str(paid)) if status is ProviderStatus.PAID and paid else None
        except ValueError:
            raise PaymentError(f"unreadable amount {paid!r}", maybe_done=True) from None
        return ProviderView(status, paid_minor, str(data.get("trade_no") or ""))

    def query(self, out_trade_no: str) -> ProviderView:
        node = self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        if node.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return ProviderView(ProviderStatus.NOT_FOUND)  # not scanned yet
        if not self._ok(node):
            raise refused("query", node, signed=True)
        return self._view(node)

    def close(self, out_trade_no: str) -> ProviderView | None:
        node = self._call("alipay.trade.cancel", {"out_trade_no": out_trade_no})
        if not self._ok(node):
            raise refused("cancel", node, signed=True)
        if node.get("action") == "refund":
            return ProviderView(ProviderStatus.REFUNDED)
        if node.get("retry_flag") == "Y":
            raise PaymentError("Alipay asks for the cancel to be retried", maybe_done=True)
        # Cancelled: a trade not yet paid is closed, and one not yet created (the QR
        # never scanned) can no longer be created. That is Alipay's confirmation.
        return ProviderView(ProviderStatus.CLOSED)

    # -- payment codes -----------------------------------------------------------------------
    def charge_code(self, charge: CodeCharge) -> ProviderView:
        """``alipay.trade.pay`` with ``scene=bar_code`` (https://opendocs.alipay.com/open/
        02ekfp), once per out_trade_no. ``10000``: PAID (trade_status TRADE_SUCCESS, or no
        status: Alipay's 10000 to trade.pay is the payment); ``10003``: PAYING (the shopper
        confirms on the phone); ``40004`` with a ``CODE_DECLINES`` sub_code: DECLINED with
        the reason; ``ACQ.TRADE_HAS_SUCCESS``: this out_trade_no is paid, as a query says.
        Raises ``PaymentError`` maybe_done for 20000, ACQ.SYSTEM_ERROR, a timeout or a
        reply not believed (query, never pay again), ``ProviderRefused`` not maybe_done for
        a request Alipay refused (40001/40002, ACQ.INVALID_PARAMETER, a key). The code is
        revealed only into the signed form; sub_msg texts are kept scrubbed of digits."""
        if charge.currency != "CNY":
            raise ProviderRefused("Alipay takes CNY only", maybe_done=False)
        biz = {"out_trade_no": charge.out_trade_no, "scene": "bar_code",
               "auth_code": charge.code.reveal(), "subject": charge.description[:256],
               "total_amount": yuan(charge.amount_minor)}
        try:
            node = self._call("alipay.trade.pay", biz)
        finally:
            del biz  # the only copy of the code this adapter made
        code, sub = str(node.get("code", "")), str(node.get("sub_code", ""))
        if code == "10000":
            status = str(node.get("trade_status") or "TRADE_SUCCESS")
            if status == "WAIT_BUYER_PAY":
                return ProviderView(ProviderStatus.PAYING, None, str(node.get("trade_no") or ""))
            return self._view(node | {"trade_status": status})
        if code == "10003":
            return ProviderView(ProviderStatus.PAYING, None, str(node.get("trade_no") or ""))
        if code == "40004" and sub in CODE_DECLINES:
            return ProviderView(ProviderStatus.DECLINED, decline=CODE_DECLINES[sub])
        if sub == "ACQ.TRADE_HAS_SUCCESS":
            return self.query(charge.out_trade_no)
        raise refused("pay", node, signed=True)

    def reverse(self, out_trade_no: str) -> ProviderView | None:
        """``alipay.trade.cancel`` (https://opendocs.alipay.com/open/02ekfi): ``retry_flag``
        ``Y`` raises ``PaymentError`` (ask again: the shopper may be mid-password);
        ``action`` ``refund`` returns REFUNDED (it was paid; the money goes back);
        ``close`` (or none) returns CLOSED. A refusal raises (ask again)."""
        node = self._call("alipay.trade.cancel", {"out_trade_no": out_trade_no})
        if node.get("retry_flag") == "Y":
            raise PaymentError("Alipay asks for the cancel to be retried (the charge has "
                               "not ended)", maybe_done=True, code=str(node.get("sub_code", "")))
        if node.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return None  # nothing was charged under this id: the desk's query confirms
        if not self._ok(node):
            raise refused("cancel", node, signed=True)
        if node.get("action") == "refund":
            return ProviderView(ProviderStatus.REFUNDED)
        return ProviderView(ProviderStatus.CLOSED)

    def refund(self, out_trade_no: str, refund_no: str, amount_minor: int, total_minor: int,
               reason: str) -> str:
        node = self._call("alipay.trade.refund", {
            "out_trade_no": out_trade_no, "refund_amount": yuan(amount_minor),
            "out_request_no": refund_no, "refund_reason": reason[:256]})
        if not self._ok(node):
            raise refused("refund", node, signed=True)
        return str(node.get("trade_no", "")) + ":" + refund_no

    def check_credentials(self) -> CredentialCheck:
        """A query for an order that cannot exist, signed as every request: see
        ``devices.payment.probe_credentials`` (for ``kiosk doctor``)."""
        from devices.payment import probe_credentials

        return probe_credentials(self.query, self.http, "Alipay")

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                    strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise InvalidNotification("malformed notification") from None
        signature = params.pop("sign", "")
        params.pop("sign_type", None)
        if params.get("app_id") != self.app_id or not rsa_verify(
                self.alipay_key, sign_params(params).encode(), signature):
            raise InvalidNotification("bad signature or another app's notification")
        try:
            sent = datetime.strptime(params["notify_time"], "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=CHINA)
        except (KeyError, ValueError):
            raise InvalidNotification("notification without a readable notify_time") from None
        # Alipay retries a notification for about 25 hours; older ones are not taken.
        if abs((datetime.now(CHINA) - sent).total_seconds()) > NOTIFY_WINDOW_S:
            raise InvalidNotification("notification outside the accepted time window")
        try:
            return Notification(params["notify_id"], params["out_trade_no"], self._view(params))
        except (KeyError, PaymentError, ValueError):
            raise InvalidNotification("malformed notification") from None
