"""The ``kiosk`` command: run the kiosk, manage its catalogue and settings.

Exit codes: 0 success; 1 refused or failed (the message says why and what to
do); 2 bad usage (click's convention).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from app import bootstrap
from app.config import (
    SECTIONS,
    Settings,
    SettingsError,
    example_toml,
    load_settings,
    settings_markdown,
)
from app.domain.catalogue import Unit
from app.domain.rejections import Refused
from app.services.catalogue import CatalogueImportError, import_catalogue, load_promotions_file
from app.storage.catalogue_repo import CatalogueMismatch
from app.storage.db import schema_version


class Context:
    def __init__(self, config: Path | None, data_dir: Path | None) -> None:
        self.config = config
        self.data_dir = data_dir
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config, self.data_dir)
            except SettingsError as exc:
                raise click.ClickException(f"bad setting: {exc}") from None
        return self._settings

    def kiosk(self) -> bootstrap.Kiosk:
        try:
            return bootstrap.build(self.settings)
        except CatalogueMismatch as exc:
            raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Settings file (TOML). Default: $KIOSK_CONFIG, else <data dir>/kiosk.toml if present.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the kiosk keeps its database. Default: $KIOSK_DATA_DIR, else "
    "~/.local/share/scan-and-go-kiosk.",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None, data_dir: Path | None) -> None:
    """Scan & Go self-service checkout kiosk."""
    ctx.obj = Context(config, data_dir)


# --- scanning ----------------------------------------------------------------
@main.command()
@click.argument("images", nargs=-1, required=True,
                type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, one per line.")
@click.option("--lookup", is_flag=True,
              help="Also say what the kiosk would put in the cart for each code.")
@click.pass_obj
def decode(obj: Context, images: tuple[Path, ...], as_json: bool, lookup: bool) -> None:
    """Read the barcodes in image files with the kiosk's own decoder pipeline.

    Prints, per image, the codes found, their symbology, the pass that read
    them and the milliseconds it took: the answer to "why won't this label
    scan?". Exits 1 when an image cannot be read or holds no code.
    """
    from devices.decoder import load_image

    decoder = bootstrap.build_decoder(obj.settings)
    kiosk = obj.kiosk() if lookup else None
    failed = False
    for path in images:
        record: dict[str, Any] = {"image": str(path)}
        try:
            result = decoder.read_image(load_image(str(path)))
        except ValueError as exc:
            record["error"] = str(exc)
            failed = True
        else:
            record["ms"] = round(result.ms, 2)
            record["passes"] = result.passes
            record["codes"] = [
                {"text": r.text, "symbology": r.symbology, "aim": r.aim, "engine": r.engine,
                 "pass": r.pass_name, "box": list(r.box)}
                for r in result.reads
            ]
            record["dropped"] = [r.text for r in result.dropped]
            failed = failed or not result.reads
            if kiosk is not None:
                for code in record["codes"]:
                    try:
                        found = kiosk.lookup(code["aim"] + code["text"])
                        code["cart"] = f"{found.item.product.code} {found.item.product.name_en}"
                    except Refused as exc:
                        code["cart"] = f"refused: {exc.refusal.message_en}"
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        elif "error" in record:
            click.echo(record["error"], err=True)
        elif not record["codes"]:
            click.echo(f"{path}: no code found ({record['ms']} ms, tried "
                       f"{', '.join(record['passes'])})")
        else:
            for code in record["codes"]:
                line = (f"{path}: {code['symbology']} {code['text']!r} "
                        f"({code['pass']}, {record['ms']} ms)")
                if "cart" in code:
                    line += f" -> {code['cart']}"
                click.echo(line)
    if kiosk is not None:
        kiosk.close()
    if failed:
        sys.exit(1)


# --- running the kiosk -----------------------------------------------------
@main.command()
@click.option(
    "--screenshot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save a screenshot of the first screen to this PNG and exit.",
)
@click.option("--webcam", is_flag=True,
              help="Use the configured camera ([camera] settings) instead of the demo shelf.")
@click.pass_obj
def demo(obj: Context, screenshot: Path | None, webcam: bool) -> None:
    """Start the demo kiosk against the simulated store.

    Loads the demo store into an empty data dir, starts the payment simulator, the
    reference membership backend and the virtual printer (receipts land in
    DATA_DIR/receipts), and feeds the camera from the demo shelf.
    """
    kiosk = obj.kiosk()
    for line in bootstrap.seed_demo_store(kiosk):
        click.echo(f"demo store: loaded {line}")
    for line in bootstrap.seed_demo_staff(kiosk):
        click.echo(f"demo staff: {line} (hold the top-left corner 3 s for staff mode)")
    click.echo(f"data directory: {obj.settings.data_dir}")
    click.echo(f"receipts: {obj.settings.data_dir / 'receipts'}")
    bootstrap.run_ui(kiosk, screenshot=screenshot, demo=True, webcam=webcam)


@main.command()
@click.option(
    "--screenshot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save a screenshot of the first screen to this PNG and exit.",
)
@click.pass_obj
def run(obj: Context, screenshot: Path | None) -> None:
    """Start the kiosk with the catalogue already in its data dir (what a store runs)."""
    bootstrap.run_ui(obj.kiosk(), screenshot=screenshot)


# --- catalogue -------------------------------------------------------------
@main.group()
def catalog() -> None:
    """Import the product catalogue and look codes up."""


@catalog.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--replace",
    is_flag=True,
    help="Replace the whole catalogue (default: add to it, updating same codes).",
)
@click.pass_obj
def catalog_import(obj: Context, file: Path, replace: bool) -> None:
    """Import products from a CSV file; all rows or none.

    Columns: code, name_zh, name_en, price (required); member_price, unit (each|kg),
    tax_class, min_age, quantity_limit, department, image (optional).
    """
    kiosk = obj.kiosk()
    total = file.stat().st_size
    with click.progressbar(
        length=total, label="importing", file=sys.stderr, show_pos=False, show_percent=True
    ) as bar:
        seen = [0]

        def progress(done: int, _total: int) -> None:
            bar.update(done - seen[0])
            seen[0] = done

        try:
            rows = import_catalogue(
                kiosk.catalogue,
                file,
                replace=replace,
                progress=progress,
                tax_classes=frozenset(obj.settings.store.tax_classes),
            )
        except CatalogueImportError as exc:
            click.echo("", err=True)
            raise click.ClickException(str(exc)) from None
    click.echo(f"imported {rows} products from {file}; catalogue now has {kiosk.catalogue.count()}")


def _decode_argv(code: str) -> str | bytes:
    # Bytes that are not UTF-8 arrive as surrogate escapes; give the scan check the raw bytes.
    try:
        code.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(code)
    return code


@catalog.command("lookup")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--member", is_flag=True, help="Price as for an identified member.")
@click.pass_obj
def catalog_lookup(obj: Context, code: str, as_json: bool, member: bool) -> None:
    """Resolve any scanned string: product, weight/price/quantity in the code, line price.

    CODE '-' reads the raw scanner bytes from standard input. A refused code
    prints the reason and exits 1.
    """
    raw: str | bytes = sys.stdin.buffer.read() if code == "-" else _decode_argv(code)
    kiosk = obj.kiosk()
    try:
        result = kiosk.lookup(raw, member=member)
    except Refused as refused:
        r = refused.refusal
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "ok": False,
                        "refused": r.code,
                        "message_en": r.message_en,
                        "message_zh": r.message_zh,
                        "input": r.preview,
                    },
                    ensure_ascii=False,
                    indent=2,
                )
            )
        else:
            click.echo(f"refused ({r.code}): {r.message_en}\n  {r.message_zh}", err=True)
            if r.preview:
                click.echo(f"  input: {r.preview}", err=True)
        sys.exit(1)
    item, line = result.item, result.line
    product = item.product
    data: dict[str, Any] = {
        "ok": True,
        "code_kind": item.code.kind.value,
        "key": product.code,
        "name_zh": product.name_zh,
        "name_en": product.name_en,
        "unit": product.unit.value,
        "unit_price": product.price.to_decimal_string(),
        "member_price": product.member_price.to_decimal_string() if product.member_price else None,
        "quantity": item.quantity,
        "weight_g": item.weight_g,
        "label_price": item.label_price.to_decimal_string() if item.label_price else None,
        "expiry": item.code.expiry.isoformat() if item.code.expiry else None,
        "batch": item.code.batch,
        "min_age": product.min_age,
        "regular_price": line.regular.to_decimal_string(),
        "adjustments": [
            {
                "code": a.code,
                "name_zh": a.name_zh,
                "name_en": a.name_en,
                "saving": a.saving.to_decimal_string(),
            }
            for a in line.adjustments
        ],
        "line_price": line.total.to_decimal_string(),
        "currency": line.total.currency,
    }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    per = "/kg" if product.unit is Unit.KG else " each"
    click.echo(f"{product.name_zh} / {product.name_en}")
    click.echo(f"  key          {product.code}  ({item.code.kind.value})")
    click.echo(f"  unit price   {product.price.format()}{per}")
    if product.member_price:
        click.echo(f"  member price {product.member_price.format()}{per}")
    if item.weight_g is not None:
        click.echo(f"  weight       {item.weight_g / 1000:.3f} kg")
    if item.label_price is not None:
        click.echo(f"  label price  {item.label_price.format()}")
    if product.unit is Unit.EACH:
        click.echo(f"  quantity     {item.quantity}")
    if item.code.expiry:
        click.echo(f"  expiry       {item.code.expiry.isoformat()}")
    if item.code.batch:
        click.echo(f"  batch        {item.code.batch}")
    if product.min_age:
        click.echo(f"  age check    {product.min_age}+ (staff approve before payment)")
    for adj in line.adjustments:
        click.echo(f"  {adj.name_en:<12} -{adj.saving.format()}  {adj.name_zh}")
    click.echo(f"  line price   {line.total.format()}")


# --- promotions ------------------------------------------------------------
@main.group()
def promotions() -> None:
    """Import and list the store's promotions."""


