"""The print queue: receipts and staff reports of the ``print_jobs`` table, printed when the
printer can take them.

The queue runs on its own thread (``start``/``stop``/``wake``) with its own
database connection (a SQLite connection belongs to the thread that made it),
and talks to the printer only through ``ReceiptPrinterPort`` (implemented by
``devices.printer.EscPosPrinter``; tests may use a fake). Its rules:

- a job is printed only when the printer says it can print (DLE EOT); while it
  cannot, the screen is told once per job ("pending"), so it shows the exit pass;
- bytes going out mark the job COPY for any later attempt, since part of it may
  already be in the shopper's hand;
- after the bytes, the printer is asked to confirm it printed them all (when
  ``confirm_printed``), then its status: printed; stopped part way (stays
  pending, printed again as a COPY when it recovers); or sent but never
  confirmed ("unconfirmed": not printed again on a guess, staff can reprint);
- a port that cannot be opened is tried again with capped exponential backoff.

``health()`` is what staff mode shows; listeners on ``on_outcome`` are called on
the queue's thread with every job's outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from app.domain.clock import Clock
from app.domain.printer import PrinterGone, PrinterState, PrinterStatus
from app.domain.sale import PaidSale
from app.storage.print_jobs import PrintJob, PrintJobs

log = logging.getLogger(__name__)


class ReceiptPrinterPort(Protocol):
    """What the print queue needs from a receipt printer. Calls come one at a time (the
    queue holds a lock); every method that talks to the printer raises ``PrinterGone``
    when the port cannot be opened or has vanished."""

    def open(self) -> None:
        """(Re)open the connection to the printer; ``PrinterGone`` if it cannot."""

    def close(self) -> None:
        """Let go of the connection (never raises)."""

    def status(self) -> PrinterStatus:
        """The printer's real-time status (DLE EOT), asked now on the open connection;
        ``UNKNOWN`` when it does not answer."""

    def render_receipt(self, sale: PaidSale, exit_pass: str, *, copy: bool) -> bytes:
        """The bytes that print this sale's receipt (marked COPY when ``copy``)."""

    def render_document(self, text: str) -> bytes:
        """The bytes that print a plain text document (a staff report)."""

    def write(self, data: bytes) -> None:
        """Send rendered bytes to the printer."""

    def wait_printed(self, job_id: int, size: int) -> bool | None:
        """After ``size`` bytes of job ``job_id`` were written: True once the printer says
        it printed them all, False if it stopped first (paper out, cover open), None if it
        never says."""


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


class PrintQueue:
    """The print queue's worker: prints pending jobs when the printer can.

    ``printer`` is the port (unopened; the queue opens it, and reopens it after
    it vanished, no sooner than the backoff allows: ``backoff_s`` doubling up to
    ``backoff_max_s``). ``jobs_path`` is the kiosk database; the worker opens its
    own connection. ``poll_s``: how often the queue is looked at without a
    ``wake``. ``confirm_printed``: after a receipt, ask the printer to confirm it
    printed it all; printers that cannot (no GS ( H) need it false, and then
    the status right after sending is all the kiosk can know. ``port_name`` is
    shown in ``health()``.
    """

    def __init__(self, printer: ReceiptPrinterPort, jobs_path: Path, clock: Clock, *,
                 port_name: str = "", poll_s: float = 1.0, backoff_s: float = 0.5,
                 backoff_max_s: float = 10.0, confirm_printed: bool = True) -> None:
        self.printer = printer
        self.jobs_path = jobs_path
        self.clock = clock
        self.port_name = port_name
        self.poll_s = poll_s
        self.confirm_printed = confirm_printed
        self._backoff = _Backoff(backoff_s, backoff_max_s)
        self._lock = threading.RLock()  # one conversation with the printer at a time
        self._health_lock = threading.Lock()
        self._open = False
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

    def status(self, wait_s: float = 1.0) -> PrinterStatus:
        """Ask the printer now (before showing a payment QR). Bounded as a whole: if the
        printer is busy in another conversation (a receipt waiting to be confirmed) for
        more than ``wait_s`` seconds, the answer is ``UNKNOWN`` (the shopper is told the
        pass will be on screen) rather than a frozen Pay button (issue 16, fault 8);
        otherwise at most ~3 status timeouts."""
        if not self._lock.acquire(timeout=wait_s):
            return PrinterStatus(PrinterState.UNKNOWN,
                                 "busy in another conversation: no answer in time")
        try:
            return self._check()
        finally:
            self._lock.release()

    # -- internals ---------------------------------------------------------------------------
    def _update(self, **changes: object) -> None:
        with self._health_lock:
            self._health = replace(self._health, **changes)  # type: ignore[arg-type]

    def _drop_link(self) -> None:
        if self._open:
            self.printer.close()
            self._open = False

    def _connected(self) -> None:
        if not self._open:
            now = time.monotonic()
            if now < self._backoff.next_at:
                raise PrinterGone(self.health().last_error or "waiting to reopen")
            try:
                self.printer.open()
            except PrinterGone as exc:
                self._backoff.failed(now)
                with self._health_lock:
                    self._health = replace(self._health,
                                           reopen_count=self._health.reopen_count + 1)
                raise PrinterGone(str(exc)) from None
            self._backoff.ok()
            self._open = True

    def _set_status(self, status: PrinterStatus, error: str = "") -> PrinterStatus:
        self._update(status=status, last_error=error, checked_at=time.monotonic())
        return status

    def _check(self) -> PrinterStatus:
        try:
            self._connected()
            return self._set_status(self.printer.status())
        except PrinterGone as exc:
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

    def _print(self, jobs: PrintJobs, job: PrintJob) -> PrinterStatus:
        """Print one job now and settle it (printed, unconfirmed, or still pending);
        returns the printer's status after it."""
        # Any attempt after bytes went out once is a COPY: part of the first may be
        # in the shopper's hand, and a crash may have hidden that it printed.
        if job.sale is None:
            data = self.printer.render_document(job.document)
        else:
            data = self.printer.render_receipt(job.sale, job.exit_pass,
                                               copy=job.copy or job.attempts > 0)
        with self._lock:
            jobs.started(job.job_id, self._now())
            try:
                self._connected()
                self.printer.write(data)
                printed = self.printer.wait_printed(job.job_id, len(data)) \
                    if self.confirm_printed else None
            except PrinterGone as exc:
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


__all__ = ["JobOutcome", "PrintQueue", "PrinterHealth", "ReceiptPrinterPort"]
