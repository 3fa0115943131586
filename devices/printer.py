"""The receipt printer: ESC/POS over a serial port, its real-time status, and the print queue.

- ``SerialLink`` ships bytes and asks for status through python-escpos's
  ``Serial`` connector (pyserial underneath).
- ``read_status`` asks ``DLE EOT`` 1, 2 and 4 (printer, offline cause, paper
  sensor) with a short timeout. No reply is ``UNKNOWN``: never "fine" and
  never "out of paper". (python-escpos's ``paper_status()`` reads an empty
  reply as "no paper", and ``is_online()`` as "offline"; neither is used.)
  A reply whose fixed bits are wrong is also ``UNKNOWN``: it is not a status.
- ``ReceiptPrinter`` runs the print queue on its own thread: a job is
  printed only when the printer says it can print; after the bytes are sent
  the status is asked again, and a receipt the printer could not finish
  (paper out, cover opened, port gone) stays pending and is printed again,
  marked COPY, when the printer recovers. A vanished port is reopened with
  backoff. ``health()`` is what staff mode shows.
"""

from __future__ import annotations

import logging
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import serial
from escpos.exceptions import DeviceNotFoundError
from escpos.printer import Serial as EscposSerial

from app.domain.clock import Clock
from app.storage.print_jobs import PrintJob, PrintJobs
from devices.receipt import ReceiptStyle, render_receipt

log = logging.getLogger(__name__)

DLE_EOT = b"\x10\x04"
# What a vanished serial port raises: pyserial's exception, the OS's, and termios's
# (tcflush/tcdrain on a dead pty or USB adapter raise termios.error, not OSError).
PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class PrinterState(StrEnum):
    OK = "ok"
    PAPER_NEAR_END = "paper_near_end"  # still prints; staff should change the roll
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # no (valid) reply to the status query
    DISCONNECTED = "disconnected"  # the port cannot be opened or has gone