@promotions.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.pass_obj
def promotions_import(obj: Context, file: Path) -> None:
    """Replace the promotions with those in a TOML file of [[promotion]] tables."""
    kiosk = obj.kiosk()
    try:
        loaded = load_promotions_file(file, obj.settings.store.currency)
    except ValueError as exc:
        raise click.ClickException(f"promotions not imported: {exc}") from None
    kiosk.catalogue.replace_promotions(loaded)
    click.echo(f"imported {len(loaded)} promotions from {file}")


@promotions.command("list")
@click.pass_obj
def promotions_list(obj: Context) -> None:
    """List the promotions in force."""
    for p in obj.kiosk().promotions():
        click.echo(f"{p.promo_id:<20} {p.kind.value:<16} {p.name_zh} / {p.name_en}")


# --- settings and database -------------------------------------------------
@main.group()
def config() -> None:
    """Show the settings, or generate their example file and guide."""


@config.command("show")
@click.pass_obj
def config_show(obj: Context) -> None:
    """Print the settings in effect (after file and environment)."""
    s = obj.settings
    click.echo(f"data_dir = {s.data_dir}")
    for section in SECTIONS:
        click.echo(f"[{section}]")
        for key, value in vars(getattr(s, section)).items():
            click.echo(f"  {key} = {value!r}")


