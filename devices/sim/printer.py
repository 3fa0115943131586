"""A virtual ESC/POS receipt printer on a pty, for integrators and tests.

The kiosk opens the printed port (or the stable ``link``) exactly as it opens
/dev/ttyUSB0 in a store. The printer interprets what a receipt uses: init,
code pages and Chinese (two-byte) mode, emphasis and sizes, alignment, QR
store/print (``GS ( k``), raster images (``GS v 0``), feeds and cuts; it
answers ``DLE EOT`` 1, 2 and 4 from its state; other commands are skipped by
their documented lengths. Each cut ends a receipt, written to the output
folder as ``NNNN.txt`` (the text, QR contents in brackets) and ``NNNN.png``
(what the paper would show, Chinese included, QRs scannable).

Faults, while running:

- from Python: ``set_state(paper_out=True)``, ``cover_open``, ``offline``,
  ``paper_near_end``, ``silent`` (answers no status query), and
  ``paper_left=N`` (the paper runs out after N more bytes: mid-receipt);
- from a shell: write a line to ``<out>/control``, e.g.
  ``echo paper-out > out/control`` (also ``paper-ok``, ``near-end``,
  ``cover-open``, ``cover-closed``, ``offline``, ``online``, ``silent``,
  ``answer``, ``paper-left 300``); the printer reads and removes the file.

A receipt cut short by a fault is written as ``NNNN-incomplete.txt/.png``:
that is the piece of paper the shopper would be holding.

Its font (``font_set``) is that of the printers stores buy: ``"gbk"``, the
two-byte GBK font, by default. Such a printer has no glyphs for GB18030's
four-byte sequences (``¥`` as ``81 30 84 36``) nor for two-byte codes GBK
leaves undefined (``A2 E3``, GB18030's ``€``): it prints them visibly wrong,
and so does this one: each byte of a four-byte sequence as a one-column
glyph (``?`` for a byte above 0x7F, the digit itself otherwise: ``¥`` comes
out as ``?0?6``), an undefined two-byte code as ``〓``. Each such sequence is
counted in ``Interpreter.undecodable`` (``VirtualPrinter.undecodable``).
``"gb18030"`` is a printer with the full GB18030 font.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont

from app.fonts import FontMissing, find_cjk_font

log = logging.getLogger(__name__)

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
DOTS = {58: 384, 80: 576}
CHAR_W, CHAR_H = 12, 24  # Font A
QR_EC = {48: qrcode.constants.ERROR_CORRECT_L, 49: qrcode.constants.ERROR_CORRECT_M,
         50: qrcode.constants.ERROR_CORRECT_Q, 51: qrcode.constants.ERROR_CORRECT_H}
# ESC commands with a fixed number of parameter bytes we do not act on.
ESC_SKIP = {ord(c): n for c, n in {" ": 1, "%": 1, "-": 1, "2": 0, "3": 1, "<": 0, "=": 1,
                                   "?": 1, "D": 0, "G": 1, "J": 1, "K": 1, "L": 0, "M": 1,
                                   "R": 1, "S": 0, "T": 1, "U": 1, "V": 1, "c": 2, "e": 1,
                                   "p": 3, "r": 1, "t": 1, "{": 1, "$": 2, "\\": 2}.items()}
GS_SKIP = {ord(c): n for c, n in {"B": 1, "H": 1, "L": 2, "W": 2, "P": 2, "a": 1, "b": 1,
                                  "f": 1, "h": 1, "w": 1, "x": 0, "$": 2, "\\": 2,
                                  "^": 3, "r": 1, "I": 1}.items()}
FONT_SETS = ("gbk", "gb18030")
WRONG_BYTE = "?"  # a stray byte >= 0x80 printed as a one-column glyph
MISSING_GLYPH = "\u3013"  # 〓: a two-byte code the font has no glyph for
FS_SKIP = {ord(c): n for c, n in {"&": 0, ".": 0, "!": 1, "-": 1, "C": 1, "S": 2, "W": 1,
                                  "p": 2}.items()}


@dataclass
class Run:
    text: str
    bold: bool
    width: int  # 1-8
    height: int


@dataclass
class Block:
    """One printed line of text runs, or one image."""

    align: int  # 0 left, 1 centre, 2 right
    runs: list[Run] = field(default_factory=list)
    image: Image.Image | None = None
    label: str = ""  # the .txt stand-in for an image, e.g. "[QR: ...]"


@dataclass
class PrinterFlags:
    paper_out: bool = False
    paper_near_end: bool = False
    cover_open: bool = False
    offline: bool = False
    silent: bool = False
    paper_left: int | None = None  # bytes until the paper runs out


class Interpreter:
    """ESC/POS bytes -> receipts, and status replies from the printer's flags."""

    def __init__(self, paper_mm: int, flags: PrinterFlags, font_set: str = "gbk") -> None:
        if font_set not in FONT_SETS:
            raise ValueError(f"font_set must be one of {FONT_SETS}, not {font_set!r}")
        self.font_set = font_set
        self.undecodable = 0  # sequences the font has no glyph for, printed as junk
        self.dots = DOTS[paper_mm]
        self.columns = self.dots // CHAR_W
        self.flags = flags
        self.buf = bytearray()
        self.blocks: list[Block] = []
        self.line: list[Run] = []
        self.receipts: list[tuple[list[Block], bool]] = []  # (blocks, complete)
        self.chinese = False
        self.lost = False  # the current receipt lost data (paper ran out)
        self.received = 0
        self._reset_style()
        self._qr_data = b""
        self._qr_size = 3
        self._qr_ec = qrcode.constants.ERROR_CORRECT_L

    def _reset_style(self) -> None:
        self.bold, self.width, self.height, self.align = False, 1, 1, 0

    # -- status ----------------------------------------------------------------------------
    def status(self, n: int) -> bytes | None:
        f = self.flags
        if f.silent:
            return None
        value = 0x12
        if n == 1 and (f.offline or f.paper_out or f.cover_open):
            value |= 0x08
        elif n == 2:
            value |= (0x04 if f.cover_open else 0) | (0x20 if f.paper_out else 0)
        elif n == 4:
            value |= (0x60 if f.paper_out else 0) | (0x0C if f.paper_near_end else 0)
        return bytes([value])

    @property
    def printing(self) -> bool:
        f = self.flags
        return not (f.paper_out or f.cover_open or f.offline)

    # -- parsing ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Take bytes from the kiosk; return the bytes to answer (status replies)."""
        self.buf += data
        replies = bytearray()
        while self.buf:
            used, reply = self._step()
            if used == 0:
                break  # an incomplete command: wait for more bytes
            consumed = bytes(self.buf[:used])
            del self.buf[:used]
            if reply is not None:
                replies += reply
            elif consumed[:2] != b"\x10\x04":
                self._count(len(consumed))
        return bytes(replies)

    def _count(self, n: int) -> None:
        self.received += n
        if self.flags.paper_left is not None:
            self.flags.paper_left -= n
            if self.flags.paper_left <= 0:
                self.flags.paper_out, self.flags.paper_left = True, None

    def _need(self, n: int) -> bool:
        return len(self.buf) >= n

    def _step(self) -> tuple[int, bytes | None]:
        b = self.buf
        c = b[0]
        if c == DLE:
            if not self._need(3):
                return 0, None
            if b[1] == 0x04:
                return 3, self.status(b[2]) or b""
            if b[1] == 0x05 or b[1] == 0x14:
                return (3 if b[1] == 0x05 else 5), None
            return 1, None
        if c == ESC:
            return self._esc()
        if c == GS:
            return self._gs()
        if c == FS:
            if not self._need(2):
                return 0, None
            if b[1] == ord("&"):
                self.chinese = True
            elif b[1] == ord("."):
                self.chinese = False
            return 2 + FS_SKIP.get(b[1], 0), None
        if c == 0x0A:
            self._newline()
            return 1, None
        if c in (0x0D, 0x00):
            return 1, None
        if c == 0x09:
            self._text("    ")
            return 1, None
        # Text up to the next control byte.
        end = 0
        while end < len(b) and b[end] >= 0x20 and b[end] != 0x7F or \
                (end < len(b) and b[end] >= 0x80):
            end += 1
        if end == 0:
            return 1, None
        chunk = bytes(b[:end])
        if self.chinese and end == len(b):
            # A GB18030 character may be split across reads: keep its lead byte.
            lead = self._split_point(chunk)
            if lead == 0:
                return 0, None
            chunk, end = chunk[:lead], lead
        self._text(self._decode(chunk) if self.chinese else chunk.decode("cp437", errors="replace"))
        return end, None

    def _decode(self, chunk: bytes) -> str:
        """Chinese-mode text as this printer's font prints it (whole characters only)."""
        if self.font_set == "gb18030":
            return chunk.decode("gb18030", errors="replace")
        out, i = [], 0
        while i < len(chunk):
            byte = chunk[i]
            if byte < 0x80:
                out.append(chr(byte))
                i += 1
            elif i + 1 < len(chunk) and 0x30 <= chunk[i + 1] <= 0x39:
                # A GB18030 four-byte sequence: a GBK font reads it as stray bytes.
                out.append("".join(chr(b) if b < 0x80 else WRONG_BYTE for b in chunk[i:i + 4]))
                self.undecodable += 1
                i += 4
            else:
                try:
                    out.append(chunk[i:i + 2].decode("gbk"))
                except UnicodeDecodeError:
                    out.append(MISSING_GLYPH if i + 1 < len(chunk) else WRONG_BYTE)
                    self.undecodable += 1
                i += 2
        return "".join(out)

    def _split_point(self, chunk: bytes) -> int:
        i = 0
        while i < len(chunk):
            if chunk[i] < 0x80:
                i += 1
            elif i + 1 < len(chunk) and 0x30 <= chunk[i + 1] <= 0x39:
                if i + 3 >= len(chunk):
                    return i
                i += 4
            else:
                if i + 1 >= len(chunk):
                    return i
                i += 2
        return i

    def _esc(self) -> tuple[int, bytes | None]:
        b = self.buf
        if not self._need(2):
            return 0, None
        cmd = b[1]
        if cmd == ord("@"):
            self._reset_style()
            return 2, None
        if cmd in (ord("!"), ord("E"), ord("a"), ord("d")):
            if not self._need(3):
                return 0, None
            n = b[2]
            if cmd == ord("!"):
                self.bold = bool(n & 0x08)
                self.height = 2 if n & 0x10 else 1
                self.width = 2 if n & 0x20 else 1
            elif cmd == ord("E"):
                self.bold = bool(n & 1)
            elif cmd == ord("a"):
                self.align = n % 48 if n >= 48 else n
            else:
                for _ in range(n):
                    self._newline()
            return 3, None
        if cmd == ord("*"):  # bit image: m nL nH data
            if not self._need(5):
                return 0, None
            m, count = b[2], b[3] | b[4] << 8
            size = count * (3 if m in (32, 33) else 1)
            return (5 + size, None) if self._need(5 + size) else (0, None)
        return 2 + ESC_SKIP.get(cmd, 0), None

    def _gs(self) -> tuple[int, bytes | None]:
        b = self.buf
        if not self._need(2):
            return 0, None
        cmd = b[1]
        if cmd == ord("!"):
            if not self._need(3):
                return 0, None
            self.width, self.height = (b[2] >> 4) + 1, (b[2] & 0x0F) + 1
            return 3, None
        if cmd == ord("V"):
            if not self._need(3):
                return 0, None
            m = b[2]
            used = 4 if m in (65, 66, 97, 98, 103, 104) else 3
            if not self._need(used):
                return 0, None
            self._cut()
            return used, None
        if cmd == ord("(") and self._need(5):
            length = b[3] | b[4] << 8
            if not self._need(5 + length):
                return 0, None
            if b[2] == ord("k"):
                self._two_d(bytes(b[5:5 + length]))
            elif b[2] == ord("H") and length == 6 and b[5] == 0x30 and b[6] == 0x30:
                # Process ID response: sent once everything before it has printed, which
                # a printer that has stopped (paper out, cover open) never does.
                if self.printing:
                    return 5 + length, b"\x37\x22" + bytes(b[7:11]) + b"\x00"
                self.lost = True
            return 5 + length, None
        if cmd == ord("("):
            return 0, None  # GS ( with its length bytes still to come
        if cmd == ord("v"):  # GS v 0 m xL xH yL yH data
            if not self._need(8):
                return 0, None
            x_bytes, y = b[4] | b[5] << 8, b[6] | b[7] << 8
            size = x_bytes * y
            if not self._need(8 + size):
                return 0, None
            self._raster(bytes(b[8:8 + size]), x_bytes, y)
            return 8 + size, None
        if cmd == ord("k"):  # barcodes: GS k m ... (NUL-terminated or length-prefixed)
            if not self._need(4):
                return 0, None
            if b[2] < 65:
                end = b.find(b"\x00", 3)
                return (end + 1, None) if end >= 0 else (0, None)
            return (4 + b[3], None) if self._need(4 + b[3]) else (0, None)
        return 2 + GS_SKIP.get(cmd, 0), None

    # -- content ---------------------------------------------------------------------------
    def _text(self, text: str) -> None:
        if not self.printing:
            self.lost = True
            return
        self.line.append(Run(text, self.bold, self.width, self.height))

    def _newline(self) -> None:
        if not self.printing:
            self.lost = True
            return
        self.blocks.append(Block(self.align, self.line))
        self.line = []

    def _image(self, image: Image.Image, label: str) -> None:
        if not self.printing:
            self.lost = True
            return
        if self.line:
            self._newline()
        self.blocks.append(Block(self.align, image=image, label=label))

    def _two_d(self, data: bytes) -> None:
        if len(data) < 2 or data[0] != ord("1"):  # cn 49 = QR; PDF417 and others ignored
            return
        fn, params = data[1], data[2:]
        if fn == 67 and params:
            self._qr_size = max(1, min(16, params[0]))
        elif fn == 69 and params:
            self._qr_ec = QR_EC.get(params[0], qrcode.constants.ERROR_CORRECT_L)
        elif fn == 80:
            self._qr_data = params[1:]  # m = 48, then the data
        elif fn == 81 and self._qr_data:
            qr = qrcode.QRCode(box_size=self._qr_size, border=4, error_correction=self._qr_ec)
            text = self._qr_data.decode("utf-8", errors="replace")
            qr.add_data(self._qr_data)
            qr.make(fit=True)
            image = qr.make_image(fill_color="black", back_color="white").get_image()
            self._image(image.convert("L"), f"[QR: {text}]")

    def _raster(self, data: bytes, x_bytes: int, y: int) -> None:
        image = Image.frombytes("1", (x_bytes * 8, y), data)
        # In ESC/POS a set bit is a black dot; in PIL mode "1" a set bit is white.
        inverted = Image.eval(image.convert("L"), lambda v: 255 - v)
        self._image(inverted, f"[image {x_bytes * 8}x{y}]")

    def _cut(self) -> None:
        if self.line:
            self._newline()
        complete = not self.lost
        if self.blocks or self.lost:
            self.receipts.append((self.blocks, complete))
        self.blocks, self.line, self.lost = [], [], False

    def flush_incomplete(self) -> None:
        """The kiosk stopped mid-receipt (port closed): keep what was printed."""
        if self.line:
            self.line, self.blocks = [], self.blocks + [Block(self.align, self.line)]
        if self.blocks:
            self.receipts.append((self.blocks, False))
            self.blocks = []


