"""A simulator stopped right after it says where it listens ends cleanly (status 0).

``tests/faults/test_service.py`` sends SIGTERM to ``kiosk sim pay`` as soon as it reads the
"payment simulator on ..." line; SIGTERM is Ctrl-C there (app.cli.root). The line was
printed before the ``try`` that turns Ctrl-C into a clean stop, so a SIGTERM landing in
between (seen under load) ended it as an abort, status 1. Here the interrupt is raised
exactly there, at the banner, deterministically.
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from app.cli import main


@pytest.mark.parametrize("args, banner", [
    (["sim", "pay", "--port", "0"], "payment simulator on"),
    (["sim", "backend", "--port", "0"], "membership backend on"),
])
def test_an_interrupt_at_the_banner_is_a_clean_stop(tmp_path, monkeypatch, args, banner):
    echo = click.echo

    def interrupted_at_banner(message: object = None, *a: object, **kw: object) -> None:
        echo(message, *a, **kw)  # type: ignore[arg-type]
        if isinstance(message, str) and message.startswith(banner):
            raise KeyboardInterrupt

    monkeypatch.setattr(click, "echo", interrupted_at_banner)
    extra = ["--keys", str(tmp_path / "keys")] if "pay" in args else \
        ["--db", str(tmp_path / "backend.db")]
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), *args, *extra])
    assert result.exit_code == 0, result.output
