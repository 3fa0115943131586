"""The running kiosk: the lane's executor, every device, their start/stop order, one routing table.

``KioskRuntime`` is what a store runs, whatever shows it: the touch screen
(``app.ui``) renders the lane's views and forwards touches to it; ``kiosk
scenario`` drives the same object headless. The composition root
(``app.bootstrap.build_runtime``) builds it with the configured devices; this
module wires nothing itself and never imports the composition root.

A device never calls the lane: it reports to the ``Router``, whose one table
(``ROUTES``) turns each kind of device event into a lane command, posted to the
executor (the lane's own thread under the touch screen, or inline headless).
Adding a device is one entry in the list ``bootstrap.build_runtime`` builds
(``Devices``: its place in the start order, whether it runs a thread, its lines
on staff's health page), and, if it reports something the lane must hear, a row
in ``ROUTES`` with its ``Router`` callback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from app.config import Settings
from app.domain.clock import Clock
from app.lane import Lane, LaneView
from app.services.staff import StaffMode
from app.services.staff_port import Said

if TYPE_CHECKING:  # devices pull in OpenCV, pyserial and the decoders
    from app.services.printing import JobOutcome, PrintQueue
    from devices.camera import Camera, CameraHealth
    from devices.scanner import CameraScanner, KeyboardWedge, Scan, ScanRejection, SerialScanner

log = logging.getLogger(__name__)

Command = Callable[[Lane], object]


class LaneExecutor(Protocol):
    """Runs lane commands in order on the one thread that owns the lane."""

    lane: Lane | None

    def start(self) -> None: ...

    def post(self, command: Command) -> None: ...

    def idle(self, timeout: float = 10.0) -> None: ...

    def stop(self) -> None: ...


# What each kind of device event does to the lane: the one routing table.
ROUTES: dict[str, Callable[[Lane, Any], object]] = {
    "scan": lambda lane, scan: lane.scan_code(scan.code, scan.source),
    "scan_rejected": lambda lane, rejected: lane.scan_rejected(rejected.refusal.code),
    "camera_health": lambda lane, health: lane.camera_health(health.state),
    "receipt": lambda lane, o: lane.receipt_outcome(o.job_id, o.order_id, o.printed, o.detail),
}


class Router:
    """Device callbacks (on device threads) to lane commands (on the lane's thread)."""

    def __init__(self) -> None:
        self._executor: LaneExecutor | None = None

    def attach(self, executor: LaneExecutor) -> None:
        self._executor = executor

    def route(self, kind: str, event: object) -> None:
        """Post ``ROUTES[kind]`` with ``event`` to the lane; KeyError for an unknown kind."""
        handler = ROUTES[kind]
        if self._executor is None:
            log.error("%s before the lane started: dropped", kind)
            return
        self._executor.post(lambda lane: handler(lane, event))

    # The callbacks devices are built with:
    def scan(self, scan: Scan) -> None:
        self.route("scan", scan)

    def scan_rejected(self, rejected: ScanRejection) -> None:
        self.route("scan_rejected", rejected)

    def camera_health(self, health: CameraHealth) -> None:
        if health.state in ("ok", "lost"):  # "opening" and the like change nothing on screen
            self.route("camera_health", health)

    def receipt(self, outcome: JobOutcome) -> None:
        self.route("receipt", outcome)


class Runs(Protocol):
    """A device with a thread of its own: started and stopped with the kiosk."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class DeviceHealth:
    """One device's health as staff mode shows it."""

    device: str  # camera, decoder, printer, serial_scanner
    state: str  # ok, lost, none, or the device's own word (printer: ready, paper_end, ...)
    line: str  # what staff read on the health page (English: logs, `kiosk doctor`)
    words: Said | None = None  # the same, worded by the staff screen in its language

    def said(self) -> Said:
        return self.words or Said.of("health_line", line=self.line)


@dataclass(frozen=True)
class Device:
    """One device of the running kiosk: its name, the object (None: not configured), whether
    it runs a thread the kiosk starts and stops, and its lines on staff's health page."""

    name: str  # camera, camera_scanner, printer, serial_scanner, wedge, uploader, ...
    part: Any
    runs: bool = True
    health: Callable[[], list[DeviceHealth]] = list


class Devices:
    """Every device of the running kiosk, in start order (they stop in the reverse), and
    in the order staff's health page lists them. The one list a new device joins: the
    composition root builds it (``app.bootstrap.build_runtime``)."""

    def __init__(self, *devices: Device) -> None:
        names = [d.name for d in devices]
        if len(set(names)) != len(names):
            raise ValueError(f"two devices with one name: {names}")
        self._devices = list(devices)

    def __iter__(self) -> Iterator[Device]:
        return iter(self._devices)

    def get(self, name: str) -> Any:
        """The device called ``name``; None if the kiosk has none configured."""
        return next((d.part for d in self._devices if d.name == name), None)

    def running(self) -> list[Runs]:
        """The devices with a thread of their own, in start order."""
        return [d.part for d in self._devices if d.part is not None and d.runs]


# -- what staff read of each kind of device (the health page's lines) -----------------------
def camera_health(camera: Camera | None, scanner: CameraScanner | None) -> list[DeviceHealth]:
    """The camera's line (state, frame rate, age of the last frame, reopens) and the
    decoder's (scans, refusals, decode time); "none configured" without a camera."""
    if camera is None:
        return [DeviceHealth("camera", "none", "Camera: none configured",
                             Said.of("health_camera_none"))]
    h = camera.health()
    age = "-" if h.last_frame_age_s is None else f"{h.last_frame_age_s:.2f}"
    out = [DeviceHealth("camera", h.state, (
        f"Camera ({h.source}): {h.state}, {h.fps} fps, last frame {age} s ago, "
        f"reopened {h.reopen_count}x {h.error}").rstrip(), Said.of(
        "health_camera", source=h.source, fps=h.fps, age=age, reopens=h.reopen_count,
        state=Said.of(f"state_{h.state}", fallback=h.state),
        error=f" {h.error}" if h.error else ""))]
    if scanner is not None:
        st = scanner.stats()
        out.append(DeviceHealth("decoder", "ok", (
            f"Decoder: {st['scans']} scans, {st['rejections']} refused, "
            f"decode p50 {st['decode_ms_p50']} ms, p95 {st['decode_ms_p95']} ms"), Said.of(
            "health_decoder", scans=st["scans"], refused=st["rejections"],
            p50=st["decode_ms_p50"], p95=st["decode_ms_p95"])))
    return out


def printer_health(printer: PrintQueue | None) -> list[DeviceHealth]:
    """The receipt printer's status (DLE EOT), its queue and reopens; "none configured"
    (passes on screen) without one."""
    if printer is None:
        return [DeviceHealth("printer", "none",
                             "Printer: none configured (exit passes shown on screen)",
                             Said.of("health_printer_none"))]
    ph = printer.health()
    state = ph.status.state.value
    return [DeviceHealth("printer", state, (
        f"Printer ({ph.port}): {state} {ph.status.detail}, "
        f"{ph.pending_jobs} waiting, {ph.unconfirmed_jobs} unconfirmed, "
        f"reopened {ph.reopen_count}x {ph.last_error}").rstrip(), Said.of(
        "health_printer", port=ph.port, state=Said.of(f"state_{state}", fallback=state),
        waiting=ph.pending_jobs, unconfirmed=ph.unconfirmed_jobs, reopens=ph.reopen_count,
        error="".join(f" {x}" for x in (ph.status.detail, ph.last_error) if x)))]


def serial_scanner_health(scanner: SerialScanner | None, port: str) -> list[DeviceHealth]:
    """A serial barcode scanner's port; nothing without one."""
    if scanner is None:
        return []
    return [DeviceHealth("serial_scanner", "ok", f"Serial scanner: {port}",
                         Said.of("health_serial_scanner", port=port))]


class KioskRuntime:
    """One running kiosk. ``start`` brings everything up in order, ``stop`` takes it down."""

    def __init__(self, settings: Settings, clock: Clock, executor: LaneExecutor, router: Router,
                 devices: Devices) -> None:
        self.settings = settings
        self.clock = clock
        self.executor = executor
        self.router = router
        self.devices = devices
        router.attach(executor)
        self._running = False

    # -- what the screen and scenarios use --------------------------------------------------
    @property
    def lane(self) -> Lane:
        if self.executor.lane is None:
            raise RuntimeError("the lane has not started")
        return self.executor.lane

    @property
    def staff(self) -> StaffMode:
        staff = self.lane.staff
        if not isinstance(staff, StaffMode):
            raise RuntimeError("this lane has no staff mode")
        return staff

    @property
    def camera(self) -> Camera | None:
        """The camera (the screen shows its preview); None without one."""
        camera: Camera | None = self.devices.get("camera")
        return camera

    def post(self, command: Command) -> None:
        """Run ``command(lane)`` on the lane's thread, after everything posted before it."""
        self.executor.post(command)

    def do(self, name: str, *args: object) -> None:
        """A shopper's touch: ``do("pay")`` runs ``Lane.pay`` on the lane's thread."""
        method = getattr(Lane, name)
        self.post(lambda lane: method(lane, *args))

    def staff_do(self, method: str, *args: object) -> None:
        """A staff touch: ``staff_do("do", "reset")`` runs ``StaffMode.do`` on the lane's thread."""
        def run(lane: Lane) -> None:
            if lane.staff is not None:
                getattr(lane.staff, method)(*args)
        self.post(run)

    def idle(self, timeout: float = 10.0) -> None:
        """Wait until every command posted so far has run."""
        self.executor.idle(timeout)

    def key(self, char: str) -> None:
        """A character from the keyboard: a USB scanner "types" its codes (the wedge)."""
        wedge: KeyboardWedge | None = self.devices.get("wedge")
        if wedge is not None:
            wedge.key(char, time.monotonic())

    def key_tick(self) -> None:
        """Call often (every 50 ms): ends a wedge scan that had no suffix."""
        wedge: KeyboardWedge | None = self.devices.get("wedge")
        if wedge is not None:
            wedge.tick(time.monotonic())

    # -- start and stop ---------------------------------------------------------------------
    def start(self, on_view: Callable[[LaneView], None] | None = None) -> KioskRuntime:
        """The lane first (it boots: a crash's cart and payment come back), then the devices
        that report to it, so no event is posted to nobody. RuntimeError if it is running
        already (a second start would start every device's thread again)."""
        if self._running:
            raise RuntimeError("the kiosk is already running: stop() it first")
        publish = getattr(self.executor, "publish_to", None)
        if on_view is not None and publish is not None:
            publish(on_view)
        self.executor.start()
        self._running = True
        for device in self.devices.running():
            device.start()
        return self

    def stop(self) -> None:
        """Devices first (nothing new reaches the lane), then the lane. Idempotent."""
        if not self._running:
            return
        self._running = False
        for device in reversed(self.devices.running()):
            try:
                device.stop()
            except Exception:  # noqa: BLE001 - stopping the rest matters more
                log.exception("stopping %r failed", device)
        self.executor.stop()

    # -- health -----------------------------------------------------------------------------
    def device_health(self) -> list[DeviceHealth]:
        """Each device this lane has (or lacks), as staff mode's health page shows it."""
        return [h for device in self.devices for h in device.health()]

    def device_lines(self) -> list[str]:
        return [h.line for h in self.device_health()]

    def device_words(self) -> list[Said]:
        """The health page's device lines in words, for the staff screen's language."""
        return [h.said() for h in self.device_health()]


__all__ = ["ROUTES", "Device", "DeviceHealth", "Devices", "KioskRuntime", "LaneExecutor", "Router",
           "Runs", "camera_health", "printer_health", "serial_scanner_health"]
