"""The composition root: the one place that reads settings and wires storage, services and UI.

Everything else receives what it needs as arguments, so tests and scenarios
build the same objects with other settings (cosmicpython's bootstrap pattern).
Kivy is imported only inside ``run_ui``: the CLI's catalogue commands and the
tests never load a window system.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from app.config import Settings, SettingsError, resolve_seed
from app.domain.barcodes import BarcodeRules
from app.domain.clock import Clock
from app.domain.exit_audit import ExitAuditRules
from app.domain.money import Money
from app.domain.promotions import Promotion
from app.domain.sale import PaidSale
from app.domain.tax import TaxPolicy
from app.services import catalogue as catalogue_service
from app.services.checkout import Checkout
from app.services.clock import SystemClock
from app.services.exit_pass import PassSigner, check_pass, lane_signer
from app.services.health import health_page, outbox_state
from app.services.members import MemberCodes
from app.services.payments import Completed, PaymentDesk, PaymentProvider
from app.services.receipts import NO_PRINTER_NOTICE
from app.services.reports import Reports
from app.services.staff_port import Said
from app.storage.alerts import StaffAlerts, append_alert_file
from app.storage.audit import AuditLog
from app.storage.backups import BACKUPS_DIR, newest_age_s, take_backup
from app.storage.catalogue_repo import SqliteCatalogue
from app.storage.db import open_database
from app.storage.disk_reserve import RESERVE_FILE, DiskReserve
from app.storage.lock import hold_data_dir
from app.storage.outbox import Outbox
from app.storage.payments_repo import PaymentsRepo
from app.storage.sales_repo import Sales
from app.storage.staff_book import StaffBook, load_secret
from app.storage.starts import StartRecord, StartVerdict

if TYPE_CHECKING:  # devices pull in OpenCV and the decoders; commands that need none stay light
    from app.lane import Lane, LaneView
    from app.runtime import DeviceHealth, KioskRuntime
    from app.services.printing import PrintQueue
    from app.services.store_data import StoreData
    from app.services.store_sync import StoreSync
    from app.services.uploads import EventUploader
    from devices.camera import Camera, FrameSource
    from devices.decoder import Decoder, FrameDecoder
    from devices.membership import MemberClient
    from devices.printer import SerialLink
    from devices.receipt import ReceiptStyle
    from devices.scanner import (
        CameraScanner,
        KeyboardWedge,
        RejectListener,
        ScanListener,
        SerialScanner,
    )
    from devices.sim.store import SimStore
    from devices.systemd import Notifier, Watchdog

PROJECT_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


@dataclass
class Kiosk:
    """Everything a running kiosk is made of, wired once."""

    settings: Settings
    db: sqlite_utils.Database
    catalogue: SqliteCatalogue
    rules: BarcodeRules
    tax: TaxPolicy
    clock: Clock

    def promotions(self) -> list[Promotion]:
        return self.catalogue.promotions()

    def lookup(self, raw: str | bytes, *, member: bool = False) -> catalogue_service.Lookup:
        barcodes = self.settings.barcodes
        return catalogue_service.lookup(
            raw,
            catalogue=self.catalogue,
            rules=self.rules,
            tax=self.tax,
            promotions=self.promotions(),
            today=self.clock.now().date() if barcodes.refuse_expired else None,
            member=member,
            max_length=barcodes.max_length,
        )

    def close(self) -> None:
        self.db.close()


def build(settings: Settings, clock: Clock | None = None) -> Kiosk:
    # Files only a kiosk that ran leaves: beside them, an empty database is refused.
    held = (settings.audit_head_path, settings.data_dir / "keys" / "exit-pass.pem")
    db = open_database(settings.database_path, held_kiosk=held)
    catalogue = SqliteCatalogue(db, settings.store.currency)
    catalogue.check_currency()
    rules = BarcodeRules(settings.store.currency, settings.barcodes.layouts())
    return Kiosk(
        settings=settings,
        db=db,
        catalogue=catalogue,
        rules=rules,
        tax=settings.store.tax_policy(),
        clock=clock or SystemClock(),
    )


def build_checkout(kiosk: Kiosk) -> Checkout:
    """A fresh cart for the next shopper."""
    return Checkout(
        kiosk.catalogue,
        kiosk.rules,
        kiosk.clock,
        refuse_expired=kiosk.settings.barcodes.refuse_expired,
        max_length=kiosk.settings.barcodes.max_length,
    )


# --- devices ------------------------------------------------------------------------------
def build_decoder(settings: Settings) -> Decoder:
    from devices.decoder import Decoder

    return Decoder(settings.decoder.pipeline, settings.decoder.symbologies)


def build_frame_decoder(settings: Settings) -> FrameDecoder:
    from devices.decoder import FrameDecoder, GuideBox

    return FrameDecoder(
        build_decoder(settings),
        GuideBox(settings.camera.guide_width, settings.camera.guide_height),
        retry_budget=settings.decoder.retry_budget,
        recheck_ms=settings.decoder.recheck_ms,
    )


def camera_source(settings: Settings) -> Callable[[], FrameSource] | None:
    """A factory for the configured frame source (called again on every reopen), or None."""
    from devices import camera as cam

    c = settings.camera
    if c.source == "none":
        return None
    if c.source == "folder":
        folder = resolve_seed(c.folder) or Path(c.folder)
        return lambda: cam.ImageFolderSource(folder, fps=c.fps, repeat=15)
    if c.source == "video":
        video = resolve_seed(c.video) or Path(c.video)
        return lambda: cam.VideoFileSource(video, fps=c.fps)
    if c.source == "generated":
        from devices.sim.frames import render_barcode

        for code in c.codes:
            try:
                render_barcode(code)
            except (ValueError, RuntimeError) as exc:
                raise SettingsError(f"camera.codes: cannot show {code!r}: {exc}") from None
        # One source object across reopens, so codes queued with show() survive them.
        generated = cam.GeneratedSource(
            [cam.Showing(code, 15) for code in c.codes] + [cam.Showing(None, 30)],
            fps=c.fps, width=c.width, height=c.height, loop=bool(c.codes),
        )
        return lambda: generated
    return lambda: cam.OpenCvSource(c.device, c.width, c.height, c.fps, c.exposure or None)


def build_camera(settings: Settings,
                 factory: Callable[[], FrameSource] | None = None) -> Camera | None:
    """The camera for the configured source (or ``factory``'s, e.g. the demo shelf's)."""
    from devices.camera import Camera

    factory = factory or camera_source(settings)
    if factory is None:
        return None
    return Camera(
        factory,
        lost_after_s=settings.camera.lost_after_ms / 1000,
        backoff_max_s=settings.camera.reopen_backoff_max_ms / 1000,
    )


def build_camera_scanner(settings: Settings, camera: Camera, on_scan: ScanListener,
                         on_reject: RejectListener | None = None) -> CameraScanner:
    from devices.scanner import CameraScanner, ReadAcceptor, RejectLimiter

    s = settings.scanner
    return CameraScanner(
        camera,
        build_frame_decoder(settings),
        ReadAcceptor(s.confirm_reads, s.rescan_after_ms / 1000),
        on_scan,
        on_reject,
        max_length=settings.barcodes.max_length,
        limiter=RejectLimiter(s.reject_burst),
    )


def build_serial_scanner(settings: Settings, on_scan: ScanListener,
                         on_reject: RejectListener | None = None) -> SerialScanner | None:
    from devices.scanner import RejectLimiter, SerialScanner

    s = settings.scanner
    if not s.serial_port:
        return None
    return SerialScanner(
        s.serial_port, on_scan, on_reject, baudrate=s.serial_baudrate, suffix=s.serial_suffix,
        rtscts=s.serial_rtscts, xonxoff=s.serial_xonxoff,
        max_length=settings.barcodes.max_length, limiter=RejectLimiter(s.reject_burst),
    )


def build_wedge(settings: Settings, on_scan: ScanListener, on_typing: Callable[[str], None],
                on_reject: RejectListener | None = None) -> KeyboardWedge:
    from devices.scanner import KeyboardWedge, RejectLimiter

    s = settings.scanner
    return KeyboardWedge(
        on_scan, on_typing, on_reject, max_gap_ms=s.wedge_max_gap_ms,
        min_length=s.wedge_min_length, max_length=settings.barcodes.max_length,
        limiter=RejectLimiter(s.reject_burst),
    )


# --- receipts ------------------------------------------------------------------------------
def build_signer(settings: Settings) -> PassSigner:
    """This lane's exit-pass signer (its public key joins the store's key file)."""
    return lane_signer(settings.private_key_path, settings.public_keys_path,
                       settings.kiosk.lane_id)


def build_receipt_style(settings: Settings) -> ReceiptStyle:
    from devices.receipt import ReceiptStyle

    p = settings.printer
    return ReceiptStyle(paper_mm=p.paper_mm, encoding=p.encoding, native_qr=p.native_qr,
                        profile=p.profile, footer_zh=p.footer_zh, footer_en=p.footer_en,
                        time_zone=settings.store.zone())


def build_printer_link(settings: Settings, port: str | None = None) -> SerialLink:
    from devices.printer import SerialLink

    p = settings.printer
    return SerialLink(port or p.port, p.baudrate, rtscts=p.rtscts, xonxoff=p.xonxoff,
                      dsrdtr=p.dsrdtr)


def build_printer(kiosk: Kiosk) -> PrintQueue | None:
    """The print queue's worker for the configured printer, or None without one."""
    from app.services.printing import PrintQueue
    from devices.printer import EscPosPrinter

    settings = kiosk.settings
    if not settings.printer.port:
        return None
    return PrintQueue(
        EscPosPrinter(lambda: build_printer_link(settings), build_receipt_style(settings),
                      status_timeout=settings.printer.status_timeout_ms / 1000),
        settings.database_path,
        kiosk.clock,
        port_name=settings.printer.port,
        backoff_max_s=settings.printer.reopen_backoff_max_ms / 1000,
        confirm_printed=settings.printer.confirm_printed,
    )


