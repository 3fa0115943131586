"""``kiosk audit``: show and verify the hash-chained audit log."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from app import bootstrap
from app.cli.root import Context


@click.group()
def audit() -> None:
    """The hash-chained audit log of staff actions and payment outcomes."""


@audit.command("verify")
@click.option("--head", "heads", multiple=True, metavar="SEQ:HASH",
              help="A head recorded elsewhere (a printed Z report); may repeat.")
@click.pass_obj
def audit_verify(obj: Context, heads: tuple[str, ...]) -> None:
    """Check every row's hash and that the log still reaches every head carried off the
    kiosk (the head file, Z reports, the membership backend). Exit 1 naming the first
    bad row."""
    kiosk = obj.kiosk()
    log = bootstrap.build_audit(kiosk)
    known = bootstrap.build_reports(kiosk).z_heads()
    for given in heads:
        seq, _, digest = given.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter(f"{given!r} is not SEQ:HASH", param_hint="--head")
        known.append((int(seq), digest))
    backend = bootstrap.backend_audit_heads(obj.settings)
    known.extend(backend or [])
    consulted = ("membership backend: not configured" if not obj.settings.membership.base_url
                 else "membership backend: NOT REACHABLE, its heads were not checked"
                 if backend is None else f"membership backend: {len(backend)} heads checked")
    verdict = log.verify(known)
    click.echo(consulted, err=backend is None and bool(obj.settings.membership.base_url))
    if verdict.ok:
        click.echo(f"audit log OK: {verdict.rows} rows, head {verdict.head_seq} "
                   f"{verdict.head_hash}")
        return
    click.echo(f"AUDIT LOG BROKEN at row {verdict.bad_seq}: {verdict.reason}", err=True)
    sys.exit(1)


@audit.command("show")
@click.option("--since", type=click.DateTime(), help="Rows at or after this time.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def audit_show(obj: Context, since: Any, as_json: bool) -> None:
    """The rows, oldest first."""
    kiosk = obj.kiosk()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=kiosk.clock.now().tzinfo)
    for entry in bootstrap.build_audit(kiosk).entries(since):
        if as_json:
            click.echo(json.dumps(entry.to_dict(), ensure_ascii=False))
        else:
            detail = json.dumps(entry.detail, ensure_ascii=False)
            click.echo(f"{entry.seq:>6} {entry.at} {entry.kind:24} {entry.actor:14} {detail}")