@config.command("example")
def config_example() -> None:
    """Print every setting at its default, as TOML (seeds/kiosk.example.toml)."""
    click.echo(example_toml(), nl=False)


@config.command("docs")
def config_docs() -> None:
    """Print the settings guide as Markdown (docs/settings.md)."""
    click.echo(settings_markdown(), nl=False)


@main.group()
def db() -> None:
    """The kiosk database."""


@db.command("status")
@click.pass_obj
def db_status(obj: Context) -> None:
    """Show the database file, its applied migrations and catalogue size."""
    kiosk = obj.kiosk()
    click.echo(f"database   {obj.settings.database_path}")
    click.echo(f"migrations {', '.join(schema_version(kiosk.db))}")
    click.echo(f"products   {kiosk.catalogue.count()}")
    click.echo(f"promotions {len(kiosk.promotions())}")


# --- receipts and exit passes ------------------------------------------------
@main.group()
def printer() -> None:
    """The receipt printer: its status, a test page, the print queue."""


def _port(obj: Context, port: str | None) -> str:
    chosen = port or obj.settings.printer.port
    if not chosen:
        raise click.UsageError("no printer port: give --port or set printer.port")
    return chosen


@printer.command("status")
@click.option("--port", help="Serial port or pyserial URL (default: printer.port).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def printer_status(obj: Context, port: str | None, as_json: bool) -> None:
    """Ask the printer for its real-time status (DLE EOT). Exit 1 unless it can print.

    States: ok, paper_near_end (prints; change the roll soon), paper_out,
    cover_open, offline, unknown (no reply: not known to be fine), disconnected.
    """
    from devices.printer import PORT_ERRORS, PrinterState, PrinterStatus, read_status

    link = bootstrap.build_printer_link(obj.settings, _port(obj, port))
    timeout = obj.settings.printer.status_timeout_ms / 1000
    try:
        link.open()
        status = read_status(link, timeout)
    except PORT_ERRORS as exc:
        status = PrinterStatus(PrinterState.DISCONNECTED, str(exc))
    finally:
        link.close()
    notice = status.shopper_notice()
    if as_json:
        click.echo(json.dumps({"port": _port(obj, port), "state": status.state.value,
                               "can_print": status.can_print, "detail": status.detail,
                               "shopper_notice_en": notice[1] if notice else None}))
    else:
        click.echo(f"{status.state.value}" + (f" ({status.detail})" if status.detail else ""))
    if not status.can_print:
        sys.exit(1)


@printer.command("test")
@click.option("--port", help="Serial port or pyserial URL (default: printer.port).")
@click.pass_obj
def printer_test(obj: Context, port: str | None) -> None:
    """Print a test page: Chinese and English text, alignment and a QR code."""
    from devices.printer import PORT_ERRORS, read_status
    from devices.receipt import render_test_page

    settings = obj.settings
    link = bootstrap.build_printer_link(settings, _port(obj, port))
    try:
        link.open()
        status = read_status(link, settings.printer.status_timeout_ms / 1000)
        if not status.can_print and status.state.value != "unknown":
            raise click.ClickException(f"the printer cannot print: {status.state.value}")
        link.write(render_test_page(bootstrap.build_receipt_style(settings),
                                    f"{settings.kiosk.lane_id} printer test"))
    except PORT_ERRORS as exc:
        raise click.ClickException(f"cannot reach the printer: {exc}") from None
    finally:
        link.close()
    click.echo(f"test page sent to {_port(obj, port)} ({status.state.value})")


@printer.command("queue")
@click.pass_obj
def printer_queue(obj: Context) -> None:
    """List receipts waiting for the printer."""
    from app.storage.print_jobs import PrintJobs

    kiosk = obj.kiosk()
    jobs = PrintJobs(kiosk.db)
    pending, unconfirmed = jobs.pending(), jobs.unconfirmed()
    for job in pending + unconfirmed:
        click.echo(f"{job.job_id}  {job.order_id}  {job.status}  attempts={job.attempts}"
                   + ("  COPY" if job.copy else "") + (f"  {job.last_error}" if job.last_error
                                                        else ""))
    click.echo(f"{len(pending)} receipt(s) waiting, {len(unconfirmed)} sent but not confirmed "
               "printed (reprint if the shopper has none)")


@printer.command("reprint")
@click.argument("order_id")
@click.pass_obj
def printer_reprint(obj: Context, order_id: str) -> None:
    """Queue another copy (marked COPY) of a sale's receipt."""
    from app.services.receipts import reprint
    from app.storage.print_jobs import PrintJobs

    kiosk = obj.kiosk()
    try:
        job_id = reprint(PrintJobs(kiosk.db), order_id, kiosk.clock)
    except KeyError:
        raise click.ClickException(f"no receipt for order {order_id!r}") from None
    bootstrap.build_audit(kiosk).append("reprint", "cli", {"order_id": order_id,
                                                           "job_id": job_id}, kiosk.clock.now())
    click.echo(f"queued copy as job {job_id}")


@main.group("pass")
def exit_pass_group() -> None:
    """Exit passes: this lane's public key, and checking a pass."""


@exit_pass_group.command("key")
@click.pass_obj
def pass_key(obj: Context) -> None:
    """Print this lane's public key line for the store's key file (creating the key once)."""
    from app.services.exit_pass import public_key_text

    signer = bootstrap.build_signer(obj.settings)
    click.echo(f'"{obj.settings.kiosk.lane_id}" = "{public_key_text(signer.public_key())}"')


@exit_pass_group.command("verify")
@click.argument("payload")
@click.option("--keys", type=click.Path(path_type=Path, dir_okay=False),
              help="The store's public keys (default: exit_pass.public_keys_file).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.pass_obj
def pass_verify(obj: Context, payload: str, keys: Path | None, as_json: bool) -> None:
    """Check an exit pass offline and say what it holds. Exit 1 if it is not valid."""
    from datetime import UTC, datetime

    from app.services.exit_pass import KeyFileError, load_public_keys, verify

    try:
        public_keys = load_public_keys(keys or obj.settings.public_keys_path)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    verdict = verify(payload, public_keys)
    held = verdict.exit_pass
    record: dict[str, Any] = {"valid": verdict.valid, "code": verdict.code,
                              "message": verdict.message}
    if held is not None:
        record.update(
            lane_id=held.lane_id, order_id=held.order_id, total_minor=held.total_minor,
            currency=held.currency, item_count=held.item_count, exit_audit=held.exit_audit,
            issued_at=datetime.fromtimestamp(held.issued_at, UTC).isoformat(),
        )
    if as_json:
        click.echo(json.dumps(record, ensure_ascii=False))
    else:
        click.echo(("VALID: " if verdict.valid else "NOT VALID: ") + verdict.message)
        if held is not None:
            click.echo(f"  lane {held.lane_id}, order {held.order_id}, "
                       f"{held.item_count} item(s), {held.currency} {held.total_minor} (minor "
                       f"units), issued {record['issued_at']}"
                       + (", picked for an exit check" if held.exit_audit else ""))
    if not verdict.valid:
        sys.exit(1)


# --- payments ----------------------------------------------------------------
@main.group()
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


# --- behaviour events ---------------------------------------------------------
@main.group()
def outbox() -> None:
    """The shopper-event outbox: what waits for the membership backend."""


@outbox.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def outbox_status(obj: Context, as_json: bool) -> None:
    """Pending, in flight, dead letters, the oldest waiting event and the last upload."""
    from datetime import datetime

    kiosk = obj.kiosk()
    box = bootstrap.build_outbox(kiosk)
    st = box.status()
    age = None
    if st.oldest_pending:
        age = round((kiosk.clock.now() - datetime.fromisoformat(st.oldest_pending))
                    .total_seconds())
    record = {"pending": st.pending, "in_flight": st.in_flight, "dead_letters": st.dead,
              "delivered_kept": st.delivered, "bytes_queued": st.bytes_queued,
              "fill": round(box.fill(), 4), "oldest_pending_age_s": age,
              "last_upload": st.last_upload,
              "backend": obj.settings.membership.base_url or None}
    if as_json:
        click.echo(json.dumps(record))
    else:
        for key, value in record.items():
            click.echo(f"{key:22} {value}")


@outbox.command("flush")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=120, show_default=True,
              help="Give up after this many seconds of failed sends.")
@click.pass_obj
def outbox_flush(obj: Context, timeout: float) -> None:
    """Send everything waiting now, with a progress bar. Exit 1 if some could not be sent."""
    from app.storage.outbox import Outbox

    kiosk = obj.kiosk()
    uploader = bootstrap.build_uploader(obj.settings, kiosk.clock)
    if uploader is None:
        raise click.ClickException("no membership backend: set membership.base_url")
    box = Outbox.open(obj.settings.database_path)
    box.requeue_in_flight()  # rows a crash caught mid-send go out again
    total = box.status().pending
    give_up = time.monotonic() + timeout
    with click.progressbar(length=total, label="sending events") as bar:
        while time.monotonic() < give_up:
            before = box.status().pending
            if before == 0:
                break
            wait = uploader.drain_once(box)
            bar.update(max(0, before - box.status().pending))
            if wait > 0:
                time.sleep(min(wait, max(0.0, give_up - time.monotonic())))
    left = box.status()
    click.echo(f"{total - left.pending} sent, {left.pending} waiting, {left.dead} dead letters"
               + (f"; last error: {uploader.health().last_error}"
                  if uploader.health().last_error else ""))
    if left.pending:
        sys.exit(1)


@outbox.group("dead")
def outbox_dead() -> None:
    """Events the backend rejected, kept for staff."""


@outbox_dead.command("list")
@click.pass_obj
def outbox_dead_list(obj: Context) -> None:
    """Each dead letter: seq, event id, type and the backend's reason."""
    box = bootstrap.build_outbox(obj.kiosk())
    letters = box.dead_letters()
    for seq, event_id, kind, reason in letters:
        click.echo(f"{seq}  {event_id}  {kind}  {reason}")
    click.echo(f"{len(letters)} dead letter(s)")


@outbox_dead.command("retry")
@click.pass_obj
def outbox_dead_retry(obj: Context) -> None:
    """Queue every dead letter to be sent again."""
    kiosk = obj.kiosk()
    count = bootstrap.build_outbox(kiosk).retry_dead()
    bootstrap.build_audit(kiosk).append("retry_dead_letters", "cli", {"events": count},
                                        kiosk.clock.now())
    click.echo(f"{count} event(s) queued again")


# --- staff, audit log, reports -----------------------------------------------------
@main.group()
def staff() -> None:
    """Store staff who may open staff mode (PIN, or badge QR + PIN)."""


@staff.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["attendant", "manager"]), required=True)
@click.option("--pin", prompt=True, hide_input=True, confirmation_prompt=True,
              help="4-12 digits; asked for (not echoed) when not given.")
