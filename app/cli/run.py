"""``kiosk demo`` and ``kiosk run``: start the touch screen (the demo store, or a store's)."""

from __future__ import annotations

from pathlib import Path

import click

from app import bootstrap
from app.cli.root import Context
from app.logs import configure_logging
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
        bootstrap.end_start_clean(obj.settings)  # stopped in order: not a crash
        raise SystemExit(1) from None
    except (CatalogueMismatch, DataDirUnusable) as exc:
        raise click.ClickException(str(exc)) from None  # as every other command says it


def start_or_hold(obj: Context, screenshot: Path | None) -> bool:
    """The start of the screen, as a service runs it: the log to stderr (the journal:
    app.logs), this start written to the restart record (app.bootstrap.begin_start).
    False when the restart-loop limit holds the kiosk: the out-of-order screen ran
    ("restarting repeatedly") until stopped or until staff lift the hold (`kiosk
    restarts clear`: the command then ends, and the service manager starts it afresh),
    and nothing else may be tried."""
    configure_logging(obj.settings)
    try:
        verdict = bootstrap.begin_start(obj.settings)
    except (DataDirInUse, DataDirUnusable) as exc:
        raise click.ClickException(str(exc)) from None
    if not verdict.holding:
        return True
    click.echo(f"restarting repeatedly ({verdict.reason}): out of order until "
               "`kiosk restarts clear`", err=True)
    try:
        if bootstrap.run_holding_ui(obj.settings, verdict, screenshot=screenshot):
            # A Kivy app cannot run twice in one process: end (status 0), and systemd
            # (Restart=always) starts the kiosk afresh in RestartSec.
            click.echo("the hold was lifted: exiting, to be started afresh", err=True)
    except (DataDirInUse, DataDirUnusable) as exc:
        raise click.ClickException(str(exc)) from None
    return False


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
    if not start_or_hold(obj, screenshot):
        return
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
    bootstrap.end_start_clean(obj.settings)


@click.command()
@click.option(
    "--screenshot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save a screenshot of the first screen to this PNG and exit.",
)
@click.pass_obj
def run(obj: Context, screenshot: Path | None) -> None:
    """Start the kiosk with the catalogue already in its data dir (what a store runs).

    Under systemd (Type=notify) it reports ready, pings the watchdog from the lane's
    loop and stops cleanly on SIGTERM; after kiosk.restart_limit unclean ends in a row
    it starts in the out-of-order screen instead (see `kiosk restarts`)."""
    if not start_or_hold(obj, screenshot):
        return
    try:
        bootstrap.run_ui(kiosk_or_refuse(obj, screenshot), screenshot=screenshot)
    except (DataDirInUse, DataDirUnusable) as exc:
        raise click.ClickException(str(exc)) from None
    bootstrap.end_start_clean(obj.settings)
