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
    """A payment's state and every step it went through, as JSON."""
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
    from app.domain.payment import PaymentError

    _, desk = _desk(obj)
    minor = Money.parse(amount, obj.settings.store.currency).minor if amount else None
    try:
        refund_id = desk.refund(out_trade_no, minor, reason, actor="cli")
    except (KeyError, ValueError, PaymentError) as exc:
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
