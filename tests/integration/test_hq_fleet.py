"""Lanes reporting back (docs/store-sync.md, issue 22): heartbeats and the fleet view over
a real ``HqServer`` on 127.0.0.1, on the embedded store (a SQLite file) and on JetStream (a
real ``nats-server``), with every answer checked against docs/membership-api.yaml."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import jsonschema
import pytest
import requests

from app.domain import store_data
from hq.cluster import LocalCluster
from hq.nats_store import NatsStore
from hq.service import HqServer
from hq.sqlite_store import SqliteStore
from tests.hq_versions import make_version, rows
from tests.openapi import check, request_schema, response_schema

TOKEN = "hq-test-token"  # noqa: S105 - a test's own token
API = "membership-api.yaml"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DOCS = Path(__file__).resolve().parents[2] / "docs"


def contract_example() -> dict:
    """The heartbeat body of docs/store-sync.md, as written there."""
    page = (DOCS / "store-sync.md").read_text(encoding="utf-8")
    block = page.split("### Heartbeat body", 1)[1]
    return dict(json.loads(re.search(r"```json\n(.*?)```", block, re.S).group(1)))


def beat(lane: str = "lane-01", store: str = "store-01", **changes) -> dict:
    body = dict(contract_example(), lane_id=lane, store_id=store)
    body.update(changes)
    return body


def utc_now() -> str:
    return store_data.instant_text(datetime.now(UTC))


@pytest.fixture(scope="module")
def nats_node(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("nats"), size=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "nats"])
def service(request, tmp_path):
    """(server, store): the service over a fresh store of either kind. The JetStream
    server is shared by the module's tests, so each test uses its own store ids."""
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "hq.db")
    else:
        store = NatsStore(request.getfixturevalue("nats_node").urls)
    server = HqServer(store, token=TOKEN).start()
    yield server, store
    server.stop()
    store.close()


def post_beat(server: HqServer, store_id: str, lane_id: str, body: object,
              headers: dict | None = None) -> requests.Response:
    return requests.post(f"{server.url}/v1/stores/{store_id}/lanes/{lane_id}/heartbeat",
                         data=json.dumps(body), timeout=10,
                         headers=AUTH if headers is None else headers)


def lanes(server: HqServer, store_id: str) -> list[dict]:
    got = requests.get(f"{server.url}/v1/stores/{store_id}/lanes", headers=AUTH, timeout=10)
    assert got.status_code == 200, got.text
    check(API, got.json(), response_schema(API, "get", "/v1/stores/{store_id}/lanes", 200))
    return list(got.json()["lanes"])


def test_the_contract_pages_heartbeat_example_is_a_heartbeat_by_the_yaml():
    schema = request_schema(API, "post", "/v1/stores/{store_id}/lanes/{lane_id}/heartbeat")
    check(API, contract_example(), schema)
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        check(API, dict(contract_example(), versions={"catalogue": "42"}), schema)