@click.pass_obj
def staff_add(obj: Context, name: str, role: str, pin: str) -> None:
    """Add a staff member; prints their badge code (print it as a QR for their badge)."""
    from app.storage.staff_book import StaffError

    kiosk = obj.kiosk()
    try:
        member = bootstrap.build_staff_book(kiosk).add(name, role, pin, kiosk.clock.now())
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    bootstrap.build_audit(kiosk).append("staff_added", "cli", {"name": name, "role": role},
                                        kiosk.clock.now())
    click.echo(f"added {member.name} ({member.role}); badge: {member.badge}")


@staff.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def staff_list(obj: Context, as_json: bool) -> None:
    """Names and roles (never PINs or their hashes)."""
    members = bootstrap.build_staff_book(obj.kiosk()).members()
    if as_json:
        click.echo(json.dumps([{"name": m.name, "role": m.role} for m in members],
                              ensure_ascii=False))
        return
    for m in members:
        click.echo(f"{m.name:24} {m.role}")


@staff.command("remove")
@click.argument("name")
@click.pass_obj
def staff_remove(obj: Context, name: str) -> None:
    """Remove a staff member: their PIN and badge stop working at once."""
    from app.storage.staff_book import StaffError

    kiosk = obj.kiosk()
    try:
        bootstrap.build_staff_book(kiosk).remove(name)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    bootstrap.build_audit(kiosk).append("staff_removed", "cli", {"name": name},
                                        kiosk.clock.now())
    click.echo(f"removed {name}")


