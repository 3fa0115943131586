"""The kiosk as a systemd service: ``xvfb-run -a python -m bench.service_bench --rounds 3``.

Starts the real ``kiosk run`` (``tests/faults/service_kiosk.py``, the Kivy screen under
Xvfb) ``--rounds`` times with a real Unix datagram socket as ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC=2000000`` (pings due every 1 s), and prints

- start to READY=1 (seconds): the process started, the lane booted, its first view shown;
- the gaps between WATCHDOG=1 pings (seconds): never below 1 s; above it by at most a
  lane tick (0.25 s) plus this machine's scheduling;
- SIGTERM to exit (seconds) with a shopper's cart open: the clean stop, which systemd
  allows ``TimeoutStopSec=`` (90 s by default) before it kills.

Figures only (no pass/fail): compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import time
from pathlib import Path

from devices.sim.payprovider import PayServer
from tests.faults.test_service import Kiosk, NotifySocket, kiosk_toml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sim = PayServer(0).start()
    tmp = Path(tempfile.mkdtemp(prefix="service-bench-"))
    data = kiosk_toml(tmp / "data", sim.url)
    notify = NotifySocket(tmp / "notify.sock")
    ready, stop, gaps = [], [], []
    try:
        for _ in range(args.rounds):
            started = time.monotonic()
            k = Kiosk(tmp, data, notify, watchdog_usec=2_000_000)
            notify.wait_for("READY")
            ready.append(time.monotonic() - started)
            pings: list[float] = []
            while len(pings) < 6:
                notify.wait_for("WATCHDOG")
                pings.append(notify.messages[-1][0])
            gaps += [b - a for a, b in zip(pings, pings[1:], strict=False)]
            k.send("shop")
            k.answer("report")
            term = time.monotonic()
            k.proc.send_signal(signal.SIGTERM)
            if k.proc.wait(120) != 0:
                raise SystemExit(f"exit status {k.proc.returncode} after SIGTERM")
            stop.append(time.monotonic() - term)
            k.kill()
    finally:
        notify.close()
        sim.stop()
    print(f"start -> READY=1 s: {', '.join(f'{x:.2f}' for x in ready)}")
    print(f"WATCHDOG=1 gaps s (due 1.00): min {min(gaps):.3f}, median "
          f"{statistics.median(gaps):.3f}, max {max(gaps):.3f}")
    print(f"SIGTERM -> exit 0 s: {', '.join(f'{x:.2f}' for x in stop)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