@dataclass(frozen=True)
class PrinterStatus:
    state: PrinterState
    detail: str = ""

    @property
    def can_print(self) -> bool:
        return self.state in (PrinterState.OK, PrinterState.PAPER_NEAR_END)

    def shopper_notice(self) -> tuple[str, str] | None:
        """What to tell the shopper before they pay (zh, en), or None if all is well."""
        if self.can_print:
            return None
        if self.state is PrinterState.UNKNOWN:
            return ("打印机没有响应，可能无法打印小票。付款后出口凭证会显示在屏幕上。",
                    "The printer is not answering and may not print your receipt. After you "
                    "pay, your exit pass will be shown on the screen.")
        return ("打印机暂时无法打印小票。付款后出口凭证会显示在屏幕上，小票稍后可找店员补打。",
                "The printer cannot print a receipt right now. After you pay, your exit pass "
                "will be shown on the screen; staff can reprint the receipt later.")


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
    """What the printer needs from a connection: bytes out, one status byte back."""

    def open(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    def ask(self, query: bytes, timeout: float) -> bytes: ...

    def close(self) -> None: ...


class SerialLink:
    """A serial receipt printer through python-escpos's Serial connector."""

    def __init__(self, port: str, baudrate: int = 9600, *, rtscts: bool = False,
                 xonxoff: bool = False, dsrdtr: bool = False,
                 write_timeout: float = 10.0) -> None:
        self.port = port
        self._printer = EscposSerial(devfile=port, baudrate=baudrate, timeout=0.2,
                                     xonxoff=xonxoff, dsrdtr=dsrdtr)
        self.rtscts = rtscts
        self.write_timeout = write_timeout

    def open(self) -> None:
        try:
            self._printer.open(raise_not_found=True)
        except DeviceNotFoundError as exc:
            raise serial.SerialException(str(exc).strip()) from None
        device = self._printer.device
        assert device is not None
        device.rtscts = self.rtscts
        # A printer that stops taking data (flow control held, cable half out)
        # must not hang the print thread forever.
        device.write_timeout = self.write_timeout

    def write(self, data: bytes) -> None:
        self._printer._raw(data)
        device = self._printer.device
        if device is not None:
            device.flush()

    def ask(self, query: bytes, timeout: float) -> bytes:
        device = self._printer.device
        if device is None:
            raise serial.SerialException("printer port is not open")
        device.reset_input_buffer()  # stale bytes are not the answer to this question
        device.timeout = timeout
        device.write(query)
        device.flush()
        return bytes(device.read(1))

    def close(self) -> None:
        device = self._printer.device
        if device is not None:
            try:
                device.close()
            except PORT_ERRORS:
                pass
        self._printer.device = None


def read_status(link: Link, timeout: float) -> PrinterStatus:
    """Ask DLE EOT 1 (and, if it answered, 2 and 4); raises SerialException if the port is gone."""
    printer = link.ask(DLE_EOT + b"\x01", timeout)
    if not _valid(printer):
        return parse_status(printer, None, None)
    cause = link.ask(DLE_EOT + b"\x02", timeout)
    paper = link.ask(DLE_EOT + b"\x04", timeout)
    return parse_status(printer, cause or None, paper or None)


@dataclass(frozen=True)
class PrinterHealth:
    """The printer as staff mode shows it."""

    port: str
    status: PrinterStatus
    pending_jobs: int
    reopen_count: int = 0
    last_error: str = ""
    checked_at: float = 0.0  # time.monotonic() of the last status reply (or failure)


@dataclass(frozen=True)
class JobOutcome:
    """Told to the UI: a receipt printed, or did not (so the exit pass goes on screen)."""

    job_id: int
    order_id: str
    printed: bool
    status: str  # printed, unconfirmed, pending
    detail: str = ""


@dataclass
class _Backoff:
    first: float
    cap: float
    delay: float = field(init=False)
    next_at: float = 0.0

    def __post_init__(self) -> None:
        self.delay = self.first

    def failed(self, now: float) -> None:
        self.next_at = now + self.delay
        self.delay = min(self.delay * 2, self.cap)

    def ok(self) -> None:
        self.delay, self.next_at = self.first, 0.0


class ReceiptPrinter:
    """The print queue's worker: prints pending receipts when the printer can.

    ``link_factory`` makes a fresh, unopened ``Link`` (one per reopen).
    ``jobs_path`` is the kiosk database; the worker opens its own connection.
    Listeners on ``on_outcome`` are called on the worker thread.
    """

    def __init__(self, link_factory: Callable[[], Link], jobs_path: Path,
                 style: ReceiptStyle, clock: Clock, *, port_name: str = "",
                 status_timeout: float = 0.3, poll_s: float = 1.0,
                 backoff_s: float = 0.5, backoff_max_s: float = 10.0) -> None:
        self._factory = link_factory
        self.jobs_path = jobs_path
        self.style, self.clock = style, clock
        self.port_name = port_name
        self.status_timeout, self.poll_s = status_timeout, poll_s
        self._backoff = _Backoff(backoff_s, backoff_max_s)
        self._lock = threading.RLock()  # one conversation with the printer at a time
        self._link: Link | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[JobOutcome], None]] = []
        self._health = PrinterHealth(port_name, PrinterStatus(PrinterState.UNKNOWN, "not checked"),
                                     0)

    # -- public ------------------------------------------------------------------------------
    def on_outcome(self, listener: Callable[[JobOutcome], None]) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="receipt-printer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._drop_link()

    def wake(self) -> None:
        """A job was queued, or staff asked for a reprint: look at the queue now."""
        self._wake.set()

    def health(self) -> PrinterHealth:
        return self._health

    def status(self) -> PrinterStatus:
        """Ask the printer now (before showing a payment QR). Blocks at most ~3 timeouts."""
        with self._lock:
            return self._check()

    # -- internals ---------------------------------------------------------------------------
    def _drop_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _connected(self) -> Link:
        if self._link is None:
            now = time.monotonic()
            if now < self._backoff.next_at:
                raise serial.SerialException(self._health.last_error or "waiting to reopen")
            link = self._factory()
            try:
                link.open()
            except PORT_ERRORS as exc:
                self._backoff.failed(now)
                self._health = replace(self._health, reopen_count=self._health.reopen_count + 1)
                raise serial.SerialException(str(exc)) from None
            self._backoff.ok()
            self._link = link
        return self._link

    def _set_status(self, status: PrinterStatus, error: str = "") -> PrinterStatus:
        self._health = replace(self._health, status=status, last_error=error,
                               checked_at=time.monotonic())
        return status

    def _check(self) -> PrinterStatus:
        try:
            return self._set_status(read_status(self._connected(), self.status_timeout))
        except PORT_ERRORS as exc:
            self._drop_link()
            return self._set_status(PrinterStatus(PrinterState.DISCONNECTED, str(exc)), str(exc))

    def _run(self) -> None:
        jobs = PrintJobs.open(self.jobs_path)
        try:
            while not self._stop.is_set():
                try:
                    self._work(jobs)
                except Exception:  # the print thread must outlive any one bad job
                    log.exception("receipt printer worker")
                self._wake.wait(self.poll_s)
                self._wake.clear()
        finally:
            jobs.db.close()

    def _work(self, jobs: PrintJobs) -> None:
        pending = jobs.pending()
        self._health = replace(self._health, pending_jobs=len(pending))
        with self._lock:
            status = self._check()  # also keeps health fresh when the queue is empty
        for job in pending:
            if self._stop.is_set() or not status.can_print:
                return
            status = self._print(jobs, job)
            self._health = replace(self._health, pending_jobs=jobs.count_pending())

    def _now(self) -> datetime:
        return self.clock.now()

    def _tell(self, outcome: JobOutcome) -> None:
        for listener in list(self._listeners):
            try:
                listener(outcome)
            except Exception:
                log.exception("print outcome listener")

    def _print(self, jobs: PrintJobs, job: PrintJob) -> PrinterStatus:
        data = render_receipt(job.sale, job.exit_pass, self.style, copy=job.copy)
        with self._lock:
            jobs.started(job.job_id, self._now())
            try:
                self._connected().write(data)
            except PORT_ERRORS as exc:
                self._drop_link()
                jobs.failed(job.job_id, f"port lost while printing: {exc}", self._now())
                self._tell(JobOutcome(job.job_id, job.order_id, False, "pending", str(exc)))
                return self._set_status(PrinterStatus(PrinterState.DISCONNECTED, str(exc)),
                                        str(exc))
            after = self._check()
        if after.can_print:
            jobs.finish(job.job_id, "printed", self._now())
            self._tell(JobOutcome(job.job_id, job.order_id, True, "printed"))
        elif after.state is PrinterState.UNKNOWN:
            # Sent, but the printer will not say whether it printed. Do not print it
            # again on a guess; staff can reprint, and the exit pass goes on screen.
            jobs.finish(job.job_id, "unconfirmed", self._now(), after.detail)
            self._tell(JobOutcome(job.job_id, job.order_id, False, "unconfirmed", after.detail))
        else:
            jobs.failed(job.job_id, f"printer {after.state.value} while printing", self._now())
            self._tell(JobOutcome(job.job_id, job.order_id, False, "pending", after.state.value))
        return after
