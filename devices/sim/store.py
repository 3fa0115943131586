"""The simulated store a kiosk runs in without hardware: `kiosk demo` and `kiosk scenario` both.

Each part is the same simulator an integrator starts by hand (`kiosk sim pay`,
`kiosk sim backend`, `kiosk sim printer`), started in-process on free ports of
127.0.0.1: the payment provider, the reference membership backend (with the
demo members enrolled), a virtual ESC/POS printer on a real pty, and a camera
that shows generated frames. ``point`` aims a kiosk's settings at them; the
kiosk then runs exactly the runtime a store runs (``app.runtime``), built by the
composition root. ``hold`` is the demo shelf: it renders a product's barcode
(or a member's QR) into the camera frames, so someone without a camera can
shop with the mouse, and a scenario can "show" a code to the real decoder.
``show_payment_code`` is the shopper's phone: a wallet issues a payment code
(the payment simulator's wallets) and the phone shows it to the camera.

With ``head_office`` (`kiosk demo`), the membership backend is also the store's head
office for store data (issue 22, docs/store-sync.md): a publishing key is made in the
data directory (``hq-publish.key``), the demo catalogue and promotions are published as
version 1, and the lane pins the key, so it follows head office like a chain's lane;
`kiosk hq publish ... --store-address sqlite:<data dir>/sim-backend.db` publishes more.
"""

from __future__ import annotations

import csv
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from app.config import Settings, resolve_seed
from devices.camera import FrameSource, GeneratedSource
from devices.sim.frames import PHONE, render_barcode
from devices.sim.membership_backend import DEFAULT_TOKEN, BackendServer
from devices.sim.payprovider import PayServer
from devices.sim.printer import VirtualPrinter
from hq import publish as hq_publish

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
HQ_KEY_FILE = "hq-publish.key"  # head office's publishing key, in the demo's data directory
BACKEND_DB = "sim-backend.db"  # the membership backend's (and head office's) store
DEMO_POLL_S = 5  # the demo lane looks for new versions this often (a store: sync.poll_s)