def test_heartbeats_are_kept_per_lane_latest_wins_and_the_fleet_shows_who_is_behind(service):
    server, store = service
    sid = f"fleet-{type(store).__name__}"
    for version in (1, 2, 3):  # catalogue 3 is the newest; promotions 1
        store.publish_version(*make_version(sid, "catalogue", version, rows(3 + version)))
    store.publish_version(*make_version(sid, "promotions", 1, rows(2)))

    first = post_beat(server, sid, "lane-01", beat("lane-01", sid))
    assert first.status_code == 200
    check(API, first.json(), response_schema(
        API, "post", "/v1/stores/{store_id}/lanes/{lane_id}/heartbeat", 200))
    assert first.json() == {"kept": True, "expires_in_s": 7 * 86400}
    # lane-01 again: now on catalogue 3, promotions 1, no lane keys ever applied.
    later = beat("lane-01", sid, versions={"catalogue": 3, "promotions": 1,
                                           "lane-keys": None}, alerts=[], staged={})
    assert post_beat(server, sid, "lane-01", later).status_code == 200
    behind = beat("lane-02", sid, versions={"catalogue": 2, "promotions": 1,
                                            "lane-keys": None},
                  outbox={"pending": 300, "dead": 1,
                          "oldest_pending_at": "2026-12-01T08:58:00+08:00"})
    assert post_beat(server, sid, "lane-02", behind).status_code == 200
    post_beat(server, f"{sid}-b", "lane-09", beat("lane-09", f"{sid}-b"))  # another store

    rows_ = lanes(server, sid)
    assert [r["lane_id"] for r in rows_] == ["lane-01", "lane-02"]
    one, two = rows_
    assert one["versions"] == {"catalogue": 3, "promotions": 1, "lane-keys": None}
    assert one["latest"] == {"catalogue": 3, "promotions": 1, "lane-keys": None}
    assert one["behind"] == [] and one["alerts"] == []  # the latest heartbeat, not the first
    assert two["behind"] == ["catalogue"]
    assert two["outbox"]["pending"] == 300
    assert two["health"] == {"state": "ok", "summary": "all devices ok"}
    assert 0 <= one["silent_s"] < 3600
    assert store_data.parse_instant(one["last_seen"]) <= datetime.now(UTC)
    # A kind published after the lane's heartbeat makes it behind at once.
    store.publish_version(*make_version(sid, "lane-keys", 1, rows(1)))
    assert lanes(server, sid)[0]["behind"] == ["lane-keys"]
    assert [r["lane_id"] for r in lanes(server, f"{sid}-b")] == ["lane-09"]
    assert lanes(server, f"{sid}-none") == []


def test_a_lane_waiting_for_a_version_published_for_later_is_not_behind(tmp_path):
    """Found in review: a version published for a later date made every lane 'behind'
    at once, though each applies it only at its effective time."""
    store = SqliteStore(tmp_path / "hq.db")
    server = HqServer(store, token=TOKEN).start()
    try:
        store.publish_version(*make_version("s-later", "catalogue", 1, rows(3)))
        later = store_data.instant_text(datetime.now(UTC) + timedelta(days=30))
        store.publish_version(*make_version("s-later", "catalogue", 2, rows(4), rows(3),
                                            effective_at=later))
        post_beat(server, "s-later", "lane-01", beat("lane-01", "s-later", versions={
            "catalogue": 1, "promotions": None, "lane-keys": None}, staged={"catalogue": 2}))
        post_beat(server, "s-later", "lane-02", beat("lane-02", "s-later", versions={
            "catalogue": None, "promotions": None, "lane-keys": None}))
        row1, row2 = lanes(server, "s-later")
        assert row1["latest"]["catalogue"] == 2 and row1["behind"] == []
        assert row2["behind"] == ["catalogue"]  # it lacks version 1, in effect now
    finally:
        server.stop()
        store.close()


@pytest.mark.parametrize(("change", "reason"), [
    ({"lane_id": "lane-99"}, "lane_id"),
    ({"store_id": "elsewhere"}, "store_id"),
    ({"versions": {"catalogue": "42"}}, "versions.catalogue"),
    ({"versions": {"catalogue": 0}}, "versions.catalogue"),
    ({"versions": {"catalogue": True}}, "versions.catalogue"),
    ({"versions": {"prices": 3}}, "prices"),
    ({"versions": [42]}, "versions"),
    ({"staged": {"catalogue": 1.5}}, "staged.catalogue"),
    ({"sent_at": "yesterday"}, "sent_at"),
    ({"sent_at": "2026-12-01T00:59:00"}, "sent_at"),  # no offset: which zone?
    ({"health": {"state": "fine", "summary": ""}}, "health.state"),
    ({"health": {"state": "ok"}}, "health"),
    ({"outbox": {"pending": -1, "dead": 0, "oldest_pending_at": None}}, "outbox.pending"),
    ({"alerts": "printer paper low"}, "alerts"),
    ({"alerts": [1]}, "alerts"),
    ({"extra": 1}, "unknown field"),
    ({"versions": None}, "versions"),
])
def test_a_body_that_is_not_a_heartbeat_is_400_with_the_reason_and_nothing_kept(
        service, change, reason):
    server, store = service
    sid = f"bad-{type(store).__name__}"
    body = beat("lane-01", sid, **change)
    if reason not in ("lane_id", "store_id"):  # those are rules of the path
        with pytest.raises(jsonschema.ValidationError):  # the yaml refuses it too
            check(API, body, request_schema(
                API, "post", "/v1/stores/{store_id}/lanes/{lane_id}/heartbeat"))
    refused = post_beat(server, sid, "lane-01", body)
    assert refused.status_code == 400
    assert reason in refused.json()["error"]
    check(API, refused.json(), response_schema(
        API, "post", "/v1/stores/{store_id}/lanes/{lane_id}/heartbeat", 400))
    assert lanes(server, sid) == []


