"""``kiosk scenario``: run scripted shopping sessions headless on simulated devices."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON transcript per scenario.")
@click.option("--data", "data_root", type=click.Path(path_type=Path, file_okay=False),
              help="Keep each scenario's data directory here (default: a temporary one).")
def scenario(files: tuple[Path, ...], as_json: bool, data_root: Path | None) -> None:
    """Run scripted shopping sessions headless on simulated devices (docs/scenarios.md).

    Each file gets a fresh kiosk, payment simulator, membership backend and
    virtual printer. Prints a transcript: each step, the payments, the receipts
    as printed, the exit passes, the events and the audit log. Exit 1 if any
    expectation failed.
    """
    from app.harness import ScenarioError, run_scenario

    failed = 0
    for path in files:
        target = data_root / path.stem if data_root else None
        try:
            transcript = run_scenario(path, target)
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from None
        failed += not transcript.ok
        click.echo(json.dumps(transcript.to_dict(), ensure_ascii=False) if as_json
                   else transcript.text())
    if failed:
        sys.exit(1)
