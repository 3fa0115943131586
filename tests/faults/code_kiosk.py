"""A lane paying by the shopper's payment code, in a child process that can die mid-charge.

Run by ``tests/faults/test_payment_code_kills.py`` and ``bench/payment_code_kills.py`` as

    python -m tests.faults.code_kiosk DATA SIM_URL charge --kill-at STEP   (code on stdin)
    python -m tests.faults.code_kiosk DATA SIM_URL recover

``charge``: the real lane and payment desk (bootstrap.build / build_lane, headless, the
simulator adapter on ``SIM_URL``) on the data directory ``DATA``: a shopper starts,
scans a bottle of milk, presses Pay and shows the payment code read from stdin to a
scanner (``Lane.scan(code, how="scanner")``, the path every reader takes). With
``--kill-at STEP`` the process SIGKILLs itself at that step of the charge (a power cut
there; nothing is flushed or closed):

- ``before_row``: the payment row is about to be written (``PaymentsRepo.add``);
- ``after_row``: written, the "code sent" mark not yet;
- ``after_code_sent``: marked sent, the HTTP request not yet made;
- ``after_reply``: the provider's reply read, the answer not yet applied (no sale);
- ``none``: no self-kill: the lane ticks (polling, and at the deadline reversing) until
  the payment ends; the parent may kill it meanwhile (the charge at the provider, the
  shopper typing the password, the reverse on its way: see the tests).

``recover``: the kiosk started again on the same ``DATA`` (``Lane.boot``) and ticked
until no payment is left open or 60 s pass. Prints one JSON line: the payments' states.

The payment deadline is 4 s here (``payment.code_deadline_s`` is 30-300 s in a store;
set on the settings object, past their validation, so a soak of hundreds of charges
runs in minutes). Logs go to stderr at DEBUG, so the parent can look for the code there.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from app import bootstrap
from app.config import load_settings
from app.lane import Lane
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter

MILK = "6900000000014"
KILL_POINTS = ("before_row", "after_row", "after_code_sent", "after_reply", "none")
DEADLINE_S = 4


def die() -> None:
    """SIGKILL this process: a power cut, nothing flushed, no handler run."""
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill_point(lane: Lane, step: str) -> None:
    """Wrap the desk's repository or provider so the process dies at ``step``."""
    desk = lane.p.desk
    repo, provider = desk.repo, desk.provider
    if step in ("before_row", "after_row"):
        add = repo.add

        def add_then(*args: Any, **kwargs: Any) -> Any:
            if step == "before_row":
                die()
            out = add(*args, **kwargs)
            die()
            return out
        repo.add = add_then  # type: ignore[method-assign]
    elif step == "after_code_sent":
        save = repo.save

        def save_then(payment: Any, at: Any, note: str) -> Any:
            out = save(payment, at, note)
            if payment.code_submitted and note.startswith("sending the"):
                die()
            return out
        repo.save = save_then  # type: ignore[method-assign,assignment]
    elif step == "after_reply":
        charge = provider.charge_code

        def charge_then(request: Any) -> Any:
            charge(request)
            die()
        provider.charge_code = charge_then  # type: ignore[method-assign,assignment]


def build(data: Path, sim_url: str) -> tuple[Any, Lane]:
    settings = load_settings(data_dir=data, environ={})
    settings.payment.wallets = ["wechat", "alipay"]
    settings.payment.poll_ms = 200
    settings.payment.code_deadline_s = DEADLINE_S
    kiosk = bootstrap.build(settings)
    bootstrap.seed_demo_store(kiosk)
    provider = SimulatorAdapter(sim_url, "lane-01", SIMULATOR_SECRET, read_timeout=3.0)
    lane = bootstrap.build_lane(kiosk, provider=provider, receipt_notice=lambda: None)
    return kiosk, lane


def settle(kiosk: Any, lane: Lane, limit_s: float = 60.0) -> None:
    """Tick the lane until no payment is open (or ``limit_s`` passes)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        lane.tick()
        if not lane.p.desk.repo.all_open():
            return
        time.sleep(0.05)


def report(lane: Lane) -> dict[str, Any]:
    return {"open": [p.out_trade_no for p in lane.p.desk.repo.all_open()],
            "screen": lane.view.screen.value}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    data, sim_url, mode = Path(argv[0]), argv[1], argv[2]
    step = argv[argv.index("--kill-at") + 1] if "--kill-at" in argv else "none"
    if step not in KILL_POINTS:
        raise SystemExit(f"--kill-at: one of {', '.join(KILL_POINTS)}")
    kiosk, lane = build(data, sim_url)
    lane.boot()
    if mode == "charge":
        lane.start()
        lane.skip_member()
        lane.scan(MILK)
        lane.pay()
        code = sys.stdin.readline().strip()
        install_kill_point(lane, step)
        print(json.dumps({"ready": True}), flush=True)
        lane.scan(code, how="scanner")
        del code
    settle(kiosk, lane)
    print(json.dumps(report(lane)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
