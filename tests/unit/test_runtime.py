"""The running kiosk (app.runtime): start/stop order, the routing table, device health.

Fakes stand in for the lane's executor, the lane and the devices: what is checked is the
runtime's own job (who starts first, what each device event becomes, what staff read),
not the devices'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from app.config import load_settings
from app.domain.clock import FixedClock
from app.runtime import ROUTES, Device, DeviceHealth, Devices, KioskRuntime, Router

CLOCK = FixedClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))


class FakeExecutor:
    """Runs posted commands at once on a recording lane."""

    def __init__(self, log: list[str], lane: Any = None) -> None:
        self.log, self.lane = log, lane
        self.posted = 0

    def start(self) -> None:
        self.log.append("lane start")

    def post(self, command: Any) -> None:
        self.posted += 1
        command(self.lane)

    def idle(self, timeout: float = 10.0) -> None:
        pass

    def stop(self) -> None:
        self.log.append("lane stop")


@dataclass
class FakeDevice:
    name: str
    log: list[str]

    def start(self) -> None:
        self.log.append(f"{self.name} start")

    def stop(self) -> None:
        self.log.append(f"{self.name} stop")


class RecordingLane:
    """Every lane method the routing table calls, recorded with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


@pytest.fixture
def settings(tmp_path):
    return load_settings(data_dir=tmp_path, environ={})


NAMES = ("camera_scanner", "camera", "printer", "serial_scanner", "uploader")


def runtime_with_every_device(settings, log: list[str]) -> KioskRuntime:
    devices = Devices(*(Device(name, FakeDevice(name, log)) for name in NAMES),
                      Device("wedge", FakeDevice("wedge", log), runs=False))
    return KioskRuntime(settings, CLOCK, FakeExecutor(log), Router(), devices)


def test_the_lane_starts_before_the_devices_and_stops_after_them(settings):
    log: list[str] = []
    runtime = runtime_with_every_device(settings, log)
    runtime.start()
    assert log[0] == "lane start"  # no device reports to a lane that is not there yet
    assert log[1:] == [f"{d} start" for d in NAMES]  # in the list's order; the wedge has
    log.clear()                                      # no thread to start
    runtime.stop()
    assert log == [f"{d} stop" for d in reversed(NAMES)] + ["lane stop"]
    runtime.stop()  # idempotent
    assert len(log) == 6


def test_starting_a_running_kiosk_again_does_not_start_its_devices_twice(settings):
    log: list[str] = []
    runtime = runtime_with_every_device(settings, log)
    runtime.start()
    with pytest.raises(RuntimeError, match="already"):
        runtime.start()
    assert log.count("printer start") == 1 and log.count("lane start") == 1
    runtime.stop()
    assert log.count("printer stop") == 1


def test_every_device_event_reaches_its_lane_command():
    lane = RecordingLane()
    router = Router()
    executor = FakeExecutor([], lane)
    router.attach(executor)
    scan = SimpleNamespace(code="<clean scan>", source="serial")
    router.scan(scan)  # type: ignore[arg-type]
    router.scan_rejected(SimpleNamespace(refusal=SimpleNamespace(code="too_long")))  # type: ignore[arg-type]
    router.camera_health(SimpleNamespace(state="lost"))  # type: ignore[arg-type]
    router.camera_health(SimpleNamespace(state="opening"))  # type: ignore[arg-type]
    router.receipt(SimpleNamespace(job_id=3, order_id="o1", printed=True, detail="printed"))  # type: ignore[arg-type]
    assert lane.calls == [("scan_code", ("<clean scan>", "serial")),
                          ("scan_rejected", ("too_long",)),
                          ("camera_health", ("lost",)),  # "opening" changes nothing on screen
                          ("receipt_outcome", (3, "o1", True, "printed"))]
    assert executor.posted == 4
    assert set(ROUTES) == {"scan", "scan_rejected", "camera_health", "receipt"}


def test_every_route_names_a_lane_method():
    from app.lane import Lane

    lane = RecordingLane()
    for handler in ROUTES.values():
        handler(lane, SimpleNamespace(code="c", source="camera", state="ok", job_id=1,
                                      order_id="o", printed=False, detail="",
                                      refusal=SimpleNamespace(code="empty")))
    assert all(hasattr(Lane, name) for name, _args in lane.calls), lane.calls


def test_a_lane_without_devices_says_so_on_the_health_page(settings):
    from app.runtime import camera_health, printer_health, serial_scanner_health

    devices = Devices(Device("camera_scanner", None),
                      Device("camera", None, health=lambda: camera_health(None, None)),
                      Device("printer", None, health=lambda: printer_health(None)),
                      Device("serial_scanner", None,
                             health=lambda: serial_scanner_health(None, "")))
    runtime = KioskRuntime(settings, CLOCK, FakeExecutor([]), Router(), devices)
    assert [(h.device, h.state) for h in runtime.device_health()] == [
        ("camera", "none"), ("printer", "none")]
    assert runtime.device_lines()[1].startswith("Printer: none configured")
    assert runtime.camera is None and devices.running() == []


def test_the_health_page_lists_devices_in_the_lists_order(settings):
    def line(name: str):  # noqa: ANN202
        return lambda: [DeviceHealth(name, "ok", f"{name}: fine")]

    devices = Devices(Device("b", None, health=line("b")), Device("a", None, health=line("a")))
    runtime = KioskRuntime(settings, CLOCK, FakeExecutor([]), Router(), devices)
    assert runtime.device_lines() == ["b: fine", "a: fine"]


def test_two_devices_cannot_share_a_name():
    with pytest.raises(ValueError, match="one name"):
        Devices(Device("camera", None), Device("camera", None))
