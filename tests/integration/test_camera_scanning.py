"""From a simulated 30 fps camera to cart lines, through the real threads and a SQLite catalogue."""

from __future__ import annotations

import queue
import time

import pytest

from app import bootstrap
from app.domain.rejections import Refused
from devices.camera import Camera, GeneratedSource, Showing
from devices.decoder import Decoder, FrameDecoder
from devices.scanner import CameraScanner, ReadAcceptor, Scan


def products(kiosk, n: int) -> list[str]:
    rows = kiosk.db.execute(
        "select code from products where code not like 'PLU:%' and unit = 'each' "
        "and min_age = 0 order by code limit ?", [n]).fetchall()
    return [r[0][1:] for r in rows]


class Lane:
    """A camera, its scanner and a cart, with scans handed to this thread through a queue."""

    def __init__(self, kiosk, script: list[Showing], pipeline: str = "combined") -> None:
        self.checkout = bootstrap.build_checkout(kiosk)
        self.source = GeneratedSource(script, fps=30)
        self.camera = Camera(lambda: self.source, lost_after_s=1.0, backoff_s=0.1)
        self.scans: queue.Queue[Scan] = queue.Queue()
        self.refused: list[str] = []
        self.scanner = CameraScanner(self.camera, FrameDecoder(Decoder(pipeline)), ReadAcceptor(),
                                     self.scans.put)

    def __enter__(self) -> Lane:
        self.scanner.start()
        self.camera.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.camera.stop()
        self.scanner.stop()

    def run_until(self, condition, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not condition():
            try:
                scan = self.scans.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                self.checkout.add_scan(scan.code)
            except Refused as exc:
                self.refused.append(exc.refusal.code)

    def cart(self) -> dict[str, int]:
        return {line.product.code[1:]: line.quantity for line in self.checkout.lines()}


def test_held_items_enter_the_cart_once_and_a_second_showing_adds_a_unit(demo_kiosk):
    a, b = products(demo_kiosk, 2)
    script = [Showing(a, 20), Showing(None, 30), Showing(b, 20), Showing(None, 30),
              Showing(a, 20), Showing(None, 30)]
    with Lane(demo_kiosk, script) as lane:
        lane.run_until(lambda: lane.cart() == {a: 2, b: 1})
        time.sleep(0.3)  # nothing more arrives: each showing counted once
        lane.run_until(lambda: False, timeout=0.3)
    assert lane.cart() == {a: 2, b: 1}
    assert lane.refused == []
    stats = lane.scanner.stats()  # what staff mode's device health shows
    assert stats["scans"] == 3 and stats["frames_decoded"] > 30
    assert 0 < stats["decode_ms_p50"] <= stats["decode_ms_p95"]


def test_a_code_not_in_the_catalogue_is_refused_with_a_reason(demo_kiosk):
    with Lane(demo_kiosk, [Showing("4006381333931", 20), Showing(None, 30)]) as lane:
        lane.run_until(lambda: bool(lane.refused))
    assert lane.refused == ["unknown_product"] and lane.cart() == {}


def test_scanning_resumes_after_the_camera_is_lost_and_reopened(demo_kiosk):
    (a,) = products(demo_kiosk, 1)
    with Lane(demo_kiosk, [Showing(None, 10)]) as lane:
        lane.run_until(lambda: lane.camera.health().ok, 3)
        original = lane.source.read

        def frozen():
            time.sleep(5)
            return None

        lane.source.read = frozen  # the driver hangs
        lane.run_until(lambda: lane.camera.health().state == "lost", 3)
        assert lane.camera.health().state == "lost"
        lane.source.read = original  # and recovers
        lane.run_until(lambda: lane.camera.health().ok, 5)
        lane.source.show(a, 20)
        lane.run_until(lambda: lane.cart() == {a: 1})
    assert lane.cart() == {a: 1}


@pytest.mark.parametrize("pipeline", ["zxing", "zbar"])
def test_the_single_library_pipelines_also_scan_to_the_cart(demo_kiosk, pipeline):
    (a,) = products(demo_kiosk, 1)
    with Lane(demo_kiosk, [Showing(a, 20), Showing(None, 10)], pipeline) as lane:
        lane.run_until(lambda: lane.cart() == {a: 1})
    assert lane.cart() == {a: 1}
