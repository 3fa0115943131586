"""``kiosk hq`` commands against real nats-server processes: the cluster runner, setup,
the member-summary consumer (killed and restarted), status and replay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from hq.cluster import LocalCluster
from hq.nats_store import NatsStore
from tests.helpers import run_kiosk, wait_for


def _sales(lane: str, n: int, first_seq: int = 1) -> list[dict]:
    events = []
    for i in range(n):
        member = f"M{i % 7:06d}" if i % 3 else None  # every third sale a guest
        events.append({"event_id": f"{lane}-{first_seq + i}", "seq": first_seq + i,
                       "type": "session_ended", "member_id": member,
                       "occurred_at": "2026-11-30T09:00:00+08:00", "session_id": f"s{i}",
                       "payload": {"order_id": f"o{i}", "total_minor": 100 + i,
                                   "item_count": 1, "points_earned": 1 + i // 100}})
    return events


def _expected(events: list[dict]) -> dict[str, tuple[int, int, int]]:
    out: dict[str, tuple[int, int, int]] = {}
    for e in events:
        if e["member_id"]:
            v, s, p = out.get(e["member_id"], (0, 0, 0))
            out[e["member_id"]] = (v + 1, s + e["payload"]["total_minor"],
                                   p + e["payload"]["points_earned"])
    return out


@pytest.fixture
def node(tmp_path):
    cluster = LocalCluster(tmp_path / "nats", size=1)
    cluster.start()
    yield cluster
    cluster.stop()


def test_a_second_consumer_does_not_run_beside_the_first(node):
    """Two consumers on the one durable get disjoint parts of the stream: one applies a
    member's sale at sequence 700, the other then skips that member's sale at 300 as
    "applied already" (the per-member ``last_seq``), and the visit is lost. So a second
    ``kiosk hq consume`` must not start while the first runs, and must once it stops."""
    from hq.member_summary import MemberSummaryConsumer

    NatsStore(node.urls).close()  # the stream
    first = MemberSummaryConsumer(node.urls).start()
    try:
        with pytest.raises(RuntimeError, match="another member-summary consumer"):
            MemberSummaryConsumer(node.urls).start(timeout=5)
    finally:
        first.stop()
    then = MemberSummaryConsumer(node.urls).start(timeout=60)  # the lease lapses (15 s)
    then.stop()
    assert then.error is None


def test_the_consumer_outlives_a_fetch_that_times_out_plainly(node, monkeypatch):
    """nats-py's fetch raises a plain asyncio.TimeoutError (not its own TimeoutError)
    when its first probe used up the time, which a loaded machine does: seen on
    `kiosk hq consume`, the consumer stopped for good and the summaries froze."""
    from nats.js.client import JetStreamContext

    from hq.member_summary import MemberSummaryConsumer

    real_fetch = JetStreamContext.PullSubscription.fetch
    calls = {"n": 0}

    async def fetch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] <= 2:  # what nats-py does when the probe's answer comes late
            raise TimeoutError  # asyncio.TimeoutError is this one since Python 3.11
        return await real_fetch(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch)
    store = NatsStore(node.urls)
    consumer = MemberSummaryConsumer(node.urls).start()
    try:
        events = _sales("lane-04", 6)
        store.ingest(str(uuid.uuid4()), "lane-04", "store-001", events)
        expected = _expected(events)
        assert wait_for(lambda: all(store.member_totals(m) == t for m, t in expected.items()),
                        timeout=60), consumer.error
        assert consumer.running() and consumer.error is None
    finally:
        consumer.stop()
        store.close()


def test_the_consumer_stops_cleanly_while_nats_is_gone(node, monkeypatch):
    """Ctrl-C on `kiosk hq consume` while every node is down: closing the connection
    raised ConnectionResetError on the consumer's thread (a traceback, nothing closed)."""
    import threading

    from hq.member_summary import MemberSummaryConsumer

    NatsStore(node.urls).close()  # the stream
    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    consumer = MemberSummaryConsumer(node.urls).start()
    node.kill("n1")
    consumer.stop()
    assert not consumer.running() and crashed == []


