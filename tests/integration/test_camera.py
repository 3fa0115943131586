"""The camera thread, its watchdog and the simulated sources that ship with the product."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from devices.camera import (
    Camera,
    CameraError,
    CameraHealth,
    Frame,
    GeneratedSource,
    ImageFolderSource,
    OpenCvSource,
    Showing,
    VideoFileSource,
)
from devices.decoder import Decoder
from tests.helpers import wait_for


class Freezable:
    """A generated camera that can freeze (read blocks, as a hung driver does) or die."""

    opened = 0

    def __init__(self, freeze: threading.Event, fail_open: threading.Event) -> None:
        self.name = "test camera"
        self.inner = GeneratedSource(fps=30, width=320, height=240)
        self.freeze, self.fail_open = freeze, fail_open

    def open(self) -> None:
        if self.fail_open.is_set():
            raise CameraError("no such device")
        Freezable.opened += 1
        self.inner.open()

    def read(self):
        while self.freeze.is_set():
            time.sleep(0.05)  # a read that never returns a frame
        return self.inner.read()

    def close(self) -> None:
        pass


def test_frames_flow_at_the_source_rate_and_health_says_ok():
    camera = Camera(lambda: GeneratedSource(fps=30, width=320, height=240))
    frames: list[Frame] = []
    camera.on_frame(frames.append)
    camera.start()
    try:
        assert wait_for(lambda: len(frames) >= 30)
        health = camera.health()
        assert health.ok and 10 <= health.fps <= 45  # 30 nominal; the machine may be busy
        assert health.last_frame_age_s is not None and health.last_frame_age_s < 0.5
        seqs = [f.seq for f in frames]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert camera.latest() is not None
    finally:
        camera.stop()
    assert camera.health().state == "stopped"


def test_a_frozen_camera_is_noticed_within_3_s_and_reopened_without_a_restart():
    freeze, fail_open = threading.Event(), threading.Event()
    states: list[CameraHealth] = []
    camera = Camera(lambda: Freezable(freeze, fail_open), lost_after_s=2.0, backoff_s=0.1)
    camera.on_health(states.append)
    camera.start()
    try:
        assert wait_for(lambda: camera.health().ok)
        freeze.set()
        frozen_at = time.monotonic()
        assert wait_for(lambda: camera.health().state == "lost", 3.0)
        assert time.monotonic() - frozen_at <= 3.0
        assert "no frame" in camera.health().error
        freeze.clear()  # the driver recovers; the reopened source delivers again
        assert wait_for(lambda: camera.health().ok, 5.0)
        assert camera.health().reopen_count >= 1
        assert [s.state for s in states].count("lost") >= 1
    finally:
        camera.stop()


def test_an_unplugged_camera_is_retried_with_backoff_until_it_returns():
    freeze, fail_open = threading.Event(), threading.Event()
    Freezable.opened = 0
    camera = Camera(lambda: Freezable(freeze, fail_open), lost_after_s=0.5, backoff_s=0.1,
                    backoff_max_s=0.4)
    fail_open.set()
    camera.start()
    try:
        assert wait_for(lambda: camera.health().state == "lost")
        assert camera.health().error == "no such device"
        time.sleep(1.5)
        attempts = camera.health().reopen_count
        assert 2 <= attempts <= 8  # backing off, not spinning
        fail_open.clear()  # plugged back in
        assert wait_for(lambda: camera.health().ok)
        assert Freezable.opened == 1
    finally:
        camera.stop()


def test_a_listener_that_raises_does_not_stop_the_camera():
    camera = Camera(lambda: GeneratedSource(fps=30, width=320, height=240), lost_after_s=2.0,
                    backoff_s=0.05)
    calls = []

    def flaky(frame: Frame) -> None:
        calls.append(frame.seq)
        if len(calls) == 3:
            raise RuntimeError("bug in a listener")

    camera.on_frame(flaky)
    camera.start()
    try:
        assert wait_for(lambda: len(calls) > 20)
        assert camera.health().ok and camera.health().reopen_count == 0
    finally:
        camera.stop()


def test_a_health_listener_that_raises_does_not_stop_the_watchdog():
    freeze, fail_open = threading.Event(), threading.Event()
    camera = Camera(lambda: Freezable(freeze, fail_open), lost_after_s=0.5, backoff_s=0.1)

    def broken(health: CameraHealth) -> None:
        raise RuntimeError("bug in the UI bridge")

    camera.on_health(broken)
    camera.start()
    try:
        assert wait_for(lambda: camera.health().ok)
        freeze.set()
        assert wait_for(lambda: camera.health().state == "lost", 3.0)
        freeze.clear()
        assert wait_for(lambda: camera.health().ok, 5.0)  # still watched, still reopened
    finally:
        camera.stop()


def test_a_reopened_generated_camera_keeps_its_queue():
    source = GeneratedSource([Showing("6901234567892", 1)], fps=500)
    source.open()
    source.show("96385074", 1)
    source.open()  # the camera was lost and reopened
    decoder = Decoder()
    texts = [[r.text for r in decoder.read_image(source.read()).reads] for _ in range(3)]
    assert texts == [["6901234567892"], ["96385074"], []]


def test_an_image_folder_plays_its_images_in_order(tmp_path: Path):
    for i, shade in enumerate([0, 120, 250]):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((240, 320, 3), shade, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    source = ImageFolderSource(tmp_path, fps=200, repeat=2)
    source.open()
    shades = [int(source.read()[0, 0, 0]) for _ in range(8)]
    assert shades == [0, 0, 120, 120, 250, 250, 0, 0]


def test_an_empty_or_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CameraError, match="no readable images"):
        ImageFolderSource(tmp_path).open()
    with pytest.raises(CameraError, match="camera.folder"):
        ImageFolderSource(tmp_path / "nope").open()


def test_a_video_file_plays_and_loops(tmp_path: Path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    assert writer.isOpened()
    for shade in (10, 128, 240):
        writer.write(np.full((240, 320, 3), shade, np.uint8))
    writer.release()
    source = VideoFileSource(path, fps=500)
    source.open()
    shades = [int(source.read()[10, 10].mean()) for _ in range(5)]
    source.close()
    assert all(abs(a - b) < 12 for a, b in zip(shades, [10, 128, 240, 10, 128], strict=True))


def test_a_missing_video_or_camera_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CameraError, match="camera.video"):
        VideoFileSource(tmp_path / "nope.mp4").open()
    with pytest.raises(CameraError, match="camera.device"):
        OpenCvSource(str(tmp_path / "video99")).open()


def test_generated_frames_show_the_scripted_codes_then_idle():
    source = GeneratedSource([Showing("6901234567892", 2), Showing(None, 1),
                              Showing("96385074", 2)], fps=500)
    source.open()
    decoder = Decoder()
    texts = [[r.text for r in decoder.read_image(source.read()).reads] for _ in range(7)]
    assert texts == [["6901234567892"]] * 2 + [[]] + [["96385074"]] * 2 + [[], []]
    source.show("KIOSK-42", 1, "Code 128")  # a test or scenario holds up another item
    assert [r.text for r in decoder.read_image(source.read()).reads] == ["KIOSK-42"]
