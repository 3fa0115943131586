"""The head-office HTTP service: docs/membership-api.yaml for lanes, over an
:class:`hq.stores.HqStore`.

Stateless: it holds no fact of its own (the member key, batch answers and audit heads
are in the store), so any number of instances serve the same store behind any HTTP load
balancer. A store that cannot answer makes it reply ``503`` with ``Retry-After``, which
lanes honour; nothing is acknowledged that the store has not kept.

``HqServer`` is a ``ThreadingHTTPServer`` on 127.0.0.1 by default; the reference backend
(``devices/sim/membership_backend.py``) extends it with fault switches for tests.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.domain import store_data
from hq import fleet
from hq.stores import HqStore, StoreUnavailable

#: Seconds a lane is asked to wait when the store is unavailable.
RETRY_AFTER_S = 5
#: The largest request body read at all (bytes): a lane's event batch is at most 256 KiB
#: (``EventUploader.max_bytes``) and one oversized event; past this the answer is 413
#: before a byte is read (the uploader halves a refused batch), so a client naming a
#: huge ``Content-Length`` (before any token check) cannot make the service allocate it.
MAX_BODY_BYTES = 16 * 1024 * 1024

_AUDIT_HEAD = re.compile(r"^/v1/kiosks/([^/]+)/audit-head$")
# Store sync: lanes reporting back (docs/store-sync.md).
_HEARTBEAT = re.compile(r"^/v1/stores/([^/?]+)/lanes/([^/?]+)/heartbeat$")
_LANES = re.compile(r"^/v1/stores/([^/?]+)/lanes$")
# -- store data versions (issue 22) --
_STORE_DATA = re.compile(r"^/v1/stores/([^/]+)/data/([^/]+)(?:/([^/]+)/([^/]+))?$")


class HqHandler(BaseHTTPRequestHandler):
    """One request. Subclasses may add paths by overriding :meth:`extra_get` /
    :meth:`extra_post` and refuse batches in :meth:`before_ingest`."""

    server: HqServer

    def log_message(self, fmt: str, *args: Any) -> None:
        pass  # requests are counted, not logged: a busy chain would flood the journal

    def reply(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``data`` as JSON with ``status`` and extra ``headers``."""
        body = json.dumps(data, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def authorised(self) -> bool:
        """The bearer token matches the server's."""
        return self.headers.get("Authorization", "") == f"Bearer {self.server.token}"

    def do_GET(self) -> None:  # noqa: N802
        try:
            self._get()
        except StoreUnavailable as exc:
            self.reply(503, {"error": f"store unavailable: {exc}"},
                       {"Retry-After": str(RETRY_AFTER_S)})

    def do_POST(self) -> None:  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self.reply(400, {"error": "Content-Length must be a number"})
        if length < 0:
            return self.reply(400, {"error": "Content-Length must be a number"})
        # Checked before reading: a body past the bound is never read, let alone held.
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body must not be taken as a request
            return self.reply(413, {"error": f"a request body is at most {MAX_BODY_BYTES} "
                                             "bytes"})
        if _HEARTBEAT.match(self.path) and length > fleet.MAX_BODY_BYTES:
            self._discard(length)  # read past, never held: the client gets its answer
            return self.reply(400, {"error": f"a heartbeat is at most "
                                             f"{fleet.MAX_BODY_BYTES} bytes"})
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            self._post(raw)
        except StoreUnavailable as exc:
            self.reply(503, {"error": f"store unavailable: {exc}"},
                       {"Retry-After": str(RETRY_AFTER_S)})

    def _discard(self, length: int) -> None:
        """Read ``length`` body bytes in 64 KiB pieces and drop them."""
        while length > 0:
            got = self.rfile.read(min(length, 65536))
            if not got:
                return
            length -= len(got)

    def _get(self) -> None:
        store = self.server.store
        path, _, query = self.path.partition("?")
        if path == "/":
            return self._status_page()
        if path == "/v1/keys/member":
            return self.reply(200, {"member_key": self.server.member_key_text()})
        if self.extra_get(path, query):
            return None
        if not path.startswith("/v1/"):
            return self.reply(404, {"error": "not found"})
        if not self.authorised():
            return self.reply(401, {"error": "bad token"})
        if path == "/v1/members" and query.startswith("phone="):
            member_id = store.member_by_phone(query.removeprefix("phone="))
            if member_id is None:
                return self.reply(404, {"error": "no such member"})
            return self.reply(200, {"member_id": member_id})
        if m := _AUDIT_HEAD.match(path):
            heads = store.audit_heads(m.group(1))
            if not heads:
                return self.reply(404, {"error": "no audit head from this kiosk yet"})
            return self.reply(200, {"seq": heads[-1][0], "hash": heads[-1][1],
                                    "heads": [{"seq": a, "hash": b} for a, b in heads]})
        if m := _LANES.match(path):
            return self._lanes(unquote(m.group(1)))
        if m := _STORE_DATA.match(path):
            return self._store_data(*m.groups())
        if path.startswith("/v1/members/"):
            member = store.member(path.rsplit("/", 1)[1])
            if member is None:
                return self.reply(404, {"error": "no such member"})
            return self.reply(200, member.as_json())
        return self.reply(404, {"error": "not found"})

    # -- store data versions (issue 22, docs/store-sync.md) ---------------------------------
    def _store_data(self, store_id: str, kind: str, version: str | None,
                    fmt: str | None) -> None:
        """``GET /v1/stores/{store_id}/data/{kind}[/{version}/{full|delta}]``: a malformed
        store id or version is 400; an unknown kind or format, or nothing kept, is 404."""
        try:
            store_data.check_store_id(store_id)
        except ValueError as exc:
            return self.reply(400, {"error": str(exc)})
        if kind not in store_data.KINDS:
            return self.reply(404, {"error": f"no data kind {kind!r}; kinds: "
                                             f"{', '.join(store_data.KINDS)}"})
        if version is None or fmt is None:
            return self._store_data_versions(store_id, kind)
        if not version.isdigit() or not version.isascii() or len(version) > 18 \
                or int(version) < 1:
            return self.reply(400, {"error": f"version {version!r} is not a whole number "
                                             "from 1"})
        if fmt not in store_data.FORMATS:
            return self.reply(404, {"error": f"no payload format {fmt!r}; formats: "
                                             f"{', '.join(store_data.FORMATS)}"})
        data = self.server.store.payload(store_id, kind, int(version), fmt)
        if data is None:
            return self.reply(404, {"error": f"{kind} version {version} of store {store_id} "
                                             f"has no {fmt} payload here (pruned, never "
                                             "published, or version 1's delta)"})
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"sha256:{store_data.digest(data)}"')
        self.end_headers()
        self.wfile.write(data)
        return None

    def _store_data_versions(self, store_id: str, kind: str) -> None:
        store = self.server.store
        latest = store.latest_version(store_id, kind)
        if latest is None:
            return self.reply(404, {"error": f"no {kind} published for store {store_id}"})
        tag = store_data.etag(kind, latest)
        held = store_data.version_from_etag(self.headers.get("If-None-Match"), kind)
        if held == latest:  # the common answer to a polling lane: nothing new
            self.send_response(304)
            self.send_header("ETag", tag)
            self.end_headers()
            return None
        # A version the store never had (above the newest: another head office's, or a
        # wiped store) is unknown: list every kept version, as for none.
        after = held if held is not None and held < latest else None
        versions = [{"manifest": json.loads(raw), "signature": base64.b64encode(sig).decode(),
                     "manifest_b64": base64.b64encode(raw).decode()}
                    for raw, sig in store.versions_after(store_id, kind, after)]
        return self.reply(200, {"store_id": store_id, "kind": kind, "latest": latest,
                                "versions": versions}, {"ETag": tag})

    # -- end store data versions ------------------------------------------------------------

    def _status_page(self) -> None:
        rows = "".join(f"<tr><td>{k}</td><td>{n}</td></tr>"
                       for k, n in self.server.store.counts().items())
        page = ("<!doctype html><meta charset=utf-8><title>Head office</title>"
                "<h1>Events delivered</h1><table border=1><tr><th>kiosk</th><th>events</th>"
                f"</tr>{rows}</table>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def _post(self, raw: bytes) -> None:
        if self.extra_post(self.path, raw):
            return None
        if m := _HEARTBEAT.match(self.path):
            return self._heartbeat(unquote(m.group(1)), unquote(m.group(2)), raw)
        if self.path != "/v1/events":
            return self.reply(404, {"error": "not found"})
        if not self.authorised():
            return self.reply(401, {"error": "bad or missing bearer token"})
        if self.before_ingest():
            return None
        key = self.headers.get("Idempotency-Key", "")
        try:
            body = json.loads(raw)
            kiosk_id, store_id = str(body["kiosk_id"]), str(body["store_id"])
            events = list(body["events"])
        except (ValueError, KeyError, TypeError, RecursionError):  # nested too deep: 400
            return self.reply(400, {"error": "body must be the events envelope"})
        if not key:
            return self.reply(400, {"error": "Idempotency-Key header required"})
        head = body.get("audit_head")
        # A head the store could not keep (a seq past 63 bits) is ignored like any other
        # malformed one, rather than failing the batch the lane would then resend forever.
        if isinstance(head, dict) and isinstance(head.get("seq"), int) \
                and not isinstance(head["seq"], bool) and 0 < head["seq"] < 2 ** 63:
            self.server.store.keep_audit_head(kiosk_id, head["seq"], str(head.get("hash", "")))
        answer = self.server.store.ingest(key, kiosk_id, store_id, events,
                                          self.refused_types())
        self.server.ingested(answer.accepted)
        return self.reply(200, answer.as_json())

    # -- store sync: lanes reporting back (docs/store-sync.md) ------------------------------
    def _heartbeat(self, store_id: str, lane_id: str, raw: bytes) -> None:
        """``POST /v1/stores/{store_id}/lanes/{lane_id}/heartbeat``: keep the lane's latest
        heartbeat; 400 with the reason for a body that is not one (hq.fleet)."""
        if not self.authorised():
            return self.reply(401, {"error": "bad or missing bearer token"})
        try:  # the contract's StoreId pattern for both: they are keys and NATS tokens
            store_data.check_store_id(store_id)
            if not store_data.is_lane_id(lane_id):
                raise ValueError(f"{lane_id[:80]!r} is not a lane id (1-64 printable "
                                 "characters, no '/')")
        except ValueError as exc:
            return self.reply(400, {"error": str(exc)})
        if len(raw) > fleet.MAX_BODY_BYTES:
            return self.reply(400, {"error": f"a heartbeat is at most "
                                             f"{fleet.MAX_BODY_BYTES} bytes"})
        try:
            body = json.loads(raw)
        except ValueError:
            return self.reply(400, {"error": "the body is not JSON"})
        except RecursionError:  # arrays in arrays thousands deep: not a heartbeat either
            return self.reply(400, {"error": "the body is nested too deeply to be a "
                                             "heartbeat"})
        problem = fleet.heartbeat_problem(body, store_id, lane_id)
        if problem:
            return self.reply(400, {"error": f"not a heartbeat: {problem}"})
        store = self.server.store
        store.keep_heartbeat(store_id, lane_id, body,
                             store_data.instant_text(datetime.now(UTC)))
        return self.reply(200, {"kept": True, "expires_in_s": int(store.heartbeat_ttl_s)})

    def _lanes(self, store_id: str) -> None:
        """``GET /v1/stores/{store_id}/lanes``: the store's fleet rows (hq.fleet); 400 for
        a malformed store id."""
        try:
            store_data.check_store_id(store_id)
        except ValueError as exc:
            return self.reply(400, {"error": str(exc)})
        rows = fleet.fleet_rows(self.server.store, store_id, datetime.now(UTC))
        return self.reply(200, {"store_id": store_id, "lanes": rows})

    # -- hooks for the reference backend -------------------------------------------------
    def extra_get(self, path: str, query: str) -> bool:
        """Answer a GET the contract does not name; True when answered."""
        return False

    def extra_post(self, path: str, raw: bytes) -> bool:
        """Answer a POST the contract does not name; True when answered."""
        return False

    def before_ingest(self) -> bool:
        """Refuse a batch before it is read (True when a reply was sent)."""
        return False

    def refused_types(self) -> frozenset[str]:
        """Event types the store is told to reject."""
        return frozenset()


class HqServer(ThreadingHTTPServer):
    """The service on ``host:port`` (port 0: any free port) over ``store``, checking the
    lanes' bearer ``token``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, store: HqStore, *, token: str, port: int = 0, host: str = "127.0.0.1",
                 handler: type[HqHandler] = HqHandler) -> None:
        self.store = store
        self.token = token
        self._key_lock = threading.Lock()
        self._member_key: Ed25519PrivateKey | None = None
        super().__init__((host, port), handler)

    @property
    def member_key(self) -> Ed25519PrivateKey:
        """The store's member key (read once: it never changes for a store)."""
        with self._key_lock:
            if self._member_key is None:
                key = serialization.load_pem_private_key(self.store.member_key_pem(), None)
                assert isinstance(key, Ed25519PrivateKey)
                self._member_key = key
            return self._member_key

    def member_key_text(self) -> str:
        """The public member key, base64 of the raw 32 bytes (docs/members.md)."""
        raw = self.member_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                        serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @property
    def url(self) -> str:
        host = self.server_address[0]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{self.server_address[1]}"

    def ingested(self, event_ids: list[str]) -> None:
        """Called with the event ids a batch stored for the first time (a hook)."""

    def start(self) -> HqServer:
        """Serve on a daemon thread; returns self."""
        threading.Thread(target=self.serve_forever, name="hq-service", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port (the store stays open)."""
        self.shutdown()
        self.server_close()
