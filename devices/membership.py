"""The membership backend client: the uploader that drains the event outbox.

One thread, one ``requests.Session``, its own SQLite connection. It sends
batches of at most 500 events or 256 KiB (docs/membership-api.yaml), with
connect and read timeouts always set, and:

- ``200``: accepted and duplicates are delivered; rejected become dead
  letters for staff (never dropped silently); events the reply does not
  mention go back to pending;
- ``429``/``503`` (``Retry-After`` honoured, seconds or an HTTP date), other
  ``5xx``, timeouts, refused connections: the batch goes back to pending and
  the uploader waits, with capped exponential backoff and full jitter;
- ``401``/``403``: uploading pauses and staff are alerted (``on_alert``);
  ``resume()`` (staff fixed the token) or a long pause ends it.

At start-up, rows a crash caught mid-send are sent again; the backend dedupes
by ``event_id``. Uploading never blocks scanning or the UI: they only write to
the outbox, in their own transactions.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from app.domain.clock import Clock
from app.storage.outbox import Batch, Outbox

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class UploaderHealth:
    state: str  # "idle", "sending", "backing_off", "paused", "stopped"
    last_upload: str | None = None
    last_error: str = ""
    next_try_in_s: float = 0.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class Uploader:
    def __init__(self, outbox_path: Path, base_url: str, token: str, kiosk_id: str,
                 store_id: str, clock: Clock, *, max_events: int = 500,
                 max_bytes: int = 256 * 1024, connect_timeout: float = 3.0,
                 read_timeout: float = 15.0, backoff_base: float = 1.0,
                 backoff_cap: float = 300.0, idle_s: float = 2.0, pause_s: float = 600.0,
                 rng: random.Random | None = None, keep_days: int = 7,
                 prune_every_s: float = 3600.0,
                 on_alert: Callable[[str], None] | None = None) -> None:
        self.outbox_path = outbox_path
        self.base_url = base_url.rstrip("/")
        self.token, self.kiosk_id, self.store_id = token, kiosk_id, store_id
        self.clock = clock
        self.max_events, self.max_bytes = max_events, max_bytes
        self.timeout = (connect_timeout, read_timeout)
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.idle_s, self.pause_s = idle_s, pause_s
        self.rng = rng or random.Random()
        self.on_alert = on_alert
        self.keep_days, self.prune_every_s = keep_days, prune_every_s
        self._pruned_at = 0.0
        self.http = requests.Session()
        self._failures = 0
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
        self._failures = 0
        self._wake.set()

    resume = wake

    def health(self) -> UploaderHealth:
        if self._thread is not None and not self._thread.is_alive() and \
                self._health.state != "stopped":
            return replace(self._health, state="dead")  # staff must see it, not "backing off"
        return self._health

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
        """Send one batch (if any). Returns how long to wait before the next try."""
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
        self._failures += 1
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(self._failures, 30))
        delay = self.rng.uniform(0, ceiling)  # full jitter: kiosks do not retry in step
        if at_least is not None:
            delay = max(delay, at_least)
        self._health = replace(self._health, state="backing_off", last_error=error,
                               next_try_in_s=round(delay, 2))
        return delay

    def body(self, batch: Batch) -> bytes:
        """The request body: the envelope around the events' stored JSON, as it is."""
        envelope: dict[str, object] = {"kiosk_id": self.kiosk_id, "store_id": self.store_id,
                                       "sent_at": datetime.now(UTC).isoformat()}
        if self._outbox is not None:
            # The audit log's newest row goes off the kiosk with every batch: a log cut
            # short on the kiosk no longer reaches the head the backend was told about.
            row = self._outbox.db.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            if row is not None:
                envelope["audit_head"] = {"seq": row[0], "hash": row[1]}
        head = json.dumps(envelope, ensure_ascii=False)
        return (head[:-1] + ',"events":[' + ",".join(batch.wire) + "]}").encode()

    def _alert(self, message: str) -> None:
        """Tell staff: a staff_alerts row (staff mode, `kiosk outbox status`) and on_alert."""
        if self._outbox is not None:
            try:
                self._outbox.alert("uploader", message, self.clock.now())
            except Exception:  # pragma: no cover - the alert must not break uploading
                log.exception("writing a staff alert")
        if self.on_alert:
            self.on_alert(message)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def envelope(self, batch: Batch) -> dict[str, Any]:
        """The request body as an object (for checking it against the contract)."""
        return dict(json.loads(self.body(batch)))

    def _send(self, outbox: Outbox, batch: Batch) -> float:
        headers = {"Authorization": f"Bearer {self.token}",
                   "Idempotency-Key": batch.batch_id or str(uuid.uuid4()),
                   "Content-Type": "application/json"}
        try:
            response = self.http.post(f"{self.base_url}/v1/events", data=self.body(batch),
                                      headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            outbox.release(batch)
            return self._back_off(f"backend unreachable: {exc.__class__.__name__}")
        status = response.status_code
        if status == 200:
            try:
                data = response.json()
                delivered = [str(e) for e in data.get("accepted", [])] + \
                    [str(e) for e in data.get("duplicates", [])]
                rejected = {str(r["event_id"]): str(r.get("reason", "rejected"))
                            for r in data.get("rejected", [])}
            except (ValueError, KeyError, TypeError, AttributeError):
                outbox.release(batch)
                return self._back_off("backend reply is not the contract's JSON")
            if not set(delivered) & set(batch.event_ids) and not rejected:
                # A 200 that acknowledges none of the batch is no progress: wait, or
                # the same batch would be sent again at once, forever.
                outbox.release(batch)
                return self._back_off("backend acknowledged none of the batch")
            outbox.settle(batch, delivered, rejected, self.clock.now())
            self._failures = 0
            self._batch_events = self.max_events
            self.sent_batches += 1
            self._health = replace(self._health, state="sending", last_error="",
                                   last_upload=self.clock.now().isoformat(), next_try_in_s=0)
            if rejected:
                self._alert(f"{len(rejected)} event(s) rejected by the membership backend: "
                            "see `kiosk outbox dead list`")
            return 0.0
        outbox.release(batch)
        if status in (400, 413, 422):
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
        if status in (401, 403):
            message = (f"membership backend refused the kiosk's token ({status}): uploading "
                       "paused; fix membership.token, then resume")
            self._health = replace(self._health, state="paused", last_error=message,
                                   next_try_in_s=self.pause_s)
            self._alert(message)
            return self.pause_s
        hint = retry_after_seconds(response.headers.get("Retry-After"))
        if hint is not None:
            hint = min(hint, MAX_RETRY_AFTER_S)  # a bad header must not stop uploads for days
        return self._back_off(f"backend answered {status}",
                              at_least=hint if status in (429, 503) else None)


class MemberClient:
    """Member look-ups on the membership backend (``GET /v1/members?phone=``)."""

    def __init__(self, base_url: str, token: str, timeout: tuple[float, float] = (2.0, 3.0)
                 ) -> None:
        self.base_url, self.token, self.timeout = base_url.rstrip("/"), token, timeout
        self.http = requests.Session()

    def member_for_phone(self, phone: str) -> str | None:
        """The member id, None if there is no such member; ``BackendUnavailable`` offline."""
        from app.services.members import BackendUnavailable

        try:
            response = self.http.get(f"{self.base_url}/v1/members", params={"phone": phone},
                                     headers={"Authorization": f"Bearer {self.token}"},
                                     timeout=self.timeout)
        except requests.RequestException as exc:
            raise BackendUnavailable(str(exc)) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise BackendUnavailable(f"membership backend answered {response.status_code}")
        try:
            return str(response.json()["member_id"])
        except (ValueError, KeyError, TypeError):
            raise BackendUnavailable("membership backend reply is not JSON") from None
