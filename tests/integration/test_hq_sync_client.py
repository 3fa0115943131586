"""The lane's store-data HTTP client (devices/hq_sync.py) against a scripted HTTP server on
127.0.0.1: each status of the contract read into the right answer, If-None-Match sent,
downloads streamed and capped, timeouts always set."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.domain.sync_reply import AnswerKind, DownloadFailed
from devices.hq_sync import StoreDataClient


class Script:
    """What the server answers next: (status, headers, body bytes, delay_s, cut)."""

    def __init__(self) -> None:
        self.reply: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")
        self.delay = 0.0
        self.cut = False  # say a longer Content-Length than sent, then close
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def _answer(self, body_in: bytes) -> None:
        s = self.server.script
        s.seen.append((self.command, self.path, dict(self.headers), body_in))
        if s.delay:
            time.sleep(s.delay)
        status, headers, body = s.reply
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) + (100 if s.cut else 0)))
        self.end_headers()
        self.wfile.write(body)
        if s.cut:
            self.wfile.flush()
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self._answer(b"")

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(n))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.script = Script()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv.script
    srv.shutdown()
    srv.server_close()


def _client(url: str, **kw: float) -> StoreDataClient:
    return StoreDataClient(url, "tok", "store-01", "lane-01", **kw)  # type: ignore[arg-type]


def test_listing_sends_the_etag_of_the_version_held_and_reads_a_304(server):
    url, script = server
    script.reply = (304, {"ETag": '"catalogue-41"'}, b"")
    answer = _client(url).listing("catalogue", 41)
    assert answer.kind is AnswerKind.NOT_MODIFIED and answer.etag == '"catalogue-41"'
    method, path, headers, _ = script.seen[-1]
    assert (method, path) == ("GET", "/v1/stores/store-01/data/catalogue")
    assert headers["If-None-Match"] == '"catalogue-41"'
    assert headers["Authorization"] == "Bearer tok"
    _client(url).listing("catalogue", None)
    assert "If-None-Match" not in script.seen[-1][2]  # a lane with nothing names nothing


def test_listing_reads_the_signed_bytes_from_manifest_b64(server):
    url, script = server
    raw, sig = b'{"a":1}', b"\x01" * 64
    body = {"store_id": "store-01", "kind": "catalogue", "latest": 2, "versions": [
        {"manifest": {"ignored": True}, "manifest_b64": base64.b64encode(raw).decode(),
         "signature": base64.b64encode(sig).decode()}]}
    script.reply = (200, {"ETag": '"catalogue-2"'}, json.dumps(body).encode())
    answer = _client(url).listing("catalogue", 1)
    assert answer.kind is AnswerKind.ANSWERED
    assert answer.versions == ((raw, sig),)


@pytest.mark.parametrize(("status", "headers", "body", "kind", "retry"), [
    (404, {}, b"{}", AnswerKind.NOTHING, None),
    (401, {}, b"{}", AnswerKind.UNAUTHORIZED, None),
    (403, {}, b"{}", AnswerKind.UNAUTHORIZED, None),
    (503, {"Retry-After": "17"}, b"{}", AnswerKind.TRANSIENT, 17.0),
    (429, {"Retry-After": "3"}, b"{}", AnswerKind.TRANSIENT, 3.0),
    (500, {"Retry-After": "99"}, b"{}", AnswerKind.TRANSIENT, None),  # not a promise on 500
    (200, {}, b"<html>proxy login</html>", AnswerKind.TRANSIENT, None),  # not the contract
    (200, {}, json.dumps({"store_id": "store-02", "kind": "catalogue",
                          "versions": []}).encode(), AnswerKind.TRANSIENT, None),
    (200, {}, json.dumps({"store_id": "store-01", "kind": "catalogue", "versions": [
        {"manifest_b64": "%%%", "signature": ""}]}).encode(), AnswerKind.TRANSIENT, None),
    # JSON nested past the parser's depth: RecursionError, not a ValueError (it escaped
    # listing, which must never raise for what head office sent)
    (200, {}, b"[" * 100_000, AnswerKind.TRANSIENT, None),
])
def test_listing_answers(server, status, headers, body, kind, retry):
    url, script = server
    script.reply = (status, headers, body)
    answer = _client(url).listing("catalogue", 3)
    assert answer.kind is kind
    assert answer.retry_after_s == retry


def test_an_unreachable_head_office_is_transient():
    answer = _client("http://127.0.0.1:9").listing("catalogue", None)
    assert answer.kind is AnswerKind.TRANSIENT and "unreachable" in answer.error


def test_a_head_office_that_never_answers_times_out(server):
    url, script = server
    script.delay = 2.0
    started = time.monotonic()
    answer = _client(url, read_timeout=0.3).listing("catalogue", None)
    assert answer.kind is AnswerKind.TRANSIENT
    assert time.monotonic() - started < 2.0  # the read timeout ended it, not the server


def test_download_returns_the_bytes_and_names_the_version(server):
    url, script = server
    script.reply = (200, {"Content-Type": "application/gzip"}, b"x" * 200_000)
    data = _client(url).download("store-01", "catalogue", 7, "delta")
    assert data == b"x" * 200_000
    assert script.seen[-1][1] == "/v1/stores/store-01/data/catalogue/7/delta"


def test_a_download_over_the_cap_is_refused_before_it_is_read_whole(server):
    url, script = server
    script.reply = (200, {}, b"x" * 10_000)
    with pytest.raises(DownloadFailed) as caught:
        _client(url, max_bytes=1000).download("store-01", "catalogue", 7, "full")
    assert "over 1000 bytes" in str(caught.value)


def test_a_download_cut_short_fails_rather_than_returning_part(server):
    url, script = server
    script.reply = (200, {}, b"x" * 5000)
    script.cut = True
    with pytest.raises(DownloadFailed) as caught:
        _client(url, read_timeout=2).download("store-01", "catalogue", 7, "full")
    assert caught.value.answer.kind is AnswerKind.TRANSIENT


@pytest.mark.parametrize(("status", "kind"), [(404, AnswerKind.REFUSED),
                                              (401, AnswerKind.UNAUTHORIZED),
                                              (503, AnswerKind.TRANSIENT)])
def test_download_failures(server, status, kind):
    url, script = server
    script.reply = (status, {"Retry-After": "4"}, b"{}")
    with pytest.raises(DownloadFailed) as caught:
        _client(url).download("store-01", "catalogue", 7, "full")
    assert caught.value.answer.kind is kind


def test_heartbeat_posts_the_body_to_the_lanes_path(server):
    url, script = server
    script.reply = (200, {}, b'{"kept": true, "expires_in_s": 604800}')
    answer = _client(url).post_heartbeat({"lane_id": "lane-01"})
    assert answer.kind is AnswerKind.ANSWERED
    method, path, _headers, body = script.seen[-1]
    assert (method, path) == ("POST", "/v1/stores/store-01/lanes/lane-01/heartbeat")
    assert json.loads(body) == {"lane_id": "lane-01"}
    script.reply = (400, {}, b'{"error": "not a heartbeat"}')
    assert _client(url).post_heartbeat({}).kind is AnswerKind.REFUSED


def test_a_listing_over_its_cap_is_refused_before_it_is_read_whole(server):
    """A listing is a few kilobytes (manifests, not payloads); a body past
    ``LISTING_MAX_BYTES`` (a broken proxy, a hostile network) is not read into memory
    whole: transient, nothing changes, the lane tries again later."""
    from devices.hq_sync import LISTING_MAX_BYTES

    url, script = server
    body = json.dumps({"store_id": "store-01", "kind": "catalogue", "latest": 1,
                       "versions": [], "pad": "x" * (LISTING_MAX_BYTES + 1)}).encode()
    script.reply = (200, {"Content-Type": "application/json"}, body)
    answer = _client(url).listing("catalogue", None)
    assert answer.kind is AnswerKind.TRANSIENT
    assert "over" in (answer.error or "")
