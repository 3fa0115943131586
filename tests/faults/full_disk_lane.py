"""A lane on a real file system that fills while a shopper's QR is up (issue 16, fault 5).

Run by ``tests/faults/test_disk_faults.py`` as ``python -m tests.faults.full_disk_lane DIR``
inside a private mount namespace where ``DIR`` is a small tmpfs of its own, so the disk
that fills is a real one (ENOSPC from the kernel, SQLITE_FULL from SQLite) and the
machine's mounts are left alone. Prints one JSON object: what the shopper saw and what
was recorded at each step.
"""

from __future__ import annotations

import errno
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from app import bootstrap
from app.config import load_settings
from app.domain.clock import FixedClock
from app.lane import Screen
from devices.payment.gateway import SIMULATOR_SECRET, SimulatorAdapter
from devices.sim.payprovider import PayServer

MILK = "6900000000014"
FILLER = "filler"


def fill(directory: Path) -> int:
    """Write ``directory/filler`` until the file system refuses (ENOSPC); its size."""
    size = 0
    with open(directory / FILLER, "wb", buffering=0) as f:
        for chunk in (1024 * 1024, 4096, 512, 1):
            block = bytes(chunk)
            while True:
                try:
                    f.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                size += chunk
    return size


def main(data: Path, reserve_mb: int) -> dict[str, Any]:
    """The scenario on the (small, empty) file system of ``data``; ``reserve_mb``: the
    disk reserve (0: none, so the sale cannot be written until staff free space)."""
    settings = load_settings(data_dir=data, environ={})
    settings.payment.min_free_mb = 4
    settings.payment.reserve_mb = reserve_mb
    settings.payment.wallets = ["wechat"]
    clock = FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=timezone(timedelta(hours=8))))
    kiosk = bootstrap.build(settings, clock=clock)
    bootstrap.seed_demo_store(kiosk)
    sim = PayServer(0).start()
    out: dict[str, Any] = {}
    try:
        provider = SimulatorAdapter(sim.url, "lane-01", SIMULATOR_SECRET, read_timeout=2.0)
        lane = bootstrap.build_lane(kiosk, provider=provider, receipt_notice=lambda: None)
        lane.boot()
        out["reserve_made"] = (data / "disk-reserve").exists()
        lane.start()
        lane.skip_member()
        lane.scan(MILK)
        lane.pay()
        assert lane.view.screen is Screen.PAY and lane.view.payment is not None, lane.view
        no = lane.view.payment.out_trade_no
        out["order"] = no
        # The WAL is emptied (as a checkpoint does now and then), so the sale's pages
        # need new blocks of the disk; then the disk fills while the QR is up.
        kiosk.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        out["filled_bytes"] = fill(data)
        assert requests.post(f"{sim.url}/sim/orders/{no}/pay", timeout=5).ok
        clock.advance(seconds=2)
        try:
            lane.tick()
        except Exception as exc:  # noqa: BLE001 - what the runtime's executor would catch
            out["tick_raised"] = repr(exc)
            lane.failed(exc)
        view = lane.view
        out["paid_screen"] = view.screen.value
        out["paid_notice"] = view.notice.key if view.notice else None
        out["paid_notice_values"] = dict(view.notice.values) if view.notice else None
        out["receipt_order"] = view.receipt.order_id if view.receipt else None
        out["exit_pass"] = bool(view.receipt and view.receipt.exit_pass)
        out["sales"] = kiosk.db.execute("SELECT count(*) FROM sales WHERE order_id = ?",
                                        [no]).fetchone()[0]
        out["payment_state"] = kiosk.db.execute(
            "SELECT state, staff_flag FROM payments WHERE out_trade_no = ?", [no]).fetchone()
        out["session_state"] = kiosk.db.execute(
            "SELECT state FROM sessions ORDER BY rowid DESC LIMIT 1").fetchone()[0]
        out["events"] = [r[0] for r in kiosk.db.execute(
            "SELECT type FROM outbox WHERE type IN ('payment_paid', 'session_ended')")]
        out["alerts"] = [r[0] for r in kiosk.db.execute(
            "SELECT message FROM staff_alerts WHERE kind = 'disk'")]
        out["reserve_after_sale"] = (data / "disk-reserve").exists()
        if reserve_mb == 0:  # nothing to release: the truth on screen until space is back
            lane.back()
            clock.advance(seconds=300)  # long past the error screen's idle abandon
            lane.tick()
            out["after_wait_screen"] = lane.view.screen.value
            out["after_wait_notice"] = lane.view.notice.key if lane.view.notice else None
            (data / FILLER).unlink()
            clock.advance(seconds=2)
            lane.tick()
            out["freed_screen"] = lane.view.screen.value
            out["freed_receipt_order"] = lane.view.receipt.order_id if lane.view.receipt \
                else None
            out["freed_sales"] = kiosk.db.execute(
                "SELECT count(*) FROM sales WHERE order_id = ?", [no]).fetchone()[0]
            out["freed_payment_state"] = kiosk.db.execute(
                "SELECT state, staff_flag FROM payments WHERE out_trade_no = ?",
                [no]).fetchone()
            return out
        if view.screen is Screen.RECEIPT:
            lane.done()
        # The next shopper, the disk still full (but for the reserve's room).
        clock.advance(seconds=120)
        lane.tick()
        lane.start()
        lane.skip_member()
        lane.scan(MILK)
        lane.pay()
        out["next_screen"] = lane.view.screen.value
        out["next_notice"] = lane.view.notice.key if lane.view.notice else None
        out["next_qr"] = lane.view.payment is not None
        # Staff free space: the reserve is made again and the lane takes payments.
        (data / FILLER).unlink()
        lane.pay()
        out["after_space_screen"] = lane.view.screen.value
        out["after_space_qr"] = lane.view.payment is not None
        out["reserve_remade"] = (data / "disk-reserve").exists()
    finally:
        sim.stop()
        kiosk.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2])), default=str))
