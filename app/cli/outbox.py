"""``kiosk outbox``: the shopper-event outbox, sending it now, and its dead letters."""

from __future__ import annotations

import json
import sys
import time

import click

from app import bootstrap
from app.cli.root import Context


@click.group()
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
    from app.services.staff_actions import retry_dead_letters

    kiosk = obj.kiosk()
    count = retry_dead_letters(bootstrap.build_outbox(kiosk).retry_dead,
                               bootstrap.build_audit(kiosk), kiosk.clock, obj.acting())
    click.echo(f"{count} event(s) queued again")
