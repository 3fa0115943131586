"""`kiosk run` as systemd runs it, in a child process a test drives through stdin.

Run by ``tests/faults/test_service.py`` (under Xvfb: the real Kivy screen) as

    python -m tests.faults.service_kiosk DATA

It loads the demo catalogue into ``DATA`` (first start only), then runs the real
command, ``kiosk --data-dir DATA run`` (``app.cli.main``: the touch screen, the lane
on its own thread, the SIGTERM handler, the systemd notifications from the
environment), and reads commands from stdin on a thread of its own, posting each to
the lane as a touch would:

- ``shop``: start, skip the member step, scan a bottle of milk and a loaf of bread;
- ``pay``: press Pay (the QR payment, at the payment simulator ``DATA/kiosk.toml`` names);
- ``hang``: a lane command that never returns (a lane stuck in a call): the lane's
  thread stops, so must the watchdog pings;
- ``report``: print the lane's state.

Every answer is one JSON line on stdout: ``{"report": {screen, lines, payment, sale}}``
or ``{"hung": true}``. Nothing here changes what ``kiosk run`` does; the only addition is
this control thread, which holds the runtime ``bootstrap.build_runtime`` returned.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from app import bootstrap
from app.config import load_settings
from app.lane import Lane

MILK = "6900000000014"
BREAD = "6900000000021"

_runtime: list[Any] = []


def say(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


def report(lane: Lane) -> dict[str, Any]:
    view = lane.view
    lines = ([[line.line.product.code, line.line.quantity] for line in view.priced.lines]
             if view.priced is not None else [])
    return {"screen": view.screen.value, "lines": lines,
            "payment": view.payment.out_trade_no if view.payment else None,
            "sale": view.receipt.order_id if view.receipt else None}


def shop(lane: Lane) -> None:
    lane.start()
    lane.skip_member()
    lane.scan(MILK)
    lane.scan(BREAD)


def hang(_lane: Lane) -> None:
    say({"hung": True})
    while True:  # a lane stuck in a call that never returns
        time.sleep(3600)


COMMANDS = {"shop": shop, "pay": Lane.pay, "hang": hang,
            "report": lambda lane: say({"report": report(lane)})}


def control() -> None:
    for line in sys.stdin:
        name = line.strip()
        while not _runtime:
            time.sleep(0.05)
        if name in COMMANDS:
            command = COMMANDS[name]
            _runtime[0].post(command)
            if name in ("shop", "pay"):
                _runtime[0].post(COMMANDS["report"])


def main(argv: list[str]) -> int:
    data = Path(argv[0])
    settings = load_settings(data_dir=data, environ={})
    kiosk = bootstrap.build(settings)
    bootstrap.seed_demo_store(kiosk)  # loads nothing twice
    kiosk.close()

    build_runtime = bootstrap.build_runtime

    def keep(*args: Any, **kwargs: Any) -> Any:
        runtime = build_runtime(*args, **kwargs)
        _runtime.append(runtime)
        return runtime
    bootstrap.build_runtime = keep  # type: ignore[assignment]
    threading.Thread(target=control, name="test-control", daemon=True).start()

    from app.cli import main as kiosk
    try:
        kiosk.main(["--data-dir", str(data), "run"], prog_name="kiosk", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
