"""``kiosk db``: the kiosk database's file, migrations and size."""

from __future__ import annotations

import click

from app.cli.root import Context
from app.storage.db import schema_version


@click.group()
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
