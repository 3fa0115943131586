"""``kiosk promotions``: import and list the store's promotions."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli.root import Context
from app.services.catalogue import load_promotions_file


@click.group()
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