@main.group()
def audit() -> None:
    """The hash-chained audit log of staff actions and payment outcomes."""


@audit.command("verify")
@click.option("--head", "heads", multiple=True, metavar="SEQ:HASH",
              help="A head recorded elsewhere (a printed Z report); may repeat.")
@click.pass_obj
def audit_verify(obj: Context, heads: tuple[str, ...]) -> None:
    """Check every row's hash and that the log still reaches every head carried off the
    kiosk (the head file, Z reports, the membership backend). Exit 1 naming the first
    bad row."""
    kiosk = obj.kiosk()
    log = bootstrap.build_audit(kiosk)
    known = bootstrap.build_reports(kiosk).z_heads()
    for given in heads:
        seq, _, digest = given.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter(f"{given!r} is not SEQ:HASH", param_hint="--head")
        known.append((int(seq), digest))
    backend = bootstrap.backend_audit_heads(obj.settings)
    known.extend(backend or [])
    consulted = ("membership backend: not configured" if not obj.settings.membership.base_url
                 else "membership backend: NOT REACHABLE, its heads were not checked"
                 if backend is None else f"membership backend: {len(backend)} heads checked")
    verdict = log.verify(known)
    click.echo(consulted, err=backend is None and bool(obj.settings.membership.base_url))
    if verdict.ok:
        click.echo(f"audit log OK: {verdict.rows} rows, head {verdict.head_seq} "
                   f"{verdict.head_hash}")
        return
    click.echo(f"AUDIT LOG BROKEN at row {verdict.bad_seq}: {verdict.reason}", err=True)
    sys.exit(1)


