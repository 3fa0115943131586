"""The camera: frames from OpenCV capture (or a simulated source) on their own thread.

``Camera`` owns a capture thread and a watchdog. The capture thread only reads
frames and hands the newest to whoever listens; it never decodes (that is the
scanner's worker) and never touches the UI. The watchdog notices when frames
stop arriving (an unplugged or frozen camera: a ``VideoCapture.read`` that
hangs never returns to say so), reports the camera lost, and opens it again
with capped exponential backoff on a fresh thread, without restarting the kiosk.

Sources are small classes behind the ``FrameSource`` protocol: a real camera
(device index or path), and the simulated twins that ship with the product: a
folder of images, a video file, and generated frames of given codes.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from devices.sim.frames import Scene

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


class CameraError(RuntimeError):
    """A camera source cannot be opened or has stopped delivering frames."""


class FrameSource(Protocol):
    """Where frames come from. ``read`` blocks for at most about one frame period."""

    name: str

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame and when it arrived (``time.monotonic`` seconds)."""

    image: np.ndarray
    seq: int
    captured_at: float


@dataclass(frozen=True)
class CameraHealth:
    """What staff mode and the shopping screen need to know about the camera."""

    state: str  # "starting", "ok", "lost", "stopped"
    source: str
    fps: float = 0.0
    last_frame_age_s: float | None = None
    reopen_count: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


class _Paced:
    """Sleeps so a simulated source delivers frames at its nominal rate, like a camera."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self._next = time.monotonic()

    def wait(self) -> None:
        self._next += self.period
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            self._next = time.monotonic()  # fell behind: do not burst to catch up


class OpenCvSource:
    """A real camera through OpenCV: a device index ("0") or a path/URL (/dev/video2, rtsp://)."""

    def __init__(self, device: str = "0", width: int = 1280, height: int = 720,
                 fps: int = 30, exposure: float | None = None) -> None:
        self.device = device
        self.width, self.height, self.fps, self.exposure = width, height, fps, exposure
        self.name = f"camera {device}"
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        target: int | str = int(self.device) if self.device.isdigit() else self.device
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot open camera {self.device!r} (camera.device)")
        # Drivers ignore what they cannot do; these are requests, not guarantees.
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
        if self.exposure is not None:
            cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2: 1 = manual
            cap.set(cv2.CAP_PROP_EXPOSURE, self.exposure)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise CameraError(f"{self.name} is not open")
        ok, image = self._cap.read()
        return image if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource:
    """Simulated camera: the images in a folder, in name order, at ``fps``, looping."""

    def __init__(self, folder: str | Path, fps: float = 30.0, loop: bool = True,
                 repeat: int = 1) -> None:
        self.folder = Path(folder)
        self.fps, self.loop, self.repeat = fps, loop, max(1, repeat)
        self.name = f"images in {self.folder}"
        self._images: list[np.ndarray] = []
        self._iter: Iterator[np.ndarray] | None = None
        self._pace = _Paced(fps)

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"camera.folder {self.folder} is not a folder")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        images = [cv2.imread(str(p)) for p in files]
        self._images = [i for i in images if i is not None]
        if not self._images:
            raise CameraError(f"camera.folder {self.folder} holds no readable images")
        # Each image is shown ``repeat`` frames in a row, as if held under the camera.
        frames = [img for img in self._images for _ in range(self.repeat)]
        self._iter = itertools.cycle(frames) if self.loop else iter(frames)
        self._pace = _Paced(self.fps)

    def read(self) -> np.ndarray | None:
        if self._iter is None:
            raise CameraError(f"{self.name} is not open")
        self._pace.wait()
        return next(self._iter, None)

    def close(self) -> None:
        self._iter = None


