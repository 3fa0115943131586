"""``kiosk staff``: who may open staff mode (add, list, remove)."""

from __future__ import annotations

import json

import click

from app import bootstrap
from app.cli.root import Context


@click.group()
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
    from app.services.staff_actions import add_staff
    from app.storage.staff_book import StaffError

    kiosk = obj.kiosk()
    try:
        member = add_staff(bootstrap.build_staff_book(kiosk), bootstrap.build_audit(kiosk),
                           kiosk.clock, obj.acting(), name, role, pin)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
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
    from app.services.staff_actions import remove_staff
    from app.storage.staff_book import StaffError

    kiosk = obj.kiosk()
    try:
        remove_staff(bootstrap.build_staff_book(kiosk), bootstrap.build_audit(kiosk),
                     kiosk.clock, obj.acting(), name)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed {name}")