@audit.command("show")
@click.option("--since", type=click.DateTime(), help="Rows at or after this time.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def audit_show(obj: Context, since: Any, as_json: bool) -> None:
    """The rows, oldest first."""
    kiosk = obj.kiosk()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=kiosk.clock.now().tzinfo)
    for entry in bootstrap.build_audit(kiosk).entries(since):
        if as_json:
            click.echo(json.dumps(entry.to_dict(), ensure_ascii=False))
        else:
            detail = json.dumps(entry.detail, ensure_ascii=False)
            click.echo(f"{entry.seq:>6} {entry.at} {entry.kind:24} {entry.actor:14} {detail}")


@main.group()
def report() -> None:
    """X report (since the last Z) and Z report (closes the period)."""


@report.command("x")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def report_x(obj: Context, as_json: bool) -> None:
    """What the lane took since the last Z report."""
    kiosk = obj.kiosk()
    r = bootstrap.build_reports(kiosk).x(kiosk.clock.now())
    click.echo(json.dumps(r.to_dict(), ensure_ascii=False) if as_json else r.text())


@report.command("z")
@click.option("--json", "as_json", is_flag=True)
@click.option("--staff", "staff_name", default="cli", show_default=True,
              help="Who closes the period (goes to the audit log).")
@click.pass_obj
def report_z(obj: Context, as_json: bool, staff_name: str) -> None:
    """Close the period: the report is kept, audited, and queued for the printer."""
    from app.storage.print_jobs import PrintJobs

    kiosk = obj.kiosk()
    r = bootstrap.build_reports(kiosk).z(kiosk.clock.now(), staff_name)
    PrintJobs(kiosk.db).add_document(f"Z{r.z_number}", r.text(), kiosk.clock.now())
    click.echo(json.dumps(r.to_dict(), ensure_ascii=False) if as_json else r.text())


