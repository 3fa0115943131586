"""The store-gateway adapter, and the simulator adapter that speaks the same contract.

The gateway contract (docs/payment-gateway.yaml) is a small REST API on the
store's own payment backend, which holds the merchant keys for WeChat Pay and
Alipay: the unattended kiosk then holds no merchant key at all, only a
per-kiosk secret the store can revoke. This is the recommended production
setup. Requests and responses are signed with HMAC-SHA256 over
``METHOD\\nPATH\\nTIMESTAMP\\nBODY``; a response or notification whose
signature or timestamp does not check out is not believed.

``kiosk sim pay`` implements this contract too, so the ``simulator`` adapter
is the gateway adapter pointed at it with the simulator's well-known secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import requests

from app.domain.payment import PaymentError, ProviderRefused, ProviderStatus, ProviderView
from app.domain.payment_code import DECLINES, DEFAULT_CODE_RANGES
from app.services.payment_port import (
    CodeCharge,
    CredentialCheck,
    InvalidNotification,
    Notification,
    OrderRequest,
)

SIMULATOR_URL = "http://127.0.0.1:8765"
SIMULATOR_SECRET = "simulator-secret-not-for-production"  # noqa: S105 - a public test value
TIMESTAMP_WINDOW_S = 300

# The setting an integrator changes for each refusal code the contract names
# (docs/payment-gateway.yaml, components/responses): a wrong secret, a clock off.
SETTING_FOR_CODE = {
    "SIGN_ERROR": "payment.options.secret",
    "TIMESTAMP_EXPIRED": "the kiosk's clock (NTP; more than 300 s off the gateway's)",
    "UNKNOWN_KIOSK": "kiosk.lane_id",
}


def sign(secret: str, method: str, path: str, timestamp: str, body: bytes) -> str:
    message = f"{method}\n{path}\n{timestamp}\n".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class EveryWallet(frozenset[str]):
    """``code_wallets`` of an adapter that takes every wallet's payment code: iterating
    gives the published wallets (wechat, alipay, unionpay), and ``in`` is true for any
    wallet name, so a store's own range (``payment.code_ranges``) reaches the gateway."""

    def __contains__(self, wallet: object) -> bool:
        return isinstance(wallet, str) and bool(wallet)


def _code_wallets(options: Mapping[str, Any]) -> frozenset[str]:
    """``payment.options.code_wallets`` (a list: only these wallets' codes go to the
    gateway), or every wallet when it is not set."""
    chosen = options.get("code_wallets")
    if chosen is None:
        return EveryWallet(r.wallet for r in DEFAULT_CODE_RANGES)
    if isinstance(chosen, str) or not all(isinstance(w, str) and w for w in chosen):
        raise ValueError("payment.options.code_wallets is a list of wallet names")
    return frozenset(chosen)


def _view(data: Mapping[str, Any]) -> ProviderView:
    try:
        status = ProviderStatus(data["status"])
    except (KeyError, ValueError):
        raise PaymentError(f"unexpected order status in {data!r}", maybe_done=True) from None
    try:
        paid = int(data["paid_minor"]) if data.get("paid_minor") is not None else None
    except (TypeError, ValueError):
        raise PaymentError(f"unreadable paid amount in {data!r}", maybe_done=True) from None
    decline = str(data.get("decline") or "")
    if decline and decline not in DECLINES:
        decline = "declined"  # a reason the kiosk has no words for: declined, as such
    return ProviderView(status, paid, str(data.get("provider_ref") or ""),
                        decline if status is ProviderStatus.DECLINED else "")


