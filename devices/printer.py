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

import fcntl
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
from devices.receipt import ReceiptStyle, render_document, render_receipt

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
    unconfirmed_jobs: int = 0  # sent, but never confirmed printed: staff should check
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
    Listeners on ``on_outcome`` are called on the worker thread: every job
    gets an outcome, including "pending" when the printer could not take it,
    so the screen can show the exit pass.

    ``confirm_printed``: after a receipt, ask the printer (GS ( H) to answer
    once it has printed everything, then ask its status. Printers without
    GS ( H never answer; for them set it false, and the status right after
    sending is all the kiosk can know.
    """

    def __init__(self, link_factory: Callable[[], Link], jobs_path: Path,
                 style: ReceiptStyle, clock: Clock, *, port_name: str = "",
                 status_timeout: float = 0.3, poll_s: float = 1.0,
                 backoff_s: float = 0.5, backoff_max_s: float = 10.0,
                 confirm_printed: bool = True, print_timeout: float = 20.0) -> None:
        self._factory = link_factory
        self.jobs_path = jobs_path
        self.style, self.clock = style, clock
        self.port_name = port_name
        self.status_timeout, self.poll_s = status_timeout, poll_s
        self.confirm_printed, self.print_timeout = confirm_printed, print_timeout
        self._backoff = _Backoff(backoff_s, backoff_max_s)
        self._lock = threading.RLock()  # one conversation with the printer at a time
        self._health_lock = threading.Lock()
        self._link: Link | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[JobOutcome], None]] = []
        self._told_pending: set[int] = set()
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
        with self._health_lock:
            return self._health

    def status(self) -> PrinterStatus:
        """Ask the printer now (before showing a payment QR). Blocks at most ~3 timeouts."""
        with self._lock:
            return self._check()

    # -- internals ---------------------------------------------------------------------------
    def _update(self, **changes: object) -> None:
        with self._health_lock:
            self._health = replace(self._health, **changes)  # type: ignore[arg-type]

    def _drop_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _connected(self) -> Link:
        if self._link is None:
            now = time.monotonic()
            if now < self._backoff.next_at:
                raise serial.SerialException(self.health().last_error or "waiting to reopen")
            link = self._factory()
            try:
                link.open()
            except PORT_ERRORS as exc:
                self._backoff.failed(now)
                with self._health_lock:
                    self._health = replace(self._health,
                                           reopen_count=self._health.reopen_count + 1)
                raise serial.SerialException(str(exc)) from None
            self._backoff.ok()
            self._link = link
        return self._link

    def _set_status(self, status: PrinterStatus, error: str = "") -> PrinterStatus:
        self._update(status=status, last_error=error, checked_at=time.monotonic())
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
                except Exception:  # the print thread must outlive anything one poll meets
                    log.exception("receipt printer worker")
                self._wake.wait(self.poll_s)
                self._wake.clear()
        finally:
            jobs.db.close()

    def _work(self, jobs: PrintJobs) -> None:
        pending = jobs.pending()
        self._update(pending_jobs=len(pending), unconfirmed_jobs=jobs.count_unconfirmed())
        with self._lock:
            status = self._check()  # also keeps health fresh when the queue is empty
        for job in pending:
            if self._stop.is_set():
                return
            if not status.can_print:
                if job.job_id not in self._told_pending:  # tell the screen once per job
                    self._told_pending.add(job.job_id)
                    self._tell(JobOutcome(job.job_id, job.order_id, False, "pending",
                                          status.state.value))
                continue
            try:
                status = self._print(jobs, job)
            except Exception as exc:  # one bad job must not hold up the receipts behind it
                log.exception("printing job %s", job.job_id)
                jobs.failed(job.job_id, f"could not print: {exc}", self._now())
        self._update(pending_jobs=jobs.count_pending(), unconfirmed_jobs=jobs.count_unconfirmed())

    def _now(self) -> datetime:
        return self.clock.now()

    def _tell(self, outcome: JobOutcome) -> None:
        for listener in list(self._listeners):
            try:
                listener(outcome)
            except Exception:
                log.exception("print outcome listener")

    def _printed(self, link: Link, job_id: int, size: int) -> bool | None:
        """After the bytes: True once the printer says it printed them all, False if it
        stopped (paper out, cover open) first, None if it never says (no GS ( H)."""
        if not self.confirm_printed:
            return None
        process_id = f"{job_id % 10000:04d}".encode("ascii")
        expected = completion_reply(process_id)
        baud = max(getattr(link, "baudrate", 9600), 1200)
        deadline = time.monotonic() + self.print_timeout + 2 * size * 10 / baud
        link.write(completion_query(process_id))
        got = b""
        while time.monotonic() < deadline:
            got += link.read(len(expected), 0.25)
            if expected in got:
                return True
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

    def _print(self, jobs: PrintJobs, job: PrintJob) -> PrinterStatus:
        # Any attempt after bytes went out once is a COPY: part of the first may be
        # in the shopper's hand, and a crash may have hidden that it printed.
        if job.sale is None:
            data = render_document(job.document, self.style)
        else:
            data = render_receipt(job.sale, job.exit_pass, self.style,
                                  copy=job.copy or job.attempts > 0)
        with self._lock:
            jobs.started(job.job_id, self._now())
            try:
                link = self._connected()
                link.write(data)
                printed = self._printed(link, job.job_id, len(data))
            except PORT_ERRORS as exc:
                self._drop_link()
                jobs.failed(job.job_id, f"port lost while printing: {exc}", self._now())
                self._tell(JobOutcome(job.job_id, job.order_id, False, "pending", str(exc)))
                return self._set_status(PrinterStatus(PrinterState.DISCONNECTED, str(exc)),
                                        str(exc))
            after = self._check()
        self._told_pending.discard(job.job_id)
        if printed is False and after.can_print:
            after = PrinterStatus(PrinterState.OFFLINE, "stopped part way; now ready again")
        if after.can_print and (printed or not self.confirm_printed):
            jobs.finish(job.job_id, "printed", self._now())
            self._tell(JobOutcome(job.job_id, job.order_id, True, "printed"))
        elif after.can_print or after.state is PrinterState.UNKNOWN:
            # Sent, but the printer will not say it printed it all. Do not print it
            # again on a guess: the exit pass goes on screen and staff can reprint.
            detail = after.detail if not after.can_print else "no print-completion reply"
            jobs.finish(job.job_id, "unconfirmed", self._now(), detail)
            self._tell(JobOutcome(job.job_id, job.order_id, False, "unconfirmed", detail))
        else:
            jobs.failed(job.job_id, f"printer {after.state.value} while printing", self._now())
            self._tell(JobOutcome(job.job_id, job.order_id, False, "pending", after.state.value))
        return after
