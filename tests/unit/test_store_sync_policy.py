"""The store-data sync policy (app/services/store_sync.py) over a fake head office and a
fake store data: what each answer does to the lane (nothing, staged, wait, pause), the
uploader's backoff, heartbeats on the monotonic clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from app.domain.clock import FixedClock
from app.domain.store_data import Manifest, Payload, manifest_bytes
from app.domain.sync_reply import Answer, AnswerKind, DownloadFailed
from app.services.backoff import MAX_RETRY_AFTER_S, Backoff
from app.services.store_sync import StoreSync, SyncSide, health_summary, heartbeat_body
from tests.helpers import wait_for

T0 = datetime(2026, 12, 1, 0, 50, tzinfo=UTC)


def manifest(version: int, kind: str = "catalogue") -> Manifest:
    full = Payload("full", "a" * 64, 10, 1)
    delta = Payload("delta", "b" * 64, 5, 1, version - 1) if version > 1 else None
    return Manifest("store-01", kind, version, "2026-12-01T01:00:00Z", "2026-12-01T00:00:00Z",
                    "CNY", full, delta, "0" * 16)


class FakeHq:
    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.downloads: list[tuple[str, int, str]] = []
        self.fail_download: DownloadFailed | None = None
        self.beats: list[dict[str, Any]] = []
        self.listings: list[tuple[str, int | None]] = []

    def listing(self, kind: str, have: int | None) -> Answer:
        self.listings.append((kind, have))
        return self.answers.get(kind, Answer(AnswerKind.NOT_MODIFIED, 304))

    def download(self, store: str, kind: str, version: int, format: str) -> bytes:  # noqa: A002
        self.downloads.append((kind, version, format))
        if self.fail_download is not None:
            raise self.fail_download
        return f"{kind}-{version}-{format}".encode()

    def post_heartbeat(self, body: dict[str, Any]) -> Answer:
        self.beats.append(body)
        return Answer(AnswerKind.ANSWERED, 200)


class FakeData:
    def __init__(self) -> None:
        self.held: dict[str, int | None] = {"catalogue": 1, "promotions": None,
                                            "lane-keys": None}
        self.staged: list[tuple[int, str, bytes]] = []
        self.contacts: list[tuple[bool, str | None]] = []
        self.refuse_stage: str | None = None
        self.refuse_plan: str | None = None
        self.tidied = 0

    def tidy(self) -> None:
        self.tidied += 1

    def have(self, kind: str) -> int | None:
        return self.held[kind]

    def plan(self, kind: str, listing: list[tuple[bytes, bytes]]) -> list[tuple[Manifest, str]]:
        if self.refuse_plan:
            raise ValueError(self.refuse_plan)
        from app.domain.store_data import manifest_from_bytes
        return [(manifest_from_bytes(raw), "delta") for raw, _sig in listing]

    def stage(self, manifest_raw: bytes, signature: bytes, format: str,  # noqa: A002
              payload: bytes) -> Manifest:
        from app.domain.store_data import manifest_from_bytes
        m = manifest_from_bytes(manifest_raw)
        if self.refuse_stage:
            raise ValueError(self.refuse_stage)
        assert signature == b"sig%d" % m.version
        self.staged.append((m.version, format, payload))
        return m

    def contacted(self, ok: bool, error: str | None = None) -> None:
        self.contacts.append((ok, error))

    def status(self) -> Any:
        return None


def listed(*versions: int) -> Answer:
    return Answer(AnswerKind.ANSWERED, 200, versions=tuple(
        (manifest_bytes(manifest(v)), b"sig%d" % v) for v in versions))


def sync(hq: FakeHq, clock: FixedClock | None = None, **kw: Any) -> StoreSync:
    clock = clock or FixedClock(T0)
    return StoreSync(hq, lambda: SyncSide(FakeData()), clock, store_id="store-01",
                     poll_s=30, backoff_base=1.0, backoff_cap=300.0, pause_s=600,
                     rng=random.Random(1), monotonic=clock.monotonic, **kw)


def test_a_steady_lane_asks_with_what_it_has_and_waits_the_poll_interval():
    hq, data = FakeHq(), FakeData()
    wait = sync(hq).sync_once(data)
    assert wait == 30
    assert hq.listings == [("catalogue", 1), ("promotions", None), ("lane-keys", None)]
    assert hq.downloads == [] and data.staged == []
    assert data.contacts == [(True, None)]
    assert data.tidied == 1  # what an apply left is tidied on the sync thread


def test_newer_versions_are_downloaded_and_staged_in_order_with_their_signatures():
    hq, data = FakeHq(), FakeData()
    hq.answers["catalogue"] = listed(2, 3)
    assert sync(hq).sync_once(data) == 30
    assert hq.downloads == [("catalogue", 2, "delta"), ("catalogue", 3, "delta")]
    assert [(v, f) for v, f, _ in data.staged] == [(2, "delta"), (3, "delta")]
    assert data.staged[0][2] == b"catalogue-2-delta"
    assert data.contacts == [(True, None)]


def test_a_refused_version_stages_nothing_after_it_and_waits_the_poll_not_a_hot_loop():
    hq, data = FakeHq(), FakeData()
    hq.answers["catalogue"] = listed(2, 3)
    data.refuse_stage = "the full download's SHA-256 does not match the signed manifest"
    s = sync(hq)
    assert s.sync_once(data) == 30  # the next look at the usual interval
    assert data.staged == []
    assert hq.downloads == [("catalogue", 2, "delta")]  # 3 builds on 2: not fetched
    ok, error = data.contacts[-1]
    assert ok and error is not None and "SHA-256" in error  # head office answered
    assert "SHA-256" in s.health().last_error


def test_a_refused_plan_downloads_nothing():
    hq, data = FakeHq(), FakeData()
    hq.answers["catalogue"] = listed(2)
    data.refuse_plan = "signed by another key"
    assert sync(hq).sync_once(data) == 30
    assert hq.downloads == [] and data.staged == []


def test_head_office_down_backs_off_with_jitter_and_honours_retry_after():
    hq, data = FakeHq(), FakeData()
    hq.answers["catalogue"] = Answer(AnswerKind.TRANSIENT, 503, retry_after_s=45,
                                     error="head office answered 503")
    s = sync(hq)
    waits = [s.sync_once(data) for _ in range(3)]
    assert all(w >= 45 for w in waits)  # Retry-After is a floor
    assert hq.listings == [("catalogue", 1)] * 3  # the pass stops at the first failure
    assert data.contacts == [(False, "head office answered 503")] * 3
    assert s.health().state == "backing_off"


def test_unreachable_waits_grow_with_full_jitter_and_are_capped():
    hq, data = FakeHq(), FakeData()
    hq.answers["catalogue"] = Answer(AnswerKind.TRANSIENT, error="unreachable")
    s = sync(hq)
    waits = [s.sync_once(data) for _ in range(12)]
    assert max(waits) <= 300
    assert len(set(waits)) == 12  # jittered: lanes do not retry in step
    hq.answers.clear()
    assert s.sync_once(data) == 30  # back: the usual interval, and the backoff starts over
    hq.answers["catalogue"] = Answer(AnswerKind.TRANSIENT, error="unreachable")
    assert s.sync_once(data) <= 2.0  # base 1 s doubled once


def test_a_failed_download_changes_nothing_and_backs_off():
    hq, data = FakeHq(), FakeData()
    hq.answers["catalogue"] = listed(2)
    hq.fail_download = DownloadFailed(Answer(AnswerKind.TRANSIENT, error="cut short"))
    s = sync(hq)
    wait = s.sync_once(data)
    assert data.staged == [] and data.contacts == [(False, "cut short")]
    assert 0 <= wait <= 2.0 and s.health().state == "backing_off"


def test_a_pruned_download_is_listed_again_at_the_next_poll():
    hq, data = FakeHq(), FakeData()
    hq.answers["catalogue"] = listed(2)
    hq.fail_download = DownloadFailed(Answer(AnswerKind.REFUSED, 404, error="no longer has"))
    assert sync(hq).sync_once(data) == 30
    assert data.staged == []


def test_a_refused_token_pauses_and_alerts_staff():
    hq, data = FakeHq(), FakeData()
    hq.answers["catalogue"] = Answer(AnswerKind.UNAUTHORIZED, 401, error="refused the token")
    alerts: list[str] = []
    s = sync(hq, on_alert=alerts.append)
    assert s.sync_once(data) == 600
    assert s.health().state == "paused" and alerts and "token" in alerts[0]
    assert data.staged == [] and data.contacts[-1][0] is False


def test_heartbeats_go_every_heartbeat_s_on_the_monotonic_clock():
    hq = FakeHq()
    clock = FixedClock(T0)
    s = sync(hq, clock, heartbeat_s=60)
    side = SyncSide(FakeData(), heartbeat=lambda: {"n": len(hq.beats)})
    s.run_due(side)
    assert len(hq.beats) == 1 and len(hq.listings) == 3
    clock.step(hours=5)  # the wall clock set forward: no time passed, nothing is due
    assert s.run_due(side) == 30
    assert len(hq.beats) == 1 and len(hq.listings) == 3
    clock.advance(seconds=30)
    s.run_due(side)
    assert len(hq.beats) == 1 and len(hq.listings) == 6
    clock.advance(seconds=30)
    s.run_due(side)
    assert len(hq.beats) == 2


def test_backoff_is_shared_with_the_uploader():
    from app.services import uploads

    assert uploads.MAX_RETRY_AFTER_S == MAX_RETRY_AFTER_S
    b = Backoff(1.0, 300.0, random.Random(3))
    assert b.next_delay(at_least=10 * MAX_RETRY_AFTER_S) == MAX_RETRY_AFTER_S


def test_the_heartbeat_body_is_the_contracts():
    body = heartbeat_body(
        lane_id="lane-01", store_id="store-01", now=T0,
        versions={"catalogue": 42, "promotions": 7}, staged={"catalogue": 43},
        checked_at=datetime(2026, 12, 1, 0, 58, 30, tzinfo=UTC),
        health=health_summary([("camera", "ok"), ("printer", "paper_end")],
                              out_of_order=False),
        outbox=(12, 0, "2026-12-01T08:58:00+08:00"), alerts=["printer paper low"])
    assert body == {
        "lane_id": "lane-01", "store_id": "store-01", "sent_at": "2026-12-01T00:50:00Z",
        "versions": {"catalogue": 42, "promotions": 7, "lane-keys": None},
        "staged": {"catalogue": 43}, "data_checked_at": "2026-12-01T00:58:30Z",
        "health": {"state": "degraded", "summary": "printer paper_end"},
        "outbox": {"pending": 12, "dead": 0, "oldest_pending_at": "2026-12-01T00:58:00Z"},
        "alerts": ["printer paper low"]}
    assert health_summary([("camera", "ok")], out_of_order=False) == ("ok", "all devices ok")
    assert health_summary([("camera", "lost")], out_of_order=True)[0] == "out_of_order"


def test_a_heartbeat_with_long_texts_is_still_one_head_office_keeps():
    """Head office refuses a heartbeat with an alert or summary past the contract's 500
    characters (hq/fleet.py, docs/membership-api.yaml ``Heartbeat``): a lane with a long
    staff alert (a failed backup names the database path twice) would drop out of the
    fleet view just when it has something to say. The lane clips its texts to fit."""
    from hq.fleet import heartbeat_problem

    long_alert = "the nightly backup of /srv/kiosk/" + "x" * 600 + " failed"
    many = [(f"device-{i}-" + "y" * 40, "lost") for i in range(20)]
    body = heartbeat_body(
        lane_id="lane-01", store_id="store-01", now=T0, versions={}, staged={},
        checked_at=None, health=health_summary(many, out_of_order=False),
        outbox=(0, 0, None), alerts=[long_alert] * 150)
    assert heartbeat_problem(body, "store-01", "lane-01") is None
    assert body["alerts"][0].startswith("the nightly backup of /srv/kiosk/xxx")
    assert body["alerts"][0].endswith("…") and len(body["alerts"]) == 100
    assert body["health"]["summary"].startswith("device-0-yyy")


def test_a_database_busy_at_start_up_is_retried_not_the_end_of_the_thread():
    hq, opened = FakeHq(), []

    def open_side() -> SyncSide:
        opened.append(1)
        if len(opened) == 1:
            raise OSError("database is locked")
        return SyncSide(FakeData())

    s = StoreSync(hq, open_side, FixedClock(T0), store_id="store-01", poll_s=30,
                  backoff_base=0.01, backoff_cap=0.02, rng=random.Random(1))
    s.start()
    try:
        assert wait_for(lambda: len(hq.listings) >= 3)
        assert s.alive()
    finally:
        s.stop()
    assert len(opened) == 2


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # meant
def test_a_sync_thread_that_dies_says_so_on_the_health_page():
    """Every Exception is caught in the loop; something that is not one (SystemExit from a
    library, say) ends the thread. Staff's health line then says "dead", not the last
    state it had (which would read as a lane still following head office)."""
    from pathlib import Path

    from app.bootstrap import store_sync_health
    from app.config import load_settings

    class Dying(FakeData):
        def have(self, kind: str) -> int | None:
            raise SystemExit("a library gave up")

    s = StoreSync(FakeHq(), lambda: SyncSide(Dying()), FixedClock(T0), store_id="store-01",
                  poll_s=30)
    s.start()
    assert wait_for(lambda: not s.alive())
    settings = load_settings(data_dir=Path("/nonexistent-rev1"), environ={})
    (line,) = store_sync_health(settings, s)
    assert line.state == "dead" and ": dead" in line.line