# --- payments ------------------------------------------------------------------------------
def build_payment_provider(settings: Settings) -> PaymentProvider:
    from devices.payment import load_adapter

    provider: PaymentProvider = load_adapter(settings.payment.adapter, settings.payment.options,
                                             settings.kiosk.lane_id)
    return provider


def build_payment_desk(kiosk: Kiosk, provider: PaymentProvider | None = None,
                       on_completed: Callable[[Completed], None] | None = None) -> PaymentDesk:
    return PaymentDesk(
        PaymentsRepo(kiosk.db, build_outbox(kiosk), build_audit(kiosk)),
        provider or build_payment_provider(kiosk.settings),
        build_signer(kiosk.settings),
        kiosk.clock,
        kiosk.settings.kiosk.lane_id,
        expire_after=timedelta(seconds=kiosk.settings.payment.expire_s),
        on_completed=on_completed,
        on_clock_refused=lambda message: build_outbox(kiosk).alert("clock", message,
                                                                   kiosk.clock.now()),
        monotonic=getattr(kiosk.clock, "monotonic", time.monotonic),
    )


# --- staff and audit --------------------------------------------------------------------------
def build_audit(kiosk: Kiosk) -> AuditLog:
    return AuditLog(kiosk.db, kiosk.settings.audit_head_path)


