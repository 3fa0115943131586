"""Barcode decoding: image -> the codes on it, using zxing-cpp and pyzbar.

Which passes run, and in what order, was chosen by measurement (bench/scanning_bench.py,
figures in the README): on the 327 real photos zxing-cpp alone reads 261 and
pyzbar alone about 230, and they fail on different photos. Extra passes over a
changed image recover more of both failures: a contrast-equalised image
(CLAHE: glare, dull print), a 2x upscale (codes under ~2 px per module), a light
blur (moire and print noise that make both libraries mis-sync), an unsharp mask
(soft focus) and a 45 degree turn (zxing-cpp cannot read EAN/UPC at 45 degrees).

``Decoder.read_image`` runs every pass until one reads: the ``kiosk decode``
tool and the photo-set figure. A live camera cannot afford that on every frame
(most frames are empty, and an empty frame costs as much as a full one), so
``FrameDecoder`` runs the cheap first pass on each changed frame and spends a
capped CPU budget on the others; see its docstring.

Both libraries release the GIL while decoding, so a decoder in a worker thread
leaves the UI thread free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import zxingcpp
from pyzbar import pyzbar
from pyzbar.pyzbar import ZBarSymbol

from app.domain.gtin import expand_upce

_F = zxingcpp.BarcodeFormat

# Retail symbologies only: every extra symbology is another way to misread a
# shelf label or a price tag as something else, and costs time on every frame.
RETAIL_SYMBOLOGIES = ("EAN-13", "EAN-8", "UPC-A", "UPC-E", "Code 128", "QR Code", "DataBar",
                      "DataBar Expanded")
ZXING_FORMATS = {
    "EAN-13": _F.EAN13, "EAN-8": _F.EAN8, "UPC-A": _F.UPCA, "UPC-E": _F.UPCE,
    "Code 128": _F.Code128, "QR Code": _F.QRCode, "DataBar": _F.DataBar,
    "DataBar Expanded": _F.DataBarExp, "Code 39": _F.Code39, "ITF": _F.ITF,
    "DataMatrix": _F.DataMatrix, "PDF417": _F.PDF417,
}
# zbar name -> (our name, AIM symbology identifier). zbar does not report the
# AIM modifier, so a GS1-128 read by zbar arrives as plain Code 128 (]C0).
ZBAR_SYMBOLS = {
    "EAN13": ("EAN-13", "]E0"), "EAN8": ("EAN-8", "]E4"), "UPCA": ("UPC-A", "]E0"),
    "UPCE": ("UPC-E", "]E0"), "CODE128": ("Code 128", "]C0"), "QRCODE": ("QR Code", "]Q1"),
    "DATABAR": ("DataBar", "]e0"), "DATABAR_EXP": ("DataBar Expanded", "]e0"),
    "CODE39": ("Code 39", "]A0"), "I25": ("ITF", "]I0"), "PDF417": ("PDF417", "]L0"),
}
_ZBAR_BY_NAME = {ours: ZBarSymbol[name] for name, (ours, _) in ZBAR_SYMBOLS.items()}
# The zxing-cpp passes that double-check a linear code a retry pass read.
CROSS_CHECKS = ("zxing", "zxing-contrast", "zxing-blur", "zxing-sharpen")
LINEAR = {"EAN-13", "EAN-8", "UPC-A", "UPC-E", "Code 128", "DataBar", "DataBar Expanded",
          "Code 39", "ITF"}


@dataclass(frozen=True, slots=True)
class Read:
    """One code found in an image."""

    text: str
    symbology: str  # "EAN-13", "Code 128", "QR Code", ...
    aim: str  # AIM symbology identifier, e.g. "]E0"; what a hardware scanner would prefix
    engine: str  # "zxing" or "zbar"
    pass_name: str  # which pass of the pipeline found it
    box: tuple[int, int, int, int]  # x, y, width, height in the decoded image

    @property
    def scanner_text(self) -> str:
        """The read as a hardware scanner sends it: AIM identifier, then the data."""
        return self.aim + self.text


@dataclass
class Decoded:
    """What one decode call found, and what it cost."""

    reads: list[Read]
    ms: float
    passes: list[str] = field(default_factory=list)  # passes that ran, in order
    dropped: list[Read] = field(default_factory=list)  # conflicting reads of one code


Engine = Callable[[np.ndarray], list[Read]]


def ean13_form(text: str, symbology: str) -> tuple[str, str]:
    """EAN/UPC reads as 13 digits, whichever library read them: (text, symbology).

    zbar reports a UPC-A as 12 digits and a UPC-E as 8; zxing-cpp reports a
    UPC-A as a 13-digit EAN-13. Without one form the two-frame rule would see
    two different codes. 13 digits under ``]E0`` is also what a hardware
    scanner set to "UPC-A as EAN-13" sends, and the domain reads every form.
    An EAN-13 starting with 0 is, by GS1's definition, a UPC-A.
    """
    if symbology == "UPC-E" and len(text) == 8:
        text = expand_upce(text) or text
    if symbology in ("UPC-A", "UPC-E") and len(text) == 12 and text.isdigit():
        return "0" + text, symbology
    if symbology == "EAN-13" and text.startswith("0"):
        return text, "UPC-A"
    return text, symbology


def _zxing_reader(symbologies: Sequence[str], pass_name: str, try_rotate: bool = True,
                  try_downscale: bool = True) -> Engine:
    formats = [ZXING_FORMATS[s] for s in symbologies if s in ZXING_FORMATS]

    def read(gray: np.ndarray) -> list[Read]:
        out = []
        for b in zxingcpp.read_barcodes(gray, formats=formats, try_rotate=try_rotate,
                                        try_downscale=try_downscale,
                                        text_mode=zxingcpp.TextMode.Plain):
            pts = [b.position.top_left, b.position.top_right, b.position.bottom_right,
                   b.position.bottom_left]
            xs, ys = [p.x for p in pts], [p.y for p in pts]
            box = (min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)
            text, name = ean13_form(b.text, str(b.format))
            out.append(Read(text, name, b.symbology_identifier, "zxing", pass_name, box))
        return out

    return read


def _zbar_reader(symbologies: Sequence[str], pass_name: str) -> Engine:
    symbols = [_ZBAR_BY_NAME[s] for s in symbologies if s in _ZBAR_BY_NAME]

    def read(gray: np.ndarray) -> list[Read]:
        out = []
        for r in pyzbar.decode(gray, symbols=symbols):
            name, aim = ZBAR_SYMBOLS.get(r.type, (r.type, "]Z0"))
            try:
                text = r.data.decode("utf-8")
            except UnicodeDecodeError:
                continue  # zbar guessed the wrong character set: not a usable read
            text, name = ean13_form(text, name)
            out.append(Read(text, name, aim, "zbar", pass_name, tuple(r.rect)))
        return out

    return read


def _scaled(reads: list[Read], factor: float, dx: int = 0, dy: int = 0) -> list[Read]:
    """Boxes found in a transformed image, mapped back (approximately) to the original."""
    out = []
    for r in reads:
        x, y, w, h = r.box
        box = (int(x / factor) + dx, int(y / factor) + dy, int(w / factor), int(h / factor))
        out.append(Read(r.text, r.symbology, r.aim, r.engine, r.pass_name, box))
    return out


def rotate(gray: np.ndarray, degrees: float) -> np.ndarray:
    """``gray`` turned by ``degrees`` on a canvas large enough to keep every corner."""
    h, w = gray.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(gray, m, (nw, nh), borderValue=255)


@dataclass(frozen=True)
class Pass:
    """One way of looking at an image: a preprocessing step and an engine."""

    name: str
    run: Callable[[np.ndarray], list[Read]]
    small_only: bool = False  # upscaling a large image costs a lot and helps nothing


def build_passes(pipeline: str, symbologies: Sequence[str]) -> list[Pass]:
    """The passes of a pipeline, in the order the measurements justify.

    ``combined`` (the default): zxing-cpp first (fastest, fewest wrong reads),
    then zbar, then the preprocessed passes. ``zxing`` and ``zbar``: one
    library alone, no extra passes: the baselines in the benchmark.
    """
    zx = _zxing_reader(symbologies, "zxing")
    zb = _zbar_reader(symbologies, "zbar")
    if pipeline == "zxing":
        return [Pass("zxing", zx)]
    if pipeline == "zbar":
        return [Pass("zbar", zb)]
    if pipeline != "combined":
        raise ValueError(
            f"decoder.pipeline must be 'combined', 'zxing' or 'zbar', not {pipeline!r}"
        )
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))

    def named(engine: Callable[[str], Engine], name: str,
              prep: Callable[[np.ndarray], np.ndarray], factor: float = 1.0) -> Pass:
        reader = engine(name)

        def run(gray: np.ndarray) -> list[Read]:
            reads = reader(prep(gray))
            return _scaled(reads, factor) if factor != 1.0 else reads

        return Pass(name, run, small_only=factor > 1.0)

    def zxe(name: str) -> Engine:
        return _zxing_reader(symbologies, name)

    def zbe(name: str) -> Engine:
        return _zbar_reader(symbologies, name)

    def up2(g: np.ndarray) -> np.ndarray:
        return cv2.resize(g, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)

    def blur(g: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(g, (3, 3), 0)

    def sharpen(g: np.ndarray) -> np.ndarray:
        return cv2.addWeighted(g, 1.5, cv2.GaussianBlur(g, (0, 0), 3), -0.5, 0)

    at_45 = zxe("zxing-rotate45")

    def turned_45(g: np.ndarray) -> list[Read]:
        # Boxes in the turned image do not map back simply; the box of the whole
        # image is honest enough for the overlap check and the cross-check.
        h, w = g.shape[:2]
        return [Read(r.text, r.symbology, r.aim, r.engine, r.pass_name, (0, 0, w, h))
                for r in at_45(rotate(g, 45))]

    return [
        Pass("zxing", zx),
        Pass("zbar", zb),
        named(zxe, "zxing-upscale", up2, 2.0),
        named(zxe, "zxing-contrast", clahe.apply),
        named(zbe, "zbar-contrast", clahe.apply),
        named(zxe, "zxing-blur", blur),
        named(zxe, "zxing-sharpen", sharpen),
        named(zbe, "zbar-upscale", up2, 2.0),
        Pass("zxing-rotate45", turned_45),
    ]


def _grown(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """A linear code's box grown by half its length each way.

    zbar reports the box of the scan line that read the code, which can be a
    few pixels tall; two misreads of one label from two scan lines then have
    boxes that do not touch, though they are the same bars.
    """
    x, y, w, h = box
    pad = max(w, h) // 2
    return x - pad, y - pad, w + 2 * pad, h + 2 * pad


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    ax, ay, aw, ah = _grown(a)
    bx, by, bw, bh = _grown(b)
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def _family(symbology: str) -> str:
    # A misread keeps its symbology family: an EAN misread as another EAN (or
    # UPC), never as a Code 128. An EAN beside a GS1-128 label is two codes.
    return "EAN/UPC" if symbology in ("EAN-13", "EAN-8", "UPC-A", "UPC-E") else symbology


def drop_conflicts(reads: list[Read]) -> tuple[list[Read], list[Read]]:
    """Keep reads that agree; drop linear codes read two different ways in one place.

    One EAN printed once cannot hold two numbers: when a pass returns two
    different linear codes of one family whose boxes overlap, at least one is a misread that
    happens to have a valid check digit, and there is no telling which. The
    measured case (a CD sleeve) reads both 5030159003930 and 7034759003930.
    """
    unique: dict[str, Read] = {}
    for r in reads:
        unique.setdefault(r.text, r)
    kept, dropped = [], []
    items = list(unique.values())
    for r in items:
        clash = r.symbology in LINEAR and any(
            o is not r and _family(o.symbology) == _family(r.symbology)
            and _overlaps(r.box, o.box) for o in items
        )
        (dropped if clash else kept).append(r)
    return kept, dropped


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grayscale view of a BGR or grayscale frame."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


class Decoder:
    """Runs a pipeline's passes over an image until one reads."""

    def __init__(self, pipeline: str = "combined",
                 symbologies: Sequence[str] = RETAIL_SYMBOLOGIES) -> None:
        unknown = [s for s in symbologies if s not in ZXING_FORMATS]
        if unknown:
            raise ValueError(
                f"decoder.symbologies: unknown {', '.join(unknown)}; known: "
                + ", ".join(ZXING_FORMATS)
            )
        self.pipeline = pipeline
        self.symbologies = tuple(symbologies)
        self.passes = build_passes(pipeline, self.symbologies)

    def run_pass(self, p: Pass, gray: np.ndarray) -> list[Read]:
        if p.small_only and gray.shape[0] * gray.shape[1] > 400 * 400:
            return []
        return p.run(gray)

    def cross_check(self, reads: list[Read], found_by: Pass,
                    gray: np.ndarray) -> tuple[list[Read], list[Read]]:
        """Drop linear reads from a retry pass that another zxing-cpp pass reads differently.

        The retry passes exist for labels the first pass cannot read, which are
        also the labels most often misread: on the photo set pyzbar returns a
        checksum-valid wrong UPC for one label in every frame, in three of its
        passes, while zxing-cpp on a blurred copy reads it right. A disagreement
        between passes over the same bars means nobody knows the code: no read.
        Reads from the first pass are not checked (it is the most reliable, and
        the cost would land on every frame).
        """
        if found_by is self.passes[0]:
            return reads, []
        checkers = [p for p in self.passes if p.name in CROSS_CHECKS and p is not found_by]
        kept, dropped = [], []
        for r in reads:
            if r.symbology not in LINEAR:
                kept.append(r)
                continue
            x, y, w, h = _grown(r.box)
            x, y = max(0, x), max(0, y)
            region = np.ascontiguousarray(gray[y:y + h, x:x + w])
            disagrees = False
            for p in checkers if region.size else []:
                seen = {o.text for o in self.run_pass(p, region) if o.symbology in LINEAR}
                if seen and r.text not in seen:
                    disagrees = True
                    break
            (dropped if disagrees else kept).append(r)
        return kept, dropped

    def read_image(self, image: np.ndarray) -> Decoded:
        """Every pass in order until one finds a code: for still images and ``kiosk decode``."""
        start = time.perf_counter()
        gray = to_gray(image)
        ran: list[str] = []
        dropped: list[Read] = []
        for p in self.passes:
            ran.append(p.name)
            kept, lost = drop_conflicts(self.run_pass(p, gray))
            dropped += lost
            if kept:
                kept, lost = self.cross_check(kept, p, gray)
                dropped += lost
            if kept:
                return Decoded(kept, (time.perf_counter() - start) * 1000, ran, dropped)
        return Decoded([], (time.perf_counter() - start) * 1000, ran, dropped)