def _run_width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def receipt_text(blocks: list[Block], columns: int) -> str:
    lines = []
    for block in blocks:
        if block.image is not None:
            text = block.label
        else:
            text = "".join(r.text for r in block.runs)
        pad = columns - _run_width(text)
        if block.align == 1 and pad > 0:
            text = " " * (pad // 2) + text
        elif block.align == 2 and pad > 0:
            text = " " * pad + text
        lines.append(text.rstrip())
    return "\n".join(lines) + "\n"


def receipt_image(blocks: list[Block], dots: int, font_path: Path | None) -> Image.Image:
    fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}

    def font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        if not fonts:
            fonts[0] = ImageFont.load_default()
            if font_path:
                # A .ttc may hold a monospaced face (WenQuanYi Micro Hei Mono is index 1):
                # a printer's Font A is monospaced, and receipts line up in columns.
                for index in (1, 0):
                    try:
                        fonts[0] = ImageFont.truetype(str(font_path), CHAR_H - 4, index=index)
                        break
                    except OSError:
                        continue
        return fonts[0]

    rows: list[tuple[int, Image.Image]] = []
    for block in blocks:
        if block.image is not None:
            rows.append((block.align, block.image))
            continue
        height = max((r.height for r in block.runs), default=1) * CHAR_H + 6
        width = sum(_run_width(r.text) * CHAR_W * r.width for r in block.runs)
        line = Image.new("L", (max(1, min(width, dots)), height), 255)
        x = 0
        for run in block.runs:
            for ch in run.text:
                cell = _run_width(ch) * CHAR_W
                # Draw each character in its printer cell, then stretch the cell as the
                # printer does for double width/height; bold is struck twice.
                glyph = Image.new("L", (cell, CHAR_H), 255)
                pen = ImageDraw.Draw(glyph)
                pen.text((0, 0), ch, font=font(), fill=0)
                if run.bold:
                    pen.text((1, 0), ch, font=font(), fill=0)
                if run.width > 1 or run.height > 1:
                    glyph = glyph.resize((cell * run.width, CHAR_H * run.height))
                line.paste(glyph, (x, height - glyph.height - 3))
                x += cell * run.width
        rows.append((block.align, line))
    total = sum(img.height for _, img in rows) + 40
    page = Image.new("L", (dots, max(total, 40)), 255)
    y = 20
    for align, img in rows:
        x = 0 if align == 0 else (dots - img.width) // (2 if align == 1 else 1)
        page.paste(img, (max(0, x), y))
        y += img.height
    return page


