"""Events at chain scale, with real faults: a three-node ``nats-server`` cluster on
127.0.0.1, two ``kiosk hq serve`` processes over it, the member-summary consumer process,
and 50 lanes (real outboxes, the real uploader) draining their backlogs at once, while
the test SIGKILLs and restarts a NATS node, then a service instance, then has a lane
resend an old batch. Counts are printed and asserted: lost 0, duplicates 0, member
summaries equal to what the lanes' databases say."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from hq.cluster import LocalCluster
from hq.nats_store import NatsStore
from tests.fleet import EVENTS_PER_SALE, SimLane, chain_totals
from tests.helpers import wait_for

pytestmark = pytest.mark.slow
TOKEN = "chain-test-token"  # noqa: S105 - a test's own token
LANES, SALES = 50, 30
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kiosk(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "app.cli", *args],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Service:
    def __init__(self, address: str) -> None:
        self.address, self.port = address, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        self.proc = _kiosk("hq", "serve", "--store", self.address, "--port", str(self.port),
                           "--token", TOKEN)
        assert wait_for(self.up, timeout=120), self.proc.stderr and self.proc.stderr.read()

    def up(self) -> bool:
        try:
            return requests.get(f"{self.url}/v1/keys/member", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_lanes_drain_through_node_and_service_kills_exactly_once(tmp_path):
    cluster = LocalCluster(tmp_path / "nats", size=3)
    cluster.start()
    services: list[Service] = []
    lanes: list[SimLane] = []
    consumer = None
    observer = None
    try:
        services = [Service(cluster.address), Service(cluster.address)]
        consumer = _kiosk("hq", "consume", "--store", cluster.address)
        (tmp_path / "lanes").mkdir()
        lanes = [SimLane(tmp_path / "lanes", f"lane-{i:02d}", f"store-{i % 5:03d}",
                         services[i % 2].url, TOKEN, seed=i) for i in range(LANES)]
        for lane in lanes:
            lane.sell(SALES)
        observer = NatsStore(cluster.urls, replicas=3)
        for lane in lanes:
            lane.start_uploader(max_events=60)

        # 1. A NATS node dies mid-drain (the stream's leader: the worst one), comes back.
        assert wait_for(lambda: any(lane.in_flight() for lane in lanes), timeout=60)
        leader = observer.status()["stream"]["leader"]
        cluster.kill(leader)
        assert wait_for(lambda: sum(lane.undelivered() for lane in lanes) <
                        LANES * SALES * EVENTS_PER_SALE * 0.7, timeout=300)
        cluster.start(leader)

        # 2. The lanes keep selling; a service instance dies mid-drain, comes back.
        for lane in lanes:
            lane.sell(SALES // 2)
            assert lane.uploader is not None
            lane.uploader.wake()
        victim = services[0]
        assert wait_for(lambda: any(lane.in_flight() for lane in lanes[0::2]), timeout=60)
        victim.kill()
        victim.start()

        assert wait_for(lambda: all(lane.undelivered() == 0 for lane in lanes), timeout=600), \
            sum(lane.undelivered() for lane in lanes)

        # 3. A lane resends an old batch, days later as far as anyone can tell: a new key,
        #    to the other instance.
        old = lanes[0]
        events = [{"event_id": r[0], "seq": r[1], "type": r[2], "occurred_at": r[3],
                   "session_id": r[4], "member_id": r[5], "payload": json.loads(r[6])}
                  for r in old._rows(  # the first 100 events, as the lane sent them
                      "SELECT event_id, seq, type, occurred_at, session_id, member_id, "
                      "payload FROM outbox ORDER BY seq LIMIT 100")]
        resent = requests.post(f"{services[1].url}/v1/events", timeout=30, json={
            "kiosk_id": old.lane_id, "store_id": old.store_id, "events": events},
            headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": str(uuid.uuid4())})
        assert resent.status_code == 200, resent.text
        assert resent.json()["accepted"] == [] and len(resent.json()["duplicates"]) == 100

        # The consumer catches up; then count.
        assert wait_for(lambda: all(c["lag"] == 0 and c["ack_pending"] == 0
                                    for c in observer.status()["consumers"]), timeout=300)
        expected_ids = {lane.lane_id: lane.event_ids() for lane in lanes}
        total = sum(len(v) for v in expected_ids.values())
        held = observer.total()
        lost = sum(len(set(ids) - set(observer.events(lane_id)))
                   for lane_id, ids in expected_ids.items())
        expected = chain_totals(lanes)
        summaries = {m: observer.member_totals(m) for m in expected}
        wrong = {m: (summaries[m], t) for m, t in expected.items() if summaries[m] != t}
        print(f"\nlanes {LANES}, events {total}, held by the stream {held}, lost {lost}, "
              f"duplicates {held - (total - lost)}, member summaries wrong {len(wrong)} "
              f"of {len(expected)}")
        assert lost == 0
        assert held == total  # no second copy anywhere in the stream
        assert wrong == {}
    finally:
        for lane in lanes:
            lane.close()
        if observer is not None:
            observer.close()
        if consumer is not None:
            consumer.send_signal(signal.SIGTERM)
            consumer.wait(timeout=60)
        for s in services:
            s.stop()
        cluster.stop()
