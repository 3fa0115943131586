"""bootstrap builds the configured camera and scanners; a folder of frames scans into a cart."""

from __future__ import annotations

import queue
import time

import cv2

from app import bootstrap
from app.config import load_settings
from devices.camera import Camera, GeneratedSource, ImageFolderSource, OpenCvSource, VideoFileSource
from devices.scanner import Scan
from devices.sim.frames import Scene


def settings_with(tmp_path, **env):
    return load_settings(data_dir=tmp_path / "data", environ=env)


def test_the_configured_camera_source_is_built(tmp_path):
    assert bootstrap.build_camera(settings_with(tmp_path, KIOSK_CAMERA__SOURCE="none")) is None
    cases = {
        "opencv": OpenCvSource,
        "generated": GeneratedSource,
        "folder": ImageFolderSource,
        "video": VideoFileSource,
    }
    for source, cls in cases.items():
        s = settings_with(tmp_path, KIOSK_CAMERA__SOURCE=source,
                          KIOSK_CAMERA__FOLDER=str(tmp_path), KIOSK_CAMERA__VIDEO="clip.mp4",
                          KIOSK_CAMERA__LOST_AFTER_MS="1500")
        camera = bootstrap.build_camera(s)
        assert isinstance(camera, Camera) and camera.lost_after_s == 1.5
        assert isinstance(bootstrap.camera_source(s)(), cls)


def test_a_generated_camera_code_that_cannot_be_shown_names_the_setting(tmp_path):
    import pytest

    from app.config import SettingsError

    s = settings_with(tmp_path, KIOSK_CAMERA__SOURCE="generated",
                      KIOSK_CAMERA__CODES='["6901234567890"]')  # wrong check digit
    with pytest.raises(SettingsError, match="camera.codes"):
        bootstrap.build_camera(s)


def test_scanners_are_built_from_settings(tmp_path):
    s = settings_with(tmp_path)
    assert bootstrap.build_serial_scanner(s, lambda scan: None) is None  # no port configured
    s = settings_with(tmp_path, KIOSK_SCANNER__SERIAL_PORT="/dev/ttyACM0",
                      KIOSK_SCANNER__SERIAL_SUFFIX="CRLF", KIOSK_SCANNER__WEDGE_MAX_GAP_MS="25")
    serial = bootstrap.build_serial_scanner(s, lambda scan: None)
    assert serial is not None and serial.port == "/dev/ttyACM0" and serial.suffix == b"\r\n"
    wedge = bootstrap.build_wedge(s, lambda scan: None, lambda text: None)
    assert wedge.max_gap == 0.025


def test_a_folder_of_camera_frames_scans_into_the_cart(tmp_path, demo_kiosk):
    frames = tmp_path / "frames"
    frames.mkdir()
    scene = Scene(640, 480)
    cv2.imwrite(str(frames / "00-milk.png"), scene.frame("6900000000014", module_px=2))
    cv2.imwrite(str(frames / "01-empty.png"), scene.frame(None))
    cv2.imwrite(str(frames / "02-empty.png"), scene.frame(None))
    settings = load_settings(data_dir=demo_kiosk.settings.data_dir, environ={
        "KIOSK_CAMERA__SOURCE": "folder", "KIOSK_CAMERA__FOLDER": str(frames)})
    camera = bootstrap.build_camera(settings)
    scans: queue.Queue[Scan] = queue.Queue()
    scanner = bootstrap.build_camera_scanner(settings, camera, scans.put)
    checkout = bootstrap.build_checkout(demo_kiosk)
    added_at = []
    scanner.start()
    camera.start()
    try:
        # Each image is held for 15 frames (0.5 s), then the folder loops: the milk is
        # away for 1 s, longer than scanner.rescan_after_ms, so each showing adds one.
        end = time.monotonic() + 6
        while time.monotonic() < end and len(added_at) < 2:
            try:
                scan = scans.get(timeout=0.1)
            except queue.Empty:
                continue
            checkout.add_scan(scan.code)
            added_at.append(time.monotonic())
    finally:
        camera.stop()
        scanner.stop()
    lines = checkout.lines()
    assert [(line.product.name_en, line.quantity) for line in lines] == [("Whole Milk 250ml", 2)]
    # One unit per showing: the second came with the next loop (1.5 s), not while held.
    assert added_at[1] - added_at[0] > 1.0