def test_missing_fields_and_garbage_are_400_too(service):
    server, store = service
    sid = f"garbage-{type(store).__name__}"
    body = beat("lane-01", sid)
    del body["outbox"]
    assert "missing outbox" in post_beat(server, sid, "lane-01", body).json()["error"]
    raw = requests.post(f"{server.url}/v1/stores/{sid}/lanes/lane-01/heartbeat",
                        data=b"{not json", headers=AUTH, timeout=10)
    assert raw.status_code == 400 and "JSON" in raw.json()["error"]
    assert post_beat(server, sid, "lane-01", [body]).status_code == 400  # not an object
    huge = requests.post(f"{server.url}/v1/stores/{sid}/lanes/lane-01/heartbeat",
                         data=b"{" + b" " * 70_000 + b"}", headers=AUTH, timeout=10)
    assert huge.status_code == 400 and "at most" in huge.json()["error"]
    assert lanes(server, sid) == []


def test_without_the_token_both_endpoints_are_401(service):
    server, _ = service
    assert post_beat(server, "s", "lane-01", beat("lane-01", "s"), headers={}).status_code \
        == 401
    assert post_beat(server, "s", "lane-01", beat("lane-01", "s"), headers={
        "Authorization": "Bearer wrong"}).status_code == 401
    assert requests.get(f"{server.url}/v1/stores/s/lanes", timeout=10).status_code == 401


def test_a_lane_silent_past_the_ttl_leaves_the_fleet_on_the_embedded_store(tmp_path):
    """Expiry on read (gone at once) and pruning (the row deleted at the next heartbeat
    of any lane), with the TTL the store was given."""
    store = SqliteStore(tmp_path / "hq.db", heartbeat_ttl_s=3600)
    server = HqServer(store, token=TOKEN).start()
    try:
        long_ago = store_data.instant_text(datetime.now(UTC) - timedelta(hours=2))
        store.keep_heartbeat("s-ttl", "lane-old", beat("lane-old", "s-ttl"), long_ago)
        kept = post_beat(server, "s-ttl", "lane-new", beat("lane-new", "s-ttl"))
        assert kept.json()["expires_in_s"] == 3600
        assert [r["lane_id"] for r in lanes(server, "s-ttl")] == ["lane-new"]
        assert store.conn.execute("SELECT lane_id FROM lane_heartbeats").fetchall() == [
            ("lane-new",)]  # pruned, not just hidden
        # Hidden on read even before a heartbeat prunes it.
        store.conn.execute("UPDATE lane_heartbeats SET received_at = ?", [long_ago])
        assert lanes(server, "s-ttl") == []
    finally:
        server.stop()
        store.close()


def test_silent_s_counts_from_when_head_office_received_it(tmp_path):
    store = SqliteStore(tmp_path / "hq.db")
    try:
        ten_min = store_data.instant_text(datetime.now(UTC) - timedelta(minutes=10))
        store.keep_heartbeat("s", "lane-01", beat("lane-01", "s"), ten_min)
        from hq.fleet import fleet_rows

        (row,) = fleet_rows(store, "s", store_data.parse_instant(ten_min)
                            + timedelta(minutes=10, seconds=5))
        assert row["silent_s"] == 605 and row["last_seen"] == ten_min
    finally:
        store.close()