# --- scenarios ---------------------------------------------------------------
@main.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON transcript per scenario.")
@click.option("--data", "data_root", type=click.Path(path_type=Path, file_okay=False),
              help="Keep each scenario's data directory here (default: a temporary one).")
def scenario(files: tuple[Path, ...], as_json: bool, data_root: Path | None) -> None:
    """Run scripted shopping sessions headless on simulated devices (docs/scenarios.md).

    Each file gets a fresh kiosk, payment simulator, membership backend and
    virtual printer. Prints a transcript: each step, the payments, the receipts
    as printed, the exit passes, the events and the audit log. Exit 1 if any
    expectation failed.
    """
    from app.harness import ScenarioError, run_scenario

    failed = 0
    for path in files:
        target = data_root / path.stem if data_root else None
        try:
            transcript = run_scenario(path, target)
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from None
        failed += not transcript.ok
        click.echo(json.dumps(transcript.to_dict(), ensure_ascii=False) if as_json
                   else transcript.text())
    if failed:
        sys.exit(1)


# --- simulators --------------------------------------------------------------
@main.group()
def sim() -> None:
    """Simulated devices an integrator runs instead of hardware."""


@sim.command("scanner")
@click.argument("codes", nargs=-1)
@click.option("--link", type=click.Path(path_type=Path, dir_okay=False),
              help="Also make the port reachable at this path (like /dev/serial/by-id/...).")
@click.option("--aim", default="", help="AIM symbology identifier to prefix, e.g. ']E0'.")
@click.option("--suffix", type=click.Choice(["CR", "LF", "CRLF", "TAB"]), default="CR",
              show_default=True, help="What the scanner sends after each code.")
@click.option("--delay", type=click.FloatRange(0, 3600), default=2.0, show_default=True,
              help="Seconds to wait before sending CODES, so the kiosk can open the port "
              "(opening a serial port discards what was sent before).")
def sim_scanner(codes: tuple[str, ...], link: Path | None, aim: str, suffix: str,
                delay: float) -> None:
    """A serial barcode scanner on a virtual serial port (a pty).

    Prints the port to set as scanner.serial_port, waits --delay seconds,
    sends CODES, then sends each line typed on standard input as one scan,
    until end of input.
    """
    from devices.scanner import SUFFIXES
    from devices.sim.serial_scanner import VirtualSerialScanner

    if not (aim == "" or (len(aim) == 3 and aim.isascii() and aim.startswith("]"))):
        raise click.BadParameter("an AIM identifier is ']' and two characters, e.g. ']E0'",
                                 param_hint="--aim")
    with VirtualSerialScanner(link) as scanner:
        click.echo(f"virtual serial scanner on {scanner.port}"
                   + (f" (also {link})" if link else ""), err=True)
        if codes:
            time.sleep(delay)
        for code in codes:
            scanner.send(code, aim, SUFFIXES[suffix])
        if codes:
            time.sleep(0.5)  # let the kiosk read them before the port closes
        for line in sys.stdin:
            if line.strip():
                scanner.send(line.strip(), aim, SUFFIXES[suffix])


@sim.command("printer")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("receipts"), show_default=True,
              help="Where each receipt goes, as NNNN.txt and NNNN.png.")
@click.option("--link", type=click.Path(path_type=Path, dir_okay=False),
              help="Also make the port reachable at this path.")
@click.option("--paper", type=click.Choice(["58", "80"]), default="80", show_default=True,
              help="Paper width in mm.")
def sim_printer(out_dir: Path, link: Path | None, paper: str) -> None:
    """A virtual ESC/POS receipt printer on a pty, until Ctrl-C.

    Set printer.port to the printed port (or the link). Faults while it runs:
    write a line to OUT/control: paper-out, paper-ok, near-end, cover-open,
    cover-closed, offline, online, silent (no status replies), answer,
    paper-left N (paper runs out after N more bytes).
    """
    from devices.sim.printer import VirtualPrinter

    with VirtualPrinter(out_dir, paper_mm=int(paper), link=link) as vp:
        click.echo(f"virtual printer on {vp.port}" + (f" (also {link})" if link else "")
                   + f"; receipts in {out_dir}/; faults: echo paper-out > {out_dir}/control",
                   err=True)
        seen = 0
        try:
            while True:
                files = vp.wait_for_receipts(seen + 1, timeout=1.0)
                for path in files[seen:]:
                    click.echo(str(path))
                seen = len(files)
        except KeyboardInterrupt:
            pass