def test_the_consumer_killed_mid_stream_and_restarted_counts_each_sale_once(node, tmp_path):
    store = NatsStore(node.urls)
    events = _sales("lane-01", 3000)
    try:
        for start in range(0, len(events), 500):
            store.ingest(str(uuid.uuid4()), "lane-01", "store-001", events[start:start + 500])
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        cmd = [sys.executable, "-m", "app.cli", "hq", "consume", "--store", node.urls[0]]
        consumer = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        # Kill it once some, not all, summaries are written: mid-stream.
        assert wait_for(lambda: store.member_totals("M000001")[0] > 0, timeout=60)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
        consumer = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        expected = _expected(events)
        assert wait_for(lambda: all(store.member_totals(m) == t for m, t in expected.items()),
                        timeout=120), {m: store.member_totals(m) for m in expected}
        consumer.send_signal(signal.SIGTERM)
        _, err = consumer.communicate(timeout=30)
        assert consumer.returncode == 0, err
        # The member look-up answers from the summary: enrolled points + earned ones.
        assert store.member("M000001").points == 1200 + expected["M000001"][2]
    finally:
        store.close()


def test_status_setup_and_replay(node):
    store = NatsStore(node.urls)
    try:
        store.ingest(str(uuid.uuid4()), "lane-02", "store-001", _sales("lane-02", 40))
    finally:
        store.close()
    ran = run_kiosk("hq", "setup", "--store", node.urls[0], "--max-age-days", "30",
                    "--max-gb", "1", "--heartbeat-ttl-s", "86400")
    assert ran.returncode == 0, ran.stderr
    assert "30 days" in ran.stdout and "1073741824 bytes" in ran.stdout
    looked = subprocess.run([sys.executable, "-m", "app.cli", "hq", "status", "--store",
                             node.urls[0], "--json"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
    assert looked.returncode == 0, looked.stderr
    assert "reconnecting" not in looked.stderr  # its own clean close is no outage
    status = json.loads(looked.stdout)
    assert status["stream"]["messages"] == 40 and status["stream"]["max_age_days"] == 30
    store = NatsStore(node.urls)
    try:  # the batch answers are kept as long as the events (the setup says so)
        batches = store._run(store.js.stream_info("KV_hq_batches"))
        assert batches.config.max_age == 30 * 86400
        # The lanes' heartbeats, hq.heartbeat_ttl_s (store sync), set on the bucket too.
        beats = store._run(store.js.stream_info("KV_hq_heartbeats"))
        assert beats.config.max_age == 86400
    finally:
        store.close()
    replay = run_kiosk("hq", "replay", "--store", node.urls[0], "--lane", "lane-02",
                       "--from-seq", "31")
    lines = [json.loads(x) for x in replay.stdout.splitlines()]
    assert [e["seq"] for e in lines] == list(range(31, 41))
    assert lines[0]["kiosk_id"] == "lane-02" and lines[0]["store_id"] == "store-001"


def test_commands_say_clearly_when_nats_is_not_there(tmp_path):
    never = LocalCluster(tmp_path / "never", size=1)  # planned, not started
    ran = run_kiosk("hq", "status", "--store", never.urls[0])
    assert ran.returncode == 1 and "NATS unreachable" in ran.stderr
    ran = run_kiosk("hq", "status", "--store", "sqlite:x.db")
    assert ran.returncode == 2 and "nats://" in ran.stderr


def test_status_and_replay_on_a_server_without_the_stream_create_nothing(node):
    """A newcomer's first look (`kiosk hq status` on a fresh cluster) created the stream
    and buckets with the look's own default, R1, and the demo members; `kiosk hq serve`
    then kept that R1 stream on a three-node cluster, one copy of every event."""
    import asyncio

    import nats
    import nats.js.errors

    for args in (("status",), ("replay", "--lane", "lane-01")):
        ran = run_kiosk("hq", *args, "--store", node.urls[0])
        assert ran.returncode == 1 and "no stream EVENTS" in ran.stderr, ran

    async def streams() -> list[str]:
        nc = await nats.connect(node.urls)
        try:
            return [s.config.name for s in await nc.jetstream().streams_info()]
        finally:
            await nc.close()

    assert asyncio.run(streams()) == []


def test_the_cluster_command_runs_three_nodes_until_sigterm(tmp_path):
    folder = tmp_path / "c"
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "hq", "cluster", "--dir",
                             str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        address = proc.stdout.readline().strip()
        assert address.count("nats://127.0.0.1:") == 3, proc.stderr.read()
        store = NatsStore(address.split(","), replicas=3)
        try:
            answer = store.ingest(str(uuid.uuid4()), "lane-03", "store-001",
                                  _sales("lane-03", 10))
            assert len(answer.accepted) == 10
            assert store.status()["stream"]["replicas"] == 3
        finally:
            store.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert json.loads((folder / "cluster.json").read_text())[0]["name"] == "n1"