def test_the_nats_heartbeat_answer_says_the_stores_ttl(nats_node):
    store = NatsStore(nats_node.urls, heartbeat_ttl_s=7 * 86400)
    server = HqServer(store, token=TOKEN).start()
    try:
        got = post_beat(server, "s-nats-ttl", "lane 1", beat("lane 1", "s-nats-ttl"))
        assert got.status_code == 200 and got.json()["expires_in_s"] == 7 * 86400
        # A lane id with a space (percent-encoded in the path) is the plain id again.
        assert [r["lane_id"] for r in lanes(server, "s-nats-ttl")] == ["lane 1"]
    finally:
        server.stop()
        store.close()


def _fleet_store(path: Path) -> None:
    """A head-office file with catalogue 1..3 published for store-01 and three lanes:
    lane-01 current (20 s ago), lane-02 behind and quiet for 42 minutes, store-02's lane
    three hours ago."""
    store = SqliteStore(path)
    try:
        for v in (1, 2, 3):
            store.publish_version(*make_version("store-01", "catalogue", v, rows(v),
                                                rows(v - 1) if v > 1 else None))
        now = datetime.now(UTC)
        store.keep_heartbeat("store-01", "lane-01", beat(
            "lane-01", "store-01", versions={"catalogue": 3}, staged={}, alerts=[]),
            store_data.instant_text(now - timedelta(seconds=20)))
        store.keep_heartbeat("store-01", "lane-02", beat(
            "lane-02", "store-01", versions={"catalogue": 2},
            outbox={"pending": 340, "dead": 2, "oldest_pending_at": None}),
            store_data.instant_text(now - timedelta(minutes=42)))
        store.keep_heartbeat("store-02", "lane-01", beat("lane-01", "store-02"),
                             store_data.instant_text(now - timedelta(hours=3)))
    finally:
        store.close()


def test_kiosk_hq_fleet_lists_lanes_marks_silent_and_behind_ones(tmp_path):
    from tests.helpers import run_kiosk

    _fleet_store(tmp_path / "hq.db")
    address = f"sqlite:{tmp_path / 'hq.db'}"
    ran = run_kiosk("hq", "fleet", "--store-address", address)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].split()[:3] == ["STORE", "LANE", "LAST"]
    one, two, other = lines[1:4]
    assert one.startswith("store-01  lane-01") and "up to date" in one and "SILENT" not in one
    assert "s ago" in one and "catalogue 3, promotions -, lane-keys -" in one
    assert "SILENT" in two and "42 min ago" in two and "behind: catalogue" in two
    assert "340 pending, 2 dead" in two and "printer paper low" in two
    assert other.startswith("store-02") and "3 h ago" in other
    assert lines[-1] == ("3 lanes of any store: 1 behind, 2 silent (no heartbeat for over "
                         "300 s)")

    only = run_kiosk("hq", "fleet", "--store-address", address, "--store", "store-01",
                     "--json")
    assert only.returncode == 0
    fleet_json = json.loads(only.stdout)
    assert [r["lane_id"] for r in fleet_json] == ["lane-01", "lane-02"]
    check(API, {"store_id": "store-01", "lanes": fleet_json},
          response_schema(API, "get", "/v1/stores/{store_id}/lanes", 200))
    assert fleet_json[1]["behind"] == ["catalogue"] and fleet_json[1]["silent_s"] >= 42 * 60


def test_kiosk_hq_fleet_says_when_no_lane_reported_and_fails_plainly_without_a_store(
        tmp_path):
    from tests.helpers import run_kiosk

    address = f"sqlite:{tmp_path / 'hq.db'}"
    empty = run_kiosk("hq", "fleet", "--store-address", address, "--store", "store-09")
    assert empty.returncode == 0
    assert empty.stdout.strip() == ("no lane of store store-09 has reported to head office "
                                    "in the last 7 days (heartbeats kept that long)")
    assert json.loads(run_kiosk("hq", "fleet", "--store-address", address, "--json")
                      .stdout) == []
    bad = run_kiosk("hq", "fleet", "--store-address", "mysql://x")
    assert bad.returncode == 1 and "sqlite:PATH" in bad.stderr