def build_staff_book(kiosk: Kiosk) -> StaffBook:
    return StaffBook(kiosk.db, load_secret(kiosk.settings.staff_secret_path))


def build_reports(kiosk: Kiosk) -> Reports:
    """X and Z reports; each Z report (the end of a day) is followed by a rolling backup."""
    return Reports(kiosk.db, build_audit(kiosk), kiosk.settings.kiosk.lane_id,
                   kiosk.settings.store.currency, zone=kiosk.settings.store.zone(),
                   on_closed=lambda: backup_in_background(kiosk.settings, "z report"))


def backup_in_background(settings: Settings, why: str, *,
                         only_if_due: bool = False) -> threading.Thread | None:
    """Take a rolling backup (app.storage.backups.take_backup: online, checked, the oldest
    beyond ``kiosk.backups_keep`` deleted) on a thread and connection of its own, so the
    lane never waits for it; a non-daemon thread, so a command that ends meanwhile (`kiosk
    report z`) waits for the copy. ``only_if_due``: skip it while the newest backup is
    younger than ``kiosk.backup_every_h`` (file times: wall clock). A failure is a staff
    alert (the log, <data dir>/ALERTS.txt and the staff_alerts table when it can be
    written) and changes nothing else. Returns the thread (None: not due)."""
    directory = settings.data_dir / BACKUPS_DIR
    if only_if_due:
        age = newest_age_s(directory, time.time())
        if age is not None and 0 <= age < settings.kiosk.backup_every_h * 3600:
            return None

    def run() -> None:
        started = time.monotonic()
        try:
            target, removed = take_backup(settings.database_path, directory,
                                          datetime.now().astimezone(),
                                          settings.kiosk.backups_keep)
        except Exception as exc:  # noqa: BLE001 - any failure: staff are told, the lane sells on
            backup_failed(settings, why, exc)
            return
        log.info("backup (%s) %s in %.2f s; removed %s", why, target,
                 time.monotonic() - started, [str(p) for p in removed] or "none")

    thread = threading.Thread(target=run, name="backup", daemon=False)
    thread.start()
    return thread


def backup_failed(settings: Settings, why: str, exc: BaseException) -> None:
    """The staff alert for a failed backup: the log, ALERTS.txt, and staff mode's alerts
    (``staff_alerts``, through a connection of its own) when the database takes it."""
    message = (f"the {why} backup of {settings.database_path} failed ({exc}); the kiosk "
               f"sells on, but check the disk and take one with `kiosk db backup`")
    log.error("staff alert: %s", message)
    now = SystemClock().now()
    try:
        append_alert_file(settings.data_dir, "backup", message, now)
    except OSError as file_exc:
        log.error("the alert could not be written to %s: %s", settings.data_dir, file_exc)
    try:
        db = open_database(settings.database_path, migrate=False)
        try:
            StaffAlerts(db).add("backup", why, message, now)
        finally:
            db.close()
    except Exception:  # noqa: BLE001 - the log and the file have it
        log.exception("the backup alert could not be written to the database")


def backend_audit_heads(settings: Settings) -> list[tuple[int, str]] | None:
    """Every audit head the membership backend holds for this kiosk; None if it could not
    be asked (no backend configured, or unreachable)."""
    client = build_member_client(settings)
    return client.audit_heads(settings.kiosk.lane_id) if client is not None else None


def exit_audit_rules(settings: Settings) -> ExitAuditRules:
    a = settings.exit_audit
    try:
        high = Money.parse(a.high_total, settings.store.currency) if a.high_total else None
    except ValueError as exc:
        raise SettingsError(f"exit_audit.high_total: {exc}") from None
    return ExitAuditRules(a.share, high, a.max_removals, a.max_manual)


# --- behaviour events ------------------------------------------------------------------------
def build_outbox(kiosk: Kiosk) -> Outbox:
    return Outbox(kiosk.db, kiosk.settings.membership.max_mb * 1024 * 1024)


def build_uploader(settings: Settings, clock: Clock,
                   on_alert: Callable[[str], None] | None = None) -> EventUploader | None:
    """The event uploader for the configured membership backend, or None without one."""
    from app.services.uploads import EventUploader
    from devices.membership import MembershipBackend

    m = settings.membership
    if not m.base_url:
        return None
    return EventUploader(
        MembershipBackend(m.base_url, m.token, settings.kiosk.lane_id, m.store_id),
        settings.database_path, clock, keep_days=m.keep_days, on_alert=on_alert)


# --- store data from head office (issue 22, docs/store-sync.md) --------------------------------
def sync_url(settings: Settings) -> str:
    """Where the store data comes from: ``sync.url``, else the membership backend."""
    return settings.sync.url or settings.membership.base_url


def sync_off_reason(settings: Settings) -> str:
    """Why this lane does not follow head office ('' when it does): sync switched off, no
    head office to ask, or no pinned publishing key (then nothing could be trusted)."""
    s = settings.sync
    if not s.enabled:
        return "sync.enabled is false"
    if not sync_url(settings):
        return "no head office (sync.url and membership.base_url are empty)"
    if not s.hq_public_key:
        return ("sync.hq_public_key is empty: pin head office's publishing key "
                "(`kiosk hq key --key FILE` prints it)")
    return ""


def build_store_data(kiosk: Kiosk) -> StoreData | None:
    """The lane's store data over ``kiosk``'s connection (app.services.store_data), or None
    when this lane does not follow head office (``sync_off_reason``)."""
    from app.services.store_data import StoreData

    settings = kiosk.settings
    if sync_off_reason(settings):
        return None
    return StoreData(kiosk.db, kiosk.catalogue, store_id=settings.membership.store_id,
                     currency=settings.store.currency,
                     public_key=settings.sync.hq_public_key or None,
                     keys_file=settings.public_keys_path, lane_id=settings.kiosk.lane_id,
                     stale_after_s=settings.sync.stale_after_h * 3600, clock=kiosk.clock,
                     audit=build_audit(kiosk))


