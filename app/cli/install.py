"""``kiosk install``: put the kiosk on a store PC as a locked-down, supervised service.

Builds the plan (``app.install.plan``: pure, a list of steps) from the options and
what is installed, then lists it (``--dry-run``) or carries it out
(``app.install.execute``). ``--rollback`` and ``--uninstall`` are plans too.
docs/install.md walks through it from a fresh Debian 12 PC.
"""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path, PurePosixPath

import click

from app.install import execute as ex
from app.install import plan as p
from app.install.files import Layout

SOURCE = Path(__file__).resolve().parents[2]  # the checkout `kiosk install` runs from


def default_release(source: Path) -> str:
    """``<package version>-<git commit>`` of the checkout (``-dirty`` with uncommitted
    changes), or the version alone outside a git checkout."""
    try:
        version = metadata.version("scan-and-go-kiosk")
    except metadata.PackageNotFoundError:
        version = "0"
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=10", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return version
    return f"{version}-{commit}" + ("-dirty" if dirty else "")


@click.command("install")
@click.option("--dry-run", is_flag=True, help="List every file, directory and command; "
              "change nothing.")
@click.option("--show-files", is_flag=True, help="Print each file's text under its line.")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Install into this directory as if it were / (system commands: apt, "
              "useradd, systemctl, udevadm are listed, not run).")
@click.option("--release", default=None,
              help="Release name (default: <version>-<git commit> of the checkout).")
@click.option("--source", default=None,
              help="What pip installs (default: this checkout); a wheel or a path.")
@click.option("--user", default="kiosk", show_default=True, help="The kiosk's user.")
@click.option("--data", "data_dir", default="/var/lib/kiosk", show_default=True,
              help="The kiosk's data directory.")
@click.option("--prefix", default="/opt/kiosk", show_default=True,
              help="Where releases go (<prefix>/releases/<release>, <prefix>/current).")
@click.option("--python", default="/usr/bin/python3", show_default=True,
              help="The interpreter that makes each release's virtual environment.")
@click.option("--pip-arg", "pip_args", multiple=True,
              help="Extra pip argument, repeatable (e.g. --pip-arg=--no-index "
              "--pip-arg=--find-links=/media/wheels for an offline install).")
@click.option("--camera", default="", help="Camera's stable path (/dev/v4l/by-id/...), "
              "written to a new kiosk.toml.")
@click.option("--printer", default="", help="Printer's stable path (/dev/serial/by-id/...).")
@click.option("--scanner", default="", help="Serial scanner's stable path.")
@click.option("--rollback", is_flag=True, help="Back to the previous release: its code, "
              "and the database as it was before this release migrated it.")
@click.option("--uninstall", is_flag=True, help="Remove units, settings and releases; "
              "the data directory and the user stay.")
@click.option("--purge", is_flag=True, help="With --uninstall: the data directory and "
              "the user too.")
def install(dry_run: bool, show_files: bool, root: Path | None, release: str | None,
            source: str | None,
            user: str, data_dir: str, prefix: str, python: str, pip_args: tuple[str, ...],
            camera: str, printer: str, scanner: str, rollback: bool, uninstall: bool,
            purge: bool) -> None:
    """Install (or upgrade to) this release on a Debian 12 store PC, as root: a user, the
    data directory, a virtual environment per release, udev rules, a bare X server and
    the kiosk as systemd services. Exit 1 naming the step that failed."""
    if rollback and uninstall:
        raise click.UsageError("--rollback and --uninstall do not go together")
    if purge and not uninstall:
        raise click.UsageError("--purge goes with --uninstall")
    if not dry_run and root is None and os.geteuid() != 0:
        raise click.ClickException("installing changes the system: run it as root "
                                   "(sudo ./run.sh install), or look first with --dry-run")
    layout = Layout(user=user, data_dir=PurePosixPath(data_dir),
                    prefix=PurePosixPath(prefix), python=python)
    found = ex.survey(layout, root)
    try:
        if uninstall:
            steps = p.uninstall_plan(layout, purge, found)
        elif rollback:
            steps = p.rollback_plan(layout, found)
        else:
            opts = p.Options(release=release or default_release(SOURCE),
                             source=source or str(SOURCE), layout=layout,
                             pip_args=pip_args, camera=camera, printer=printer,
                             scanner=scanner)
            steps = p.install_plan(opts, found)
    except p.PlanError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        ex.carry_out(steps, root, click.echo, dry_run=dry_run, contents=show_files)
    except ex.InstallFailed as exc:
        raise click.ClickException(f"{exc}; fix it and run the same command again") from None
    if dry_run:
        click.echo(f"dry run: {len(steps)} steps, nothing changed")
    else:
        click.echo(f"done: {len(steps)} steps")
