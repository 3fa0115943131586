"""``kiosk printer``: the receipt printer's status, a test page, the print queue, reprints."""

from __future__ import annotations

import json
import sys

import click

from app import bootstrap
from app.cli.root import Context


@click.group()
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
    from app.services.staff_actions import reprint_receipt
    from app.storage.print_jobs import PrintJobs

    kiosk = obj.kiosk()
    try:
        job_id = reprint_receipt(PrintJobs(kiosk.db), bootstrap.build_audit(kiosk), kiosk.clock,
                                 obj.acting(), order_id)
    except KeyError:
        raise click.ClickException(f"no receipt for order {order_id!r}") from None
    click.echo(f"queued copy as job {job_id}")
