"""The chain's head-office store: NATS JetStream (nats-py, the official client).

Subjects: every event is published once to ``events.<store_id>.<kiosk_id>.<event_id>``
in the stream ``EVENTS`` (``events.>``), so a store, a lane or one event is a subject
filter away (``events.store-001.>``, ``events.*.lane-01.*``).

Exactly once after dedupe, beyond any time window:

* the stream keeps at most one message per subject (``max_msgs_per_subject=1``) and
  refuses a second one (``discard=new`` with ``discard_new_per_subject``): an event id
  already stored is refused by the server itself, error 10077, whenever it is resent;
  the service reads that refusal as "duplicate";
* within the duplicate window the ``Nats-Msg-Id`` header (the event id) makes the same
  publish, retried after a lost acknowledgement, answer ``duplicate`` instead;
* a batch's answer is kept in the key-value bucket ``hq_batches`` under its
  ``Idempotency-Key`` (created once: compare-and-set), after its events are stored. An
  instance killed between publishing and keeping the answer leaves no answer: the
  lane's resend publishes again and every event comes back "duplicate", which the
  contract counts as delivered.

Nothing else the service must remember lives in its memory: audit heads
(``hq_audit_heads``, one key ``<kiosk>.<seq>.<hash>`` per head, created once), members
(``hq_members``) and the member key (``hq_keys``, created once).

The stream's byte limit refuses new events when reached (``discard=new``) rather than
dropping old ones: lanes get 503 and keep their events. Age retention drops events older
than ``max_age``; a lane resending an event older than that would store it again, so
``max_age`` must exceed the longest a lane can hold an unacknowledged batch (docs).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors as js_errors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.client import Client as NatsClient
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    StorageType,
    StreamConfig,
)

from app.domain import store_data
from hq.sqlite_store import DEMO_MEMBERS, event_problem
from hq.stores import HEARTBEAT_TTL_S, BatchAnswer, Member, StoreUnavailable, VersionTaken

T = TypeVar("T")
log = logging.getLogger(__name__)

STREAM = "EVENTS"
BUCKETS = ("hq_batches", "hq_audit_heads", "hq_members", "hq_keys", "hq_member_summary")
#: Store sync (docs/store-sync.md): manifests, payloads, the lanes' heartbeats.
VERSIONS_BUCKET = "hq_versions"
PAYLOADS_BUCKET = "hq_payloads"
HEARTBEATS_BUCKET = "hq_heartbeats"
#: NATS subject tokens (and key-value keys) a lane or store id may use.
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")  # \Z: "$" would take a final newline
#: JetStream's "store failed" error code. It answers both "maximum messages per subject
#: exceeded" (the event is already stored: a duplicate) and "maximum bytes exceeded" (the
#: stream is full: NOT stored), so only the description tells them apart.
STORE_FAILED = 10077
ALREADY_STORED_TEXT = "maximum messages per subject exceeded"
_UNAVAILABLE = (nats.errors.NoServersError, nats.errors.ConnectionClosedError,
                nats.errors.TimeoutError, nats.errors.NoRespondersError,
                js_errors.NoStreamResponseError,
                nats.errors.StaleConnectionError, asyncio.TimeoutError, OSError)


@dataclass(frozen=True)
class Retention:
    """How long and how much the stream keeps: ``max_age_s`` seconds (0: forever) and
    ``max_bytes`` (-1: no limit; when reached, new events are refused, never old ones
    dropped). ``duplicate_window_s``: how long JetStream remembers a ``Nats-Msg-Id``."""

    max_age_s: float = 90 * 86400
    max_bytes: int = -1
    duplicate_window_s: float = 120.0


def token(value: str) -> str:
    """``value`` as one NATS subject token and key-value key part: itself when it is
    already one (``[A-Za-z0-9_-]{1,64}``), else ``=`` and its UTF-8 in unpadded base64url
    (``=`` is not in a plain token, so the two forms never meet)."""
    if TOKEN.match(value):
        return value
    return "=" + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def subject(store_id: str, kiosk_id: str, event_id: str) -> str:
    """The subject one event is stored under: each id as a :func:`token`, so any id a
    lane's settings accept (a store id with a dot or a space, say) is stored, not turned
    away as a dead letter the lane can never deliver."""
    return f"events.{token(store_id)}.{token(kiosk_id)}.{token(event_id)}"


def untoken(part: str) -> str:
    """The id a :func:`token` stands for."""
    if not part.startswith("="):
        return part
    raw = part[1:]
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()


def _checked_payloads(m: store_data.Manifest, full: bytes, delta: bytes | None
                      ) -> list[tuple[store_data.Payload, bytes]]:
    """The payloads of a version to keep, each checked against its manifest (size and
    SHA-256: a store never keeps a manifest whose payload is other bytes). ValueError
    with the reason otherwise."""
    if (delta is None) != (m.delta is None):
        raise ValueError(f"version {m.version}: the manifest "
                         f"{'has no' if m.delta is None else 'names a'} delta, the "
                         f"publisher gave {'none' if delta is None else 'one'}")
    out = [(m.full, full)]
    if m.delta is not None and delta is not None:
        out.append((m.delta, delta))
    for p, data in out:
        store_data.check_payload(data, p)  # StoreDataError is a ValueError
    return out


def already_stored(result: object) -> bool:
    """True when a publish's outcome is JetStream refusing an event whose subject (its
    event id) already holds one: a duplicate, delivered. Not for any other 10077."""
    return isinstance(result, js_errors.APIError) and result.err_code == STORE_FAILED \
        and ALREADY_STORED_TEXT in (result.description or "")


class NatsStore:
    """:class:`hq.stores.HqStore` on JetStream at ``servers`` (``nats://h:p`` each).
    ``replicas``: the stream's and buckets' replication (3 in a cluster, 1 on one
    server). Raises StoreUnavailable when no server answers at start. ``create=False``
    (``kiosk hq status``, ``replay``): a look only, creating nothing (no stream with the
    wrong replication made by a status check) and opening no bucket; ValueError when
    there is no stream yet."""

    def __init__(self, servers: list[str], *, replicas: int = 1,
                 retention: Retention | None = None, timeout_s: float = 5.0,
                 create: bool = True, heartbeat_ttl_s: float = HEARTBEAT_TTL_S) -> None:
        self.servers = servers
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.create = create
        self.replicas = replicas
        self.retention = retention or Retention()
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hq-nats",
                                        daemon=True)
        self._thread.start()
        try:
            self._run(self._connect(), timeout=90)
        except BaseException:
            self._stop_loop()
            raise

    # -- the bridge from the service's threads to nats-py's event loop -------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout or self.timeout_s * 4)
        except _UNAVAILABLE as exc:
            future.cancel()
            raise StoreUnavailable(f"NATS: {type(exc).__name__}: {exc}") from exc
        except js_errors.ServiceUnavailableError as exc:
            raise StoreUnavailable(f"JetStream: {exc.description}") from exc
        except nats.errors.Error as exc:
            # Any other failure of NATS or JetStream (e.g. "no response from stream": a
            # cluster without a quorum) stores nothing either: 503, the lane retries, rather
            # than a connection dropped without an answer.
            raise StoreUnavailable(f"NATS: {type(exc).__name__}: {exc}") from exc

    async def _dial(self) -> NatsClient:
        return await nats.connect(servers=self.servers, connect_timeout=2,
                                  allow_reconnect=True, max_reconnect_attempts=-1,
                                  reconnect_time_wait=0.5, name="kiosk-hq",
                                  error_cb=self._on_error,
                                  disconnected_cb=self._on_disconnect,
                                  reconnected_cb=self._on_reconnect)

    async def _connect(self) -> None:
        # nats-py keeps trying the first connection as long as it would reconnect
        # (forever here): bound it, so a wrong address is an error at start, not a hang.
        self.nc = await asyncio.wait_for(self._dial(), timeout=self.timeout_s * 2)
        self.js = self.nc.jetstream(timeout=self.timeout_s)
        # A cluster just started has no JetStream meta leader for a few seconds (and
        # longer on a loaded machine): keep asking for a while before giving up.
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                await self._ensure()
                return
            except (*_UNAVAILABLE, js_errors.ServiceUnavailableError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.info("JetStream not ready yet (%s); asking again", exc)
                await asyncio.sleep(0.5)

    # One line each, not nats-py's default traceback per failed reconnect attempt.
    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS: %s: %s", type(exc).__name__, exc)

    async def _on_disconnect(self) -> None:
        nc = getattr(self, "nc", None)  # None while the first connection is made
        if nc is not None and (nc.is_closed or nc.is_draining):
            return  # our own close(): not an outage
        log.warning("NATS: disconnected; reconnecting to %s", ", ".join(self.servers))

    async def _on_reconnect(self) -> None:
        log.warning("NATS: reconnected to %s", self.nc.connected_url)

    async def _ensure(self) -> None:
        """Create the stream and buckets if missing (never changes existing ones: that
        is ``kiosk hq setup``'s job), the member key once, the demo members once."""
        self.kv = {}
        try:
            await self.js.stream_info(STREAM)
        except js_errors.NotFoundError:
            if not self.create:
                await self.nc.close()
                raise ValueError(f"no stream {STREAM} at {', '.join(self.servers)} yet: "
                                 "`kiosk hq setup` or `kiosk hq serve` creates it") from None
            r = self.retention
            await self.js.add_stream(StreamConfig(
                name=STREAM, subjects=["events.>"], num_replicas=self.replicas,
                storage=StorageType.FILE, discard=DiscardPolicy.NEW,
                discard_new_per_subject=True, max_msgs_per_subject=1,
                max_age=r.max_age_s, max_bytes=r.max_bytes,
                duplicate_window=r.duplicate_window_s))
        if not self.create:
            return
        for bucket in BUCKETS:
            try:
                self.kv[bucket] = await self.js.key_value(bucket)
            except js_errors.BucketNotFoundError:
                ttl = self.retention.max_age_s if bucket == "hq_batches" else 0
                self.kv[bucket] = await self.js.create_key_value(KeyValueConfig(
                    bucket=bucket, replicas=self.replicas, ttl=ttl or None, history=1))
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        await self._create_once("hq_keys", "member", pem)
        for member_id, name, tier, points, phone in DEMO_MEMBERS:
            await self._create_once("hq_members", f"m.{member_id}", json.dumps(
                {"name": name, "tier": tier, "points": points, "phone": phone}).encode())
            await self._create_once("hq_members", f"p.{phone}", member_id.encode())
        await self._ensure_store_sync()

    async def _create_once(self, bucket: str, key: str, value: bytes) -> bool:
        """Compare-and-set "create if absent"; False when it was already there."""
        try:
            await self.kv[bucket].create(key, value)
            return True
        except js_errors.KeyWrongLastSequenceError:
            return False

    # -- events ---------------------------------------------------------------------------
    def ingest(self, key: str, kiosk_id: str, store_id: str, events: list[dict[str, Any]],
               refuse_types: frozenset[str] = frozenset()) -> BatchAnswer:
        return self._run(self._ingest(key, kiosk_id, store_id, events, refuse_types))

    async def _ingest(self, key: str, kiosk_id: str, store_id: str,
                      events: list[dict[str, Any]],
                      refuse_types: frozenset[str]) -> BatchAnswer:
        batches = self.kv["hq_batches"]
        try:
            kept = await batches.get(key)
            if kept.value:
                return BatchAnswer.from_json(json.loads(kept.value))
        except js_errors.KeyNotFoundError:
            pass
        answer = BatchAnswer()
        sends: list[tuple[str, Coroutine[Any, Any, Any]]] = []
        for e in events:
            problem = event_problem(e, refuse_types)
            event_id = str(e.get("event_id", "")) if isinstance(e, dict) else ""
            if problem:
                answer.rejected.append({"event_id": event_id, "reason": problem})
                continue
            body = json.dumps(dict(e, kiosk_id=kiosk_id, store_id=store_id),
                              ensure_ascii=False).encode()
            where = subject(store_id, kiosk_id, event_id)
            sends.append((event_id, self.js.publish(where, body, stream=STREAM,
                                                    headers={"Nats-Msg-Id": event_id})))
        # One connection sends them in order; the acknowledgements are awaited together.
        # Not publish_async, though it measured 1.5-2x faster here: in nats-py 2.16 its
        # reply handler raises instead of failing the future when the server answers with
        # a 503-class error, so error 10077 ("already stored", point 1 of the docstring)
        # would leave the future waiting forever.
        results = await asyncio.gather(*(s for _, s in sends), return_exceptions=True)
        for (event_id, _), result in zip(sends, results, strict=True):
            if already_stored(result):
                answer.duplicates.append(event_id)
            elif isinstance(result, js_errors.APIError):
                # The stream full (--max-gb), a limit, a refusal: not stored, so nothing
                # of this batch is acknowledged: 503, the lane keeps it and resends.
                raise StoreUnavailable(f"JetStream refused an event: {result.description} "
                                       f"({result.err_code})")
            elif isinstance(result, BaseException):
                raise result  # nothing of this batch is acknowledged: the lane resends
            elif result.duplicate:
                answer.duplicates.append(event_id)
            else:
                answer.accepted.append(event_id)
        # The first answer kept wins (two instances handed the batch at once).
        if not await self._create_once("hq_batches", key, json.dumps(answer.as_json()).encode()):
            kept = await batches.get(key)
            return BatchAnswer.from_json(json.loads(kept.value or b"{}"))
        return answer

    def events(self, kiosk_id: str) -> list[tuple[int, str]]:
        return [(int(e["seq"]), str(e["event_id"])) for e in self.lane_events(kiosk_id)]

    def lane_events(self, kiosk_id: str, from_seq: int = 1) -> list[dict[str, Any]]:
        """The lane's stored events with ``seq >= from_seq``, in seq order, as stored
        (the lane's event plus ``kiosk_id`` and ``store_id``)."""
        found = self._run(self._read(f"events.*.{token(kiosk_id)}.*"), timeout=300)
        return sorted((e for e in found if int(e["seq"]) >= from_seq),
                      key=lambda e: int(e["seq"]))

    async def _read(self, filter_subject: str) -> list[dict[str, Any]]:
        """Every stored message under ``filter_subject``, through an ephemeral pull
        consumer without acknowledgements, fetched until it has nothing pending."""
        found: list[dict[str, Any]] = []
        sub = await self.js.pull_subscribe(filter_subject, stream=STREAM, config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=60))
        try:
            while (await sub.consumer_info()).num_pending:
                try:
                    msgs = await sub.fetch(1000, timeout=self.timeout_s)
                except nats.errors.TimeoutError:
                    continue
                found += [json.loads(m.data) for m in msgs]
        finally:
            await sub.unsubscribe()
        return found

    def apply_retention(self) -> str:
        """Set the stream's age and byte limits to this store's ``retention`` (and the
        batch answers' time to live to the same age); a line saying what is set."""
        return self._run(self._apply_retention())

    async def _apply_retention(self) -> str:
        info = await self.js.stream_info(STREAM)
        config = info.config
        config.max_age = self.retention.max_age_s
        config.max_bytes = self.retention.max_bytes
        await self.js.update_stream(config)
        # A bucket is a stream KV_<bucket>; its TTL is that stream's max_age.
        batches = (await self.js.stream_info("KV_hq_batches")).config
        batches.max_age = self.retention.max_age_s
        await self.js.update_stream(batches)
        # The heartbeats' time to live is this store's heartbeat_ttl_s (hq.heartbeat_ttl_s).
        beats = (await self.js.stream_info(f"KV_{HEARTBEATS_BUCKET}")).config
        beats.max_age = self.heartbeat_ttl_s
        await self.js.update_stream(beats)
        limit = "no size limit" if self.retention.max_bytes < 0 else \
            f"at most {self.retention.max_bytes} bytes (then new events are refused)"
        return (f"stream {STREAM}: R{config.num_replicas}, events kept "
                f"{self.retention.max_age_s / 86400:g} days, {limit}; buckets "
                f"{', '.join(BUCKETS)}")

    def status(self) -> dict[str, Any]:
        """The stream and its consumers, for ``kiosk hq status`` (shape: ``{"stream":
        {name, messages, bytes, replicas, max_age_days, leader}, "consumers": [{name,
        lag, ack_pending, redelivered}]}``; ``lag``: events not yet delivered)."""
        return self._run(self._status())

    async def _status(self) -> dict[str, Any]:
        info = await self.js.stream_info(STREAM)
        consumers = []
        for c in await self.js.consumers_info(STREAM):
            consumers.append({"name": c.name, "lag": c.num_pending or 0,
                              "ack_pending": c.num_ack_pending or 0,
                              "redelivered": c.num_redelivered or 0})
        return {"stream": {"name": STREAM, "messages": info.state.messages,
                           "bytes": info.state.bytes, "replicas": info.config.num_replicas,
                           "max_age_days": (info.config.max_age or 0) / 86400,
                           "leader": info.cluster.leader if info.cluster else None},
                "consumers": consumers}

    def counts(self) -> dict[str, int]:
        return self._run(self._counts(), timeout=120)

    async def _counts(self) -> dict[str, int]:
        # One subject per event, and the server lists at most 100,000 subjects per
        # answer (then a page with "total" and "offset"), so read every page: one answer
        # alone counted only the first 100,000 events.
        counts: dict[str, int] = {}
        offset = 0
        while True:
            page = await self.js._api_request(  # noqa: SLF001 - nats-py does not page it
                f"{self.js._prefix}.STREAM.INFO.{STREAM}",  # noqa: SLF001
                json.dumps({"subjects_filter": "events.>", "offset": offset}).encode(),
                timeout=self.timeout_s * 4)
            subjects = page.get("state", {}).get("subjects") or {}
            for name, n in subjects.items():
                lane = untoken(name.split(".")[2])
                counts[lane] = counts.get(lane, 0) + n
            offset += len(subjects)
            if not subjects or offset >= int(page.get("total", 0)):
                return counts

    def total(self) -> int:
        info = self._run(self.js.stream_info(STREAM))
        return int(info.state.messages)

    # -- audit heads, members, keys -----------------------------------------------------
    def keep_audit_head(self, kiosk_id: str, seq: int, digest: str) -> None:
        self._run(self._keep_audit_head(kiosk_id, seq, digest))

    async def _keep_audit_head(self, kiosk_id: str, seq: int, digest: str) -> None:
        # One key per head, created once: no read-modify-write and no growing value (one
        # JSON list per lane passed NATS's 1 MB message limit after ~13,700 heads, and
        # the lane's every batch answered 503 from then on).
        await self._create_once("hq_audit_heads", f"{token(kiosk_id)}.{seq}.{token(digest)}",
                                digest.encode())

    def audit_heads(self, kiosk_id: str) -> list[tuple[int, str]]:
        return self._run(self._audit_heads(kiosk_id), timeout=120)

    async def _audit_heads(self, kiosk_id: str) -> list[tuple[int, str]]:
        # A watch filtered by the server to this lane's keys (KeyValue.keys() would walk
        # every lane's), stopped once it has delivered what is there now (a None entry).
        watcher = await self.kv["hq_audit_heads"].watch(f"{token(kiosk_id)}.>",
                                                        ignore_deletes=True)
        heads: list[tuple[int, str]] = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                seq = entry.key.split(".")[1]
                heads.append((int(seq), bytes(entry.value or b"").decode()))
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return sorted(heads)

    def member(self, member_id: str) -> Member | None:
        """The member as enrolled, with the points the member-summary consumer has
        credited from their paid visits added."""
        if not TOKEN.match(member_id):
            return None
        value = self._run(self._get("hq_members", f"m.{member_id}"))
        if value is None:
            return None
        data = json.loads(value)
        earned = self.member_totals(member_id)[2]
        return Member(member_id, data["name"], data["tier"], int(data["points"]) + earned)

    def member_totals(self, member_id: str) -> tuple[int, int, int]:
        """``(visits, spend_minor, points)`` from the member's paid sales, as the consumer
        (hq.member_summary) has applied them so far."""
        if not TOKEN.match(member_id):
            return (0, 0, 0)
        raw = self._run(self._get("hq_member_summary", f"s.{member_id}"))
        data = json.loads(raw) if raw else {}
        return (int(data.get("visits", 0)), int(data.get("spend_minor", 0)),
                int(data.get("points", 0)))

    def member_by_phone(self, phone: str) -> str | None:
        if not phone.isdigit():
            return None
        value = self._run(self._get("hq_members", f"p.{phone}"))
        return None if value is None else value.decode()

    async def _get(self, bucket: str, key: str) -> bytes | None:
        try:
            entry = await self.kv[bucket].get(key)
        except js_errors.KeyNotFoundError:
            return None
        return bytes(entry.value) if entry.value is not None else None

    def enrol(self, member_id: str, name: str, tier: str, phone: str, points: int = 0) -> None:
        if not TOKEN.match(member_id) or not phone.isdigit():
            raise ValueError("member ids are letters, digits, _ and -; phones are digits")
        record = json.dumps({"name": name, "tier": tier, "points": points, "phone": phone,
                             "enrolled_at": datetime.now(UTC).isoformat()}).encode()
        self._run(self._put_member(member_id, phone, record))

    async def _put_member(self, member_id: str, phone: str, record: bytes) -> None:
        await self.kv["hq_members"].put(f"m.{member_id}", record)
        await self.kv["hq_members"].put(f"p.{phone}", member_id.encode())

    def member_key_pem(self) -> bytes:
        value = self._run(self._get("hq_keys", "member"))
        if value is None:
            raise StoreUnavailable("the member key is missing from hq_keys")
        return value

    # -- store data versions (docs/store-sync.md) --------------------------------------------
    async def _ensure_store_sync(self) -> None:
        """The buckets of store sync, created if missing with the store's replication:
        ``hq_versions`` (manifests, one revision per key), ``hq_payloads`` (object store)
        and ``hq_heartbeats`` (TTL ``heartbeat_ttl_s``: NATS drops a silent lane's key)."""
        for bucket, ttl in ((VERSIONS_BUCKET, None), (HEARTBEATS_BUCKET, self.heartbeat_ttl_s)):
            try:
                self.kv[bucket] = await self.js.key_value(bucket)
            except js_errors.BucketNotFoundError:
                self.kv[bucket] = await self.js.create_key_value(KeyValueConfig(
                    bucket=bucket, replicas=self.replicas, ttl=ttl, history=1))
        try:
            self.objects = await self.js.object_store(PAYLOADS_BUCKET)
        except js_errors.BucketNotFoundError:
            # nats-py 2.x: a config passed alone loses its bucket name; name it as well.
            self.objects = await self.js.create_object_store(
                PAYLOADS_BUCKET, ObjectStoreConfig(bucket=PAYLOADS_BUCKET,
                                                   replicas=self.replicas,
                                                   storage=StorageType.FILE))

    @staticmethod
    def _version_key(store_id: str, kind: str, version: int) -> str:
        return f"{token(store_id)}.{kind}.{version}"

    @staticmethod
    def payload_name(store_id: str, kind: str, version: int, format: str,  # noqa: A002
                     sha256: str) -> str:
        """The object a payload is kept as: ``<store>/<kind>/<version>/<format>/<sha256>``.
        The payload's SHA-256 is part of the name so a publisher that loses the race for
        a version never overwrites the winner's payloads (payloads are written before
        the manifest's compare-and-set decides who won)."""
        return f"{token(store_id)}/{kind}/{version}/{format}/{sha256}"

    def publish_version(self, manifest: bytes, signature: bytes, full: bytes,
                        delta: bytes | None) -> None:
        """Keep one version: its payloads in ``hq_payloads`` first, then the manifest in
        ``hq_versions`` with ``create`` (compare-and-set). VersionTaken when the key is
        already there (the loser's payloads are deleted again unless they are the
        winner's very bytes). ValueError when a payload is not the one the manifest
        describes (size, SHA-256) or a delta is missing or unexpected, or when the
        version would leave a gap (it must be the newest + 1, as on the SQLite store)."""
        m = store_data.manifest_from_bytes(manifest)
        payloads = _checked_payloads(m, full, delta)
        latest = self.latest_version(m.store_id, m.kind) or 0
        # A version at or below the newest is taken even when it was pruned (its key is
        # purged, so ``create`` alone would let it be published a second time).
        if m.version <= latest:
            raise VersionTaken(f"{m.store_id} {m.kind} version {m.version} is already "
                               f"published (the newest is {latest})")
        if m.version != latest + 1:
            raise ValueError(f"{m.store_id} {m.kind} version {m.version} would leave a gap: "
                             f"the newest is {latest}")
        self._run(self._publish_version(m, manifest, signature, payloads), timeout=600)

    async def _publish_version(self, m: store_data.Manifest, manifest: bytes,
                               signature: bytes,
                               payloads: list[tuple[store_data.Payload, bytes]]) -> None:
        names = []
        for p, data in payloads:
            name = self.payload_name(m.store_id, m.kind, m.version, p.format, p.sha256)
            names.append(name)
            try:
                held = await self.objects.get_info(name)
                if held.size == p.size:
                    continue  # the very bytes are already kept (a retried publish)
            except js_errors.ObjectNotFoundError:
                pass
            await self.objects.put(name, data)
        value = json.dumps({"manifest": base64.b64encode(manifest).decode(),
                            "signature": base64.b64encode(signature).decode()}).encode()
        key = self._version_key(m.store_id, m.kind, m.version)
        if await self._create_once(VERSIONS_BUCKET, key, value):
            return
        winner = await self._get(VERSIONS_BUCKET, key)
        kept = set()
        if winner is not None:
            won = store_data.manifest_from_bytes(
                base64.b64decode(json.loads(winner)["manifest"]))
            kept = {self.payload_name(won.store_id, won.kind, won.version, p.format,
                                      p.sha256)
                    for p in (won.full, won.delta) if p is not None}
        for name in names:
            if name not in kept:
                await self._delete_object(name)
        raise VersionTaken(f"{m.store_id} {m.kind} version {m.version} is already published")

    async def _delete_object(self, name: str) -> None:
        """Remove an object and leave nothing behind: its meta message first (readers get
        "not found" from then on), then its chunks. nats-py's ``delete`` would leave a
        "deleted" meta message per pruned payload, forever."""
        try:
            info = await self.objects.get_info(name)
        except js_errors.ObjectNotFoundError:
            return
        stream = f"OBJ_{PAYLOADS_BUCKET}"
        meta = base64.urlsafe_b64encode(name.encode()).decode()
        await self.js.purge_stream(stream, subject=f"$O.{PAYLOADS_BUCKET}.M.{meta}")
        await self.js.purge_stream(stream, subject=f"$O.{PAYLOADS_BUCKET}.C.{info.nuid}")

    async def _version_numbers(self, store_id: str, kind: str) -> list[int]:
        """The kept versions of a store's kind, ascending: the subjects the bucket's
        stream holds under ``<store>.<kind>.*`` (one server request, no consumer; pruned
        keys are purged, so they leave no subject behind)."""
        stream = f"KV_{VERSIONS_BUCKET}"
        prefix = f"$KV.{VERSIONS_BUCKET}.{token(store_id)}.{kind}."
        info = await self.js._api_request(  # noqa: SLF001 - nats-py does not filter it
            f"{self.js._prefix}.STREAM.INFO.{stream}",  # noqa: SLF001
            json.dumps({"subjects_filter": prefix + "*"}).encode(),
            timeout=self.timeout_s)
        subjects = info.get("state", {}).get("subjects") or {}
        return sorted(int(name.removeprefix(prefix)) for name in subjects)

    def latest_version(self, store_id: str, kind: str) -> int | None:
        found = self._run(self._version_numbers(store_id, kind))
        return found[-1] if found else None

    def versions_after(self, store_id: str, kind: str,
                       after: int | None) -> list[tuple[bytes, bytes]]:
        return self._run(self._versions_after(store_id, kind, after))

    async def _versions_after(self, store_id: str, kind: str,
                              after: int | None) -> list[tuple[bytes, bytes]]:
        out = []
        for version in await self._version_numbers(store_id, kind):
            if after is not None and version <= after:
                continue
            raw = await self._get(VERSIONS_BUCKET, self._version_key(store_id, kind, version))
            if raw is None:  # pruned between the listing and the read
                continue
            data = json.loads(raw)
            out.append((base64.b64decode(data["manifest"]), base64.b64decode(data["signature"])))
        return out

    def payload(self, store_id: str, kind: str, version: int,
                format: str) -> bytes | None:  # noqa: A002
        if kind not in store_data.KINDS or format not in store_data.FORMATS:
            return None
        return self._run(self._payload(store_id, kind, version, format), timeout=600)

    async def _payload(self, store_id: str, kind: str, version: int,
                       format: str) -> bytes | None:  # noqa: A002
        raw = await self._get(VERSIONS_BUCKET, self._version_key(store_id, kind, version))
        if raw is None:
            return None
        m = store_data.manifest_from_bytes(base64.b64decode(json.loads(raw)["manifest"]))
        p = m.payload(format)
        if p is None:
            return None
        out = io.BytesIO()  # written chunk by chunk: nats-py's own buffer grows by copying
        try:
            await self.objects.get(self.payload_name(store_id, kind, version, format,
                                                     p.sha256), writeinto=out)
        except js_errors.ObjectNotFoundError:
            return None  # pruned after the manifest was read
        return out.getvalue()

    def prune_versions(self, store_id: str, kind: str, keep: int) -> int:
        """Drop all but the newest ``keep`` (>= 1) versions: each manifest first (purged,
        so no key or marker is left), then its payloads. How many were dropped."""
        if keep < 1:
            raise ValueError("keep at least one version")
        return self._run(self._prune(store_id, kind, keep), timeout=300)

    async def _prune(self, store_id: str, kind: str, keep: int) -> int:
        versions = await self._version_numbers(store_id, kind)
        dropped = 0
        for version in versions[:-keep]:
            key = self._version_key(store_id, kind, version)
            raw = await self._get(VERSIONS_BUCKET, key)
            await self.js.purge_stream(f"KV_{VERSIONS_BUCKET}",
                                       subject=f"$KV.{VERSIONS_BUCKET}.{key}")
            dropped += 1
            if raw is None:
                continue
            m = store_data.manifest_from_bytes(base64.b64decode(json.loads(raw)["manifest"]))
            for p in (m.full, m.delta):
                if p is not None:
                    await self._delete_object(self.payload_name(store_id, kind, version,
                                                                p.format, p.sha256))
        return dropped

    # -- lane heartbeats ----------------------------------------------------------------------
    def keep_heartbeat(self, store_id: str, lane_id: str, body: dict[str, Any],
                       received_at: str) -> None:
        value = json.dumps({"store_id": store_id, "lane_id": lane_id,
                            "received_at": received_at, "body": body},
                           ensure_ascii=False).encode()
        self._run(self.kv[HEARTBEATS_BUCKET].put(f"{token(store_id)}.{token(lane_id)}",
                                                 value))

    def heartbeats(self, store_id: str | None) -> list[tuple[str, str, str, dict[str, Any]]]:
        rows = self._run(self._heartbeats(store_id), timeout=120)
        oldest = datetime.now(UTC).timestamp() - self.heartbeat_ttl_s
        # The bucket's TTL drops old keys; this also honours a TTL shortened since the
        # bucket was made (``kiosk hq setup`` applies it to the bucket).
        return sorted(r for r in rows
                      if store_data.parse_instant(r[2]).timestamp() > oldest)

    async def _heartbeats(self, store_id: str | None
                          ) -> list[tuple[str, str, str, dict[str, Any]]]:
        where = f"{token(store_id)}.*" if store_id is not None else ">"
        watcher = await self.kv[HEARTBEATS_BUCKET].watch(where, ignore_deletes=True)
        rows = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if not entry.value:
                    continue
                data = json.loads(entry.value)
                rows.append((str(data["store_id"]), str(data["lane_id"]),
                             str(data["received_at"]), dict(data["body"])))
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return rows

    def close(self) -> None:
        try:
            self._run(self.nc.drain(), timeout=10)
        except (StoreUnavailable, nats.errors.Error):
            pass
        self._stop_loop()

    def _stop_loop(self) -> None:
        # Let nats-py's leftover tasks end before the loop stops (a watch begun while the
        # server was gone leaves its subscription's reader waiting): otherwise each one is
        # reported "Event loop is closed" when collected, in some later test or command.
        async def cancel_the_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(cancel_the_rest(), self._loop).result(5)
            except Exception:  # noqa: BLE001 - stopping anyway; nothing to report to
                log.debug("NATS: tasks still running at close", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
