"""``kiosk restarts``: the restart-loop record (app.storage.starts), and lifting its hold.

After ``kiosk.restart_limit`` unclean ends in a row the kiosk starts in the
out-of-order screen ("restarting repeatedly") and tries nothing else; staff read the
cause in the journal (``journalctl -u kiosk``), fix it, then ``kiosk restarts clear``:
the held kiosk sees the hold lifted within seconds and ends, and systemd starts it
afresh (``Restart=always``).
"""

from __future__ import annotations

import json
import logging
import time

import click

from app.cli.root import Context
from app.storage.starts import StartRecord

log = logging.getLogger(__name__)


@click.group()
def restarts() -> None:
    """The restart-loop limit: recent unclean ends, and the hold."""


@restarts.command("show")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def restarts_show(obj: Context, as_json: bool) -> None:
    """Unclean ends in a row, the limit, and whether the kiosk is held."""
    k = obj.settings.kiosk
    v = StartRecord(obj.settings.data_dir).verdict(time.time(), k.restart_limit,
                                                   k.restart_window_min * 60)
    if as_json:
        click.echo(json.dumps({"unclean": v.unclean, "limit": k.restart_limit,
                               "window_min": k.restart_window_min, "holding": v.holding,
                               "since": v.since, "reason": v.reason}))
        return
    click.echo(f"{v.unclean} unclean end(s) in a row (limit {k.restart_limit} within "
               f"{k.restart_window_min} min)")
    click.echo(f"held since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(v.since))}: "
               f"{v.reason}" if v.holding and v.since else "not held")
    click.echo("the log: journalctl -u kiosk")


@restarts.command("clear")
@click.pass_obj
def restarts_clear(obj: Context) -> None:
    """Lift the hold and forget the unclean ends: a held kiosk ends within seconds, and
    its service starts it afresh."""
    # Not under the data directory's lock: the held screen holds it, and writes nothing
    # to the record while held; the record is replaced whole (rename), never half-written.
    changed = StartRecord(obj.settings.data_dir).clear(time.time())
    log.warning("restart-loop hold cleared from the command line")
    click.echo("cleared: the next start tries again" if changed else "nothing to clear")
