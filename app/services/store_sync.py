"""The store-data sync: one thread that follows head office's versions and reports back.

Every ``poll_s`` it asks head office, for each kind (catalogue, promotions, lane keys),
what is newer than the version the lane holds (``If-None-Match``: a steady lane gets
``304 Not Modified``), lets the lane's store data plan what to download (a delta when
the lane holds its base, the full snapshot otherwise: ``StoreData.plan``), downloads
each payload and stages it (``StoreData.stage`` checks the signature, the size and the
SHA-256 against the signed manifest). It never applies anything: the lane does, between
shoppers, from its own thread (``app.lane.timers``, docs/store-sync.md "The lane").
Every ``heartbeat_s`` it posts the lane's heartbeat.

What head office answered decides the wait (docs/store-sync.md; the uploader's rules,
``app.services.uploads``):

- answered (304, 200, 404 nothing published): the next look in ``poll_s``;
- transient (unreachable, timed out, 429/5xx, not the contract, a download cut short):
  nothing is staged, and the thread waits with capped exponential backoff and full
  jitter, at least what ``Retry-After`` asked (``app.services.backoff``);
- refused (a bad signature, another key, a hash or size mismatch, a delta whose base the
  lane lacks: ``StoreDataRefused``): nothing changes, the reason is in device health and
  the log, and the same version is tried again at the next poll, never in a hot loop;
- unauthorized (401/403): syncing pauses for ``pause_s`` and staff are alerted.

Every look is reported to ``StoreData.contacted`` (ok or the error), which is how device
health tells the age of the lane's data and goes stale after ``sync.stale_after_h``.
Intervals are measured on the monotonic clock; the wall clock only dates what is sent.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from app.domain.clock import Clock
from app.domain.store_data import (
    KINDS,
    Manifest,
    StoreDataError,
    instant_text,
    manifest_from_bytes,
)
from app.domain.sync_reply import Answer, AnswerKind, DownloadFailed
from app.services.backoff import Backoff

log = logging.getLogger(__name__)


class StoreDataPort(Protocol):
    """What the sync needs of head office (``devices.hq_sync.StoreDataClient`` speaks
    HTTP; tests may use a fake). None of these raises for what the network did, except
    ``download``'s ``DownloadFailed``."""

    def listing(self, kind: str, have: int | None) -> Answer: ...

    def download(self, store: str, kind: str, version: int, format: str) -> bytes: ...  # noqa: A002

    def post_heartbeat(self, body: dict[str, Any]) -> Answer: ...


class SyncedData(Protocol):
    """What the sync needs of the lane's store data (``app.services.store_data.StoreData``
    over the sync thread's own connection)."""

    def have(self, kind: str) -> int | None: ...

    def plan(self, kind: str, listing: list[tuple[bytes, bytes]]
             ) -> list[tuple[Manifest, str]]: ...

    def stage(self, manifest_raw: bytes, signature: bytes, format: str,  # noqa: A002
              payload: bytes) -> Manifest: ...

    def contacted(self, ok: bool, error: str | None = None) -> None: ...

    def status(self) -> Any: ...


@dataclass
class SyncSide:
    """What the sync thread works with, opened on that thread (``open_side``): the lane's
    store data over a connection of its own, the heartbeat body's maker (None: no
    heartbeats), and what to close when the thread ends."""

    data: SyncedData
    heartbeat: Callable[[], dict[str, Any]] | None = None
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class SyncHealth:
    """The thread's own state for device health: ``state`` idle, syncing, backing_off,
    paused, stopped (``dead``: the thread died); the last error and the next try (s)."""

    state: str
    last_error: str = ""
    next_try_in_s: float = 0.0
    polls: int = 0
    staged: int = 0
    heartbeats: int = 0
    last_heartbeat_error: str = ""


@dataclass
class _Outcome:
    wait: float | None = None  # None: the normal poll interval
    errors: list[str] = field(default_factory=list)


