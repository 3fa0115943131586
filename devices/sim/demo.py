"""The simulated store `kiosk demo` runs against: payment simulator, reference backend,
virtual printer and a camera fed from the demo shelf.

Each is the same simulator an integrator starts by hand (`kiosk sim pay`,
`kiosk sim backend`, `kiosk sim printer`), started in-process on free ports of
127.0.0.1, and the kiosk's settings are pointed at them. ``hold`` is the demo
shelf: it renders a product's barcode (or a member's QR) into the camera
frames, so someone without a camera can shop with the mouse.
"""

from __future__ import annotations

import csv
import logging
import threading
from pathlib import Path

import requests

from app.config import Settings
from devices.camera import GeneratedSource
from devices.sim.frames import render_barcode
from devices.sim.membership_backend import DEFAULT_TOKEN, BackendServer
from devices.sim.payprovider import PayServer
from devices.sim.printer import VirtualPrinter

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class DemoRig:
    def __init__(self, data_dir: Path, *, keep_camera: bool = False) -> None:
        self.data_dir = data_dir
        self.keep_camera = keep_camera
        self.pay: PayServer | None = None
        self.backend: BackendServer | None = None
        self.printer: VirtualPrinter | None = None
        self.camera: GeneratedSource | None = None
        self.pay_url = ""  # where the simulated phone pays: this rig's simulator, or another

    @property
    def receipts_dir(self) -> Path:
        return self.data_dir / "receipts"

    def start(self, settings: Settings) -> None:
        """Start the simulators and point ``settings`` at them."""
        self.pay = PayServer(0, keys_dir=self.data_dir / "sim-pay-keys").start()
        self.backend = BackendServer(0, self.data_dir / "sim-backend.db").start()
        self._enrol_demo_members()
        self.printer = VirtualPrinter(self.receipts_dir,
                                      paper_mm=settings.printer.paper_mm).start()
        settings.payment.adapter = "simulator"
        self.pay_url = self.pay_url or self.pay.url
        settings.payment.options = {"base_url": self.pay_url}
        settings.printer.port = self.printer.port
        m = settings.membership
        m.base_url, m.token = self.backend.url, DEFAULT_TOKEN
        m.member_key = self.backend.member_key_text()
        settings.ui.demo_shelf = True
        if not self.keep_camera:
            c = settings.camera
            c.source = "generated"
            self.camera = GeneratedSource([], fps=c.fps, width=c.width, height=c.height)

    def _enrol_demo_members(self) -> None:
        assert self.backend is not None
        with (PROJECT_ROOT / "seeds" / "members.csv").open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                self.backend.add_member(row["member_id"], row["name"], row["tier"],
                                        row["phone"])

    def hold(self, code: str, frames: int = 20) -> None:
        """Hold ``code`` under the demo camera for ``frames`` frames."""
        if self.camera is None:
            raise RuntimeError("the demo shelf needs the generated camera (not --webcam)")
        render_barcode(code)  # raises ValueError here, not in the camera thread
        self.camera.show(code, frames)

    def member_code(self, member_id: str) -> str:
        assert self.backend is not None
        return self.backend.member_code(member_id)

    def phone(self, out_trade_no: str, action: str = "pay") -> None:
        """The shopper's simulated phone pays (or declines) the order, off the UI thread."""
        url = f"{self.pay_url}/sim/orders/{out_trade_no}/{action}"

        def send() -> None:
            try:
                requests.post(url, timeout=5)
            except requests.RequestException:
                log.exception("the simulated phone could not reach the payment simulator")
        threading.Thread(target=send, name="demo-phone", daemon=True).start()

    def stop(self) -> None:
        for server in (self.pay, self.backend):
            if server is not None:
                server.stop()
        if self.printer is not None:
            self.printer.close()