class VirtualPrinter:
    """An ESC/POS printer at the far end of a pty, writing receipts to ``out_dir``."""

    CONTROL_WORDS = {
        "paper-out": {"paper_out": True}, "paper-ok": {"paper_out": False,
                                                       "paper_near_end": False},
        "near-end": {"paper_near_end": True}, "cover-open": {"cover_open": True},
        "cover-closed": {"cover_open": False}, "offline": {"offline": True},
        "online": {"offline": False}, "silent": {"silent": True}, "answer": {"silent": False},
    }

    def __init__(self, out_dir: str | Path, *, paper_mm: int = 80, link: str | Path | None = None,
                 font: Path | None = None, font_set: str = "gbk") -> None:
        """``font_set``: ``"gbk"`` (the two-byte font of the printers stores buy) or
        ``"gb18030"`` (a printer with the full GB18030 font); ValueError otherwise."""
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.paper_mm = paper_mm
        self.flags = PrinterFlags()
        self.interpreter = Interpreter(paper_mm, self.flags, font_set)
        try:
            self.font = font or find_cjk_font("", Path(__file__).resolve().parents[2])
        except FontMissing:
            self.font = None  # Chinese will show as boxes in the PNG; the .txt is exact
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.link = Path(link) if link else None
        if self.link is not None:
            self.link.unlink(missing_ok=True)
            self.link.symlink_to(self.port)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queued = 0
        self._finished: queue.Queue[tuple[int, list[Block], bool] | None] = queue.Queue()
        self._saver: threading.Thread | None = None
        self.files: list[Path] = []  # receipts written, in order
        self.received = threading.Condition()

    @property
    def undecodable(self) -> int:
        """Character sequences received that this printer's font has no glyph for (printed
        as junk) since it started: 0 from a kiosk that sends only what the font has."""
        with self._lock:
            return self.interpreter.undecodable

    # -- control -----------------------------------------------------------------------------
    def set_state(self, **flags: bool | int | None) -> None:
        with self._lock:
            for name, value in flags.items():
                if not hasattr(self.flags, name):
                    raise ValueError(f"unknown printer state {name!r}")
                setattr(self.flags, name, value)

    def _read_control(self) -> None:
        path = self.out_dir / "control"
        if not path.exists():
            return
        try:
            words = path.read_text(encoding="utf-8").split("\n")
            path.unlink()
        except OSError:
            return
        for line in words:
            parts = line.strip().split()
            if not parts:
                continue
            if parts[0] == "paper-left" and len(parts) == 2 and parts[1].isdigit():
                self.set_state(paper_left=int(parts[1]))
            elif parts[0] in self.CONTROL_WORDS:
                self.set_state(**self.CONTROL_WORDS[parts[0]])
            else:
                log.warning("virtual printer: unknown control %r", line.strip())

    # -- running -----------------------------------------------------------------------------
    def start(self) -> VirtualPrinter:
        self._thread = threading.Thread(target=self._run, name="virtual-printer", daemon=True)
        self._thread.start()
        # Receipts are drawn on another thread: a real printer answers DLE EOT at
        # once, even while printing, and so must this one.
        self._saver = threading.Thread(target=self._save_loop, name="virtual-printer-out",
                                       daemon=True)
        self._saver.start()
        return self

    def _save_loop(self) -> None:
        while True:
            item = self._finished.get()
            if item is None:
                return
            self._save(*item)

    def _run(self) -> None:
        last_control = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_control > 0.1:
                self._read_control()
                last_control = now
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:
                # Linux reports EIO on the master while no process has the port open.
                time.sleep(0.05)
                continue
            with self._lock:
                try:
                    reply = self.interpreter.feed(data)
                except Exception:  # a printer that chokes on bad data drops it, like a real one
                    log.exception("virtual printer: cannot interpret; input dropped")
                    self.interpreter.buf.clear()
                    reply = b""
            if reply:
                try:
                    os.write(self._master, reply)
                except OSError:
                    log.warning("virtual printer: the kiosk went away before the reply")
            self._save_new()

    def _save_new(self) -> None:
        # Handed to the saver and dropped here: a printer that runs for days (the demo)
        # must not keep every receipt it ever printed in memory.
        with self._lock:
            done, self.interpreter.receipts = self.interpreter.receipts, []
        for blocks, complete in done:
            self._queued += 1
            self._finished.put((self._queued, blocks, complete))

    def _save(self, number: int, blocks: list[Block], complete: bool) -> None:
        stem = f"{number:04d}" + ("" if complete else "-incomplete")
        text_path = self.out_dir / f"{stem}.txt"
        text_path.write_text(receipt_text(blocks, self.interpreter.columns), encoding="utf-8")
        # Saved aside and renamed: whoever watches the folder never reads half a picture.
        png = self.out_dir / f"{stem}.png"
        partial = self.out_dir / f"{stem}.png.part"
        receipt_image(blocks, self.interpreter.dots, self.font).save(partial, format="PNG")
        partial.replace(png)
        with self.received:
            self.files.append(text_path)
            self.received.notify_all()

    def wait_for_receipts(self, count: int, timeout: float = 5.0) -> list[Path]:
        """Block until ``count`` receipts (complete or not) have been written."""
        end = time.monotonic() + timeout
        with self.received:
            while len(self.files) < count and time.monotonic() < end:
                self.received.wait(end - time.monotonic())
            return list(self.files)

    def unplug(self) -> None:
        """Close the pty: the kiosk's port vanishes, as when the USB cable is pulled."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            self.interpreter.flush_incomplete()
        self._save_new()
        self._finished.put(None)
        if self._saver is not None:
            self._saver.join(timeout=10)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link is not None:
            self.link.unlink(missing_ok=True)

    close = unplug

    def __enter__(self) -> VirtualPrinter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.unplug()
