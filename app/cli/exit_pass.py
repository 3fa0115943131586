"""``kiosk pass``: this lane's exit-pass public key, and checking a pass offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from app import bootstrap
from app.cli.root import Context


@click.group("pass")
def exit_pass_group() -> None:
    """Exit passes: this lane's public key, and checking a pass."""


@exit_pass_group.command("key")
@click.pass_obj
def pass_key(obj: Context) -> None:
    """Print this lane's public key line for the store's key file (creating the key once)."""
    from app.services.exit_pass import public_key_text

    signer = bootstrap.build_signer(obj.settings)
    click.echo(f'"{obj.settings.kiosk.lane_id}" = "{public_key_text(signer.public_key())}"')


@exit_pass_group.command("verify")
@click.argument("payload")
@click.option("--keys", type=click.Path(path_type=Path, dir_okay=False),
              help="The store's public keys (default: exit_pass.public_keys_file).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.pass_obj
def pass_verify(obj: Context, payload: str, keys: Path | None, as_json: bool) -> None:
    """Check an exit pass offline and say what it holds. Exit 1 if it is not valid."""
    from datetime import UTC, datetime

    from app.services.exit_pass import KeyFileError, load_public_keys, verify

    try:
        public_keys = load_public_keys(keys or obj.settings.public_keys_path)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    verdict = verify(payload, public_keys)
    held = verdict.exit_pass
    record: dict[str, Any] = {"valid": verdict.valid, "code": verdict.code,
                              "message": verdict.message}
    if held is not None:
        record.update(
            lane_id=held.lane_id, order_id=held.order_id, total_minor=held.total_minor,
            currency=held.currency, item_count=held.item_count, exit_audit=held.exit_audit,
            # The store's local time (store.time_zone); the pass holds Unix seconds.
            issued_at=datetime.fromtimestamp(held.issued_at, UTC).astimezone(
                obj.settings.store.zone()).isoformat(),
        )
    if as_json:
        click.echo(json.dumps(record, ensure_ascii=False))
    else:
        click.echo(("VALID: " if verdict.valid else "NOT VALID: ") + verdict.message)
        if held is not None:
            click.echo(f"  lane {held.lane_id}, order {held.order_id}, "
                       f"{held.item_count} item(s), {held.currency} {held.total_minor} (minor "
                       f"units), issued {record['issued_at']}"
                       + (", picked for an exit check" if held.exit_audit else ""))
    if not verdict.valid:
        sys.exit(1)