def test_kiosk_hq_fleet_reads_the_jetstream_store(nats_node):
    from tests.helpers import run_kiosk

    store = NatsStore(nats_node.urls)
    try:
        store.keep_heartbeat("cli-nats", "lane-01", beat("lane-01", "cli-nats"), utc_now())
        store.publish_version(*make_version("cli-nats", "catalogue", 1, rows(2)))
    finally:
        store.close()
    ran = run_kiosk("hq", "fleet", "--store-address", ",".join(nats_node.urls), "--store",
                    "cli-nats", "--json")
    assert ran.returncode == 0, ran.stderr
    (row,) = json.loads(ran.stdout)
    assert row["latest"]["catalogue"] == 1 and row["behind"] == []  # the example: 42


def test_heartbeats_and_the_fleet_are_503_with_retry_after_while_nats_is_down(tmp_path):
    """The store cannot answer: the lane is told to come back (it keeps its heartbeat
    loop going), not sent a dropped connection or a 500."""
    cluster = LocalCluster(tmp_path / "nats", size=1)
    cluster.start()
    store = NatsStore(cluster.urls, timeout_s=1.0)
    server = HqServer(store, token=TOKEN).start()
    try:
        assert post_beat(server, "s-down", "lane-01", beat("lane-01", "s-down")).ok
        cluster.stop()
        down = post_beat(server, "s-down", "lane-01", beat("lane-01", "s-down"))
        assert down.status_code == 503 and down.headers["Retry-After"] == "5"
        listing = requests.get(f"{server.url}/v1/stores/s-down/lanes", headers=AUTH,
                               timeout=30)
        assert listing.status_code == 503 and listing.headers["Retry-After"] == "5"
    finally:
        server.stop()
        store.close()
        cluster.stop()


# -- hostile bodies (review of issue 22) ---------------------------------------------------

def _raw_post(server: HqServer, path: str, head_length: int, body: bytes = b"") -> bytes:
    """POST with a Content-Length of our choosing over a raw socket; the status line."""
    host, port = server.server_address[0], server.server_address[1]
    with socket.create_connection((str(host), int(port)), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: hq\r\nAuthorization: Bearer {TOKEN}\r\n"
                  f"Content-Length: {head_length}\r\n\r\n".encode() + body)
        answer = b""
        while b"\r\n" not in answer:
            got = s.recv(4096)
            if not got:
                break
            answer += got
    return answer.split(b"\r\n", 1)[0]


@pytest.fixture
def sqlite_service(tmp_path):
    store = SqliteStore(tmp_path / "hq.db")
    server = HqServer(store, token=TOKEN).start()
    yield server, store
    server.stop()
    store.close()


@pytest.mark.parametrize("path", ["/v1/stores/store-01/lanes/lane-01/heartbeat",
                                  "/v1/events"])
def test_a_huge_content_length_is_refused_before_the_body_is_read(sqlite_service, path):
    # Before: the service read (allocated) the declared length first: 10**12 bytes was a
    # MemoryError and a dropped connection; a few GB would be held while it waited.
    server, _ = sqlite_service
    assert b" 413 " in _raw_post(server, path, 10 ** 12)
    assert requests.get(f"{server.url}/v1/stores/store-01/lanes", headers=AUTH,
                        timeout=10).status_code == 200  # still serving


def test_a_body_nested_too_deep_is_400_not_a_dropped_connection(sqlite_service):
    # Before: json.loads raised RecursionError (not a ValueError): no answer at all.
    server, _ = sqlite_service
    nested = b"[" * 50_000
    beat_answer = requests.post(
        f"{server.url}/v1/stores/store-01/lanes/lane-01/heartbeat", data=nested,
        headers=AUTH, timeout=10)
    assert beat_answer.status_code == 400 and "nested" in beat_answer.json()["error"]
    events = requests.post(f"{server.url}/v1/events", data=b'{"events": ' + nested,
                           headers={**AUTH, "Idempotency-Key": "k1"}, timeout=10)
    assert events.status_code == 400


