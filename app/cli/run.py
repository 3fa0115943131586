"""``kiosk demo`` and ``kiosk run``: start the touch screen (the demo store, or a store's)."""

from __future__ import annotations

from pathlib import Path

import click

from app import bootstrap
from app.cli.root import Context
from app.storage.catalogue_repo import CatalogueMismatch
from app.storage.db import DatabaseDamaged, DataDirUnusable
from app.storage.lock import DataDirInUse, hold_data_dir


def kiosk_or_refuse(obj: Context, screenshot: Path | None) -> bootstrap.Kiosk:
    """The kiosk; on a damaged database, the refusing screen instead (the out-of-order
    reason and the staff alert: app.bootstrap.run_refusing_ui), then exit status 1."""
    try:
        return bootstrap.build(obj.settings)
    except DatabaseDamaged as exc:
        click.echo(f"refusing to sell: {exc}", err=True)
        where = bootstrap.raise_damage_alert(obj.settings, str(exc))
        click.echo(f"staff alert raised: {', '.join(where)}", err=True)
        try:
            bootstrap.run_refusing_ui(obj.settings, str(exc), screenshot=screenshot,
                                      alerted=True)
        except (DataDirInUse, DataDirUnusable) as busy:
            raise click.ClickException(str(busy)) from None
        raise SystemExit(1) from None
    except (CatalogueMismatch, DataDirUnusable) as exc:
        raise click.ClickException(str(exc)) from None  # as every other command says it


@click.command()
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
    kiosk = kiosk_or_refuse(obj, screenshot)
    try:
        # Not into a data directory a kiosk is running on: its staff would get the demo
        # manager (PIN 2580). run_ui takes the lock again for the screen.
        with hold_data_dir(obj.settings.data_dir, "kiosk demo loading the demo store"):
            for line in bootstrap.seed_demo_store(kiosk):
                click.echo(f"demo store: loaded {line}")
            for line in bootstrap.seed_demo_staff(kiosk):
                click.echo(f"demo staff: {line} (hold the top-left corner 3 s for staff "
                           "mode)")
    except (DataDirInUse, DataDirUnusable) as exc:
        kiosk.close()
        raise click.ClickException(str(exc)) from None
    click.echo(f"data directory: {obj.settings.data_dir}")
    click.echo(f"receipts: {obj.settings.data_dir / 'receipts'}")
    try:
        bootstrap.run_ui(kiosk, screenshot=screenshot, demo=True, webcam=webcam)
    except (DataDirInUse, DataDirUnusable) as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option(
    "--screenshot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save a screenshot of the first screen to this PNG and exit.",
)
@click.pass_obj
def run(obj: Context, screenshot: Path | None) -> None:
    """Start the kiosk with the catalogue already in its data dir (what a store runs)."""
    try:
        bootstrap.run_ui(kiosk_or_refuse(obj, screenshot), screenshot=screenshot)
    except (DataDirInUse, DataDirUnusable) as exc:
        raise click.ClickException(str(exc)) from None
