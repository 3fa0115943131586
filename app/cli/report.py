"""``kiosk report``: the X report, and the Z report that closes the period."""

from __future__ import annotations

import json

import click

from app import bootstrap
from app.cli.root import Context


@click.group()
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
    from app.services.staff_actions import close_period
    from app.storage.print_jobs import PrintJobs

    kiosk = obj.kiosk()
    r = close_period(bootstrap.build_reports(kiosk), PrintJobs(kiosk.db), kiosk.clock,
                     obj.acting(staff_name))
    click.echo(json.dumps(r.to_dict(), ensure_ascii=False) if as_json else r.text())
