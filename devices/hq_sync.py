"""The lane's store-data client: HTTP to head office's store-data and heartbeat endpoints,
and nothing else (docs/store-sync.md, "HTTP").

``StoreDataClient`` asks what is newer than the version the lane holds
(``GET /v1/stores/{store}/data/{kind}`` with ``If-None-Match``), downloads one payload
(``GET .../{version}/{full|delta}``, streamed, refused past ``max_bytes``) and posts the
lane's heartbeat. Every request has connect and read timeouts. It says what head office
answered (``app.domain.sync_reply.Answer``) and decides nothing: checking signatures and
hashes is ``app.services.store_data``'s, polling and backoff ``app.services.store_sync``'s.
This module never touches the database.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import requests

from app.domain.store_data import etag
from app.domain.sync_reply import Answer, AnswerKind, DownloadFailed
from devices.membership import retry_after_seconds

CHUNK = 64 * 1024
# The largest listing read (manifests and signatures, ~2 KB a version: thousands of
# versions); a bigger body is not read into memory whole.
LISTING_MAX_BYTES = 16 * 1024 * 1024


def _transient(response: requests.Response, what: str) -> Answer:
    """A 429/5xx (or any status the contract does not give): wait and try again;
    ``Retry-After`` counts on 429 and 503 only (elsewhere it is not a promise)."""
    status = response.status_code
    hint = retry_after_seconds(response.headers.get("Retry-After")) \
        if status in (429, 503) else None
    return Answer(AnswerKind.TRANSIENT, status, retry_after_s=hint,
                  error=f"head office answered {status} to {what}")


class StoreDataClient:
    """Head office's store-data endpoints for one lane. ``base_url``: the head-office
    service (``sync.url``); ``token``: the lane's bearer token; timeouts in seconds (both
    always set: a head office that accepts the connection and never answers must not hang
    the sync thread); ``max_bytes``: the largest payload accepted (a bigger one is refused
    before it fills the disk or memory). One ``requests.Session`` (kept-alive connections:
    a steady lane's 304s cost one round trip each)."""

    def __init__(self, base_url: str, token: str, store_id: str, lane_id: str, *,
                 connect_timeout: float = 3.0, read_timeout: float = 30.0,
                 max_bytes: int = 512 * 1024 * 1024) -> None:
        self.base_url = base_url.rstrip("/")
        self.token, self.store_id, self.lane_id = token, store_id, lane_id
        self.timeout = (connect_timeout, read_timeout)
        self.max_bytes = max_bytes
        self.http = requests.Session()

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    def listing(self, kind: str, have: int | None) -> Answer:
        """The versions of ``kind`` newer than ``have`` (None: the lane has none).
        NOT_MODIFIED (304), ANSWERED with ``versions`` [(manifest bytes from
        ``manifest_b64``, signature bytes)] oldest first, NOTHING (404: nothing
        published), UNAUTHORIZED (401/403) or TRANSIENT (no answer, a timeout, 429/5xx,
        a body that is not the contract's or over ``LISTING_MAX_BYTES``, streamed so it
        is never read whole). Never raises for what the network or head
        office did."""
        what = f"the {kind} listing"
        headers = self._headers(Accept="application/json")
        if have is not None:
            headers["If-None-Match"] = etag(kind, have)
        try:
            with self.http.get(f"{self.base_url}/v1/stores/{self.store_id}/data/{kind}",
                               headers=headers, timeout=self.timeout, stream=True) as r:
                body = self._read_capped(r, LISTING_MAX_BYTES) \
                    if r.status_code == 200 else b""
        except requests.RequestException as exc:
            return Answer(AnswerKind.TRANSIENT,
                          error=f"head office unreachable: {exc.__class__.__name__}")
        if body is None:
            return Answer(AnswerKind.TRANSIENT, 200, error=f"head office's answer to {what} "
                          f"is over {LISTING_MAX_BYTES} bytes")
        tag = r.headers.get("ETag")
        if r.status_code == 304:
            return Answer(AnswerKind.NOT_MODIFIED, 304, etag=tag)
        if r.status_code == 404:
            return Answer(AnswerKind.NOTHING, 404, error=f"nothing published for {kind}")
        if r.status_code in (401, 403):
            return Answer(AnswerKind.UNAUTHORIZED, r.status_code,
                          error=f"head office refused the lane's token ({r.status_code})")
        if r.status_code != 200:
            return _transient(r, what)
        try:
            data = json.loads(body)
            if data.get("kind") != kind or data.get("store_id") != self.store_id:
                raise ValueError("another store or kind")
            versions = tuple((base64.b64decode(v["manifest_b64"], validate=True),
                              base64.b64decode(v["signature"], validate=True))
                             for v in data["versions"])
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error,
                RecursionError):  # RecursionError: JSON nested past the parser's depth
            return Answer(AnswerKind.TRANSIENT, 200,
                          error=f"head office's answer to {what} is not the contract's JSON")
        return Answer(AnswerKind.ANSWERED, 200, versions=versions, etag=tag)

    def download(self, store: str, kind: str, version: int, format: str) -> bytes:  # noqa: A002
        """One payload's bytes (``format`` "full" or "delta"), streamed and refused past
        ``max_bytes``. Raises :class:`DownloadFailed` (its ``answer``: REFUSED for 404,
        pruned or absent; UNAUTHORIZED; TRANSIENT for no answer, a timeout, 429/5xx, a
        body cut short or too big). The bytes are not checked here: the signed manifest's
        size and SHA-256 are (``app.services.store_data``)."""
        what = f"{kind} {version} {format}"
        url = f"{self.base_url}/v1/stores/{store}/data/{kind}/{version}/{format}"
        try:
            with self.http.get(url, headers=self._headers(Accept="application/gzip"),
                               timeout=self.timeout, stream=True) as r:
                if r.status_code == 404:
                    raise DownloadFailed(Answer(AnswerKind.REFUSED, 404,
                                                error=f"head office no longer has {what}"))
                if r.status_code in (401, 403):
                    raise DownloadFailed(Answer(
                        AnswerKind.UNAUTHORIZED, r.status_code,
                        error=f"head office refused the lane's token ({r.status_code})"))
                if r.status_code != 200:
                    raise DownloadFailed(_transient(r, f"the download of {what}"))
                declared = r.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise DownloadFailed(self._too_big(what))
                chunks: list[bytes] = []
                size = 0
                for chunk in r.iter_content(CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise DownloadFailed(self._too_big(what))
                    chunks.append(chunk)
                return b"".join(chunks)
        except requests.RequestException as exc:  # includes a read timeout mid-body
            raise DownloadFailed(Answer(
                AnswerKind.TRANSIENT,
                error=f"the download of {what} failed: {exc.__class__.__name__}")) from None

    @staticmethod
    def _read_capped(r: requests.Response, cap: int) -> bytes | None:
        """The body of a streamed response, or None past ``cap`` bytes (declared or read)."""
        declared = r.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            return None
        chunks: list[bytes] = []
        size = 0
        for chunk in r.iter_content(CHUNK):
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_big(self, what: str) -> Answer:
        return Answer(AnswerKind.TRANSIENT, 200,
                      error=f"the download of {what} is over {self.max_bytes} bytes "
                            "(sync.max_download_mb)")

    def post_heartbeat(self, body: dict[str, Any]) -> Answer:
        """POST the lane's heartbeat (docs/store-sync.md, "Heartbeat body"): ANSWERED (200
        kept), REFUSED (400: not a heartbeat), UNAUTHORIZED, TRANSIENT. Never raises."""
        url = (f"{self.base_url}/v1/stores/{self.store_id}/lanes/{self.lane_id}"
               "/heartbeat")
        try:
            r = self.http.post(url, data=json.dumps(body, ensure_ascii=False).encode(),
                               headers=self._headers(**{"Content-Type": "application/json"}),
                               timeout=self.timeout)
        except requests.RequestException as exc:
            return Answer(AnswerKind.TRANSIENT,
                          error=f"head office unreachable: {exc.__class__.__name__}")
        if r.status_code == 200:
            return Answer(AnswerKind.ANSWERED, 200)
        if r.status_code in (400, 404, 422):
            return Answer(AnswerKind.REFUSED, r.status_code,
                          error=f"head office refused the heartbeat ({r.status_code}): "
                                f"{r.text[:200]}")
        if r.status_code in (401, 403):
            return Answer(AnswerKind.UNAUTHORIZED, r.status_code,
                          error=f"head office refused the lane's token ({r.status_code})")
        return _transient(r, "the heartbeat")

    def close(self) -> None:
        self.http.close()


__all__ = ["StoreDataClient"]
