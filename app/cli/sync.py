"""``kiosk sync``: the lane's store data from head office (docs/store-sync.md).

- ``kiosk sync status [--json]``: the same facts as staff mode's "Store data" page,
  read from this lane's database: per kind (catalogue, promotions, lane-keys) the
  version applied, when, from when it was effective, versions staged and waiting, the
  one before, versions rolled back, the last refused download; when head office was
  last reached and whether that is too long ago (``sync.stale_after_h``).
- ``kiosk sync rollback KIND --staff NAME``: back to the version before the applied
  one, audited as NAME (kind, from, to). Refused (exit 1, nothing changed) while a
  shopper's session or payment is open in the database: the check and the rollback
  hold one write transaction (``staff_actions.rollback_between_shoppers``).
- ``kiosk sync check``: ask head office now (one pass of the sync thread's own
  ``StoreSync.sync_once``: list, download, verify, stage), then print the status. It
  stages only: the lane applies a staged version itself, between shoppers, at or after
  its effective time. Exit 1 when head office could not be reached (nothing changed).

Times are printed in the store's zone (``store.time_zone``) with their offset.
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

import click

from app import bootstrap
from app.cli.root import Context

if TYPE_CHECKING:
    from app.services.store_data import DataStatus

KINDS = ("catalogue", "promotions", "lane-keys")  # docs/store-sync.md


@click.group()
def sync() -> None:
    """Store data from head office: versions, and rolling one back."""


def _local(value: object, zone: tzinfo) -> str | None:
    """An instant as ISO 8601 in the store's zone, with its offset; None stays None."""
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.astimezone(zone).isoformat(timespec="seconds")


def status_dict(status: DataStatus, zone: tzinfo) -> dict[str, Any]:
    """``DataStatus`` as ``kiosk sync status --json`` prints it: ``{"set_up": true,
    "checked_at", "age_s", "stale", "last_error", "kinds": {kind: {"applied",
    "applied_at", "effective_at", "staged": [...], "staged_effective": [...], "previous",
    "rolled_back": [...], "last_refusal"}}}``; times ISO 8601 in the store's zone, ages
    in seconds."""
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        ks = status.kinds.get(kind)
        kinds[kind] = {
            "applied": ks.applied if ks else None,
            "applied_at": _local(ks.applied_at, zone) if ks else None,
            "effective_at": _local(ks.effective_at, zone) if ks else None,
            "staged": list(ks.staged) if ks else [],
            "staged_effective": [_local(t, zone) for t in ks.staged_effective] if ks else [],
            "previous": ks.previous if ks else None,
            "rolled_back": list(ks.rolled_back) if ks else [],
            "last_refusal": ks.last_refusal if ks else None,
        }
    return {"set_up": True, "checked_at": _local(status.checked_at, zone),
            "age_s": None if status.age_s is None else round(status.age_s, 1),
            "stale": status.stale, "last_error": status.last_error, "kinds": kinds}


def _ago(seconds: float) -> str:
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m} min" if h else f"{m} min {s} s" if m else f"{s} s"


def status_text(d: dict[str, Any]) -> list[str]:
    """The status as lines for a person (``status_dict``'s facts)."""
    out = []
    if d["checked_at"] is None:
        out.append("head office: not reached yet")
    else:
        out.append(f"head office: last reached {_ago(d['age_s'] or 0)} ago "
                   f"({d['checked_at']})")
    if d["stale"]:
        out.append("STALE: prices may be out of date; the lane keeps selling on the versions "
                   "below. Check the lane's network; if it stays so, call head office IT.")
    if d["last_error"]:
        out.append(f"last problem: {d['last_error']}")
    for kind, k in d["kinds"].items():
        if k["applied"] is None:
            out.append(f"{kind:11} none applied (the lane's own data)")
        else:
            line = f"{kind:11} version {k['applied']}, applied {k['applied_at']}"
            if k["effective_at"]:
                line += f", effective {k['effective_at']}"
            out.append(line)
        for version, when in zip(k["staged"], k["staged_effective"], strict=True):
            out.append(f"{'':11} staged, waiting: {version} (effective {when})")
        if k["previous"] is not None:
            out.append(f"{'':11} previous: {k['previous']} (kiosk sync rollback {kind})")
        if k["rolled_back"]:
            out.append(f"{'':11} rolled back: {', '.join(map(str, k['rolled_back']))}")
        if k["last_refusal"]:
            out.append(f"{'':11} last refused: {k['last_refusal']}")
    return out


@sync.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sync_status(obj: Context, as_json: bool) -> None:
    """Versions of the store data on this lane and when head office was last reached."""
    data = bootstrap.build_store_data(obj.kiosk())
    if data is None:
        if as_json:
            click.echo(json.dumps({"set_up": False,
                                   "why": bootstrap.sync_off_reason(obj.settings)}))
        else:
            click.echo("store sync is not set up on this lane "
                       f"({bootstrap.sync_off_reason(obj.settings)}): prices change only "
                       "by `kiosk catalog import`")
        return
    d = status_dict(data.status(), obj.settings.store.zone())
    click.echo(json.dumps(d, ensure_ascii=False) if as_json else "\n".join(status_text(d)))


@sync.command("rollback")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--staff", "staff_name", required=True,
              help="Who rolls back (goes to the audit log).")
@click.pass_obj
def sync_rollback(obj: Context, kind: str, staff_name: str) -> None:
    """Go back to the version before the applied one of KIND (audited). Refused while a
    shopper's session or payment is open on this lane; the rolled-back version is never
    applied again, a newer one is."""
    from app.services.staff_actions import rollback_between_shoppers

    kiosk = obj.kiosk()
    data = bootstrap.build_store_data(kiosk)
    if data is None:
        raise click.ClickException("store sync is not set up on this lane "
                                   f"({bootstrap.sync_off_reason(kiosk.settings)}): "
                                   "nothing to roll back")
    try:
        # The same connection as StoreData's: its transaction nests in the check's.
        was, now = rollback_between_shoppers(kiosk.db, data, kind,
                                             obj.acting(staff_name))
    except ValueError as exc:  # LaneBusy, or nothing to roll back to
        raise click.ClickException(f"not rolled back: {exc}") from None
    click.echo(f"{kind}: rolled back from version {was} to version {now} "
               f"(audited as {staff_name})")


@sync.command("check")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sync_check(obj: Context, as_json: bool) -> None:
    """Ask head office for newer versions now: download, verify and stage them (the lane
    applies them between shoppers, at their effective time). Exit 1 when head office
    could not be reached."""
    kiosk = obj.kiosk()
    sync_thread = bootstrap.build_store_sync(kiosk.settings, kiosk.clock)
    data = bootstrap.build_store_data(kiosk)
    if sync_thread is None or data is None:
        raise click.ClickException("store sync is not set up on this lane "
                                   f"({bootstrap.sync_off_reason(kiosk.settings)})")
    sync_thread.sync_once(data)  # the thread's own pass, on this connection; never started
    health = sync_thread.health()
    d = status_dict(data.status(), obj.settings.store.zone())
    reached = health.state == "idle"
    if as_json:
        click.echo(json.dumps({**d, "reached": reached, "staged_now": health.staged,
                               "error": health.last_error}, ensure_ascii=False))
    else:
        click.echo(f"head office: {'answered' if reached else 'not reached'}; "
                   f"{health.staged} version(s) staged now"
                   + (f"; {health.last_error}" if health.last_error else ""))
        click.echo("\n".join(status_text(d)))
    if not reached:
        raise SystemExit(1)


__all__ = ["status_dict", "status_text", "sync"]