class VideoFileSource:
    """Simulated camera: a video file played at ``fps`` (its own rate when 0), looping."""

    def __init__(self, path: str | Path, fps: float = 0.0, loop: bool = True) -> None:
        self.path = Path(path)
        self.fps, self.loop = fps, loop
        self.name = f"video {self.path}"
        self._cap: cv2.VideoCapture | None = None
        self._pace = _Paced(fps or 30.0)

    def open(self) -> None:
        if not self.path.is_file():
            raise CameraError(f"camera.video {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise CameraError(f"camera.video {self.path} is not a video OpenCV can play")
        self._cap = cap
        self._pace = _Paced(self.fps or cap.get(cv2.CAP_PROP_FPS) or 30.0)

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise CameraError(f"{self.name} is not open")
        self._pace.wait()
        ok, image = self._cap.read()
        if not ok and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        return image if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


@dataclass
class Showing:
    """A code held under the generated camera for ``frames`` frames (None = nothing held)."""

    code: str | None
    frames: int = 15
    symbology: str | None = None


class GeneratedSource:
    """Simulated camera: rendered codes on a cluttered scene at ``fps``.

    The script is a list of ``Showing``s played in order (then looped, or
    ended); ``show`` adds one at any time, which is how tests and the scenario
    runner "hold an item up". While nothing is scripted the frames are idle.
    Each frame moves the code a little and adds fresh sensor noise, as a
    hand-held item would.
    """

    def __init__(self, script: Sequence[Showing] = (), fps: float = 30.0,
                 width: int = 1280, height: int = 720, loop: bool = False,
                 seed: int = 7, module_px: int = 3) -> None:
        self.script = list(script)
        self.fps, self.loop = fps, loop
        self.name = "generated frames"
        self.scene = Scene(width, height, seed)
        self.module_px = module_px
        self._queue: list[Showing] = []
        self._opened = False
        self._remaining = 0
        self._current: Showing | None = None
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self._pace = _Paced(fps)
        self._t = 0
        self.shown: list[tuple[str | None, float]] = []  # (code, monotonic time first shown)

    def open(self) -> None:
        # The script is queued once: a reopen after a lost camera continues where
        # it was, as a real scene would, and keeps codes queued with show().
        with self._lock:
            if not self._opened:
                self._queue = list(self.script) + self._queue
                self._opened = True
        self._pace = _Paced(self.fps)

    def show(self, code: str | None, frames: int = 15, symbology: str | None = None) -> None:
        with self._lock:
            self._queue.append(Showing(code, frames, symbology))

    def _next_showing(self) -> Showing | None:
        with self._lock:
            if self._remaining <= 0:
                if not self._queue and self.loop and self.script:
                    self._queue = list(self.script)
                self._current = self._queue.pop(0) if self._queue else None
                self._remaining = self._current.frames if self._current else 0
                if self._current is not None:
                    self.shown.append((self._current.code, time.monotonic()))
            self._remaining -= 1
            return self._current

    def read(self) -> np.ndarray | None:
        self._pace.wait()
        showing = self._next_showing()
        self._t += 1
        wobble = (int(6 * np.sin(self._t / 5)), int(4 * np.cos(self._t / 7)))
        if showing is None or showing.code is None:
            return self.scene.frame(None, rng=self._rng)
        return self.scene.frame(showing.code, symbology=showing.symbology,
                                module_px=self.module_px, offset=wobble,
                                angle=4 + 2 * float(np.sin(self._t / 9)), rng=self._rng)

    def close(self) -> None:
        pass


FrameListener = Callable[[Frame], None]
HealthListener = Callable[[CameraHealth], None]


@dataclass
class _Stats:
    times: list[float] = field(default_factory=list)

    def add(self, t: float) -> None:
        self.times.append(t)
        if len(self.times) > 60:
            del self.times[:-60]

    def fps(self) -> float:
        if len(self.times) < 2 or self.times[-1] == self.times[0]:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


class Camera:
    """Runs a ``FrameSource`` on a capture thread, with a freshness watchdog and reopening.

    ``lost_after_s``: no new frame for this long means the camera is lost.
    Reopening waits ``backoff_s``, doubling up to ``backoff_max_s``. Listeners
    are called on the capture thread and must return quickly (the scanner only
    stores the frame and wakes its worker).
    """

    def __init__(self, source_factory: Callable[[], FrameSource], *,
                 lost_after_s: float = 2.0, backoff_s: float = 0.5,
                 backoff_max_s: float = 10.0, watch_interval_s: float = 0.1) -> None:
        self._factory = source_factory
        self.lost_after_s = lost_after_s
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.watch_interval_s = watch_interval_s
        self._lock = threading.Lock()
        self._notify_lock = threading.RLock()
        self._frame_listeners: list[FrameListener] = []
        self._health_listeners: list[HealthListener] = []
        self._latest: Frame | None = None
        self._seq = 0
        self._generation = 0
        self._stats = _Stats()
        self._health = CameraHealth("stopped", "")
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._opened_at = 0.0
        self._next_attempt = 0.0
        self._delay = backoff_s
        self._reopens = 0

    # -- listeners -------------------------------------------------------------------------
    def on_frame(self, listener: FrameListener) -> None:
        self._frame_listeners.append(listener)

    def on_health(self, listener: HealthListener) -> None:
        self._health_listeners.append(listener)

    def latest(self) -> Frame | None:
        """The newest frame (for the preview), or None before the first one."""
        return self._latest

    def health(self) -> CameraHealth:
        with self._lock:
            health = self._health
            last = self._latest.captured_at if self._latest else None
        age = None if last is None else round(time.monotonic() - last, 3)
        return replace(health, fps=round(self._stats.fps(), 1), last_frame_age_s=age)

    def _set_health(self, state: str, source: str, error: str = "",
                    unless: Callable[[], bool] | None = None) -> None:
        """Change state and tell listeners, in order; ``unless`` is checked under the lock."""
        with self._notify_lock:  # one change and its notifications at a time, in order
            with self._lock:
                if unless is not None and unless():
                    return
                changed = (state, error) != (self._health.state, self._health.error)
                self._health = CameraHealth(state, source, reopen_count=self._reopens,
                                            error=error)
            if not changed:
                return
            log.info("camera %s: %s %s", source, state, error)
            health = self.health()
            for listener in list(self._health_listeners):
                try:
                    listener(health)
                except Exception:  # a faulty listener must not stop the watchdog
                    log.exception("a camera health listener failed")

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start capturing; returns at once (opening happens on the capture thread)."""
        self._stop.clear()
        self._launch()
        self._watchdog = threading.Thread(target=self._watch, name="camera-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._generation += 1  # any capture thread still inside read() exits after it
        if self._watchdog is not None:
            self._watchdog.join(timeout=2)
        self._set_health("stopped", self._health.source)

    def _launch(self) -> None:
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._opened_at = time.monotonic()
        # A reopen leaves the camera "lost" until a frame arrives: the shopper keeps
        # the manual-entry offer and staff keep the alert while it is retried.
        if self._health.state != "lost":
            self._set_health("starting", self._health.source or "camera")
        threading.Thread(target=self._capture, args=(generation,), name="camera-capture",
                         daemon=True).start()

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._stop.is_set()

    def _capture(self, generation: int) -> None:
        source: FrameSource | None = None
        try:
            source = self._factory()
            source.open()
            while self._current(generation):
                image = source.read()
                if not self._current(generation):
                    break
                if image is None:
                    time.sleep(0.005)  # a dropped frame; the watchdog judges a long gap
                    continue
                now = time.monotonic()
                with self._lock:
                    self._seq += 1
                    frame = Frame(image, self._seq, now)
                    self._latest = frame
                    first = self._health.state != "ok"
                self._stats.add(now)
                if first:
                    self._delay = self.backoff_s
                    self._set_health("ok", source.name)
                for listener in list(self._frame_listeners):
                    try:
                        listener(frame)
                    except Exception:  # one faulty listener must not stop the camera
                        log.exception("a camera frame listener failed")
        except Exception as exc:  # a driver can raise anything; the watchdog reopens
            if self._current(generation):
                name = source.name if source else "camera"
                self._set_health("lost", name, str(exc))
        finally:
            if source is not None:
                try:
                    source.close()
                except Exception:  # pragma: no cover - closing a dead device
                    log.exception("closing the camera failed")

    def _fresh(self) -> bool:
        """Called under the lock: has a frame (or an open) happened within lost_after_s?"""
        last = self._latest.captured_at if self._latest else 0.0
        since = max(last, self._opened_at)
        return self._health.state not in ("ok", "starting") \
            or time.monotonic() - since <= self.lost_after_s

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_interval_s):
            now = time.monotonic()
            with self._lock:
                last = self._latest.captured_at if self._latest else 0.0
                since = max(last, self._opened_at)
            if now - since > self.lost_after_s:
                # Decided again under the lock, so a frame arriving meanwhile wins.
                self._set_health("lost", self._health.source,
                                 f"no frame for {now - since:.1f} s", unless=self._fresh)
            if self._health.state == "lost" and now >= self._next_attempt:
                # The first reopen is immediate; each failed one doubles the wait.
                self._reopens += 1
                self._next_attempt = now + self._delay
                self._delay = min(self._delay * 2, self.backoff_max_s)
                self._launch()


def preview_rgb(image: np.ndarray, width: int) -> tuple[bytes, int, int]:
    """A frame shrunk to ``width`` pixels as RGB bytes, bottom row first (how an OpenGL
    texture such as Kivy's wants them): the screen's live preview, cheap enough at 15 fps."""
    h, w = image.shape[:2]
    width = max(16, min(width, w))
    height = max(1, round(h * width / w))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if small.ndim == 2:
        small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)
    else:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return cv2.flip(small, 0).tobytes(), width, height