def build_store_sync(settings: Settings, clock: Clock,
                     runtime: Callable[[], KioskRuntime | None] = lambda: None,
                     on_alert: Callable[[str], None] | None = None) -> StoreSync | None:
    """The store-data sync thread (app.services.store_sync) with its HTTP client
    (devices.hq_sync), or None when this lane does not follow head office. The thread
    opens its own connection (``build``) and store data over it; its heartbeats carry
    the ``runtime()``'s device health (None: the devices are not known). A refused token
    is a staff alert (``staff_alerts``, kind ``store-data``) unless ``on_alert`` is given."""
    from app.services.store_sync import StoreSync, SyncSide
    from devices.hq_sync import StoreDataClient

    if sync_off_reason(settings):
        return None
    s, m = settings.sync, settings.membership
    client = StoreDataClient(sync_url(settings), m.token, m.store_id, settings.kiosk.lane_id,
                             max_bytes=s.max_download_mb * 1024 * 1024)

    def open_side() -> SyncSide:
        kiosk = build(settings, clock)  # the thread's own connection
        data = build_store_data(kiosk)
        assert data is not None
        outbox = build_outbox(kiosk)
        if sync.on_alert is None:  # a refused token: a staff alert, as the uploader's
            sync.on_alert = lambda message: outbox.alert("store-data", message,
                                                         kiosk.clock.now())
        return SyncSide(data, lambda: lane_heartbeat(kiosk, data, outbox, runtime()),
                        kiosk.close)

    sync = StoreSync(client, open_side, clock, store_id=m.store_id, poll_s=s.poll_s,
                     heartbeat_s=s.heartbeat_s, on_alert=on_alert,
                     monotonic=getattr(clock, "monotonic", time.monotonic))
    return sync


def lane_heartbeat(kiosk: Kiosk, data: StoreData, outbox: Outbox,
                   runtime: KioskRuntime | None) -> dict[str, Any]:
    """The heartbeat body (docs/store-sync.md): versions, staged, the last answer from
    head office, the lane's health in a word and a line, the outbox backlog and the open
    alerts. Built on the sync thread, over its own connection."""
    from app.lane import Screen
    from app.services.store_sync import health_summary, heartbeat_body

    status = data.status()
    states: list[tuple[str, str]] = []
    out_of_order = False
    if runtime is not None:
        states = [(h.device, h.state) for h in runtime.device_health()
                  if h.device != "store_sync"]
        lane = runtime.executor.lane
        out_of_order = lane is not None and lane.view.screen is Screen.OUT_OF_ORDER
    if status.stale:
        states.append(("store data", "stale"))
    st = outbox.status()
    return heartbeat_body(
        lane_id=kiosk.settings.kiosk.lane_id, store_id=kiosk.settings.membership.store_id,
        now=kiosk.clock.now(), versions=status.versions(), staged=status.staged(),
        checked_at=status.checked_at, health=health_summary(states, out_of_order=out_of_order),
        outbox=(st.pending, st.dead, st.oldest_pending),
        alerts=[message for _kind, message in open_alerts(kiosk)])


def store_sync_health(settings: Settings, sync: StoreSync | None) -> list[DeviceHealth]:
    """Staff's line for the sync thread: off and why, or what it is doing (the data's
    versions and age are the store-data lines of the health page)."""
    from app.runtime import DeviceHealth

    if sync is None:
        return [DeviceHealth("store_sync", "off",
                             f"Head office sync: off ({sync_off_reason(settings)})")]
    h = sync.health()
    state = "ok" if h.state in ("idle", "syncing") else h.state
    detail = f"; {h.last_error}" if h.last_error else ""
    wait = f", next try in {h.next_try_in_s:.0f} s" if h.state == "backing_off" else ""
    return [DeviceHealth("store_sync", state, (
        f"Head office sync ({sync_url(settings)}): {h.state}{wait}, {h.polls} looks, "
        f"{h.staged} staged, {h.heartbeats} heartbeats{detail}"))]


def build_member_codes(settings: Settings) -> MemberCodes | None:
    """The member QR checker, or None until the backend's member key is configured."""
    key = settings.membership.member_key
    if not key:
        return None
    try:
        return MemberCodes.from_base64(key)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def seed_demo_store(kiosk: Kiosk) -> list[str]:
    """Load the demo catalogue and promotions into an empty kiosk, and draw the item
    pictures its catalogue names that are missing; returns what was done."""
    from app.services.demo_seed import seed_catalogue, seed_pictures

    s = kiosk.settings
    done = seed_catalogue(kiosk.catalogue, resolve_seed(s.catalogue.seed_csv),
                          resolve_seed(s.catalogue.seed_promotions),
                          tax_classes=frozenset(s.store.tax_classes), currency=s.store.currency)
    return done + seed_pictures(kiosk.catalogue, s.images_path)


def seed_demo_staff(kiosk: Kiosk) -> list[str]:
    """The demo store's staff (app.services.demo_seed.DEMO_STAFF), never in a real store."""
    from app.services.demo_seed import seed_staff

    return seed_staff(build_staff_book(kiosk), kiosk.clock.now())


