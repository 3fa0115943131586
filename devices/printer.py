"""The receipt printer: ESC/POS over a serial port, its real-time status, and the print queue.

- ``SerialLink`` ships bytes and asks for status through python-escpos's
  ``Serial`` connector (pyserial underneath).
- ``read_status`` asks ``DLE EOT`` 1, 2 and 4 (printer, offline cause, paper
  sensor) with a short timeout. No reply is ``UNKNOWN``: never "fine" and
  never "out of paper". (python-escpos's ``paper_status()`` reads an empty
  reply as "no paper", and ``is_online()`` as "offline"; neither is used.)
  A reply whose fixed bits are wrong is also ``UNKNOWN``: it is not a status.
- ``EscPosPrinter`` is the receipt printer as the print queue
  (``app.services.printing.PrintQueue``) sees it: open and close the port, ask
  the status, render a receipt or a document (``devices.receipt``), write the
  bytes, and wait for the printer to confirm it printed them (GS ( H). When to
  print, retry, reopen or give up is the queue's business, not this module's:
  it talks to the printer only, and knows nothing of the database.
"""

from __future__ import annotations

import fcntl
import logging
import termios
import time
from collections.abc import Callable
from typing import Protocol

import serial
from escpos.exceptions import DeviceNotFoundError
from escpos.printer import Serial as EscposSerial

from app.domain.printer import PrinterGone, PrinterState, PrinterStatus
from app.domain.sale import PaidSale
from devices.receipt import ReceiptStyle, render_document, render_receipt

log = logging.getLogger(__name__)

DLE_EOT = b"\x10\x04"
# What a vanished serial port raises: pyserial's exception, the OS's, and termios's
# (tcflush/tcdrain on a dead pty or USB adapter raise termios.error, not OSError).
PORT_ERRORS = (serial.SerialException, OSError, termios.error)


def _valid(reply: bytes) -> bool:
    # Every DLE EOT reply has bit 1 and bit 4 set and bits 0 and 7 clear (Epson TM spec).
    return len(reply) == 1 and reply[0] & 0x93 == 0x12


def parse_status(printer: bytes, offline_cause: bytes | None,
                 paper: bytes | None) -> PrinterStatus:
    """The printer's state from its replies to DLE EOT 1, 2 and 4."""
    if not _valid(printer):
        return PrinterStatus(PrinterState.UNKNOWN,
                             "no reply" if not printer else f"not a status reply: {printer!r}")
    cover_open = offline_cause is not None and _valid(offline_cause) \
        and bool(offline_cause[0] & 0x04)
    paper_end = paper is not None and _valid(paper) and bool(paper[0] & 0x60)
    near_end = paper is not None and _valid(paper) and bool(paper[0] & 0x0C)
    stopped_no_paper = offline_cause is not None and _valid(offline_cause) \
        and bool(offline_cause[0] & 0x20)
    if cover_open:
        return PrinterStatus(PrinterState.COVER_OPEN, "cover open")
    if paper_end or stopped_no_paper:
        return PrinterStatus(PrinterState.PAPER_OUT, "paper end")
    if printer[0] & 0x08:
        return PrinterStatus(PrinterState.OFFLINE, "offline")
    if paper is None or not _valid(paper):
        # Printer online but the paper sensor did not answer: printable, say so.
        return PrinterStatus(PrinterState.OK, "paper sensor did not answer")
    if near_end:
        return PrinterStatus(PrinterState.PAPER_NEAR_END, "paper near end")
    return PrinterStatus(PrinterState.OK)


