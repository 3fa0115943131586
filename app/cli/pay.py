"""``kiosk pay``: start, follow, settle and refund payments through the payment desk."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from app import bootstrap
from app.cli.root import Context


@click.group()
def pay() -> None:
    """Payments: start one, follow it, settle open ones, refund (for integrators and staff)."""


def _desk(obj: Context) -> tuple[bootstrap.Kiosk, Any]:
    from devices.payment import AdapterNotFound

    kiosk = obj.kiosk()
    try:
        return kiosk, bootstrap.build_payment_desk(kiosk)
    except (AdapterNotFound, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _show(payment: Any, as_json: bool) -> None:
    record = {"out_trade_no": payment.out_trade_no, "state": payment.state.value,
              "amount_minor": payment.amount_minor, "paid_minor": payment.paid_minor,
              "qr_payload": payment.qr_payload, "provider_ref": payment.provider_ref,
              "staff_flag": payment.staff_flag, "last_error": payment.last_error}
    if as_json:
        click.echo(json.dumps(record, ensure_ascii=False))
    else:
        click.echo("  ".join(f"{k}={v}" for k, v in record.items() if v not in (None, "")))


@pay.command("start")
@click.option("--cart", "cart_id", required=True, help="The cart (session) being paid for.")
@click.option("--amount", required=True, help="Amount in the store currency, e.g. 12.30.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def pay_start(obj: Context, cart_id: str, amount: str, as_json: bool) -> None:
    """Start (or resume) the payment of a test cart; prints its order id and QR payload."""
    from app.domain.money import Money
    from app.domain.sale import PaidSale, SaleLine
    from app.domain.tax import TaxMode

    kiosk, desk = _desk(obj)
    currency = obj.settings.store.currency
    try:
        total = Money.parse(amount, currency)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--amount") from None
    now = kiosk.clock.now()
    line = SaleLine("测试商品", "Test item", 1, None, total, total, (), total)
    sale = PaidSale("pending", obj.settings.kiosk.lane_id, obj.settings.store.name_zh,
                    obj.settings.store.name_en, now, (line,), total, Money(0, currency),
                    TaxMode(obj.settings.store.tax_mode), (), Money(0, currency), total, 1,
                    "", "")
    _show(desk.start(cart_id, sale, "Scan & Go test payment"), as_json)


@pay.command("wait")
@click.argument("out_trade_no")
@click.option("--json", "as_json", is_flag=True)
@click.option("--timeout", type=click.FloatRange(1, 86400),
              help="Give up after this many seconds (default: the QR's life plus a minute).")
@click.pass_obj
def pay_wait(obj: Context, out_trade_no: str, as_json: bool, timeout: float | None) -> None:
    """Poll a payment until it ends; at its expiry, close it (checking it was not paid).

    Exit 0 when paid, 1 otherwise (including still open when --timeout ran out).
    """
    kiosk, desk = _desk(obj)
    try:
        payment = desk.poll(out_trade_no)
    except KeyError as exc:
        raise click.ClickException(str(exc)) from None
    give_up = time.monotonic() + (timeout or obj.settings.payment.expire_s + 60)
    while payment.open and time.monotonic() < give_up:
        time.sleep(obj.settings.payment.poll_ms / 1000)
        payment = desk.poll(out_trade_no)
        if payment.open and kiosk.clock.now() >= payment.expires_at:
            desk.expire_due()
            payment = desk.poll(out_trade_no)
    _show(payment, as_json)
    if payment.state.value != "paid":
        sys.exit(1)


@pay.command("cancel")
@click.argument("out_trade_no")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def pay_cancel(obj: Context, out_trade_no: str, as_json: bool) -> None:
    """The shopper cancelled: query, close the provider order, confirm it closed."""
    _, desk = _desk(obj)
    try:
        _show(desk.cancel(out_trade_no), as_json)
    except KeyError as exc:
        raise click.ClickException(str(exc)) from None


@pay.command("recover")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def pay_recover(obj: Context, as_json: bool) -> None:
    """Settle every payment left open (what the kiosk does at every start-up)."""
    _, desk = _desk(obj)
    settled = desk.recover()
    for payment in settled:
        _show(payment, as_json)
    if not as_json:
        click.echo(f"{len(settled)} open payment(s) settled")


@pay.command("show")
@click.argument("out_trade_no")
@click.pass_obj
def pay_show(obj: Context, out_trade_no: str) -> None:
    """A payment's state, its last error (a provider's refusal: its code and the setting
    to change) and every step it went through, as JSON."""
    _, desk = _desk(obj)
    try:
        click.echo(json.dumps(desk.describe(out_trade_no), ensure_ascii=False, indent=2))
    except KeyError as exc:
        raise click.ClickException(str(exc)) from None


@pay.command("refund")
@click.argument("out_trade_no")
@click.option("--amount", help="Part of the amount (default: all of it).")
@click.option("--reason", default="refund at the kiosk", show_default=True)
@click.pass_obj
def pay_refund(obj: Context, out_trade_no: str, amount: str | None, reason: str) -> None:
    """Refund a paid sale through its payment adapter."""
    from app.domain.money import Money
    from app.domain.payment import PaymentError, error_text

    _, desk = _desk(obj)
    minor = Money.parse(amount, obj.settings.store.currency).minor if amount else None
    try:
        refund_id = desk.refund(out_trade_no, minor, reason, actor="cli")
    except PaymentError as exc:  # the provider's code and the setting to change
        raise click.ClickException(error_text(exc)) from None
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"refunded: {refund_id}")


@pay.command("alerts")
@click.pass_obj
def pay_alerts(obj: Context) -> None:
    """Payments staff must look at: paid late, wrong amount, refunded by the provider."""
    from app.storage.payments_repo import PaymentsRepo

    kiosk = obj.kiosk()
    alerts = PaymentsRepo(kiosk.db).alerts()
    for ref, message in alerts:
        click.echo(f"{ref}  {message}")
    click.echo(f"{len(alerts)} alert(s)")


def read_headers(text: str) -> dict[str, str]:
    """A headers file: a JSON object of name to value, or raw HTTP header lines.

    Raw lines are ``Name: value`` as a proxy or ``curl -D`` writes them; a first
    request or status line (``POST /notify HTTP/1.1``, ``HTTP/1.1 200 OK``) and blank
    lines before the headers are skipped, the first blank line after them ends them (a
    saved body after it is ignored), and a line starting with a space or tab continues
    the one before. Raises ValueError naming the line (or the JSON problem) that cannot be read.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        data = json.loads(stripped)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError("the JSON headers must be an object of name to string value")
        return {str(k): v for k, v in data.items()}
    headers: dict[str, str] = {}
    last = ""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if headers:
                break  # the blank line that ends the headers: what follows is the body
            continue
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            if not headers and (line.startswith("HTTP/") or line.rstrip().endswith(
                    ("HTTP/1.0", "HTTP/1.1", "HTTP/2"))):
                continue  # the request or status line before the headers
            raise ValueError(f"line {number} is not 'Name: value': {line[:60]!r}")
        last = name.strip()
        headers[last] = value.strip()
    return headers