def _serve_until_interrupted(server: Any) -> None:
    """Run a simulator's HTTP server in the foreground until Ctrl-C, then free its port."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@sim.command("pay")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--outcome", default="manual", show_default=True,
              help="How every order ends unless scripted otherwise: OUTCOME[:SECONDS[:AMOUNT]],"
              " e.g. approve:3, decline, pay_late:5, pay_on_close, never_answer, slow:4, "
              "bad_signature, wrong_amount:0:1, manual (Pay/Decline on the web page).")
@click.option("--keys", "keys_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where the simulated WeChat Pay and Alipay keys are written (default: a "
              "temporary folder; printed at start).")
def sim_pay(port: int, outcome: str, keys_dir: Path | None) -> None:
    """The payment provider simulator on 127.0.0.1, until Ctrl-C.

    Speaks the store-gateway contract (adapters 'simulator' and 'gateway'), and
    WeChat Pay v3 and Alipay enough to run those adapters for real. Open
    http://127.0.0.1:PORT/ to pay or decline orders by hand.
    """
    from devices.sim.payprovider import OUTCOMES, PayServer, Script

    name, *rest = outcome.split(":")
    if name not in OUTCOMES:
        raise click.BadParameter(f"one of {', '.join(OUTCOMES)}", param_hint="--outcome")
    try:
        script = Script(name, float(rest[0]) if rest else 0.0,
                        int(rest[1]) if len(rest) > 1 else None)
    except ValueError:
        raise click.BadParameter("OUTCOME[:SECONDS[:AMOUNT]]", param_hint="--outcome") from None
    try:
        server = PayServer(port, keys_dir=keys_dir)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
    server.provider.default = script
    _ = server.keys  # the key files exist before anyone is told where they are
    click.echo(f"payment simulator on {server.url} (orders: {server.url}/); outcome {outcome}; "
               f"keys in {server.keys_dir}", err=True)
    _serve_until_interrupted(server)


@sim.command("backend")
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True)
@click.option("--db", "db_file", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("membership-backend.db"), show_default=True,
              help="The backend's own SQLite file.")
def sim_backend(port: int, db_file: Path) -> None:
    """The reference membership backend on 127.0.0.1, until Ctrl-C.

    Stores events (deduplicated by event_id), answers member look-ups, shows
    counts at http://127.0.0.1:PORT/. Misbehave while it runs:
    POST /sim/mode {"status": 503, "retry_after": 5, "slow": 2, "reject_types": [...]}.
    Its bearer token is "kiosk-sim-token".
    """
    from devices.sim.membership_backend import BackendServer

    try:
        server = BackendServer(port, db_file)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
    click.echo(f"membership backend on {server.url}; events in {db_file}", err=True)
    _serve_until_interrupted(server)


@sim.command("frames")
@click.argument("outdir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("codes", nargs=-1, required=True)
@click.option("--size", default="1280x720", show_default=True, help="Frame size, WxH.")
def sim_frames(outdir: Path, codes: tuple[str, ...], size: str) -> None:
    """Write camera-like frames (a cluttered scene) showing each code, as PNGs.

    For camera.source = 'folder', and to try `kiosk decode` on frames like a
    camera's. A code's symbology follows its form: 8/12/13 digits EAN/UPC,
    URLs QR, anything else Code 128.
    """
    import cv2

    from devices.sim.frames import Scene

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter("use WIDTHxHEIGHT, e.g. 1280x720", param_hint="--size") from None
    if not (320 <= width <= 7680 and 240 <= height <= 4320):
        raise click.BadParameter("frames must be 320x240 to 7680x4320", param_hint="--size")
    outdir.mkdir(parents=True, exist_ok=True)
    scene = Scene(width, height)
    for i, code in enumerate(codes):
        try:
            frame = scene.frame(code)
        except (ValueError, RuntimeError) as exc:
            raise click.ClickException(f"cannot render {code!r}: {exc}") from None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in code[:20])
        path = outdir / f"{i:03d}-{safe}.png"
        cv2.imwrite(str(path), frame)
        click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    main()
