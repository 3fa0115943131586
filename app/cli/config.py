"""``kiosk config``: the settings in effect, their example file and guide."""

from __future__ import annotations

import click

from app.cli.root import Context
from app.config import SECTIONS, example_toml, settings_markdown


@click.group()
def config() -> None:
    """Show the settings, or generate their example file and guide."""


@config.command("show")
@click.pass_obj
def config_show(obj: Context) -> None:
    """Print the settings in effect (after file and environment)."""
    s = obj.settings
    click.echo(f"data_dir = {s.data_dir}")
    for section in SECTIONS:
        click.echo(f"[{section}]")
        for key, value in vars(getattr(s, section)).items():
            click.echo(f"  {key} = {value!r}")


@config.command("example")
def config_example() -> None:
    """Print every setting at its default, as TOML (seeds/kiosk.example.toml)."""
    click.echo(example_toml(), nl=False)


@config.command("docs")
def config_docs() -> None:
    """Print the settings guide as Markdown (docs/settings.md)."""
    click.echo(settings_markdown(), nl=False)
