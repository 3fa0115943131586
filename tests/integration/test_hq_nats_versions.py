"""The JetStream store's store-data versions (docs/store-sync.md) against a real
``nats-server`` on 127.0.0.1: compare-and-set on a version, payload round trips (one
larger than the object store's chunk and NATS's 1 MB message limit), pruning, and the
lanes' heartbeats with their TTL."""

from __future__ import annotations

import os
import threading
import time

import pytest

from app.domain import store_data
from hq.cluster import LocalCluster
from hq.nats_store import NatsStore
from hq.stores import VersionTaken
from tests.helpers import wait_for
from tests.hq_versions import make_version, rows


@pytest.fixture(scope="module")
def one_node(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("nats"), size=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def store(one_node):
    s = NatsStore(one_node.urls)
    yield s
    s.close()


def test_versions_are_listed_after_a_version_and_payloads_come_back_whole(store):
    assert store.latest_version("s-list", "catalogue") is None
    assert store.versions_after("s-list", "catalogue", None) == []
    assert store.payload("s-list", "catalogue", 1, "full") is None
    v1 = make_version("s-list", "catalogue", 1, rows(10))
    v2 = make_version("s-list", "catalogue", 2, rows(12), rows(10))
    store.publish_version(*v1)
    store.publish_version(*v2)
    assert store.latest_version("s-list", "catalogue") == 2
    assert store.latest_version("s-list", "promotions") is None  # per kind
    assert store.latest_version("s-list2", "catalogue") is None  # per store
    assert store.versions_after("s-list", "catalogue", None) == [v1[:2], v2[:2]]
    assert store.versions_after("s-list", "catalogue", 1) == [v2[:2]]
    assert store.versions_after("s-list", "catalogue", 2) == []
    assert store.payload("s-list", "catalogue", 1, "full") == v1[2]
    assert store.payload("s-list", "catalogue", 1, "delta") is None  # version 1 has none
    assert store.payload("s-list", "catalogue", 2, "delta") == v2[3]
    assert store.payload("s-list", "catalogue", 2, "other") is None


def test_a_payload_over_a_megabyte_round_trips_through_the_object_store(store):
    """Larger than NATS's 1 MB message limit and many object-store chunks: it is kept in
    chunks and comes back byte for byte (the manifest's SHA-256 checks it)."""
    big = [(f"{i:013d}", os.urandom(48).hex()) for i in range(40_000)]  # incompressible
    version = make_version("s-big", "catalogue", 1, big)
    assert len(version[2]) > 2 * 2**20
    store.publish_version(*version)
    got = store.payload("s-big", "catalogue", 1, "full")
    assert got is not None and len(got) == len(version[2])
    store_data.check_payload(got, store_data.manifest_from_bytes(version[0]).full)


def test_two_publishers_racing_for_a_version_one_gets_version_taken(one_node):
    """Two store objects (two publisher processes) publish version 1 at once with
    different contents: exactly one wins, the other gets VersionTaken, and what is kept
    is the winner's manifest with the winner's payload (the loser, whose payloads were
    written before the manifest's compare-and-set, did not overwrite them)."""
    stores = [NatsStore(one_node.urls), NatsStore(one_node.urls)]
    versions = [make_version("s-race", "promotions", 1, rows(2000, price=p), note=str(p))
                for p in (100, 900)]
    outcomes: list[object] = [None, None]
    go = threading.Barrier(2)

    def publish(i: int) -> None:
        go.wait()
        try:
            stores[i].publish_version(*versions[i])
            outcomes[i] = "won"
        except VersionTaken as exc:
            outcomes[i] = exc

    try:
        threads = [threading.Thread(target=publish, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(type(o).__name__ for o in outcomes) == ["VersionTaken", "str"]
        winner = versions[outcomes.index("won")]
        assert stores[0].versions_after("s-race", "promotions", None) == [winner[:2]]
        assert stores[1].payload("s-race", "promotions", 1, "full") == winner[2]
        # Publishing the same version again, even the same bytes, is refused too.
        with pytest.raises(VersionTaken):
            stores[0].publish_version(*winner)
    finally:
        for s in stores:
            s.close()


def test_a_payload_that_is_not_what_the_manifest_says_is_refused_and_nothing_kept(store):
    manifest, signature, full, _ = make_version("s-bad", "catalogue", 1, rows(5))
    with pytest.raises(ValueError, match="SHA-256|bytes"):
        store.publish_version(manifest, signature, full[:-1] + b"x", None)
    with pytest.raises(ValueError, match="delta"):
        store.publish_version(manifest, signature, full, full)
    assert store.latest_version("s-bad", "catalogue") is None


def test_pruning_keeps_the_newest_versions_and_drops_the_rest_with_their_payloads(store):
    previous = None
    kept = []
    for v in range(1, 6):
        now = rows(5 + v)
        kept.append(make_version("s-prune", "lane-keys", v, now, previous))
        store.publish_version(*kept[-1])
        previous = now
    assert store.prune_versions("s-prune", "lane-keys", 2) == 3
    assert store.versions_after("s-prune", "lane-keys", None) == [kept[3][:2], kept[4][:2]]
    assert store.latest_version("s-prune", "lane-keys") == 5
    for v in (1, 2, 3):
        assert store.payload("s-prune", "lane-keys", v, "full") is None
    assert store.payload("s-prune", "lane-keys", 4, "delta") == kept[3][3]
    assert store.prune_versions("s-prune", "lane-keys", 2) == 0
    # Nothing is left of a pruned payload: no "deleted" marker per object in the bucket.
    names = [o.name for o in store._run(store.objects.list(ignore_deletes=False))]
    assert not [n for n in names if n.startswith("s-prune/lane-keys/1/")]
    # A pruned version cannot be published again (its key is gone), nor one past a gap.
    with pytest.raises(VersionTaken):
        store.publish_version(*kept[0])
    with pytest.raises(ValueError, match="gap"):
        store.publish_version(*make_version("s-prune", "lane-keys", 7, rows(20), previous))
    # The next version is published as usual after a prune.
    store.publish_version(*make_version("s-prune", "lane-keys", 6, rows(20), previous))
    assert store.latest_version("s-prune", "lane-keys") == 6


def test_store_ids_that_are_not_subject_tokens_keep_versions_apart(store):
    a = make_version("SH.001", "catalogue", 1, rows(3))
    b = make_version("SH_001", "catalogue", 1, rows(4))
    store.publish_version(*a)
    store.publish_version(*b)
    assert store.versions_after("SH.001", "catalogue", None) == [a[:2]]
    assert store.payload("SH_001", "catalogue", 1, "full") == b[2]


def test_heartbeats_latest_wins_per_lane_and_old_ones_are_not_listed(store):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    store.keep_heartbeat("s-hb", "lane-01", {"n": 1}, now)
    store.keep_heartbeat("s-hb", "lane-01", {"n": 2}, now)
    store.keep_heartbeat("s-hb", "lane 02", {"n": 1}, now)
    store.keep_heartbeat("s-hb-other", "lane-01", {"n": 9}, now)
    # Received eight days ago (past the 7-day TTL): kept by the bucket only until NATS
    # drops it, never listed.
    store.keep_heartbeat("s-hb", "lane-03", {"n": 1}, "2026-01-01T00:00:00Z")
    assert store.heartbeats("s-hb") == [("s-hb", "lane 02", now, {"n": 1}),
                                        ("s-hb", "lane-01", now, {"n": 2})]
    assert [(s, lane) for s, lane, _, _ in store.heartbeats(None)
            if s.startswith("s-hb")] == [("s-hb", "lane 02"), ("s-hb", "lane-01"),
                                          ("s-hb-other", "lane-01")]


def test_the_heartbeat_bucket_drops_a_silent_lane_after_its_ttl(tmp_path):
    cluster = LocalCluster(tmp_path / "nats", size=1)
    cluster.start()
    store = NatsStore(cluster.urls, heartbeat_ttl_s=1)
    try:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        store.keep_heartbeat("s-ttl", "lane-01", {"n": 1}, now)
        bucket = store.kv["hq_heartbeats"]
        assert store._run(bucket.get("s-ttl.lane-01")).value  # kept ...
        info = store._run(store.js.stream_info("KV_hq_heartbeats"))
        assert info.config.max_age == 1  # ... with the bucket's TTL: NATS drops it

        def gone() -> bool:
            return store._run(store.js.stream_info("KV_hq_heartbeats")).state.messages == 0

        assert wait_for(gone, timeout=20)
        assert store.heartbeats("s-ttl") == []
    finally:
        store.close()
        cluster.stop()
