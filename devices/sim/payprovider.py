"""The payment provider simulator: ``kiosk sim pay``, an HTTP server on 127.0.0.1.

It speaks the store-gateway contract (what the ``simulator`` and ``gateway``
adapters call; docs/payment-gateway.yaml), and can be told how each order
ends, per order or for all:

    approve (after N s)  decline  pay_late (after the kiosk's timeout)
    pay_on_close (the shopper pays just as the kiosk closes the order)
    never_answer (requests hang)  slow (N s per reply)  bad_signature
    wrong_amount (pays N minor units instead)  manual (wait for the page)

Scripts: ``POST /sim/script {"order": "*" | out_trade_no, "outcome": ..., "seconds": N,
"amount": N}``, or ``kiosk sim pay --outcome approve:2``. The page at ``/``
lists open orders with Pay and Decline buttons (what the shopper's phone
would do). ``GET /sim/orders/<no>/notification`` returns the signed
notification the provider would send, for tests of the notification path
(``?format=wechat|alipay``; ``&signer=certificate|public_key|unknown`` picks WeChat's
signing key; Alipay's ``&moment=paid`` is the TRADE_SUCCESS of the moment it was paid,
which Alipay retries even after a cancel refunded it).
``/sim/wechat/signer``, ``/sim/wechat/fail`` and ``/sim/wechat/requests`` switch
which WeChat platform key signs replies, serve WeChat's unsigned 429/5xx errors,
and show the WeChat requests as received (devices/sim/payprotocols.py).
``POST /sim/wallets/code {"wallet": "wechat"|"alipay"|"unionpay", "then": "approve" |
"password:N" | "decline:N" | "never" | "insufficient", "lose_reply": false}`` makes a
simulated phone show a new payment code (the wallet's real prefix and length, valid 60 s,
usable once; lose_reply: its charge's reply is dropped) and answers it with its expiry;
the contract's ``code-charge`` and ``reverse`` charge and give it up.
``POST /sim/clock {"date_skew_s": N}`` puts every later reply's HTTP ``Date`` header N s
off (a provider whose clock disagrees with the kiosk's: ``kiosk doctor``'s clock check).
``GET /sim/state`` returns every order (its status, how many create calls and
status queries named it) and how many times each was charged.

Orders live in memory, behind one lock: a provider, not a database
(devices/sim/payorders.py; the WeChat Pay v3 and Alipay wire formats are in
devices/sim/payprotocols.py, and this server routes requests to them).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from devices.payment.gateway import SIMULATOR_SECRET, sign
from devices.sim import payprotocols
from devices.sim.payorders import OUTCOMES, Order, Provider, Script, expiry, misbehave

# The orders and their rules live in devices/sim/payorders.py (shared with the WeChat Pay and
# Alipay wire formats); their names stay importable from here, where `kiosk sim pay` finds them.
__all__ = ["OUTCOMES", "Handler", "Order", "PayServer", "Provider", "Script",
           "code_charge_problem", "create_problem", "refund_problem"]

# The gateway contract's request rules (docs/payment-gateway.yaml): what a 400 refuses.
OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_-]{6,32}")
MAX_AMOUNT_MINOR = 10_000_000_000  # 100,000,000.00 yuan: Alipay's total_amount ceiling


def _amount_problem(payload: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = payload.get(name)
    if value is None:
        return f"{name} is required" if required else None
    # JSON 12 and 12.0 differ: an amount in minor units is an integer, never a float or bool.
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{name} must be an integer number of minor units (fen), not {value!r}"
    if not 1 <= value <= MAX_AMOUNT_MINOR:
        return f"{name} must be between 1 and {MAX_AMOUNT_MINOR}, not {value}"
    return None


def _string_problem(payload: dict[str, Any], name: str, required: bool) -> str | None:
    value = payload.get(name)
    if value is None:
        return f"{name} is required" if required else None
    return None if isinstance(value, str) else f"{name} must be a string"


def create_problem(payload: Any) -> str | None:
    """Why a ``POST /v1/orders`` body breaks the contract's request schema, or None.

    ``payload``: the parsed JSON. The rules are docs/payment-gateway.yaml's: an object with
    ``out_trade_no`` (6-32 of ``[A-Za-z0-9_-]``, WeChat Pay's rule for out_trade_no),
    ``amount_minor`` (an integer from 1 to 10,000,000,000 fen), ``currency`` (a string);
    optional string ``description`` and ISO 8601 ``expires_at``. The gateway answers 400.
    """
    if not isinstance(payload, dict):
        return "the body must be a JSON object"
    no = payload.get("out_trade_no")
    if not isinstance(no, str) or not OUT_TRADE_NO.fullmatch(no):
        return "out_trade_no must be 6-32 of A-Z a-z 0-9 _ -"
    problem = (_amount_problem(payload, "amount_minor")
               or _string_problem(payload, "currency", True)
               or _string_problem(payload, "description", False)
               or _string_problem(payload, "expires_at", False))
    if problem is None and payload.get("expires_at") is not None:
        try:
            datetime.fromisoformat(payload["expires_at"])
        except ValueError:
            problem = "expires_at must be an ISO 8601 date-time"
    return problem


def refund_problem(payload: Any) -> str | None:
    """Why a ``POST /v1/orders/{no}/refunds`` body breaks the contract, or None: an object
    with ``refund_no`` (1-64 characters) and ``amount_minor`` (integer, 1 or more); optional
    integer ``total_minor`` and string ``reason`` (docs/payment-gateway.yaml; answered 400).
    """
    if not isinstance(payload, dict):
        return "the body must be a JSON object"
    refund_no = payload.get("refund_no")
    if not isinstance(refund_no, str) or not 1 <= len(refund_no) <= 64:
        return "refund_no must be a string of 1-64 characters"
    return (_amount_problem(payload, "amount_minor")
            or _amount_problem(payload, "total_minor", required=False)
            or _string_problem(payload, "reason", False))


WALLET = re.compile(r"[a-z0-9_]{1,32}")
AUTH_CODE = re.compile(r"[0-9]{10,32}")


def code_charge_problem(payload: Any) -> str | None:
    """Why a ``POST /v1/orders/{no}/code-charge`` body breaks the contract, or None: an
    object with ``amount_minor`` (integer, 1 to 10,000,000,000 fen), ``currency`` (string),
    ``wallet`` (1-32 of a-z 0-9 _), ``auth_code`` (10-32 digits); optional string
    ``description`` (docs/payment-gateway.yaml; answered 400, nothing charged). The problem
    never quotes the code: it is the shopper's money."""
    if not isinstance(payload, dict):
        return "the body must be a JSON object"
    problem = (_amount_problem(payload, "amount_minor")
               or _string_problem(payload, "currency", True)
               or _string_problem(payload, "description", False)
               or _string_problem(payload, "wallet", True)
               or _string_problem(payload, "auth_code", True))
    if problem is None and not WALLET.fullmatch(payload["wallet"]):
        problem = "wallet must be 1-32 of a-z 0-9 _"
    if problem is None and not AUTH_CODE.fullmatch(payload["auth_code"]):
        problem = "auth_code must be 10-32 digits"
    return problem


class Handler(BaseHTTPRequestHandler):
    server: PayServer

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: tests run many requests
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The HTTP ``Date`` header, off by the server's ``date_skew_s`` (``POST /sim/clock``):
        a provider whose clock disagrees with the kiosk's, for ``kiosk doctor``'s clock
        check. Only the header: the gateway's signed timestamps stay true."""
        return super().date_time_string(
            (timestamp if timestamp is not None else time.time()) + self.server.date_skew_s)

    @property
    def provider(self) -> Provider:
        return self.server.provider

    @property
    def keys(self) -> payprotocols.SimKeys:
        """The simulated WeChat Pay and Alipay keys (waits for them on first use)."""
        return self.server.keys

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, data: Any, path: str = "", sign_as: str = "RESPONSE",
              bad: bool = False) -> None:
        body = json.dumps(data, separators=(",", ":")).encode() if not isinstance(data, bytes) \
            else data
        timestamp = str(int(time.time()))
        signature = sign(self.provider.secret, sign_as, path, timestamp, body)
        if bad:
            signature = "0" * len(signature)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Gateway-Timestamp", timestamp)
        self.send_header("X-Gateway-Signature", signature)
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self, method: str, path: str, body: bytes) -> bool:
        timestamp = self.headers.get("X-Kiosk-Timestamp", "")
        given = self.headers.get("X-Kiosk-Signature", "")
        ok = given == sign(self.provider.secret, method, path, timestamp, body)
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
        return ok and fresh

    # -- routing -----------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        if not parts:
            return self._page()
        if parts[:1] == ["v3"]:
            return payprotocols.wechat(self, "GET", self.path, b"")
        if parts == ["gateway.do"]:  # python-alipay-sdk sends every call as a GET
            return payprotocols.alipay(self, url.query, b"")
        if parts[:2] == ["v1", "orders"] and len(parts) == 3:
            return self._gateway("GET", url.path, parts[2], None, b"")
        if parts[:2] == ["sim", "orders"] and len(parts) == 4 and parts[3] == "notification":
            order = self.provider.orders.get(parts[2])
            if order is None:
                return self._send(404, {"error": "no such order"})
            query = parse_qs(url.query)
            kind = query.get("format", ["gateway"])[0]
            if kind == "wechat":
                signer = parse_qs(url.query).get("signer", [""])[0]
                if signer and signer not in payprotocols.SIGNERS:
                    return self._send(400, {"error": f"signer: one of {payprotocols.SIGNERS}"})
                headers, body = payprotocols.wechat_notification(self.server.keys, order,
                                                                 signer)
            elif kind == "alipay":
                try:  # moment=paid: the TRADE_SUCCESS Alipay retries after a cancel refunded
                    headers, body = payprotocols.alipay_notification(
                        self.server.keys, order, query.get("moment", ["now"])[0])
                except ValueError as exc:
                    return self._send(409, {"error": str(exc)})
            else:
                headers, body = self.provider.notification(order)
            return self._send(200, {"headers": headers, "body": body.decode()})
        if parts[:2] == ["sim", "wechat"] and len(parts) == 3:
            return payprotocols.wechat_control(self, "GET", parts[2], b"")
        if parts == ["sim", "state"]:
            with self.provider.lock:
                return self._send(200, {
                    "orders": {n: self.provider.view(o) | {"creates": o.creates,
                                                           "queries": o.queries,
                                                           "charge_calls": o.charge_calls,
                                                           "reverses": o.reverses}
                               for n, o in self.provider.orders.items()},
                    "charges": self.provider.charges})
        self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        body = self._body()
        if parts[:1] == ["v3"]:
            return payprotocols.wechat(self, "POST", self.path, body)
        if parts == ["gateway.do"]:
            return payprotocols.alipay(self, url.query, body)
        if parts[:2] == ["v1", "orders"]:
            return self._gateway("POST", url.path, parts[2] if len(parts) > 2 else None,
                                 parts[3] if len(parts) > 3 else None, body)
        if parts[:2] == ["sim", "orders"] and len(parts) == 4:
            return self._shopper(parts[2], parts[3], body)
        if parts == ["sim", "script"]:
            return self._script(body)
        if parts == ["sim", "clock"]:
            return self._clock(body)
        if parts == ["sim", "wallets", "code"]:
            return self._issue_code(body)
        if parts[:2] == ["sim", "wechat"] and len(parts) == 3:
            return payprotocols.wechat_control(self, "POST", parts[2], body)
        self._send(404, {"error": "not found"})

    # -- the gateway contract ----------------------------------------------------------------
    def _refuse(self, status: int, code: str, message: str, path: str) -> None:
        """A refusal in the contract's ``Error`` shape, signed like every gateway reply."""
        return self._send(status, {"code": code, "error": message}, path)

    def _gateway(self, method: str, path: str, no: str | None, action: str | None,
                 body: bytes) -> None:
        timestamp = self.headers.get("X-Kiosk-Timestamp", "")
        if not self._authorised(method, path, body):
            stale = not timestamp.isdigit() or abs(time.time() - int(timestamp)) >= 300
            if stale:
                return self._refuse(401, "TIMESTAMP_EXPIRED", "X-Kiosk-Timestamp is more "
                                    "than 300 s from the gateway's clock", path)
            return self._refuse(401, "SIGN_ERROR", "X-Kiosk-Signature does not match the "
                                "kiosk's secret", path)
        p = self.provider
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return self._refuse(400, "PARAM_ERROR", "body is not JSON", path)
        if method == "POST" and no is None:
            problem = create_problem(payload)
            if problem is not None:
                return self._refuse(400, "PARAM_ERROR", problem, path)
            no = str(payload["out_trade_no"])
            amount, currency = int(payload["amount_minor"]), str(payload["currency"])
            known = p.orders.get(no)
            if known is not None and (known.amount_minor, known.currency) != (amount,
                                                                                currency):
                return self._refuse(409, "ORDER_MISMATCH", f"order {no} exists for "
                                    f"{known.amount_minor} {known.currency}", path)
            script = p.script_for(no)
            if script.outcome == "never_answer":
                p.create(no, amount, currency, str(payload.get("description", "")),
                         time.time() + 120)
                time.sleep(script.seconds or 30)
                return None
            order = p.create(no, amount, currency, str(payload.get("description", "")),
                             expiry(payload.get("expires_at")))
            if self._misbehave_slow(order):
                pass
            return self._send(201, p.view(order) | {
                "qr_payload": f"https://pay.sim.local/qr/{no}"}, path,
                bad=order.script.outcome == "bad_signature")
        if action == "refunds":
            problem = refund_problem(payload)
            if problem is not None:
                return self._refuse(400, "PARAM_ERROR", problem, path)
        if method == "POST" and action == "code-charge":
            return self._code_charge(path, no or "", payload)
        order = p.orders.get(no or "")
        if order is None:
            if method == "GET":
                return self._send(200, {"out_trade_no": no, "status": "not_found"}, path)
            return self._refuse(404, "ORDER_NOT_EXIST", f"no order {no}", path)
        if misbehave(order):
            return None
        with p.lock:
            p.advance(order)
            if method == "GET":
                order.queries += 1
                return self._send(200, p.view(order), path,
                                  bad=order.script.outcome == "bad_signature")
            if action == "close":
                p.close(order)
                return self._send(200, p.view(order), path)
            if action == "reverse":
                if not p.reverse(order):
                    return self._refuse(409, "USERPAYING", "the shopper is entering the "
                                        "password; the prompt is withdrawn: ask again", path)
                return self._send(200, p.view(order), path)
            if action == "refunds":
                try:
                    r = p.refund(order, str(payload["refund_no"]), int(payload["amount_minor"]))
                except ValueError as exc:
                    code = "NOT_PAID" if order.status not in ("paid", "refunded") \
                        else "REFUND_EXCEEDS_PAID"
                    return self._refuse(409, code, str(exc), path)
                return self._send(200, r, path)
        return self._refuse(404, "NOT_FOUND", "unknown action", path)

    def _code_charge(self, path: str, no: str, payload: Any) -> None:
        """The contract's code-charge: validated, charged once per ``no`` (a repeat answers
        the order as it stands), then the order's script may still lose (never_answer),
        slow or mis-sign the reply, as for any other call."""
        p = self.provider
        problem = code_charge_problem(payload)
        if problem is None and not OUT_TRADE_NO.fullmatch(no):
            problem = "out_trade_no must be 6-32 of A-Z a-z 0-9 _ -"
        if problem is not None:
            return self._refuse(400, "PARAM_ERROR", problem, path)
        try:
            order, charged_now = p.charge_code(no, int(payload["amount_minor"]),
                                               str(payload["currency"]),
                                               str(payload.get("description", "")),
                                               str(payload["wallet"]), str(payload["auth_code"]))
        except ValueError as exc:
            return self._refuse(409, "ORDER_MISMATCH", str(exc), path)
        if (charged_now and order.lose_charge_reply) or misbehave(order):
            return None  # charged, and the reply is lost: the kiosk must query
        with p.lock:
            view = p.view(order)
        return self._send(200, view, path, bad=order.script.outcome == "bad_signature")

    def _misbehave_slow(self, order: Order) -> bool:
        if order.script.outcome == "slow":
            time.sleep(order.script.seconds)
        return False

    # -- the shopper's phone and the test hooks ----------------------------------------------
    def _shopper(self, no: str, action: str, body: bytes) -> None:
        p = self.provider
        order = p.orders.get(no)
        if order is None:
            return self._send(404, {"error": "no such order"})
        with p.lock:
            if action == "pay":
                amount = parse_qs(body.decode()).get("amount", [None])[0] if body else None
                ok = p.pay(order, int(amount) if amount else None)
                return self._send(200 if ok else 409, p.view(order))
            if action == "decline":
                if order.status == "waiting":
                    order.status = "declined"
                return self._send(200, p.view(order))
        return self._send(404, {"error": "unknown action"})

    def _issue_code(self, body: bytes) -> None:
        """``POST /sim/wallets/code {"wallet": "wechat", "then": "password:3"}``: the
        simulated phone shows a new payment code -> 201 {code, wallet, then, expires_in_s,
        expires_at}; 400 for an unknown wallet or behaviour (devices/sim/payorders.py).
        Optional: "code" (a fixed code), "lose_reply": true, "age_s": N (issued N seconds
        ago: past its minute, an expired code)."""
        try:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            code = data.get("code")
            issued = self.provider.wallets.issue(str(data.get("wallet", "wechat")),
                                                 str(data.get("then", "approve")),
                                                 code=str(code) if code else None,
                                                 lose_reply=data.get("lose_reply") is True,
                                                 age_s=float(data.get("age_s", 0)))
        except ValueError as exc:
            return self._send(400, {"error": str(exc)})
        return self._send(201, issued.public())

    def _script(self, body: bytes) -> None:
        try:
            data = json.loads(body)
            outcome = data["outcome"]
            if outcome not in OUTCOMES:
                raise ValueError(outcome)
            script = Script(outcome, float(data.get("seconds", 0)),
                            int(data["amount"]) if data.get("amount") is not None else None)
        except (ValueError, KeyError, TypeError):
            return self._send(400, {"error": f"outcome must be one of {', '.join(OUTCOMES)}"})
        with self.provider.lock:
            target = str(data.get("order", "*"))
            if target == "*":
                self.provider.default = script
            else:
                self.provider.scripts[target] = script
                if target in self.provider.orders:
                    self.provider.orders[target].script = script
        return self._send(200, {"order": target, "outcome": outcome})

    def _clock(self, body: bytes) -> None:
        """``POST /sim/clock`` {"date_skew_s": seconds}: every later reply's ``Date`` header
        is that far ahead (negative: behind) of the simulator's true time."""
        try:
            skew = float(json.loads(body)["date_skew_s"])
        except (ValueError, KeyError, TypeError):
            return self._send(400, {"error": "date_skew_s: a number of seconds"})
        self.server.date_skew_s = skew
        return self._send(200, {"date_skew_s": skew})

    def _page(self) -> None:
        p = self.provider
        rows = []
        with p.lock:
            for o in p.orders.values():
                p.advance(o)
                buttons = ""
                if o.status == "waiting":
                    buttons = (f'<form method="post" action="/sim/orders/{o.out_trade_no}/pay" '
                               f'style="display:inline"><button>Pay</button></form> '
                               f'<form method="post" action="/sim/orders/{o.out_trade_no}/'
                               f'decline" style="display:inline"><button>Decline</button>'
                               "</form>")
                rows.append(f"<tr><td>{html.escape(o.out_trade_no)}</td>"
                            f"<td>{o.amount_minor / 100:.2f} {html.escape(o.currency)}</td>"
                            f"<td>{html.escape(o.status)}</td><td>{buttons}</td></tr>")
        page = ("<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=2>"
                "<title>Payment simulator</title><h1>Payment simulator</h1>"
                "<table border=1 cellpadding=6><tr><th>order</th><th>amount</th>"
                "<th>status</th><th></th></tr>" + "".join(rows) + "</table>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


class PayServer(ThreadingHTTPServer):
    """The simulator's HTTP server on 127.0.0.1 (``port`` 0 picks a free one).

    ``keys_dir`` is where the simulated WeChat Pay and Alipay key files and
    their ``[payment]`` snippets are written; without one the server makes a
    temporary folder and deletes it again when it closes (``stop()``, or
    ``server_close()`` after ``serve_forever()``). A caller's folder is kept.
    Raises OSError if the port cannot be bound (and then leaves no folder behind).
    """

    daemon_threads = True

    def __init__(self, port: int = 8765, secret: str = SIMULATOR_SECRET,
                 keys_dir: Path | None = None) -> None:
        self.provider = Provider(secret)
        self.date_skew_s = 0.0  # added to the Date header (POST /sim/clock)
        # Set before binding: a failed bind calls server_close(), which looks at them.
        self._own_keys_dir: Path | None = None
        self._files_lock = threading.Lock()
        self._closed = False
        super().__init__(("127.0.0.1", port), Handler)
        if keys_dir is None:
            keys_dir = self._own_keys_dir = Path(tempfile.mkdtemp(prefix="kiosk-sim-pay-"))
        self.keys_dir = Path(keys_dir)
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        # Five RSA keys take ~0.4 s; only the WeChat Pay and Alipay protocols need them,
        # so they are made in the background and waited for on first use (the demo's
        # start-up and the gateway protocol never wait).
        self._keys: payprotocols.SimKeys | None = None
        self._keys_error: BaseException | None = None
        self._keys_ready = threading.Event()
        threading.Thread(target=self._make_keys, name="sim-pay-keys", daemon=True).start()

    def _make_keys(self) -> None:
        try:
            keys = payprotocols.SimKeys.generate(self.keys_dir, self.url)
            # Written under the lock that server_close() takes before deleting its own
            # folder, so a server stopped within the first 0.3 s leaves no files behind.
            with self._files_lock:
                if self._closed:
                    raise RuntimeError("the simulator was stopped before its keys were made")
                keys.write()
            self._keys = keys
        except BaseException as exc:  # noqa: BLE001 - re-raised where the keys are used
            self._keys_error = exc
        finally:
            self._keys_ready.set()

    @property
    def keys(self) -> payprotocols.SimKeys:
        self._keys_ready.wait(60)
        if self._keys is None:
            raise RuntimeError(f"the simulator's keys could not be made: {self._keys_error}")
        return self._keys

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> PayServer:
        threading.Thread(target=self.serve_forever, name="sim-pay", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving, free the port and delete the key folder if this server made it."""
        self.shutdown()
        self.server_close()

    def server_close(self) -> None:
        super().server_close()
        with self._files_lock:
            self._closed = True
            if self._own_keys_dir is not None:
                shutil.rmtree(self._own_keys_dir, ignore_errors=True)