def run_ui(kiosk: Kiosk, *, screenshot: Path | None = None, demo: bool = False,
           webcam: bool = False) -> None:
    """Start the touch screen (blocks until the kiosk is stopped: SIGTERM, SIGINT, or the
    screenshot taken). ``demo`` starts the simulated store first (devices.sim.store) and
    points the settings at it. The data directory's lock (app.storage.lock) is held while
    the screen runs: ``DataDirInUse`` if another kiosk holds it. Under systemd it reports
    ready once the lane is up and its first view is on screen, pings the watchdog from
    the lane's loop and the screen's clock, and stops cleanly on SIGTERM
    (``Service``)."""
    lock = hold_data_dir(kiosk.settings.data_dir)
    try:
        # The database passed its start-up check (build): a good moment for a backup.
        backup_in_background(kiosk.settings, "start-up", only_if_due=True)
        from app.ui.window import configure

        configure(kiosk.settings.ui)  # before the window exists
        from app.ui.app import KioskApp  # Kivy loads here and only here

        service = Service.from_environment(("lane", "screen"))
        # Replaces the CLI's (SIGTERM as Ctrl-C) handler; without either, SDL's turns
        # SIGTERM into a window-close request, which the kiosk refuses.
        service.catch_sigterm()
        store = start_sim_store(kiosk.settings, keep_camera=webcam, head_office=True) \
            if demo else None
        try:
            runtime = build_runtime(kiosk, threaded=True,
                                    camera_factory=store.camera_factory() if store else None,
                                    beat=lambda: service.watchdog.beat("lane"))
            lane_id = kiosk.settings.kiosk.lane_id
            KioskApp(runtime, store=store, screenshot=screenshot,
                     on_started=service.on_started(f"selling: lane {lane_id}")).run()
        finally:
            if store is not None:
                store.stop()
            service.close()
    finally:
        lock.release()


class Service:
    """The kiosk as a systemd service (devices.systemd): the notifier, the watchdog over
    ``sources``, and the SIGTERM flag the screen's clock polls.

    A signal handler may run between any two bytecodes of the main thread, even inside
    Kivy's clock while it holds its lock, so SIGTERM's handler only sets a flag; the
    screen's clock (every ``POLL_S``) sees it, says STOPPING=1 and calls ``App.stop`` on
    the Kivy thread, which stops the runtime (devices, then the lane: ``KioskApp.on_stop``).
    Nothing is wiped: the session and any open payment stay in the database as they
    would after a crash, for the next start's boot to restore and recover."""

    POLL_S = 0.1
    DONE_EVERY_S = 2.0

    def __init__(self, notifier: Notifier, watchdog: Watchdog) -> None:
        self.notifier = notifier
        self.watchdog = watchdog
        self.stop_requested = False

    @classmethod
    def from_environment(cls, sources: tuple[str, ...]) -> Service:
        """From ``$NOTIFY_SOCKET``/``$WATCHDOG_USEC``/``$WATCHDOG_PID`` (then unset)."""
        from devices.systemd import Notifier, Watchdog

        notifier = Notifier()
        return cls(notifier, Watchdog(notifier, sources))

    def catch_sigterm(self) -> None:
        """SIGTERM (systemctl stop, the shutdown) sets ``stop_requested``; call on the main
        thread."""
        def on_term(_signum: int, _frame: object) -> None:
            self.stop_requested = True  # only a flag: see the class docstring
        signal.signal(signal.SIGTERM, on_term)

    def on_started(self, status: str,
                   done: Callable[[], bool] | None = None) -> Callable[[Any], None]:
        """KioskApp's ``on_started`` hook: READY=1 with ``status`` after the first frame
        (the lane booted in ``build``; its first view is on screen), then every ``POLL_S``
        the screen's watchdog beat and the SIGTERM check; every ``DONE_EVERY_S`` ``done()``
        (the restart hold lifted), which stops the screen too when true."""
        from kivy.clock import Clock

        def started(app: Any) -> None:
            polls = 0

            def poll(_dt: float) -> bool:
                nonlocal polls
                polls += 1
                if self.stop_requested:
                    log.info("SIGTERM: stopping (session and payments stay for the next "
                             "start)")
                    self.notifier.stopping("stopping: SIGTERM")
                    app.stop()
                    return False
                if done is not None and polls % round(self.DONE_EVERY_S / self.POLL_S) == 0 \
                        and done():
                    self.notifier.stopping("stopping: to start afresh")
                    app.stop()
                    return False
                self.watchdog.beat("screen")
                return True

            Clock.schedule_once(lambda _dt: self.notifier.ready(status), 0)
            Clock.schedule_interval(poll, self.POLL_S)
        return started

    def close(self) -> None:
        self.notifier.close()


def restore_command(settings: Settings) -> str:
    """The command staff run to restore the newest backup in ``<data dir>/backups``
    (``kiosk db restore FILE`` when there is none to name)."""
    newest = sorted((settings.data_dir / "backups").glob("kiosk-*.db"))[-1:]
    return f"kiosk db restore {newest[0] if newest else 'FILE'}"


def raise_damage_alert(settings: Settings, reason: str) -> list[str]:
    """Tell staff the database is damaged, everywhere that does not need the database:
    the log (error), and a line in ``<data dir>/ALERTS.txt``. The membership backend has
    no endpoint for kiosk alerts (docs/membership-api.yaml: events only, numbered from
    the database this kiosk cannot read), so nothing is sent there. Returns where it
    went, for the caller to print."""
    message = f"refusing to sell: {reason}; {restore_command(settings)}"
    log.error("staff alert: %s", message)
    where = ["the log"]
    try:
        where.append(str(append_alert_file(settings.data_dir, "database", message,
                                           SystemClock().now())))
    except OSError as exc:
        log.error("the alert could not be written to %s: %s", settings.data_dir, exc)
    return where


