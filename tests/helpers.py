"""Small helpers shared by tests: waiting on threads (cameras, scanners, printers), and
running the `kiosk` command in-process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


@dataclass(frozen=True)
class Ran:
    """What a `kiosk` command did: its exit code and what it printed (text)."""

    returncode: int
    stdout: str
    stderr: str


def run_kiosk(*args: str, env: dict[str, str] | None = None,
              stdin: str | bytes | None = None) -> Ran:
    """Run `kiosk ARGS` in this process with click's test runner: the same command, options,
    output and exit code as the installed console script, without starting Python again.
    ``env`` adds to (never replaces) the environment for the run. An exception the command
    does not turn into an exit code fails the test (it is not counted as exit 1)."""
    from click.testing import CliRunner

    from app.cli import main

    result = CliRunner().invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def pay_on_the_phone(lane, sim, clock) -> str:  # type: ignore[no-untyped-def]
    """Pay the lane's cart as a shopper would: Pay, the simulated phone pays the order on
    the payment simulator ``sim``, the lane's next poll finds it; back to the attract
    screen. Returns the order's out_trade_no."""
    import requests

    from app.lane import Screen

    lane.pay()
    no = lane.view.payment.out_trade_no
    assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok
    clock.advance(seconds=2)
    lane.tick()
    assert lane.view.screen is Screen.RECEIPT
    lane.done()
    return str(no)