class PausableSource:
    """The generated camera, which can be made to stop delivering frames (unplugged, a hung
    driver) so the camera's own watchdog notices."""

    def __init__(self, inner: GeneratedSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.paused = False

    def open(self) -> None:
        self.inner.open()

    def read(self) -> Any:
        if self.paused:
            time.sleep(0.05)
            return None  # no frame: the camera's watchdog judges the gap
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()

    def show(self, code: str | None, frames: int = 15, symbology: str | None = None) -> None:
        self.inner.show(code, frames, symbology)


def demo_members() -> list[tuple[str, str, str, str]]:
    """The demo store's members (seeds/members.csv): id, name, tier, phone."""
    with (PROJECT_ROOT / "seeds" / "members.csv").open(encoding="utf-8") as f:
        return [(r["member_id"], r["name"], r["tier"], r["phone"]) for r in csv.DictReader(f)]


class SimStore:
    """Payment provider, membership backend, receipt printer and camera, simulated.

    ``keep_camera``: leave the configured camera alone (``kiosk demo --webcam``).
    ``pay_url``: use a payment simulator that outlives this store (a restart test).
    ``pay_options``: extra options for the simulator adapter (e.g. ``read_timeout_s``).
    ``head_office``: publish the demo store data from the backend and point the lane's
    sync at it (see the module docstring)."""

    def __init__(self, data_dir: Path, *, keep_camera: bool = False, pay_url: str = "",
                 pay_options: dict[str, Any] | None = None, head_office: bool = False) -> None:
        self.data_dir = data_dir
        self.head_office = head_office
        self.hq_public_key = ""
        self.keep_camera = keep_camera
        self.pay_url = pay_url  # where the simulated phone pays
        self.pay_options = dict(pay_options or {})
        self.pay: PayServer | None = None
        self.backend: BackendServer | None = None
        self.printer: VirtualPrinter | None = None
        self.camera: PausableSource | None = None

    @property
    def receipts_dir(self) -> Path:
        return self.data_dir / "receipts"

    def start(self, settings: Settings) -> SimStore:
        """Start the simulators and point ``settings`` at them; stops what started if a
        later part fails."""
        try:
            self.pay = PayServer(0, keys_dir=self.data_dir / "sim-pay-keys").start()
            self.backend = BackendServer(0, self.data_dir / BACKEND_DB).start()
            for row in demo_members():
                self.backend.add_member(*row)
            if self.head_office:
                self.publish_demo_data(settings)
            self.printer = VirtualPrinter(self.receipts_dir,
                                          paper_mm=settings.printer.paper_mm).start()
            if not self.keep_camera:
                c = settings.camera
                self.camera = PausableSource(GeneratedSource([], fps=c.fps, width=c.width,
                                                             height=c.height))
        except BaseException:
            self.stop()
            raise
        self.pay_url = self.pay_url or self.pay.url
        # Where `kiosk sim pay code --url ...` issues the simulated phones' payment codes.
        log.info("payment simulator on %s", self.pay_url)
        self.point(settings)
        return self

    def point(self, settings: Settings) -> None:
        """Aim ``settings`` at this store's simulators (payment, printer, backend, camera)."""
        assert self.backend is not None and self.printer is not None
        settings.payment.adapter = "simulator"
        settings.payment.options = {"base_url": self.pay_url, **self.pay_options}
        settings.printer.port = self.printer.port
        m = settings.membership
        m.base_url, m.token = self.backend.url, DEFAULT_TOKEN
        m.member_key = self.backend.member_key_text()
        settings.ui.demo_shelf = True
        if self.camera is not None:
            settings.camera.source = "generated"
        if self.hq_public_key:
            settings.sync.enabled, settings.sync.url = True, ""  # the backend above
            settings.sync.hq_public_key = self.hq_public_key
            settings.sync.poll_s = DEMO_POLL_S

    @property
    def hq_key_path(self) -> Path:
        return self.data_dir / HQ_KEY_FILE

    def publish_demo_data(self, settings: Settings) -> list[str]:
        """Head office's side of the demo: its publishing key (made once, in
        ``hq_key_path``) and, for a store with nothing published yet, the demo catalogue
        and promotions (settings ``catalogue.seed_csv`` / ``seed_promotions``) as version
        1 of store ``membership.store_id``, effective now. Returns what was published."""
        assert self.backend is not None
        path = self.hq_key_path
        key = hq_publish.load_key_file(path) if path.exists() \
            else hq_publish.create_key_file(path)
        self.hq_public_key = hq_publish.public_key_text(key)
        store_id, store = settings.membership.store_id, self.backend.store
        done = []
        for kind, seed in (("catalogue", settings.catalogue.seed_csv),
                           ("promotions", settings.catalogue.seed_promotions)):
            source = resolve_seed(seed)
            if source is None or store.latest_version(store_id, kind) is not None:
                continue
            m = hq_publish.publish(store, key, store_id, kind, source,
                                   currency=settings.store.currency,
                                   tax_classes=frozenset(settings.store.tax_classes),
                                   note="the demo store")
            done.append(f"{kind} version {m.version}")
            log.info("head office: published %s %d for store %s", kind, m.version, store_id)
        return done

    def camera_factory(self) -> Callable[[], FrameSource] | None:
        """The camera's frame source for the runtime (None: the configured camera)."""
        camera = self.camera
        return (lambda: camera) if camera is not None else None

    # -- what a shopper (or a scenario) does in the simulated store ---------------------------
    def hold(self, code: str | None, frames: int = 20) -> None:
        """Hold ``code`` under the camera for ``frames`` frames (None: nothing in view)."""
        if self.camera is None:
            raise RuntimeError("the demo shelf needs the generated camera (not --webcam)")
        if code is not None:
            render_barcode(code)  # raises ValueError here, not in the camera thread
        self.camera.show(code, frames)

    def issue_payment_code(self, wallet: str = "wechat", then: str = "approve", *,
                           age_s: float = 0.0) -> dict[str, Any]:
        """A new payment code from the simulated ``wallet``'s phone (``POST /sim/wallets/code``
        on the payment simulator the kiosk uses): {code, wallet, then, expires_in_s,
        expires_at}. ``then``: approve, password:N, decline:N, never, insufficient.
        ``age_s``: issued that many seconds ago (over a minute: an expired code).
        ValueError with the simulator's reason if it refuses."""
        body: dict[str, Any] = {"wallet": wallet, "then": then}
        if age_s:
            body["age_s"] = age_s
        reply = requests.post(f"{self.pay_url}/sim/wallets/code", json=body, timeout=5)
        if reply.status_code != 201:
            raise ValueError(reply.text[:200])
        return dict(reply.json())

    def show_payment_code(self, wallet: str = "wechat", then: str = "approve",
                          frames: int = 30, code: str | None = None) -> str:
        """The shopper holds a phone showing a payment code under the camera for ``frames``
        frames (a Code 128 and a QR of it, as the wallets show it): a fresh code of
        ``wallet`` that behaves as ``then``, or ``code`` itself (a used or expired one, to
        show it again). Returns the code. RuntimeError without the generated camera."""
        if self.camera is None:
            raise RuntimeError("the simulated phone needs the generated camera (not --webcam)")
        if code is None:
            code = str(self.issue_payment_code(wallet, then)["code"])
        render_barcode(code, PHONE)  # raises ValueError here, not in the camera thread
        self.camera.show(code, frames, PHONE)
        return code

    def member_code(self, member_id: str) -> str:
        """The member QR the membership app would show for ``member_id``."""
        assert self.backend is not None
        return self.backend.member_code(member_id)

    def phone(self, out_trade_no: str, action: str = "pay") -> None:
        """The shopper's simulated phone pays (or declines) the order, off the caller's thread."""
        url = f"{self.pay_url}/sim/orders/{out_trade_no}/{action}"

        def send() -> None:
            try:
                requests.post(url, timeout=5)
            except requests.RequestException:
                log.exception("the simulated phone could not reach the payment simulator")
        threading.Thread(target=send, name="demo-phone", daemon=True).start()

    # -- what a scenario makes the simulators do (their control endpoints) --------------------
    def script_payment(self, outcome: str, *, seconds: float = 0,
                       amount: int | None = None, order: str = "*") -> None:
        """How the payment simulator answers every order from now on (``POST /sim/script``:
        approve, decline, pay_late, never_answer, ... after ``seconds``; ``amount`` in minor
        units to pay a wrong amount), or only the order ``order`` (an out_trade_no, open or
        not yet). ValueError with the simulator's reason if it refuses."""
        assert self.pay is not None
        body: dict[str, Any] = {"order": order, "outcome": outcome, "seconds": seconds}
        if amount is not None:
            body["amount"] = amount
        reply = requests.post(f"{self.pay.url}/sim/script", json=body, timeout=5)
        if not reply.ok:
            raise ValueError(reply.text[:200])

    def backend_status(self, status: int) -> None:
        """Make the membership backend answer every request with ``status`` (503: down,
        200: up again; ``POST /sim/mode``)."""
        assert self.backend is not None
        requests.post(f"{self.backend.url}/sim/mode", json={"status": status}, timeout=5)

    def charges(self) -> int:
        """How many times the payment simulator has taken money, over every order."""
        assert self.pay is not None
        state = requests.get(f"{self.pay.url}/sim/state", timeout=5).json()
        return int(sum(state["charges"].values()))

    def charge_calls(self) -> int:
        """How many payment-code charge calls the payment simulator received, over every
        order (a repeat of one charge counts: the kiosk must never send one)."""
        assert self.pay is not None
        state = requests.get(f"{self.pay.url}/sim/state", timeout=5).json()
        return int(sum(o["charge_calls"] for o in state["orders"].values()))

    def trades_waiting(self) -> int:
        """The payment simulator's orders still open: waiting to be paid, or paying (a
        wallet's password prompt open)."""
        assert self.pay is not None
        state = requests.get(f"{self.pay.url}/sim/state", timeout=5).json()
        return sum(1 for o in state["orders"].values() if o["status"] in ("waiting", "paying"))

    def stop(self) -> None:
        for server in (self.pay, self.backend):
            if server is not None:
                server.stop()
        if self.backend is not None:
            self.backend.store.close()
        if self.printer is not None:
            self.printer.close()


__all__ = ["BACKEND_DB", "HQ_KEY_FILE", "PausableSource", "SimStore", "demo_members"]