def run_refusing_ui(settings: Settings, reason: str, *, screenshot: Path | None = None,
                    alerted: bool = False) -> None:
    """The touch screen of a kiosk whose database is damaged (``reason``: the
    ``DatabaseDamaged`` message): the out-of-order screen saying so in both languages with
    the restore command, no lane and no device (nothing touches the database), the data
    directory's lock held (so ``kiosk db restore`` waits for this screen to be stopped).
    The staff alert is raised first (``raise_damage_alert``) unless the caller has
    (``alerted``). Blocks until stopped; ``DataDirInUse`` if a kiosk holds the directory."""
    from app.lane.refusing import refusing_view

    if not alerted:
        raise_damage_alert(settings, reason)
    run_out_of_order(settings, refusing_view("records_damaged", command=restore_command(settings)),
                     "out of order: damaged database", screenshot=screenshot)


def run_out_of_order(settings: Settings, view: LaneView, status: str, *,
                     screenshot: Path | None = None,
                     done: Callable[[], bool] | None = None) -> None:
    """The touch screen showing only ``view`` (app.lane.refusing.RefusingLane: no lane, no
    device, no database), with the data directory's lock held and the service's
    notifications (READY=1 with ``status``; the watchdog from the screen's clock; a clean
    stop on SIGTERM). Blocks until stopped, or until ``done()`` (polled every 2 s) is
    true; ``DataDirInUse`` if a kiosk holds it."""
    from app.lane.refusing import RefusingLane
    from app.runtime import Devices, KioskRuntime, Router

    lock = hold_data_dir(settings.data_dir, "a kiosk refusing to sell")
    try:
        from app.ui.window import configure

        configure(settings.ui)
        from app.ui.app import KioskApp

        service = Service.from_environment(("screen",))
        service.catch_sigterm()
        runtime = KioskRuntime(settings, SystemClock(), RefusingLane(view), Router(), Devices())
        try:
            KioskApp(runtime, screenshot=screenshot,
                     on_started=service.on_started(status, done)).run()
        finally:
            service.close()
    finally:
        lock.release()


# --- the restart-loop limit (app.storage.starts) ---------------------------------------------
JOURNAL_COMMAND = "journalctl -u kiosk"


def begin_start(settings: Settings) -> StartVerdict:
    """Record this start of the screen in ``<data dir>/starts.json`` (under the data
    directory's lock, taken and released here: ``DataDirInUse`` if a kiosk runs on it)
    and say whether the kiosk must hold: the last ``kiosk.restart_limit`` starts all
    ended uncleanly within ``kiosk.restart_window_min`` (wall clock: see
    app.storage.starts), or a hold is on record. A new hold is a staff alert
    (``raise_restart_alert``)."""
    k = settings.kiosk
    with hold_data_dir(settings.data_dir, "a kiosk starting"):
        record = StartRecord(settings.data_dir)
        before = record.verdict(time.time(), k.restart_limit, k.restart_window_min * 60)
        verdict = record.begin(time.time(), os.getpid(), k.restart_limit,
                               k.restart_window_min * 60)
    if verdict.holding and not before.since:
        raise_restart_alert(settings, verdict)
    elif verdict.unclean:
        log.warning("started after %d unclean end(s) in a row (limit %d); see %s",
                    verdict.unclean, k.restart_limit, JOURNAL_COMMAND)
    return verdict


def end_start_clean(settings: Settings) -> None:
    """This process's run stopped in order: it does not count towards the limit."""
    StartRecord(settings.data_dir).end_clean(os.getpid())


def raise_restart_alert(settings: Settings, verdict: StartVerdict) -> None:
    """The staff alert for a restart loop: the log (error) and ``<data dir>/ALERTS.txt``;
    not the database, which may be what fails."""
    message = (f"restarting repeatedly ({verdict.reason}): out of order until staff run "
               f"`kiosk restarts clear`; the cause is in the journal: {JOURNAL_COMMAND}")
    log.error("staff alert: %s", message)
    try:
        append_alert_file(settings.data_dir, "restarts", message, SystemClock().now())
    except OSError as exc:
        log.error("the alert could not be written to %s: %s", settings.data_dir, exc)


def run_holding_ui(settings: Settings, verdict: StartVerdict, *,
                   screenshot: Path | None = None) -> bool:
    """The out-of-order screen of a kiosk held by the restart-loop limit: "restarting
    repeatedly: see the journal" in both languages, nothing else tried, until stopped or
    until staff lift the hold (``kiosk restarts clear``, seen within seconds). Returns
    True when the hold was lifted (the caller ends, to be started afresh: a Kivy app
    runs once per process), False when stopped."""
    from app.lane.refusing import refusing_view

    def lifted() -> bool:
        k = settings.kiosk
        return not StartRecord(settings.data_dir).verdict(
            time.time(), k.restart_limit, k.restart_window_min * 60).holding

    view = refusing_view("restarting_repeatedly", journal=JOURNAL_COMMAND,
                         command="kiosk restarts clear")
    run_out_of_order(settings, view, f"out of order: restarting repeatedly ({verdict.reason})",
                     screenshot=screenshot, done=lifted)
    return screenshot is None and lifted()


def restart_health(settings: Settings) -> list[DeviceHealth]:
    """Staff's health line for the kiosk itself: unclean starts in a row, a hold, and
    where the log is (the journal)."""
    from app.runtime import DeviceHealth

    k = settings.kiosk
    v = StartRecord(settings.data_dir).verdict(time.time(), k.restart_limit,
                                               k.restart_window_min * 60,
                                               running_pid=os.getpid())
    state = "held" if v.holding else ("restarted" if v.unclean else "ok")
    return [DeviceHealth("kiosk", state, (
        f"Kiosk: {v.unclean} unclean restart(s) in a row (limit {k.restart_limit} in "
        f"{k.restart_window_min} min); log: {JOURNAL_COMMAND}"))]


