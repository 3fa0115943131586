"""Scanners: camera frames, keyboard-wedge keys and serial lines -> accepted scans.

Every scanner ends in the same place: ``accept_input`` runs the raw text
through the domain's ``clean_scan`` (control characters, escape sequences,
invalid or invisible text and over-long input are refused with a reason) and
hands a ``Scan`` or a ``ScanRejection`` to the listeners. Nothing a scanner
sends is ever typed into the UI unchecked. Rejections are rate-limited, so a
scanner flooding garbage costs a few log lines, not a frozen kiosk.

- ``CameraScanner``: decodes the newest camera frame on a worker thread and
  applies the two-frame rule (``ReadAcceptor``).
- ``KeyboardWedge``: tells a USB scanner that types from a person typing, by
  key timing.
- ``SerialScanner``: reads a serial (or USB-CDC) scanner line by line through
  pyserial, reopening the port when it disappears.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from app.domain.rejections import Refusal, Refused, refuse
from app.domain.scan_input import CleanScan, clean_scan
from devices.camera import Camera, Frame
from devices.decoder import Decoded, FrameDecoder

log = logging.getLogger(__name__)

SUFFIXES = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t"}


@dataclass(frozen=True, slots=True)
class Scan:
    """A code a scanner read and the kiosk accepted as input (not yet as a product)."""

    text: str  # without the AIM identifier
    symbology: str | None  # AIM identifier, e.g. "]E0", when the scanner sent one
    source: str  # "camera", "wedge", "serial" or "manual"
    received_at: float  # time.monotonic() when the scanner produced it
    frame_at: float | None = None  # camera only: when the frame that confirmed it arrived

    @property
    def code(self) -> CleanScan:
        """The scan as the domain takes it (already cleaned: not cleaned again)."""
        return CleanScan(self.text, self.symbology)


@dataclass(frozen=True, slots=True)
class ScanRejection:
    """Scanner input refused before it reached the cart, with the reason."""

    refusal: Refusal
    source: str
    at: float


ScanListener = Callable[[Scan], None]
RejectListener = Callable[[ScanRejection], None]


def accept_input(raw: str | bytes, source: str, at: float, max_length: int = 512,
                 frame_at: float | None = None) -> Scan | ScanRejection:
    """Validate raw scanner input: a ``Scan``, or a ``ScanRejection`` saying why not."""
    try:
        clean = clean_scan(raw, max_length)
    except Refused as exc:
        return ScanRejection(exc.refusal, source, at)
    return Scan(clean.text, clean.symbology, source, at, frame_at)


class RejectLimiter:
    """At most ``burst`` rejections reported per ``window_s``; the rest are only counted.

    A faulty or hostile scanner can send thousands of bad lines a second; each
    would become a log line, an event and a message on screen.
    """

    def __init__(self, burst: int = 5, window_s: float = 1.0) -> None:
        self.burst, self.window_s = burst, window_s
        self._times: list[float] = []
        self.suppressed = 0

    def allow(self, at: float) -> bool:
        self._times = [t for t in self._times if at - t < self.window_s]
        if len(self._times) >= self.burst:
            self.suppressed += 1
            return False
        self._times.append(at)
        return True


def _too_much(source: str, at: float) -> ScanRejection:
    return ScanRejection(refuse(
        "too_long",
        "The scanner sent too much data. Scan the item's barcode again.",
        "扫码枪发送的数据过长。请重新扫描商品条码。",
    ).refusal, source, at)


class _Outlet:
    """Delivers scans and (rate-limited) rejections to listeners; shared by every scanner."""

    def __init__(self, on_scan: ScanListener, on_reject: RejectListener | None,
                 limiter: RejectLimiter | None) -> None:
        self.on_scan, self.on_reject = on_scan, on_reject
        self.limiter = limiter or RejectLimiter()
        self.scans = 0
        self.rejections = 0

    def deliver(self, result: Scan | ScanRejection) -> None:
        # A listener that raises must not end the scanner thread that called it.
        try:
            if isinstance(result, Scan):
                self.scans += 1
                self.on_scan(result)
                return
            self.rejections += 1
            if self.limiter.allow(result.at):
                log.warning("%s scanner input refused: %s %s", result.source,
                            result.refusal.code, result.refusal.preview)
                if self.on_reject:
                    self.on_reject(result)
        except Exception:
            log.exception("a scan listener failed")


@dataclass
class ReadAcceptor:
    """The two-frame rule, and one unit per deliberate scan.

    A code is accepted when it is read in ``confirm_reads`` consecutive decoded
    frames: a misread with a valid check digit seldom repeats on the next
    frame, which differs by noise and a little movement. Once accepted, a code
    is "in view" and not accepted again until it has gone unread for
    ``rescan_after_s``; holding a packet under the camera adds it once, taking
    it away and showing it again adds a second unit.
    """

    confirm_reads: int = 2
    rescan_after_s: float = 0.8
    _streak: dict[str, int] = field(default_factory=dict)
    _in_view: dict[str, float] = field(default_factory=dict)

    def feed(self, codes: list[str], at: float) -> list[str]:
        """Codes read in one decoded frame at ``at`` -> the codes accepted now."""
        seen = set(codes)
        for code in seen & self._in_view.keys():
            self._in_view[code] = at
        self.expire(at)
        self._streak = {c: self._streak.get(c, 0) + 1 for c in seen}
        accepted = []
        for code in dict.fromkeys(codes):  # each code once, in the order read
            if self._streak[code] >= self.confirm_reads and code not in self._in_view:
                self._in_view[code] = at
                accepted.append(code)
        return accepted

    def expire(self, at: float) -> None:
        """Forget codes unread for ``rescan_after_s`` (also called on skipped frames)."""
        for code, last in list(self._in_view.items()):
            if at - last > self.rescan_after_s:
                del self._in_view[code]

    def in_view(self) -> set[str]:
        return set(self._in_view)

    def pending(self) -> set[str]:
        """Codes read but not yet confirmed."""
        return {c for c, n in self._streak.items() if c not in self._in_view}


class CameraScanner:
    """Decodes the newest camera frame on a worker thread; emits accepted scans.

    Frames that arrive while the worker is busy are dropped, not queued: a
    decode that falls behind must catch up with what is under the camera now.
    """

    def __init__(self, camera: Camera, decoder: FrameDecoder, acceptor: ReadAcceptor,
                 on_scan: ScanListener, on_reject: RejectListener | None = None, *,
                 max_length: int = 512, limiter: RejectLimiter | None = None,
                 on_decoded: Callable[[Frame, Decoded | None], None] | None = None) -> None:
        self.camera, self.decoder, self.acceptor = camera, decoder, acceptor
        self.max_length = max_length
        self.outlet = _Outlet(on_scan, on_reject, limiter)
        self.on_decoded = on_decoded
        self._pending: Frame | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.decoded = 0
        self.dropped = 0
        self.decode_ms: list[float] = []

    def stats(self) -> dict[str, float | int]:
        """For staff mode's device health: what the decoder is doing and what it costs."""
        recent = sorted(self.decode_ms)
        return {
            "frames_decoded": self.decoded,
            "frames_skipped_unchanged": self.decoder.skipped,
            "frames_dropped_busy": self.dropped,
            "decode_ms_p50": round(recent[len(recent) // 2], 2) if recent else 0.0,
            "decode_ms_p95": round(recent[int(len(recent) * 0.95)], 2) if recent else 0.0,
            "scans": self.outlet.scans,
            "rejections": self.outlet.rejections,
        }

    def start(self) -> None:
        self._stop = False
        self.camera.on_frame(self._offer)
        self._thread = threading.Thread(target=self._work, name="camera-scanner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _offer(self, frame: Frame) -> None:
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
            self._pending = frame
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                frame, self._pending = self._pending, None
            try:
                self.process(frame)
            except Exception:  # a decoder bug must not end scanning for the day
                log.exception("decoding a camera frame failed")

    def process(self, frame: Frame) -> list[Scan | ScanRejection]:
        """Decode one frame and apply the two-frame rule (the worker calls this)."""
        # While a code is in view (or half confirmed) every frame is decoded: a
        # skipped frame would let a packet held still "leave" and count twice.
        busy = bool(self.acceptor.in_view() or self.acceptor.pending())
        decoded = self.decoder.decode(frame.image, force=busy)
        now = time.monotonic()
        if self.on_decoded:
            self.on_decoded(frame, decoded)
        if decoded is None:  # unchanged idle view, skipped
            self.acceptor.expire(frame.captured_at)
            return []
        self.decoded += 1
        self.decode_ms.append(decoded.ms)
        if len(self.decode_ms) > 300:
            del self.decode_ms[:-300]
        codes = [r.scanner_text for r in decoded.reads]
        results = []
        for code in self.acceptor.feed(codes, frame.captured_at):
            result = accept_input(code, "camera", now, self.max_length, frame.captured_at)
            self.outlet.deliver(result)
            results.append(result)
        return results


class KeyboardWedge:
    """Tells a keyboard-wedge scanner from a person typing, by key timing.

    A wedge scanner "types" a whole code a few milliseconds a key and ends it
    with Enter; people type 100 ms or more apart. Keys are held back until the
    timing decides, at Enter or after ``hold_ms`` of silence:

    - at least ``min_length`` keys ending in Enter, with most gaps (all but
      one in five, so one UI stall does not split a scan) at most
      ``max_gap_ms``, is a scan, checked by ``clean_scan`` like any other;
    - a fast run like that without Enter is a scanner with the wrong suffix,
      or garbage: refused, never typed;
    - anything else is a person typing and goes to ``on_typing``, except that
      control and escape characters are never typed: they are refused.

    Call ``key`` from the UI's key handler and ``tick`` every ~50 ms, both with
    ``time.monotonic()``. On a kiosk the shopper types on on-screen keypads, so
    the wedge is normally the only "keyboard" and holding keys costs nothing.
    """

    def __init__(self, on_scan: ScanListener, on_typing: Callable[[str], None],
                 on_reject: RejectListener | None = None, *, max_gap_ms: float = 40.0,
                 min_length: int = 6, max_length: int = 512, hold_ms: float = 150.0,
                 limiter: RejectLimiter | None = None) -> None:
        self.on_typing = on_typing
        self.max_gap = max_gap_ms / 1000.0
        self.hold = max(hold_ms, max_gap_ms) / 1000.0
        self.min_length, self.max_length = min_length, max_length
        self.outlet = _Outlet(on_scan, on_reject, limiter)
        self._keys: list[tuple[str, float]] = []

    def _fast(self, times: list[float]) -> bool:
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        slow = sum(1 for g in gaps if g > self.max_gap)
        return bool(gaps) and slow * 5 <= len(gaps)

    def key(self, char: str, at: float) -> None:
        if self._keys and at - self._keys[-1][1] > self.hold:
            self._flush(at)
        if char in ("\r", "\n"):
            keys, self._keys = self._keys, []
            text = "".join(c for c, _ in keys)
            if len(keys) >= self.min_length and self._fast([t for _, t in keys] + [at]):
                self.outlet.deliver(accept_input(text, "wedge", at, self.max_length))
            else:
                self._typed(text + char, at)
            return
        self._keys.append((char, at))
        if len(self._keys) > self.max_length:
            self._keys = []  # no Enter in sight: a flood, not a code
            self.outlet.deliver(_too_much("wedge", at))

    def tick(self, at: float) -> None:
        if self._keys and at - self._keys[-1][1] > self.hold:
            self._flush(at)

    def _flush(self, at: float) -> None:
        keys, self._keys = self._keys, []
        if not keys:
            return
        text = "".join(c for c, _ in keys)
        if len(keys) >= self.min_length and self._fast([t for _, t in keys]):
            self.outlet.deliver(ScanRejection(refuse(
                "no_suffix",
                "The scanner's code did not end properly. Scan again or call staff.",
                "扫码枪数据未正常结束。请重新扫描或呼叫店员。",
                text,
            ).refusal, "wedge", at))
            return
        self._typed(text, at)

    def _typed(self, text: str, at: float) -> None:
        """Pass typing on, unless it holds what no keyboard should type."""
        body = text.rstrip("\r\n")
        if body:
            checked = accept_input(body, "wedge", at, self.max_length)
            if isinstance(checked, ScanRejection) and checked.refusal.code != "too_long":
                self.outlet.deliver(checked)
                return
        self.on_typing(text)


@dataclass(frozen=True)
class SerialHealth:
    """A serial scanner's state for staff mode."""

    state: str  # "starting", "ok", "lost", "stopped"
    port: str
    reopen_count: int = 0
    error: str = ""


class SerialScanner:
    """Reads a serial scanner line by line; reopens the port with backoff when it vanishes.

    ``suffix`` is the scanner's configured terminator (CR, LF, CRLF or TAB).
    AIM symbology identifiers (``]E0``...) are split off by ``clean_scan``.
    ``port`` may be any pyserial URL (``/dev/ttyACM0``, ``socket://host:port``).
    """

    def __init__(self, port: str, on_scan: ScanListener,
                 on_reject: RejectListener | None = None, *, baudrate: int = 9600,
                 suffix: str = "CR", rtscts: bool = False, xonxoff: bool = False,
                 max_length: int = 512, backoff_s: float = 0.5, backoff_max_s: float = 10.0,
                 partial_timeout: float = 0.3, limiter: RejectLimiter | None = None) -> None:
        if suffix not in SUFFIXES:
            raise ValueError(f"scanner.serial_suffix must be one of {', '.join(SUFFIXES)}")
        self.port, self.baudrate = port, baudrate
        self.suffix = SUFFIXES[suffix]
        self.rtscts, self.xonxoff = rtscts, xonxoff
        self.max_length = max_length
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.partial_timeout = partial_timeout
        self.outlet = _Outlet(on_scan, on_reject, limiter)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._health = SerialHealth("stopped", port)
        self._reopens = 0

    def health(self) -> SerialHealth:
        return self._health

    def start(self) -> None:
        self._stop.clear()
        self._health = SerialHealth("starting", self.port)
        self._thread = threading.Thread(target=self._run, name="serial-scanner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._health = SerialHealth("stopped", self.port, self._reopens)

    def _run(self) -> None:
        delay = self.backoff_s
        while not self._stop.is_set():
            try:
                port = serial.serial_for_url(
                    self.port, baudrate=self.baudrate, timeout=0.1,
                    rtscts=self.rtscts, xonxoff=self.xonxoff,
                )
            except (serial.SerialException, OSError, ValueError) as exc:
                self._health = SerialHealth("lost", self.port, self._reopens, str(exc))
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max_s)
                self._reopens += 1
                continue
            delay = self.backoff_s
            self._health = SerialHealth("ok", self.port, self._reopens)
            try:
                self._read_lines(port)
            except Exception as exc:  # SerialException, OSError, or a bug: reopen, never die
                log.warning("serial scanner %s lost: %s", self.port, exc)
                self._health = SerialHealth("lost", self.port, self._reopens, str(exc))
                self._reopens += 1
                self._stop.wait(delay)
            finally:
                port.close()

    def _read_lines(self, port: serial.SerialBase) -> None:
        buffer = b""
        limit = self.max_length * 4 + 16  # bytes: UTF-8 is at most 4 per character
        overflowed = False  # dropping the rest of an over-long line, up to its suffix
        last_byte = time.monotonic()
        while not self._stop.is_set():
            chunk = port.read(4096)
            now = time.monotonic()
            if not chunk:
                # A scanner sends a code in one burst. Bytes left without their suffix
                # after a pause are noise or an aborted scan; kept, they would be glued
                # onto the front of the next code.
                if buffer and now - last_byte > self.partial_timeout:
                    self.outlet.deliver(ScanRejection(refuse(
                        "incomplete",
                        "The scanner sent part of a code. Scan the item again.",
                        "扫码枪只发送了部分条码。请重新扫描。",
                        buffer,
                    ).refusal, "serial", now))
                    buffer, overflowed = b"", False
                continue
            last_byte = now
            buffer += chunk
            *lines, buffer = buffer.split(self.suffix)
            for line in lines:
                if overflowed:
                    overflowed = False  # the tail of the over-long line: resynchronised
                    continue
                # A scanner sending CRLF to a kiosk set for CR leaves a leading LF: framing.
                line = line.strip(b"\r\n")
                if line:
                    self.outlet.deliver(
                        accept_input(line, "serial", time.monotonic(), self.max_length))
            if len(buffer) > limit:
                buffer = b""
                if not overflowed:
                    overflowed = True
                    self.outlet.deliver(_too_much("serial", time.monotonic()))
