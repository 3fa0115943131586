"""The ``kiosk`` group itself: the global options and the context every command reads.

``Context`` loads the settings once (a bad setting is a click error naming it)
and builds the kiosk through the composition root (``app.bootstrap``).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from app import bootstrap
from app.config import Settings, SettingsError, load_settings
from app.services.staff_actions import CLI_ACTOR, Acting
from app.storage.catalogue_repo import CatalogueMismatch
from app.storage.db import DatabaseDamaged, DataDirUnusable


class Context:
    """What ``--config`` and ``--data-dir`` chose: the settings, and the kiosk built on them."""

    def __init__(self, config: Path | None, data_dir: Path | None) -> None:
        self.config = config
        self.data_dir = data_dir
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config, self.data_dir)
            except SettingsError as exc:
                raise click.ClickException(f"bad setting: {exc}") from None
        return self._settings

    def kiosk(self) -> bootstrap.Kiosk:
        try:
            return bootstrap.build(self.settings)
        except (CatalogueMismatch, DataDirUnusable) as exc:
            raise click.ClickException(str(exc)) from None  # a message, exit code 1
        except DatabaseDamaged as exc:
            raise click.ClickException(f"refusing to start: {exc}") from None

    def acting(self, actor: str = CLI_ACTOR) -> Acting:
        """Who a staff action from the command line is by: ``actor`` at this lane, outside
        any shopper session (so no ``staff_action`` event, only the audit row)."""
        return Acting(actor, self.settings.kiosk.lane_id)

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Settings file (TOML). Default: $KIOSK_CONFIG, else <data dir>/kiosk.toml if present.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the kiosk keeps its database. Default: $KIOSK_DATA_DIR, else "
    "~/.local/share/scan-and-go-kiosk.",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None, data_dir: Path | None) -> None:
    """Scan & Go self-service checkout kiosk."""
    ctx.obj = Context(config, data_dir)
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, stop_like_ctrl_c)
        ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


def stop_like_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM (``systemctl stop``, a container's stop) in a command without a screen: the
    same as Ctrl-C. Python runs this handler on the main thread between two bytecodes
    (never inside a C-level signal context), so raising there is safe; what a command
    does on Ctrl-C (a simulator frees its port, a ``with`` block closes its files and
    rolls back an open transaction, as after a crash) it now does on SIGTERM, and a
    server that ends on Ctrl-C ends with status 0. ``kiosk run`` and ``kiosk demo``
    replace it once their screen exists (app.bootstrap.Service: a flag the Kivy thread
    polls, since Kivy's own loop must not be interrupted at any bytecode)."""
    raise KeyboardInterrupt