def start_sim_store(settings: Settings, *, keep_camera: bool = False, pay_url: str = "",
                    pay_options: dict[str, object] | None = None,
                    head_office: bool = False) -> SimStore:
    """Start the simulated store (payment, backend, printer, camera) and point ``settings``
    at it: what `kiosk demo` and `kiosk scenario` run in. ``head_office``: the backend
    publishes the demo store data and the lane follows it (`kiosk demo`, issue 22)."""
    from devices.sim.store import SimStore

    return SimStore(settings.data_dir, keep_camera=keep_camera, pay_url=pay_url,
                    pay_options=pay_options, head_office=head_office).start(settings)


def start_demo(settings: Settings, clock: Clock | None = None, *, pay_url: str = ""
               ) -> tuple[Kiosk, SimStore, KioskRuntime]:
    """The demo store, ready for a screen: the kiosk (demo catalogue, promotions and
    staff loaded), the simulated store started and ``settings`` pointed at it, and the
    runtime over both (threaded, not started). The caller stops the store. For the UI
    tests and the screen benchmark; ``pay_url``: a payment simulator that outlives this
    process (the restart test)."""
    kiosk = build(settings, clock)
    seed_demo_store(kiosk)
    seed_demo_staff(kiosk)
    store = start_sim_store(settings, pay_url=pay_url)
    try:
        runtime = build_runtime(kiosk, threaded=True, camera_factory=store.camera_factory())
    except BaseException:
        store.stop()
        raise
    return kiosk, store, runtime


# --- the running kiosk ------------------------------------------------------------------------
def build_runtime(kiosk: Kiosk, *, threaded: bool,
                  camera_factory: Callable[[], FrameSource] | None = None,
                  provider: PaymentProvider | None = None,
                  beat: Callable[[], None] = lambda: None) -> KioskRuntime:
    """The running kiosk over ``kiosk``: every configured device, the routing table and
    the lane's executor (its own thread under the touch screen when ``threaded``; inline,
    pumped by the caller, headless). ``camera_factory`` replaces the configured camera's
    source (the simulated store's). ``beat``: called on every pass of the threaded lane's
    loop (the service watchdog, ``Service``). Not started: call ``start()``."""
    from app.lane import InlineLane, LaneWorker
    from app.runtime import (
        Device,
        Devices,
        KioskRuntime,
        Router,
        camera_health,
        printer_health,
        serial_scanner_health,
    )

    settings, clock = kiosk.settings, kiosk.clock
    router = Router()
    printer = build_printer(kiosk)
    if printer is not None:
        printer.on_outcome(router.receipt)
    camera = build_camera(settings, camera_factory)
    camera_scanner = None
    if camera is not None:
        camera_scanner = build_camera_scanner(settings, camera, router.scan, router.scan_rejected)
        camera.on_health(router.camera_health)
    serial = build_serial_scanner(settings, router.scan, router.scan_rejected)
    # A USB barcode scanner "types" codes: the wedge tells it from a person typing.
    wedge = build_wedge(settings, router.scan,
                        lambda _typed: None,  # people type on the on-screen keypads
                        router.scan_rejected)
    uploader = build_uploader(settings, clock)
    sync = build_store_sync(settings, clock, lambda: runtime)
    # Every device, in start order (stop is the reverse) and the health page's order.
    devices = Devices(
        Device("camera_scanner", camera_scanner),  # its lines are the camera's
        Device("camera", camera, health=lambda: camera_health(camera, camera_scanner)),
        Device("printer", printer, health=lambda: printer_health(printer)),
        Device("serial_scanner", serial,
               health=lambda: serial_scanner_health(serial, settings.scanner.serial_port)),
        Device("wedge", wedge, runs=False),  # fed keys by the screen; no thread of its own
        Device("uploader", uploader),  # its state is on the health page's events line
        Device("store_sync", sync, health=lambda: store_sync_health(settings, sync)),
        Device("kiosk", None, runs=False, health=lambda: restart_health(settings)),
    )

    def make_lane() -> Lane:
        # On the lane's thread: under the touch screen it owns its own database connection.
        lane_kiosk = build(settings, clock) if threaded else kiosk
        return build_lane(
            lane_kiosk, provider=provider, other_scanners=serial is not None,
            receipt_notice=printer_notice(printer) if printer else None,
            wake_printer=printer.wake if printer else (lambda: None),
            flush=uploader.wake if uploader else (lambda: None),
            devices=lambda: runtime.device_words())

    executor = (LaneWorker(make_lane, lambda _view: None, beat=beat) if threaded
                else InlineLane(make_lane))
    runtime = KioskRuntime(settings, clock, executor, router, devices)
    return runtime


# --- the lane (the shopper's flow) ------------------------------------------------------------
def disk_free_bytes(data_dir: Path) -> int | None:
    """Bytes free to the kiosk on the file system of ``data_dir`` (``shutil.disk_usage``),
    or None when it cannot be told (the directory gone): the payment check then passes and
    the write itself reports the failure."""
    try:
        return shutil.disk_usage(data_dir).free
    except OSError:
        return None


def disk_reserve(data_dir: Path, reserve_mb: int) -> DiskReserve | None:
    """The lane's disk reserve (``payment.reserve_mb`` MiB in ``data_dir``), made now if
    there is room (a disk already too full leaves it unmade: the lane then takes no
    payment until it can be made); None when the setting is 0."""
    if reserve_mb <= 0:
        return None
    reserve = DiskReserve(data_dir / RESERVE_FILE, reserve_mb * 1024 * 1024)
    reserve.ensure()
    return reserve


