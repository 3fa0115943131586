"""The upload policy: drain the event outbox to the membership backend, never losing an event.

One thread (``start``/``stop``/``wake``) with its own SQLite connection sends
batches of at most ``max_events`` events or ``max_bytes`` bytes through an
``EventBackend`` port (``devices.membership.MembershipBackend`` speaks HTTP; tests
may use a fake), and acts on what the backend answered:

- answered: accepted and duplicates are delivered; rejected events become dead
  letters for staff (never dropped silently, staff alerted); events the reply
  does not mention go back to pending. A reply that acknowledges none of the
  batch is no progress: the uploader waits rather than spin;
- transient (unreachable, timed out, 429/5xx, not the contract): the batch goes
  back to pending and the uploader waits, with capped exponential backoff and
  full jitter, at least what ``Retry-After`` asked (capped at an hour);
- batch refused (400/413/422): sent again in halves until the one event the
  backend cannot take is alone, and that one is set aside;
- unauthorized (401/403): uploading pauses and staff are alerted; ``resume()``
  (staff fixed the token) or the end of the pause ends it.

At start-up, rows a crash caught mid-send are sent again (the backend dedupes by
``event_id``); delivered events older than ``keep_days`` are pruned every
``prune_every_s``. Uploading never blocks scanning or the UI: they only write to
the outbox, in their own transactions.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from app.domain.clock import Clock
from app.domain.upload import BackendReply, ReplyKind
from app.services.backoff import MAX_RETRY_AFTER_S, Backoff
from app.storage.audit import AuditLog
from app.storage.outbox import Batch, Outbox

log = logging.getLogger(__name__)


class EventBackend(Protocol):
    """What the uploader needs from the membership backend: one call, one batch."""

    def post_events(self, batch_id: str, events: Sequence[str],
                    audit_head: tuple[int, str] | None) -> BackendReply:
        """Send ``events`` (each an event's JSON text, in seq order) as one batch;
        ``batch_id`` is its idempotency key, ``audit_head`` the audit log's newest
        (seq, hash) to carry off the kiosk. Never raises for what the backend or the
        network did: that is the reply."""


@dataclass(frozen=True)
class UploaderHealth:
    state: str  # "idle", "sending", "backing_off", "paused", "stopped" ("dead": thread died)
    last_upload: str | None = None
    last_error: str = ""
    next_try_in_s: float = 0.0


class EventUploader:
    """The outbox's uploader. ``outbox_path`` is the kiosk database (the thread opens its
    own connection). Waits are in seconds: ``backoff_base`` doubling per failure up to
    ``backoff_cap``, ``idle_s`` between looks at an empty outbox, ``pause_s`` after a
    refused token. ``on_alert`` is told every staff alert (also kept as a
    ``staff_alerts`` row)."""

    def __init__(self, backend: EventBackend, outbox_path: Path, clock: Clock, *,
                 max_events: int = 500, max_bytes: int = 256 * 1024,
                 backoff_base: float = 1.0, backoff_cap: float = 300.0, idle_s: float = 2.0,
                 pause_s: float = 600.0, rng: random.Random | None = None, keep_days: int = 7,
                 prune_every_s: float = 3600.0,
                 on_alert: Callable[[str], None] | None = None) -> None:
        self.backend = backend
        self.outbox_path = outbox_path
        self.clock = clock
        self.max_events, self.max_bytes = max_events, max_bytes
        self.idle_s, self.pause_s = idle_s, pause_s
        self._backoff = Backoff(backoff_base, backoff_cap, rng)
        self.on_alert = on_alert
        self.keep_days, self.prune_every_s = keep_days, prune_every_s
        self._pruned_at = 0.0
        self._batch_events = max_events  # halved while the backend refuses a batch's size
        self._outbox: Outbox | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._health = UploaderHealth("stopped")
        self.sent_batches = 0

    # -- control -----------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="event-uploader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._health = replace(self._health, state="stopped")

    def wake(self) -> None:
        """Events were written, or staff asked to flush or resume: try now."""
        self._backoff.reset()
        self._wake.set()

    resume = wake

    def health(self) -> UploaderHealth:
        if self._thread is not None and not self._thread.is_alive() and \
                self._health.state != "stopped":
            return replace(self._health, state="dead")  # staff must see it, not "backing off"
        return self._health

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        outbox = Outbox.open(self.outbox_path)
        try:
            requeued = outbox.requeue_in_flight()
            if requeued:
                log.info("uploader: %d events caught mid-send will be sent again", requeued)
            while not self._stop.is_set():
                try:
                    if time.monotonic() - self._pruned_at >= self.prune_every_s:
                        self._pruned_at = time.monotonic()
                        removed = outbox.prune(self.keep_days, self.clock.now())
                        if removed:
                            log.info("uploader: removed %d delivered events older than %d "
                                     "days", removed, self.keep_days)
                    wait = self.drain_once(outbox)
                except Exception as exc:  # a locked database, a full disk: wait, never die
                    log.exception("uploader")
                    wait = self._back_off(f"local error: {exc}")
                if wait > 0:
                    self._wake.wait(wait)
                    self._wake.clear()
        finally:
            outbox.db.close()

    def drain_once(self, outbox: Outbox) -> float:
        """Send one batch (if any). Returns how long to wait before the next try (seconds)."""
        self._outbox = outbox
        batch = outbox.next_batch(self._batch_events, self.max_bytes)
        if batch is None:
            self._health = replace(self._health, state="idle")
            return self.idle_s
        self._health = replace(self._health, state="sending")
        try:
            wait = self._send(outbox, batch)
        except Exception as exc:  # never lose a batch to a bug in handling the reply
            log.exception("uploader")
            outbox.release(batch)
            wait = self._back_off(f"unexpected: {exc}")
        return wait

    def _back_off(self, error: str, at_least: float | None = None) -> float:
        delay = self._backoff.next_delay(at_least)  # capped, full jitter (app.services.backoff)
        self._health = replace(self._health, state="backing_off", last_error=error,
                               next_try_in_s=round(delay, 2))
        return delay

    def _alert(self, message: str) -> None:
        """Tell staff: a staff_alerts row (staff mode, `kiosk outbox status`) and on_alert."""
        if self._outbox is not None:
            try:
                self._outbox.alert("uploader", message, self.clock.now())
            except Exception:  # pragma: no cover - the alert must not break uploading
                log.exception("writing a staff alert")
        if self.on_alert:
            self.on_alert(message)

    @staticmethod
    def _audit_head(outbox: Outbox) -> tuple[int, str] | None:
        # The audit log's newest row goes off the kiosk with every batch: a log cut short
        # on the kiosk no longer reaches the head the backend was told about.
        seq, digest = AuditLog(outbox.db).head()
        return (seq, digest) if seq else None

    def _send(self, outbox: Outbox, batch: Batch) -> float:
        reply = self.backend.post_events(batch.batch_id, batch.wire, self._audit_head(outbox))
        if reply.kind is ReplyKind.TRANSIENT:
            outbox.release(batch)
            hint = reply.retry_after_s
            return self._back_off(reply.error or f"backend answered {reply.status}",
                                  at_least=hint)
        if reply.kind is ReplyKind.ANSWERED:
            delivered, rejected = list(reply.delivered), dict(reply.rejected)
            if not set(delivered) & set(batch.event_ids) and not rejected:
                # A 200 that acknowledges none of the batch is no progress: wait, or
                # the same batch would be sent again at once, forever.
                outbox.release(batch)
                return self._back_off("backend acknowledged none of the batch")
            outbox.settle(batch, delivered, rejected, self.clock.now())
            self._backoff.reset()
            self._batch_events = self.max_events
            self.sent_batches += 1
            self._health = replace(self._health, state="sending", last_error="",
                                   last_upload=self.clock.now().isoformat(), next_try_in_s=0)
            if rejected:
                self._alert(f"{len(rejected)} event(s) rejected by the membership backend: "
                            "see `kiosk outbox dead list`")
            return 0.0
        outbox.release(batch)
        status = reply.status
        if reply.kind is ReplyKind.BATCH_REFUSED:
            # The backend refuses the batch itself. Halve it until the one event it
            # cannot take is alone, and set that one aside, so it does not hold up
            # every event behind it.
            if len(batch.event_ids) > 1:
                self._batch_events = max(1, len(batch.event_ids) // 2)
                return self._back_off(f"backend refused a batch ({status}): sending smaller")
            outbox.dead(batch.event_ids[0], f"refused by the backend ({status})")
            self._alert(f"an event was refused by the membership backend ({status}): see "
                        "`kiosk outbox dead list`")
            return 0.0
        message = (f"membership backend refused the kiosk's token ({status}): uploading "
                   "paused; fix membership.token, then resume")
        self._health = replace(self._health, state="paused", last_error=message,
                               next_try_in_s=self.pause_s)
        self._alert(message)
        return self.pause_s


__all__ = ["MAX_RETRY_AFTER_S", "EventBackend", "EventUploader", "UploaderHealth"]