class StoreSync:
    """The lane's store-data sync thread (``start``/``stop``/``wake``).

    ``client``: head office (:class:`StoreDataPort`); ``open_side``: called once on the
    thread, gives the :class:`SyncSide` (the store data on the thread's own SQLite
    connection); ``store_id``: the store whose versions are followed. Seconds:
    ``poll_s`` between looks, ``heartbeat_s`` between heartbeats (0: none),
    ``backoff_base`` doubling per failure up to ``backoff_cap``, ``pause_s`` after a
    refused token. ``monotonic``: the clock every interval is measured on (the lane's);
    ``on_alert`` is told every staff alert."""

    def __init__(self, client: StoreDataPort, open_side: Callable[[], SyncSide], clock: Clock,
                 *, store_id: str, kinds: Sequence[str] = KINDS, poll_s: float = 30.0,
                 heartbeat_s: float = 60.0, backoff_base: float = 1.0,
                 backoff_cap: float = 300.0, pause_s: float = 600.0,
                 rng: random.Random | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_alert: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.open_side = open_side
        self.clock = clock
        self.store_id = store_id
        self.kinds = tuple(kinds)
        self.poll_s, self.heartbeat_s, self.pause_s = poll_s, heartbeat_s, pause_s
        self.monotonic = monotonic
        self.on_alert = on_alert
        self._backoff = Backoff(backoff_base, backoff_cap, rng)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._health = SyncHealth("stopped")
        self._next_sync = 0.0
        self._next_beat = 0.0

    # -- control -----------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="store-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._health = replace(self._health, state="stopped")

    def wake(self) -> None:
        """Look now (staff asked, or a test): the backoff starts again from its base."""
        self._backoff.reset()
        self._next_sync = 0.0
        self._wake.set()

    def health(self) -> SyncHealth:
        if self._thread is not None and not self._thread.is_alive() and \
                self._health.state != "stopped":
            return replace(self._health, state="dead")  # staff must see it
        return self._health

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        side: SyncSide | None = None
        while side is None and not self._stop.is_set():
            try:
                side = self.open_side()
            except Exception as exc:  # a locked or busy database at start-up: wait, retry
                log.exception("store sync: opening the lane's store data")
                self._wake.wait(self._back_off(f"local error: {exc}"))
                self._wake.clear()
        if side is None:
            return
        try:
            self._next_sync = self._next_beat = self.monotonic()
            while not self._stop.is_set():
                wait = self.run_due(side)
                if wait > 0:
                    self._wake.wait(wait)
                    self._wake.clear()
        finally:
            side.close()

    def run_due(self, side: SyncSide) -> float:
        """Do what is due now (a sync pass, a heartbeat) and return the seconds until the
        next thing is due. Never raises: a local error (a locked database) backs off."""
        now = self.monotonic()
        if now >= self._next_sync:
            try:
                wait = self.sync_once(side.data)
            except Exception as exc:  # never die: wait and try again
                log.exception("store sync")
                wait = self._back_off(f"local error: {exc}")
            self._next_sync = self.monotonic() + wait
        if self.heartbeat_s > 0 and side.heartbeat is not None and now >= self._next_beat:
            self._next_beat = self.monotonic() + self.heartbeat_s
            self.beat_once(side.heartbeat)
        upcoming = [self._next_sync]
        if self.heartbeat_s > 0 and side.heartbeat is not None:
            upcoming.append(self._next_beat)
        return max(0.0, min(upcoming) - self.monotonic())

    def sync_once(self, data: SyncedData) -> float:
        """One look at every kind: list, plan, download, stage. Returns the seconds to
        wait before the next look (``poll_s``, or the backoff)."""
        self._health = replace(self._health, state="syncing",
                               polls=self._health.polls + 1)
        outcome = _Outcome()
        for kind in self.kinds:
            self._sync_kind(data, kind, outcome)
            if outcome.wait is not None:  # head office cannot answer now: stop this pass
                break
        if outcome.wait is not None:
            data.contacted(False, outcome.errors[-1])
            return outcome.wait
        self._backoff.reset()
        data.contacted(True, "; ".join(outcome.errors) or None)
        tidy = getattr(data, "tidy", None)
        if tidy is not None:  # what applies left (a replaced table): short transactions
            tidy()
        self._health = replace(self._health, state="idle", next_try_in_s=self.poll_s,
                               last_error="; ".join(outcome.errors))
        return self.poll_s

    def _sync_kind(self, data: SyncedData, kind: str, outcome: _Outcome) -> None:
        have = data.have(kind)
        answer = self.client.listing(kind, have)
        if answer.kind in (AnswerKind.NOT_MODIFIED, AnswerKind.NOTHING):
            return
        if answer.kind is not AnswerKind.ANSWERED:
            self._failed(answer, outcome)
            return
        listing = list(answer.versions)
        try:
            plan = data.plan(kind, listing)
        except ValueError as exc:  # StoreDataRefused: nothing downloaded, nothing changed
            self._refused(kind, f"{kind}: {exc}", outcome)
            return
        signed = self._by_version(listing)
        for manifest, format in plan:  # noqa: A001 - the contract's word
            raw, signature = signed[manifest.version]
            try:
                payload = self.client.download(manifest.store_id, kind, manifest.version,
                                               format)
            except DownloadFailed as exc:
                if exc.answer.kind is AnswerKind.REFUSED:  # pruned meanwhile: list again
                    self._refused(kind, f"{kind} {manifest.version}: {exc.answer.error}",
                                  outcome)
                else:
                    self._failed(exc.answer, outcome)
                return  # later versions build on this one
            try:
                staged = data.stage(raw, signature, format, payload)
            except ValueError as exc:  # StoreDataRefused: the lane is unchanged
                self._refused(kind, f"{kind} {manifest.version}: {exc}", outcome)
                return
            self._health = replace(self._health, staged=self._health.staged + 1)
            log.info("store data: staged %s version %d (%s, %d bytes), effective %s",
                     kind, staged.version, format, len(payload), staged.effective_at)

    @staticmethod
    def _by_version(listing: list[tuple[bytes, bytes]]) -> dict[int, tuple[bytes, bytes]]:
        """The listed (manifest bytes, signature) by version; a manifest that does not
        parse is left out (the plan refuses it with its reason)."""
        out = {}
        for raw, signature in listing:
            try:
                out[manifest_from_bytes(raw).version] = (raw, signature)
            except StoreDataError:
                continue
        return out

    def _refused(self, kind: str, reason: str, outcome: _Outcome) -> None:
        log.warning("store data refused (the lane keeps what it has): %s", reason)
        outcome.errors.append(f"refused {reason}")

    def _failed(self, answer: Answer, outcome: _Outcome) -> None:
        error = answer.error or f"head office answered {answer.status}"
        outcome.errors.append(error)
        if answer.kind is AnswerKind.UNAUTHORIZED:
            message = (f"head office refused the lane's token ({answer.status}): store data "
                       f"sync paused for {self.pause_s:.0f} s; fix membership.token")
            self._health = replace(self._health, state="paused", last_error=message,
                                   next_try_in_s=self.pause_s)
            log.error("staff alert: %s", message)
            if self.on_alert:
                self.on_alert(message)
            outcome.wait = self.pause_s
            return
        outcome.wait = self._back_off(error, answer.retry_after_s)

    def _back_off(self, error: str, at_least: float | None = None) -> float:
        delay = self._backoff.next_delay(at_least)  # capped, full jitter, Retry-After
        self._health = replace(self._health, state="backing_off", last_error=error,
                               next_try_in_s=round(delay, 2))
        log.info("store sync: %s; next try in %.1f s", error, delay)
        return delay

    def beat_once(self, body: Callable[[], dict[str, Any]]) -> Answer | None:
        """Build and post one heartbeat; what head office answered (None: the body could
        not be built). A failed heartbeat is not retried early: the next is due in
        ``heartbeat_s`` anyway, and it carries the newer state."""
        try:
            answer = self.client.post_heartbeat(body())
        except Exception as exc:  # noqa: BLE001 - a heartbeat must never stop the sync
            log.exception("store sync: heartbeat")
            self._health = replace(self._health, last_heartbeat_error=str(exc))
            return None
        if answer.kind is AnswerKind.ANSWERED:
            self._health = replace(self._health, heartbeats=self._health.heartbeats + 1,
                                   last_heartbeat_error="")
        else:
            log.info("store sync: heartbeat not kept: %s", answer.error)
            self._health = replace(self._health, last_heartbeat_error=answer.error)
        return answer


def _instant(value: Any) -> str | None:
    """A time for the heartbeat: RFC 3339 UTC ``...Z`` (None stays None)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return instant_text(value if value.tzinfo else value.replace(tzinfo=UTC))
    try:
        return instant_text(datetime.fromisoformat(str(value)).astimezone(UTC))
    except ValueError:
        return str(value)


# The contract's bounds on a heartbeat's texts (docs/membership-api.yaml ``Heartbeat``;
# head office refuses a body past them with 400, so the lane would drop out of the fleet).
HEARTBEAT_MAX_TEXT = 500
HEARTBEAT_MAX_ALERTS = 100


def _clip(text: str) -> str:
    return text if len(text) <= HEARTBEAT_MAX_TEXT else text[:HEARTBEAT_MAX_TEXT - 1] + "…"


def heartbeat_body(*, lane_id: str, store_id: str, now: datetime,
                   versions: Mapping[str, int | None], staged: Mapping[str, int],
                   checked_at: Any, health: tuple[str, str],
                   outbox: tuple[int, int, Any], alerts: Sequence[str]) -> dict[str, Any]:
    """The heartbeat body of docs/store-sync.md ("Heartbeat body"): ``versions`` applied
    per kind (None: never applied), ``staged`` (downloaded, not yet applied),
    ``checked_at`` (when head office last answered; datetime or ISO text), ``health``
    (state ``ok``/``degraded``/``out_of_order``, summary), ``outbox`` (pending, dead,
    oldest pending time), ``alerts`` (open staff alerts, in words). Times in UTC. Texts
    are clipped to the contract's 500 characters (with "…") and alerts to 100."""
    state, summary = health
    if state not in ("ok", "degraded", "out_of_order"):
        raise ValueError(f"health state {state!r} is not ok, degraded or out_of_order")
    pending, dead, oldest = outbox
    return {"lane_id": lane_id, "store_id": store_id, "sent_at": _instant(now),
            "versions": {k: versions.get(k) for k in KINDS},
            "staged": {k: v for k, v in staged.items() if v is not None},
            "data_checked_at": _instant(checked_at),
            "health": {"state": state, "summary": _clip(summary)},
            "outbox": {"pending": pending, "dead": dead,
                       "oldest_pending_at": _instant(oldest)},
            "alerts": [_clip(a) for a in alerts[:HEARTBEAT_MAX_ALERTS]]}


def health_summary(states: Sequence[tuple[str, str]], *, out_of_order: bool,
                   ok_states: frozenset[str] = frozenset({"ok", "none", "ready", "idle"})
                   ) -> tuple[str, str]:
    """The lane's health in one word and a line for the fleet view: ``out_of_order``
    when the lane sells nothing, ``degraded`` when a device or check is not well
    (``states``: (device, state) pairs, as on the health page), else ``ok``."""
    bad = [f"{device} {state}" for device, state in states if state not in ok_states]
    if out_of_order:
        return "out_of_order", "out of order" + (f": {', '.join(bad)}" if bad else "")
    if bad:
        return "degraded", ", ".join(bad)
    return "ok", "all devices ok"


__all__ = ["StoreDataPort", "StoreSync", "SyncHealth", "SyncSide", "SyncedData",
           "health_summary", "heartbeat_body"]