def build_lane(kiosk: Kiosk, *, provider: PaymentProvider | None = None,
               receipt_notice: Callable[[], tuple[str, str] | None] | None = None,
               wake_printer: Callable[[], None] = lambda: None,
               other_scanners: bool = False,
               flush: Callable[[], None] = lambda: None,
               devices: Callable[[], list[Said]] = lambda: []) -> Lane:
    """The lane over ``kiosk`` (build it on the thread that will run it: it owns the
    kiosk's database connection). ``receipt_notice`` asks the printer; None = no printer."""
    import secrets

    from app.lane import Lane, LaneParts, LaneTimings
    from app.lane.lane import as_lane_control
    from app.services.staff import StaffMode, StaffParts
    from app.storage.print_jobs import PrintJobs

    s = kiosk.settings
    outbox = build_outbox(kiosk)
    member_client = build_member_client(s)
    store_data = build_store_data(kiosk)  # applied between shoppers (docs/store-sync.md)
    parts = LaneParts(
        db=kiosk.db, outbox=outbox, new_checkout=lambda: build_checkout(kiosk),
        desk=build_payment_desk(kiosk, provider), clock=kiosk.clock, lane_id=s.kiosk.lane_id,
        store_name_zh=s.store.name_zh, store_name_en=s.store.name_en,
        currency=s.store.currency, tax=kiosk.tax, promotions=kiosk.promotions,
        receipt_notice=receipt_notice or (lambda: NO_PRINTER_NOTICE), wake_printer=wake_printer,
        member_codes=build_member_codes(s),
        phone_lookup=member_client.member_for_phone if member_client else None,
        phone_secret=s.membership.token or s.kiosk.lane_id,
        wallets=tuple(s.payment.wallets), aggregated_qr=s.payment.aggregated_qr,
        other_scanners=other_scanners,
        code_ranges=s.payment.ranges(),
        free_bytes=lambda: disk_free_bytes(s.data_dir),
        min_free_bytes=s.payment.min_free_mb * 1024 * 1024,
        reserve=disk_reserve(s.data_dir, s.payment.reserve_mb),
        max_length=s.barcodes.max_length,
        produce=lambda department, search: catalogue_service.produce_grid(
            kiosk.catalogue, department=department, search=search),
        exit_audit=exit_audit_rules(s), roll=secrets.SystemRandom().random,
        monotonic=getattr(kiosk.clock, "monotonic", time.monotonic),
        store_data=store_data,
        timings=LaneTimings(
            idle=timedelta(seconds=s.ui.idle_s),
            idle_help=timedelta(seconds=s.ui.help_idle_s),
            still_there=timedelta(seconds=s.ui.still_there_s),
            receipt=timedelta(seconds=s.ui.receipt_s),
            receipt_on_screen=timedelta(seconds=s.ui.receipt_on_screen_s),
            poll=timedelta(milliseconds=s.payment.poll_ms),
            code_deadline=timedelta(seconds=s.payment.code_deadline_s),
            out_of_order_after=timedelta(milliseconds=max(s.camera.lost_after_ms * 10, 30_000)),
        ),
    )
    lane = Lane(parts)
    parts.desk.on_completed = lane.payment_completed
    lane.staff = StaffMode(as_lane_control(lane), StaffParts(
        clock=kiosk.clock, lane_id=s.kiosk.lane_id, currency=s.store.currency, outbox=outbox,
        desk=parts.desk, recent_sales=lambda n: recent_sales(kiosk, n),
        book=build_staff_book(kiosk), audit=build_audit(kiosk), reports=build_reports(kiosk),
        jobs=PrintJobs(kiosk.db), verify_pass=pass_checker(kiosk),
        health=lambda: health_page(
            devices, parts.desk.provider, outbox, lambda: open_alerts(kiosk),
            (lambda: (store_data.status(), s.sync.stale_after_h * 3600))
            if store_data is not None else None, kiosk.clock.now),
        zone=s.store.zone(),
        flush_outbox=lambda: outbox_state(outbox, flush), retry_dead=outbox.retry_dead,
        wake_printer=wake_printer, idle=timedelta(seconds=s.staff.idle_s),
        monotonic=parts.monotonic, store_data=store_data))
    return lane


def recent_sales(kiosk: Kiosk, limit: int) -> list[PaidSale]:
    """The newest paid sales, newest first."""
    return [sale for _order, sale in Sales(kiosk.db).recent(limit)]


def pass_checker(kiosk: Kiosk) -> Callable[[str], tuple[bool, str]]:
    """Staff's exit-pass check (app.services.exit_pass.check_pass) with this kiosk's
    key file, clock, age limit and refunds."""
    settings = kiosk.settings
    refunds = PaymentsRepo(kiosk.db)
    return lambda text: check_pass(text, keys_path=settings.public_keys_path,
                                   now=kiosk.clock.now(), max_age_h=settings.exit_pass.max_age_h,
                                   refunded_minor=refunds.refunded_minor,
                                   zone=settings.store.zone())


def open_alerts(kiosk: Kiosk) -> list[tuple[str, str]]:
    """Up to five staff alerts not yet resolved, newest first: (kind, message)."""
    return [(a.kind, a.message)
            for a in StaffAlerts(kiosk.db).unresolved(newest_first=True, limit=5)]


def printer_notice(printer: PrintQueue) -> Callable[[], tuple[str, str] | None]:
    """Ask the printer (DLE EOT) before taking money; what to tell the shopper, if anything."""
    def ask() -> tuple[str, str] | None:
        return printer.status().shopper_notice()
    return ask


def build_member_client(settings: Settings) -> MemberClient | None:
    from devices.membership import MemberClient

    m = settings.membership
    return MemberClient(m.base_url, m.token) if m.base_url else None
