"""``kiosk db``: the kiosk database's file, migrations and size; backups and restore."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import click

from app.cli.root import Context
from app.storage.backups import BACKUPS_DIR, list_backups, take_backup
from app.storage.db import (
    DatabaseDamaged,
    DataDirUnusable,
    backup_database,
    restore_database,
    schema_version,
)
from app.storage.lock import DataDirInUse, hold_data_dir


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


@db.command("backup")
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="Without FILE: how many dated backups to keep (the oldest go). "
              "Default: kiosk.backups_keep.")
@click.pass_obj
def db_backup(obj: Context, file: Path | None, keep: int | None) -> None:
    """Copy the database to FILE (default: <data dir>/backups/kiosk-<time>.db, rolling:
    the newest --keep kept) with SQLite's online backup, safe while the lane is selling;
    the copy is checked."""
    kiosk = obj.kiosk()
    path = obj.settings.database_path
    now = datetime.now().astimezone()
    try:
        if file is not None:
            backup_database(kiosk.db, file)
            target, removed = file, []
        else:
            target, removed = take_backup(path, obj.settings.data_dir / BACKUPS_DIR, now,
                                          keep or obj.settings.kiosk.backups_keep)
    except (DatabaseDamaged, OSError, sqlite3.Error) as exc:  # a full disk, say
        raise click.ClickException(f"the backup failed: {exc}") from None
    finally:
        kiosk.close()
    click.echo(f"backed up {path} to {target}")
    for old in removed:
        click.echo(f"removed the old backup {old}")


@db.command("backups")
@click.pass_obj
def db_backups(obj: Context) -> None:
    """List the rolling backups in <data dir>/backups, oldest first: when each was
    taken (local time), its size, its file."""
    directory = obj.settings.data_dir / BACKUPS_DIR
    backups = list_backups(directory)
    if not backups:
        click.echo(f"no backups in {directory}")
        return
    for b in backups:
        click.echo(f"{b.taken_at:%Y-%m-%d %H:%M:%S %z}  {b.size / 1e6:9.2f} MB  {b.path}")


@db.command("restore")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_obj
def db_restore(obj: Context, file: Path) -> None:
    """Replace the database with the backup FILE (stop the lane first: refused while a
    kiosk holds the data directory). The backup is checked first; the current file is
    kept aside as kiosk.db.before-restore-<time>."""
    path = obj.settings.database_path
    stamp = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
    try:
        with hold_data_dir(obj.settings.data_dir, "kiosk db restore"):
            aside = restore_database(file, path, stamp)
    except (DataDirInUse, DataDirUnusable) as exc:
        raise click.ClickException(f"refusing to restore: {exc}") from None
    except DatabaseDamaged as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {path} from {file}")
    if aside is not None:
        click.echo(f"the previous file is kept as {aside}")