def load_image(path: str) -> np.ndarray:
    """A grayscale image from a file, or ValueError saying why it cannot be read."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise ValueError(f"{path}: not an image OpenCV can read (PNG, JPEG, WebP, BMP, TIFF)")
    return image


@dataclass(frozen=True)
class GuideBox:
    """The part of the frame the shopper is asked to hold a code in, as fractions of it.

    Decoding only the box makes both libraries 2-4x faster at the same read
    rate, and keeps codes on the shelf behind the shopper out of the cart.
    """

    width: float = 0.6
    height: float = 0.7

    def __post_init__(self) -> None:
        if not (0.1 <= self.width <= 1.0 and 0.1 <= self.height <= 1.0):
            raise ValueError("the guide box must be between 0.1 and 1.0 of the frame each way")

    def region(self, frame_w: int, frame_h: int) -> tuple[int, int, int, int]:
        w, h = int(frame_w * self.width), int(frame_h * self.height)
        return (frame_w - w) // 2, (frame_h - h) // 2, w, h


def _turned_reader(symbologies: Sequence[str]) -> Engine:
    """zxing-cpp on the image turned 90 degrees, boxes mapped back to the upright image."""
    read = _zxing_reader(symbologies, "zxing-turned", try_rotate=False, try_downscale=False)

    def run(gray: np.ndarray) -> list[Read]:
        width = gray.shape[1]
        out = []
        # cv2.rotate gives a contiguous image; zxing-cpp reads np.rot90's strided view
        # about 1.6x slower.
        for r in read(cv2.rotate(gray, cv2.ROTATE_90_COUNTERCLOCKWISE)):
            bx, by, bw, bh = r.box
            box = (width - by - bh, bx, bh, bw)
            out.append(Read(r.text, r.symbology, r.aim, r.engine, r.pass_name, box))
        return out

    return run


class FrameDecoder:
    """Decodes a live camera stream within a CPU budget.

    Per frame, in order:

    1. Crop to the guide box.
    2. If the box has not changed since it was last looked at and that look
       found nothing, do not run the orientation passes again (until
       ``recheck_ms``): a kiosk's idle frames are a still scene, and
       re-reading it finds nothing new. Only the retry passes that have not
       yet looked at this view run, one a frame, within the budget; once
       all have, unchanged frames are skipped. The change test compares
       1/8-size blurred thumbnails tile by tile (4x4), so sensor noise is not
       change and a small label entering one corner is.
       The change test compares a 1/8-size blurred thumbnail, so sensor noise
       does not count as change.
    3. Run zxing-cpp upright, then (if that read nothing) turned 90 degrees:
       two passes with zxing-cpp's own try-rotate off cost the same as one
       with it on, and the pass that read leads on the next frame, so a code
       held still costs one upright or one turned pass per frame, not both.
       (Taking turns, one orientation per frame, halves the cost of a
       changing empty view but adds a frame of latency to half the scans:
       measured p95 scan-to-cart 130 ms against 44 ms.) zxing-cpp's
       downscaled retry is off in these passes: it read nothing more on the
       photo set or on generated frames (2-7 px per module) and cost 20%.
    4. If those read nothing, run the next of the other passes (pyzbar,
       contrast, upscale, blur, sharpen, 45 degrees), round robin, as long as
       they have spent less than ``retry_budget`` of a core over the last second.

    A pass that read something leads on the next frame, so the two-frame rule
    can confirm a code that only that pass can read.
    """

    def __init__(self, decoder: Decoder, guide: GuideBox | None = None, *,
                 retry_budget: float = 0.04, recheck_ms: float = 1000.0,
                 change_threshold: float = 4.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.decoder = decoder
        self.guide = guide or GuideBox()
        self.retry_budget = retry_budget
        self.recheck_ms = recheck_ms
        self.change_threshold = change_threshold
        self.clock = clock
        first, *others = decoder.passes
        if first.name == "zxing":
            self._orientations = [
                Pass("zxing-upright", _zxing_reader(decoder.symbologies, "zxing-upright",
                                                    try_rotate=False, try_downscale=False)),
                Pass("zxing-turned", _turned_reader(decoder.symbologies)),
            ]
        else:  # zbar reads every orientation in one pass
            self._orientations = [first]
        self._others = others
        self._cursor = 0
        self._lead: Pass | None = None
        self._spent: list[tuple[float, float]] = []  # (when, seconds) of retry passes
        self._thumb: np.ndarray | None = None
        self._last_found = False
        self._untried: list[Pass] = list(self._others)  # retry passes yet to see this view
        self._last_decode = -1e9
        self.frames = 0
        self.skipped = 0

    def _new_view(self) -> None:
        # Start each new view's retries where the last view's left off, so in a
        # scene that changes every frame every retry pass still gets its turns.
        k = self._cursor % len(self._others) if self._others else 0
        self._untried = self._others[k:] + self._others[:k]

    def _look(self, gray: np.ndarray, now: float) -> str:
        """"full" (decode), "retry" (same empty view: only an untried retry pass) or "skip"."""
        small = cv2.resize(gray, (max(1, gray.shape[1] // 8), max(1, gray.shape[0] // 8)),
                           interpolation=cv2.INTER_AREA)
        thumb = cv2.GaussianBlur(small, (3, 3), 0)
        previous, self._thumb = self._thumb, thumb
        if previous is None or previous.shape != thumb.shape:
            self._new_view()
            return "full"
        # The largest change in any tile of a 4x4 grid: a small label entering one
        # corner barely moves the mean over the whole box.
        diff = cv2.absdiff(thumb, previous).astype(np.float32)
        tiles = cv2.resize(diff, (4, 4), interpolation=cv2.INTER_AREA)
        if float(tiles.max()) >= self.change_threshold:
            self._new_view()
            return "full"
        self._thumb = previous  # compare with the first look at this view, so drift adds up
        if self._last_found or (now - self._last_decode) * 1000 >= self.recheck_ms:
            return "full"
        # The same view, and the orientation passes found nothing in it: only the
        # retry passes that have not looked at it yet can still find something.
        return "retry" if self._untried else "skip"

    def _retry_allowed(self, now: float) -> bool:
        self._spent = [(t, s) for t, s in self._spent if now - t < 1.0]
        return sum(s for _, s in self._spent) < self.retry_budget

    def _plan(self, now: float) -> list[Pass]:
        plan = [self._lead] if self._lead else []
        plan += [p for p in self._orientations if p not in plan]
        if self._others and self._retry_allowed(now):
            retry = self._untried[0] if self._untried \
                else self._others[self._cursor % len(self._others)]
            self._cursor += 1
            if retry not in plan:
                plan.append(retry)
        return plan

    def decode(self, frame: np.ndarray, force: bool = False) -> Decoded | None:
        """The codes in the guide box of ``frame``, or None when the frame was skipped.

        ``force``: decode even an unchanged view (the scanner has a code in view).
        """
        start = time.perf_counter()
        now = self.clock()
        self.frames += 1
        x, y, w, h = self.guide.region(frame.shape[1], frame.shape[0])
        box = to_gray(np.ascontiguousarray(frame[y:y + h, x:x + w]))  # convert only the box
        look = "full" if force else self._look(box, now)
        if force:
            self._look(box, now)  # keep the change reference current
        if look == "retry":
            if not self._retry_allowed(now):
                look = "skip"
            else:
                plan = [self._untried[0]]
                self._cursor += 1
        if look == "skip":
            self.skipped += 1
            return None
        if look == "full":
            self._last_decode = now
            plan = self._plan(now)
        ran: list[str] = []
        kept: list[Read] = []
        dropped: list[Read] = []
        lead = None
        for p in plan:
            t0 = time.perf_counter()
            ran.append(p.name)
            kept, lost = drop_conflicts(self.decoder.run_pass(p, box))
            if kept and p in self._others:
                kept, rejected = self.decoder.cross_check(kept, p, box)
                lost += rejected
            if p in self._others:
                self._spent.append((now, time.perf_counter() - t0))
                if p in self._untried:
                    self._untried.remove(p)
            dropped += lost
            if kept:
                lead = p
                break
        self._lead = lead
        self._last_found = bool(kept)
        reads = _scaled(kept, 1.0, x, y)
        return Decoded(reads, (time.perf_counter() - start) * 1000, ran, dropped)
