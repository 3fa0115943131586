"""The member summary: per member, visits, spend and points, kept from the events by one
durable JetStream consumer in the key-value bucket ``hq_member_summary``.

Idempotent, exactly once per event: each summary records the stream sequence of the
last event applied to it (``last_seq``), written in the same compare-and-set as the
totals, and the consumer applies events strictly in stream order; so an event at or
below a member's ``last_seq`` has been applied already and is skipped.

Strict order is what makes that exact, and a durable consumer alone does not give it
after a failure: JetStream redelivers an unacknowledged message only when its ack wait
runs out, and meanwhile hands out newer ones. So the consumer acknowledges with
``AckPolicy.ALL`` after each batch, and whenever it starts, or a batch fails, it reads
the durable's ack floor (every event up to it is applied), deletes the durable and
creates it again from the floor + 1: the events after the floor come again, in order,
and those already applied are skipped by ``last_seq``. Run one consumer process at a
time (``kiosk hq consume``): two would apply a member's events out of order, and a sale
applied after a newer one of the same member is skipped for good. So the consumer holds a
lease (a key created once in ``hq_consumer_lease``, a bucket with a TTL), renews it by
compare-and-set before every fetch and applies nothing it has not renewed for; a second
consumer waits for the lease and, while the first lives, does not start.

Only paid sales count: ``session_ended`` events with a ``member_id``: a visit, its
``total_minor`` spent and its ``points_earned`` (sent by the lane, which applies the
store's points rule: app/domain/points.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors as js_errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig

from hq.nats_store import STREAM, TOKEN

BUCKET = "hq_member_summary"
DURABLE = "member-summary"
#: The key-value bucket holding the one consumer's lease (key ``member-summary``), and how
#: long a lease lasts unrenewed (the bucket's TTL): a consumer SIGKILLed is replaced
#: after at most this long.
LEASE_BUCKET = "hq_consumer_lease"
LEASE_S = 15.0
log = logging.getLogger(__name__)


@dataclass
class Summary:
    """One member's totals from their paid visits; ``last_seq``: the stream sequence of
    the newest event applied."""

    visits: int = 0
    spend_minor: int = 0
    points: int = 0
    last_seq: int = 0

    @classmethod
    def from_json(cls, raw: bytes | None) -> Summary:
        return cls(**json.loads(raw)) if raw else cls()

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()


def member_sale(event: dict[str, Any]) -> tuple[str, int, int] | None:
    """``(member_id, total_minor, points_earned)`` for a member's paid sale, else None
    (any other event, a guest's sale, a malformed one)."""
    member = event.get("member_id")
    payload = event.get("payload")
    if event.get("type") != "session_ended" or not isinstance(member, str) \
            or not TOKEN.match(member) or not isinstance(payload, dict):
        return None
    total, points = payload.get("total_minor", 0), payload.get("points_earned", 0)
    if not isinstance(total, int) or not isinstance(points, int):
        return None
    return member, total, points


def apply(summary: Summary, stream_seq: int, total_minor: int, points: int) -> bool:
    """Add one sale at ``stream_seq`` to ``summary`` unless it was applied already
    (``stream_seq <= last_seq``); True when added."""
    if stream_seq <= summary.last_seq:
        return False
    summary.visits += 1
    summary.spend_minor += total_minor
    summary.points += points
    summary.last_seq = stream_seq
    return True


class MemberSummaryConsumer:
    """The durable consumer ``member-summary`` on ``EVENTS``, run on its own thread.
    ``replicas``: the bucket's and consumer's replication."""

    def __init__(self, servers: list[str], *, replicas: int = 1, batch: int = 500) -> None:
        self.servers = servers
        self.replicas = replicas
        self.batch = batch
        self.applied = 0  # sales added to summaries by this process
        self.skipped = 0  # sales seen again and left alone
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}".encode()
        self.error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> MemberSummaryConsumer:
        """Connect, create the bucket and consumer if missing, consume in the background.
        RuntimeError when it cannot get going within ``timeout`` seconds."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()),
                                        name="hq-member-summary", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self._stop.set()
            raise RuntimeError(f"the member-summary consumer did not start: {self.error}")
        return self

    def running(self) -> bool:
        """Its thread is still consuming (False once stopped, or after it lost its lease
        to another consumer or failed: ``error`` says why)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    async def _main(self) -> None:
        try:
            nc = await nats.connect(servers=self.servers, connect_timeout=2,
                                    max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                    name="kiosk-hq-member-summary",
                                    error_cb=self._on_error)
        except Exception as exc:  # noqa: BLE001 - reported by start()
            self.error = exc
            return
        try:
            js = nc.jetstream(timeout=5)
            try:
                kv = await js.key_value(BUCKET)
            except js_errors.BucketNotFoundError:
                kv = await js.create_key_value(KeyValueConfig(
                    bucket=BUCKET, replicas=self.replicas, history=1))
            lease, lease_rev = await self._take_lease(js)
            if lease is None:
                return
            sub = await self._subscribe(js)
            self._ready.set()
            expected: int | None = None  # the next stream sequence to apply
            while not self._stop.is_set():
                try:
                    lease_rev = await lease.update(DURABLE, self._holder, last=lease_rev)
                except js_errors.KeyWrongLastSequenceError:
                    # Lapsed (NATS away longer than the lease): take it again, if no other
                    # consumer has, and start again from the ack floor.
                    lease, lease_rev = await self._take_lease(js)
                    if lease is None:
                        return
                    sub, expected = await self._resubscribe(js, sub), None
                    continue
                except (TimeoutError, nats.errors.Error, js_errors.APIError) as exc:
                    log.warning("member summary: cannot renew the lease (%s)", exc)
                    await asyncio.sleep(0.5)  # apply nothing until it is renewed
                    continue
                try:
                    msgs = await sub.fetch(self.batch, timeout=1)
                except (TimeoutError, js_errors.FetchTimeoutError):
                    # Nothing new. nats-py raises its TimeoutError, and a plain
                    # asyncio.TimeoutError when its no-wait probe used up the time (a
                    # loaded machine): that one stopped the consumer for good.
                    continue
                except (nats.errors.Error, js_errors.APIError) as exc:
                    log.warning("member summary: fetch failed (%s); again from the last "
                                "acknowledged event", exc)
                    sub, expected = await self._resubscribe(js, sub), None
                    continue
                # Apply only the unbroken run from the next expected sequence: a gap means
                # an earlier event is still out (to be redelivered later); applying past it
                # would skip it for good. Every event matches ``events.>``, so stream
                # sequences are consecutive.
                run, gap = [], False
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if expected is not None and seq < expected:
                        continue  # delivered again, handled already
                    if expected is not None and seq > expected:
                        gap = True
                        break
                    run.append(msg)
                    expected = seq + 1
                try:
                    if run:
                        await self._apply_batch(kv, run)
                        await run[-1].ack_sync()  # AckPolicy.ALL: everything up to it
                except (TimeoutError, nats.errors.Error, js_errors.APIError) as exc:
                    log.warning("member summary: batch not finished (%s); again from the "
                                "last acknowledged event", exc)
                    sub, expected = await self._resubscribe(js, sub), None
                    continue
                if gap:
                    log.info("member summary: events out of order after a failure; again "
                             "from the last acknowledged event")
                    sub, expected = await self._resubscribe(js, sub), None
            try:  # stopped cleanly: the next consumer need not wait for the lease to lapse
                await lease.delete(DURABLE, last=lease_rev)
            except (TimeoutError, nats.errors.Error, js_errors.APIError):
                pass  # it lapses on its own
        except Exception as exc:  # noqa: BLE001 - kept for the operator and the tests
            self.error = exc
            log.exception("member summary consumer stopped")
        finally:
            try:
                await nc.close()
            except (OSError, nats.errors.Error):
                pass  # NATS gone (a stop while every node is down): nothing to let go

    async def _take_lease(self, js: Any) -> tuple[Any, int]:
        """The lease bucket and the lease's revision, once this consumer holds it; waits
        while another holds it (``self.error`` says so); ``(None, 0)`` when stopped."""
        try:
            lease = await js.key_value(LEASE_BUCKET)
        except js_errors.BucketNotFoundError:
            lease = await js.create_key_value(KeyValueConfig(
                bucket=LEASE_BUCKET, replicas=self.replicas, history=1, ttl=LEASE_S))
        while not self._stop.is_set():
            try:
                revision = await lease.create(DURABLE, self._holder)
                self.error = None
                return lease, revision
            except js_errors.KeyWrongLastSequenceError:
                self.error = RuntimeError(
                    "another member-summary consumer is running (run one at a time; a "
                    f"stopped one's lease lapses within {LEASE_S:g} s)")
                await asyncio.sleep(1)
            except (TimeoutError, nats.errors.Error, js_errors.APIError) as exc:
                log.warning("member summary: cannot take the lease yet (%s)", exc)
                await asyncio.sleep(1)
        return None, 0

    async def _subscribe(self, js: Any) -> Any:
        """The durable, created afresh just after its ack floor (module docstring)."""
        floor = 0
        try:
            info = await js.consumer_info(STREAM, DURABLE)
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            await js.delete_consumer(STREAM, DURABLE)
        except js_errors.NotFoundError:
            pass
        start = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                               opt_start_seq=floor + 1) if floor else \
            ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        start.ack_policy = AckPolicy.ALL
        start.ack_wait = 60
        start.max_ack_pending = self.batch
        start.num_replicas = self.replicas
        return await js.pull_subscribe("events.>", durable=DURABLE, stream=STREAM,
                                       config=start)

    async def _resubscribe(self, js: Any, sub: Any) -> Any:
        while not self._stop.is_set():
            try:
                await sub.unsubscribe()
            except (nats.errors.Error, js_errors.APIError):
                pass
            try:
                return await self._subscribe(js)
            except (TimeoutError, nats.errors.Error, js_errors.APIError) as exc:
                log.warning("member summary: cannot resubscribe yet (%s)", exc)
                await asyncio.sleep(1)
        return sub

    async def _on_error(self, exc: Exception) -> None:
        log.warning("member summary: NATS: %s: %s", type(exc).__name__, exc)

    async def _apply_batch(self, kv: Any, msgs: Iterable[Any]) -> None:
        sales: dict[str, list[tuple[int, int, int]]] = {}
        for msg in msgs:
            try:
                sale = member_sale(json.loads(msg.data))
            except ValueError:
                sale = None
            if sale is not None:
                member, total, points = sale
                sales.setdefault(member, []).append(
                    (msg.metadata.sequence.stream, total, points))
        for member, rows in sales.items():
            while True:  # compare-and-set: the consumer is alone, but never trust that
                try:
                    entry = await kv.get(f"s.{member}")
                    summary, revision = Summary.from_json(entry.value), entry.revision
                except js_errors.KeyNotFoundError:
                    summary, revision = Summary(), None
                added = sum(apply(summary, seq, total, points) for seq, total, points in rows)
                if added:
                    try:
                        if revision is None:
                            await kv.create(f"s.{member}", summary.to_json())
                        else:
                            await kv.update(f"s.{member}", summary.to_json(), last=revision)
                    except js_errors.KeyWrongLastSequenceError:
                        continue
                self.applied += added
                self.skipped += len(rows) - added
                break