class Link(Protocol):
    """What the printer needs from a connection: bytes out, replies back."""

    def open(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    def ask(self, query: bytes, timeout: float, reply_bytes: int = 1) -> bytes: ...

    def read(self, count: int, timeout: float) -> bytes: ...

    def close(self) -> None: ...


class SerialLink:
    """A serial receipt printer through python-escpos's Serial connector.

    The port is locked (flock) while open, so ``kiosk printer status`` run by
    hand cannot steal the status replies of the kiosk's print thread. Writes
    have a timeout that grows with the data and the baud rate: a printer
    holding flow control must not hang the print thread, and a long receipt at
    9600 baud must still fit.
    """

    def __init__(self, port: str, baudrate: int = 9600, *, rtscts: bool = False,
                 xonxoff: bool = False, dsrdtr: bool = False) -> None:
        self.port = port
        self.baudrate = baudrate
        self._printer = EscposSerial(devfile=port, baudrate=baudrate, timeout=0.2,
                                     xonxoff=xonxoff, dsrdtr=dsrdtr)
        self.rtscts = rtscts

    def open(self) -> None:
        try:
            self._printer.open(raise_not_found=True)
        except DeviceNotFoundError as exc:
            raise serial.SerialException(str(exc).strip()) from None
        device = self._printer.device
        assert device is not None
        try:
            fcntl.flock(device.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise serial.SerialException(f"{self.port} is in use by another program") from None
        device.rtscts = self.rtscts

    def _seconds_for(self, n: int) -> float:
        return 5.0 + 2 * n * 10 / self.baudrate  # twice the wire time, plus slack

    def write(self, data: bytes) -> None:
        device = self._printer.device
        if device is None:
            raise serial.SerialException("printer port is not open")
        device.write_timeout = self._seconds_for(len(data))
        device.write(data)

    def ask(self, query: bytes, timeout: float, reply_bytes: int = 1) -> bytes:
        device = self._printer.device
        if device is None:
            raise serial.SerialException("printer port is not open")
        device.reset_input_buffer()  # stale bytes are not the answer to this question
        device.write_timeout = timeout
        try:
            device.write(query)
        except serial.SerialTimeoutException:
            return b""  # flow control held: no answer, which means "unknown"
        device.timeout = timeout
        return bytes(device.read(reply_bytes))

    def read(self, count: int, timeout: float) -> bytes:
        device = self._printer.device
        if device is None:
            raise serial.SerialException("printer port is not open")
        device.timeout = timeout
        return bytes(device.read(count))

    def close(self) -> None:
        device = self._printer.device
        if device is not None:
            try:
                device.close()
            except PORT_ERRORS:
                pass
        self._printer.device = None


# GS ( H fn 48: the printer answers "37 22 <id> 00" only once everything sent before
# it has been printed. A status asked right after the bytes leave the port says
# nothing about a receipt still in the printer's buffer.
def completion_query(process_id: bytes) -> bytes:
    return b"\x1d(H\x06\x00\x30\x30" + process_id


def completion_reply(process_id: bytes) -> bytes:
    return b"\x37\x22" + process_id + b"\x00"


GARBAGE_LIMIT = 64  # bytes that cannot be a reply before a conversation is given up


def _reply_prefix(got: bytes, expected: bytes) -> bytes:
    """The longest tail of ``got`` that is a start of ``expected`` (b"" if none)."""
    for start in range(len(got)):
        tail = got[start:]
        if expected.startswith(tail):
            return tail
    return b""


def read_status(link: Link, timeout: float) -> PrinterStatus:
    """Ask DLE EOT 1 (and, if it answered, 2 and 4); raises SerialException if the port is gone."""
    printer = link.ask(DLE_EOT + b"\x01", timeout)
    if not _valid(printer):
        return parse_status(printer, None, None)
    cause = link.ask(DLE_EOT + b"\x02", timeout)
    paper = link.ask(DLE_EOT + b"\x04", timeout)
    return parse_status(printer, cause or None, paper or None)


class EscPosPrinter:
    """A receipt printer over a ``Link`` (``SerialLink`` in a store): the print queue's port
    (``app.services.printing.ReceiptPrinterPort``).

    ``link_factory`` makes a fresh, unopened ``Link``; ``open`` makes and opens one
    (a vanished USB adapter comes back as a new device). Port errors come out as
    ``PrinterGone``. ``status_timeout`` (seconds) bounds each status reply;
    ``print_timeout`` (seconds, plus the bytes' wire time) bounds the wait for the
    printer to confirm a receipt.
    """

    def __init__(self, link_factory: Callable[[], Link], style: ReceiptStyle, *,
                 status_timeout: float = 0.3, print_timeout: float = 20.0) -> None:
        self._factory = link_factory
        self.style = style
        self.status_timeout, self.print_timeout = status_timeout, print_timeout
        self._link: Link | None = None

    def open(self) -> None:
        self.close()
        link = self._factory()
        try:
            link.open()
        except PORT_ERRORS as exc:
            raise PrinterGone(str(exc)) from None
        self._link = link

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _open_link(self) -> Link:
        if self._link is None:
            raise PrinterGone("printer port is not open")
        return self._link

    def status(self) -> PrinterStatus:
        try:
            return read_status(self._open_link(), self.status_timeout)
        except PORT_ERRORS as exc:
            raise PrinterGone(str(exc)) from None

    def render_receipt(self, sale: PaidSale, exit_pass: str, *, copy: bool) -> bytes:
        return render_receipt(sale, exit_pass, self.style, copy=copy)

    def render_document(self, text: str) -> bytes:
        return render_document(text, self.style)

    def write(self, data: bytes) -> None:
        try:
            self._open_link().write(data)
        except PORT_ERRORS as exc:
            raise PrinterGone(str(exc)) from None

    def wait_printed(self, job_id: int, size: int) -> bool | None:
        try:
            return self._printed(self._open_link(), job_id, size)
        except PORT_ERRORS as exc:
            raise PrinterGone(str(exc)) from None

    def _printed(self, link: Link, job_id: int, size: int) -> bool | None:
        process_id = f"{job_id % 10000:04d}".encode("ascii")
        expected = completion_reply(process_id)
        baud = max(getattr(link, "baudrate", 9600), 1200)
        deadline = time.monotonic() + self.print_timeout + 2 * size * 10 / baud
        link.write(completion_query(process_id))
        got = b""
        garbage = 0
        while time.monotonic() < deadline:
            got += link.read(len(expected), 0.25)
            if expected in got:
                return True
            # Keep only what could still become the reply; a printer that streams bytes
            # no ESC/POS reply starts with is not answering (a wrong baud rate, a broken
            # cable, another device): after GARBAGE_LIMIT such bytes the outcome is
            # unknown, not a wait for the whole print timeout (issue 16, fault 8).
            keep = _reply_prefix(got, expected)
            garbage += len(got) - len(keep)
            got = keep
            if garbage > GARBAGE_LIMIT:
                return None
            if got:
                continue  # part of the reply: read the rest
            # Nothing yet: a printer that has stopped will never answer. DLE EOT is
            # answered at once, even with the receipt still in the printer's buffer.
            link.write(DLE_EOT + b"\x01")
            reply = link.read(1, self.status_timeout)
            if reply[:1] == expected[:1]:
                got += reply  # the completion reply overtook the status reply
            elif _valid(reply) and reply[0] & 0x08:
                return False
        return None


__all__ = ["PORT_ERRORS", "EscPosPrinter", "Link", "PrinterGone", "PrinterState",
           "PrinterStatus", "SerialLink", "completion_query", "completion_reply",
           "parse_status", "read_status"]