@pytest.mark.parametrize(("store_id", "lane_id", "says"), [
    ("store%0A", "lane-01", "not a store id"),       # "store\n" once unquoted
    ("%2e%2e", "lane-01", "not a store id"),
    ("store-01", "l" * 65, "not a lane id"),
    ("store-01", "lane%2F01", "not a lane id"),      # "lane/01"
    ("store-01", "lane%0A01", "not a lane id"),      # a newline in it
    ("store-01", "%E5%BA%97" * 65, "not a lane id"),
])
def test_heartbeat_and_fleet_paths_take_only_the_contracts_ids(sqlite_service, store_id,
                                                                lane_id, says):
    # Before: any text the path unquoted to was kept as a lane of a store no data can be
    # published for (the body only had to repeat it).
    server, store = sqlite_service
    body = beat(unquote(lane_id), unquote(store_id))
    answer = requests.post(f"{server.url}/v1/stores/{store_id}/lanes/{lane_id}/heartbeat",
                           data=json.dumps(body), headers=AUTH, timeout=10)
    assert answer.status_code == 400 and says in answer.json()["error"]
    assert store.heartbeats(None) == []
    if says == "not a store id":
        listed = requests.get(f"{server.url}/v1/stores/{store_id}/lanes", headers=AUTH,
                              timeout=10)
        assert listed.status_code == 400 and says in listed.json()["error"]
        check(API, listed.json(), response_schema(API, "get", "/v1/stores/{store_id}/lanes",
                                                  400))


def test_kiosk_hq_fleet_shows_a_lanes_control_characters_escaped(tmp_path):
    # Before: an alert text holding an escape sequence or a newline went to the operator's
    # terminal as is (clearing it, or breaking the table into extra lines).
    from tests.helpers import run_kiosk

    store = SqliteStore(tmp_path / "hq.db")
    try:
        store.keep_heartbeat("store-01", "lane-01", beat(
            "lane-01", "store-01", alerts=["\x1b[2Jpaper\nlow"]), utc_now())
    finally:
        store.close()
    ran = run_kiosk("hq", "fleet", "--store-address", f"sqlite:{tmp_path / 'hq.db'}")
    assert ran.returncode == 0, ran.stderr
    assert "\x1b" not in ran.stdout and len(ran.stdout.splitlines()) == 3
    assert "\\x1b[2Jpaper\\nlow" in ran.stdout.splitlines()[1]


@pytest.mark.parametrize("command", [["fleet"], ["publish", "catalogue", "{dir}/c.csv",
                                                 "--store", "store-01", "--key",
                                                 "{dir}/k.pem"]])
@pytest.mark.parametrize("where", ["no-such-folder/hq.db", "not-a-db.txt"])
def test_a_sqlite_store_that_cannot_be_opened_is_a_plain_error(tmp_path, command, where):
    # Before: sqlite3's OperationalError / DatabaseError came out as a traceback.
    from hq.publish import create_key_file
    from tests.helpers import run_kiosk

    (tmp_path / "not-a-db.txt").write_text("x" * 4096)
    (tmp_path / "c.csv").write_text("code,name_zh,name_en,price\n4011,香蕉,Banana,7.98\n",
                                    encoding="utf-8")
    create_key_file(tmp_path / "k.pem")
    ran = run_kiosk("hq", *(c.format(dir=tmp_path) for c in command), "--store-address",
                    f"sqlite:{tmp_path / where}")
    assert ran.returncode == 1 and "cannot open the store" in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr


def test_kiosk_hq_fleet_flags_a_lane_ahead_of_head_office(tmp_path):
    # Before: a lane on catalogue 7 of a head office whose newest is 3 (restored from an
    # older backup, or another head office) was listed "up to date".
    from tests.helpers import run_kiosk

    store = SqliteStore(tmp_path / "hq.db")
    try:
        for v in (1, 2, 3):
            store.publish_version(*make_version("store-01", "catalogue", v, rows(v),
                                                rows(v - 1) if v > 1 else None))
        store.keep_heartbeat("store-01", "lane-01", beat(
            "lane-01", "store-01", versions={"catalogue": 7}), utc_now())
    finally:
        store.close()
    ran = run_kiosk("hq", "fleet", "--store-address", f"sqlite:{tmp_path / 'hq.db'}")
    line = ran.stdout.splitlines()[1]
    assert "AHEAD of head office: catalogue" in line and "up to date" not in line
    assert f" {datetime.now().astimezone():%Z} (" in line  # LAST SEEN says its zone