@pay.command("notify")
@click.option("--headers", "headers_file", required=True, type=click.File("r"),
              help="The notification's HTTP headers: a JSON object {\"Name\": \"value\"} or "
              "raw 'Name: value' lines (a request or status line first is skipped).")
@click.option("--body", "body_file", required=True, type=click.File("rb"),
              help="The notification's body, byte for byte as the provider sent it ('-': "
              "stdin). An added trailing newline breaks the signature.")
@click.option("--staff", "actor", default="cli", show_default=True,
              help="Who replays it, for the audit log.")
@click.pass_obj
def pay_notify(obj: Context, headers_file: Any, body_file: Any, actor: str) -> None:
    """Replay a provider notification a store backend relayed: verify it with the
    adapter's rules, apply it once, audit it.

    Prints "accepted and applied", "duplicate" (applied before: no second effect) or
    "refused: why". Exit 0 applied or duplicate, 1 refused.
    """
    from app.services.staff_actions import replay_notification

    try:
        headers = read_headers(headers_file.read())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--headers") from None
    body = body_file.read()
    kiosk, desk = _desk(obj)
    done = replay_notification(desk, bootstrap.build_audit(kiosk), kiosk.clock,
                               obj.acting(actor), headers, body)
    if done.outcome == "applied":
        click.echo(f"accepted and applied: {done.out_trade_no} {done.before} -> {done.after}")
    elif done.outcome == "duplicate":
        click.echo(f"duplicate: {done.out_trade_no} is {done.after}; {done.why}, "
                   "no second effect")
    else:
        click.echo(f"refused: {done.why}")
        sys.exit(1)