class GatewayAdapter:
    """HTTP client of the gateway contract."""

    name = "gateway"
    # The gateway's order QR is one aggregated code that WeChat Pay, Alipay and UnionPay
    # all scan (the store's gateway routes the wallet): payment.aggregated_qr may skip the
    # wallet choice (app.lane.paying.Paying._one_qr).
    aggregated_qr = True

    def __init__(self, base_url: str, kiosk_id: str, secret: str, *,
                 connect_timeout: float = 3.0, read_timeout: float = 10.0,
                 code_wallets: frozenset[str] | None = None) -> None:
        if not secret:
            raise ValueError("payment.options.secret is required for the gateway adapter")
        self.base_url = base_url.rstrip("/")
        self.kiosk_id, self.secret = kiosk_id, secret
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()
        # The store's gateway routes every wallet (WeChat Pay, Alipay, UnionPay, its own).
        self.code_wallets: frozenset[str] = code_wallets if code_wallets is not None \
            else _code_wallets({})

    @classmethod
    def from_options(cls, options: Mapping[str, Any], kiosk_id: str) -> GatewayAdapter:
        return cls(str(options.get("base_url", "")), kiosk_id, str(options.get("secret", "")),
                   connect_timeout=float(options.get("connect_timeout_s", 3.0)),
                   read_timeout=float(options.get("read_timeout_s", 10.0)),
                   code_wallets=_code_wallets(options))

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None,
              ok: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode() if payload is not None \
            else b""
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Kiosk-Id": self.kiosk_id,
            "X-Kiosk-Timestamp": timestamp,
            "X-Kiosk-Signature": sign(self.secret, method, path, timestamp, body),
        }
        try:
            response = self.http.request(method, self.base_url + path, data=body or None,
                                         headers=headers, timeout=self.timeout)
        except requests.ConnectionError as exc:
            # Refused before sending means nothing happened; anything later may have.
            refused = "refused" in str(exc).lower()
            raise PaymentError(f"gateway unreachable: {exc}", maybe_done=not refused) from None
        except requests.RequestException as exc:
            raise PaymentError(f"gateway did not answer: {exc}", maybe_done=True) from None
        if response.status_code not in ok:
            raise self._refusal(response, path)
        self._check_response(response, path)
        try:
            return dict(response.json())
        except (ValueError, TypeError):
            raise PaymentError("gateway reply is not a JSON object", maybe_done=True) from None

    def _refusal(self, response: requests.Response, path: str) -> ProviderRefused:
        """A status the call does not expect, as the gateway's refusal: its ``code`` and
        ``error`` (the contract's Error body) and the setting the code points to.

        Signed or not, a refusal is never read as an answer about the order: a gateway
        that does not know this kiosk's secret cannot sign for it (the contract allows an
        unsigned 4xx). 4xx: the gateway refused before acting (``maybe_done`` False);
        5xx and anything else: it may have acted (True), and the kiosk queries.
        """
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        data = data if isinstance(data, dict) else {}
        code = str(data.get("code") or f"HTTP_{status}")
        message = str(data.get("error") or response.text[:200] or response.reason or "")
        setting = SETTING_FOR_CODE.get(code, "payment.options.secret" if status == 401 else "")
        try:
            self._check_response(response, path)
            signed = ""
        except PaymentError:
            signed = " (unsigned for this kiosk's secret)"
        return ProviderRefused(f"gateway refused with {status}{signed}: {message}",
                               maybe_done=not 400 <= status < 500, code=code, setting=setting)

    def _check_response(self, response: requests.Response, path: str) -> None:
        timestamp = response.headers.get("X-Gateway-Timestamp", "")
        given = response.headers.get("X-Gateway-Signature", "")
        expected = sign(self.secret, "RESPONSE", path, timestamp, response.content)
        if not (given and hmac.compare_digest(given, expected)):
            raise PaymentError("gateway reply has a bad signature: not believed",
                               maybe_done=True)
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TIMESTAMP_WINDOW_S:
            raise PaymentError("gateway reply is stale: not believed", maybe_done=True)

    def create(self, order: OrderRequest) -> str:
        data = self._call("POST", "/v1/orders", {
            "out_trade_no": order.out_trade_no, "amount_minor": order.amount_minor,
            "currency": order.currency, "description": order.description,
            "expires_at": order.expires_at.isoformat()})
        qr = data.get("qr_payload")
        if not isinstance(qr, str) or not qr:
            raise PaymentError("gateway created no QR payload", maybe_done=True)
        return qr

    def query(self, out_trade_no: str) -> ProviderView:
        return _view(self._call("GET", f"/v1/orders/{out_trade_no}"))

    def close(self, out_trade_no: str) -> ProviderView | None:
        # 404: the gateway never had the order (the kiosk died before creating it).
        data = self._call("POST", f"/v1/orders/{out_trade_no}/close", {}, ok=(200, 404))
        view = _view(data if "status" in data else {"status": "not_found"})
        return view if view.status not in (ProviderStatus.CLOSED,
                                           ProviderStatus.NOT_FOUND) else None

    def charge_code(self, charge: CodeCharge) -> ProviderView:
        """``POST /v1/orders/{out_trade_no}/code-charge`` (docs/payment-gateway.yaml): PAID,
        PAYING (the shopper confirms on the phone: query until final), or DECLINED with
        ``decline``. Raises ``PaymentError`` (maybe_done True) for no answer or a 5xx:
        query, never charge again; ``ProviderRefused`` (maybe_done False) for a 4xx.
        The code is revealed only into the request body, which is never logged."""
        view = _view(self._call("POST", f"/v1/orders/{charge.out_trade_no}/code-charge", {
            "amount_minor": charge.amount_minor, "currency": charge.currency,
            "description": charge.description, "wallet": charge.code.wallet,
            "auth_code": charge.code.reveal()}, ok=(200,)))
        if view.status not in (ProviderStatus.PAID, ProviderStatus.PAYING,
                               ProviderStatus.DECLINED):
            # The contract answers a charge with paid, paying or declined; anything else
            # is not an answer the kiosk can act on: treat it as unknown and query.
            raise PaymentError(f"gateway answered a charge with {view.status.value}",
                               maybe_done=True)
        return view

    def reverse(self, out_trade_no: str) -> ProviderView | None:
        """``POST /v1/orders/{out_trade_no}/reverse``: None when closed (or never charged:
        404); the order when it says more (REFUNDED: it had been paid). Raises
        ``PaymentError`` (maybe_done True, code USERPAYING) while the shopper is entering
        the password: ask again a few seconds later."""
        try:
            data = self._call("POST", f"/v1/orders/{out_trade_no}/reverse", {}, ok=(200, 404))
        except ProviderRefused as exc:
            if exc.code == "USERPAYING":
                raise PaymentError(f"reverse not final yet: {exc}", maybe_done=True,
                                   code="USERPAYING") from None
            raise
        view = _view(data if "status" in data else {"status": "not_found"})
        return view if view.status not in (ProviderStatus.CLOSED,
                                           ProviderStatus.NOT_FOUND) else None

    def refund(self, out_trade_no: str, refund_no: str, amount_minor: int, total_minor: int,
               reason: str) -> str:
        data = self._call("POST", f"/v1/orders/{out_trade_no}/refunds", {
            "refund_no": refund_no, "amount_minor": amount_minor, "total_minor": total_minor,
            "reason": reason})
        return str(data.get("refund_id", ""))

    def check_credentials(self) -> CredentialCheck:
        """A query for an order that cannot exist, signed as every request: see
        ``devices.payment.probe_credentials`` (for ``kiosk doctor``)."""
        from devices.payment import probe_credentials

        return probe_credentials(self.query, self.http, self.name)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        lower = {k.lower(): v for k, v in headers.items()}
        timestamp = lower.get("x-gateway-timestamp", "")
        given = lower.get("x-gateway-signature", "")
        expected = sign(self.secret, "NOTIFY", "/notify", timestamp, body)
        if not (given and hmac.compare_digest(given, expected)):
            raise InvalidNotification("bad signature")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TIMESTAMP_WINDOW_S:
            raise InvalidNotification("timestamp outside the accepted window")
        try:
            data = json.loads(body)
            return Notification(str(data["notification_id"]), str(data["out_trade_no"]),
                                _view(data))
        except (ValueError, KeyError, TypeError, PaymentError):
            raise InvalidNotification("malformed notification") from None


class SimulatorAdapter(GatewayAdapter):
    """The gateway contract against ``kiosk sim pay`` (the default adapter)."""

    name = "simulator"

    @classmethod
    def from_options(cls, options: Mapping[str, Any], kiosk_id: str) -> SimulatorAdapter:
        return cls(str(options.get("base_url", SIMULATOR_URL)), kiosk_id,
                   str(options.get("secret", SIMULATOR_SECRET)),
                   connect_timeout=float(options.get("connect_timeout_s", 2.0)),
                   read_timeout=float(options.get("read_timeout_s", 5.0)),
                   code_wallets=_code_wallets(options))
