"""The store-sync endpoints of docs/membership-api.yaml answered by a real ``HqServer`` on
127.0.0.1 over both stores (a SQLite file; a real ``nats-server``): every status, body
and header the service sends is checked against the yaml's schemas for it."""

from __future__ import annotations

import base64

import pytest
import requests

from app.domain import store_data
from hq.cluster import LocalCluster
from hq.nats_store import NatsStore
from hq.service import HqServer
from hq.sqlite_store import SqliteStore
from tests.hq_versions import make_version, rows
from tests.integration.test_hq_fleet import beat
from tests.openapi import check, operation, resolve, response_schema

TOKEN = "hq-test-token"  # noqa: S105 - a test's own token
API = "membership-api.yaml"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DATA = "/v1/stores/{store_id}/data/{kind}"
PAYLOAD = "/v1/stores/{store_id}/data/{kind}/{version}/{format}"
HEARTBEAT = "/v1/stores/{store_id}/lanes/{lane_id}/heartbeat"
LANES = "/v1/stores/{store_id}/lanes"


def documented(method: str, path: str, answer: requests.Response) -> None:
    """The answer's status is documented for the operation, its JSON body (if the yaml
    gives one) matches the schema, each header the yaml names for the status matches
    its schema, and the content type is the one documented."""
    response = resolve(API, operation(API, method, path)["responses"][str(answer.status_code)])
    for name, header in (response.get("headers") or {}).items():
        if name == "Content-Length" or name not in answer.headers:
            continue
        value = answer.headers[name]
        schema = dict(resolve(API, header)["schema"])
        check(API, int(value) if schema.get("type") == "integer" else value, schema)
    content = response.get("content") or {}
    if not content:
        assert answer.content == b"", f"{answer.status_code} has no body in the contract"
        return
    kind = answer.headers["Content-Type"].split(";")[0]
    assert kind in content, f"{kind} is not documented for {answer.status_code}"
    if kind == "application/json":
        check(API, answer.json(), response_schema(API, method, path, answer.status_code))


@pytest.fixture(scope="module")
def nats_node(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("nats"), size=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "nats"])
def service(request, tmp_path):
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "hq.db")
    else:
        store = NatsStore(request.getfixturevalue("nats_node").urls)
    server = HqServer(store, token=TOKEN).start()
    yield server, store, f"contract-{request.param}"
    server.stop()
    store.close()


def get(server: HqServer, path: str, **headers: str) -> requests.Response:
    return requests.get(server.url + path, headers={**AUTH, **headers}, timeout=10)


def test_every_store_sync_answer_is_the_contracts(service):
    server, store, sid = service
    # Nothing published yet: 404 with a reason; not a store id: 400.
    none = get(server, f"/v1/stores/{sid}/data/catalogue")
    assert none.status_code == 404
    documented("get", DATA, none)
    bad_id = get(server, "/v1/stores/-x/data/catalogue")
    assert bad_id.status_code == 400
    documented("get", DATA, bad_id)

    v1 = make_version(sid, "catalogue", 1, rows(30))
    v2 = make_version(sid, "catalogue", 2, rows(31), rows(30))
    store.publish_version(*v1)
    store.publish_version(*v2)

    listing = get(server, f"/v1/stores/{sid}/data/catalogue")
    assert listing.status_code == 200 and listing.headers["ETag"] == '"catalogue-2"'
    documented("get", DATA, listing)
    body = listing.json()
    assert body["latest"] == 2 and [v["manifest"]["version"] for v in body["versions"]] == [1, 2]
    assert base64.b64decode(body["versions"][1]["manifest_b64"]) == v2[0]
    assert base64.b64decode(body["versions"][1]["signature"]) == v2[1]

    newer = get(server, f"/v1/stores/{sid}/data/catalogue", **{"If-None-Match": '"catalogue-1"'})
    assert [v["manifest"]["version"] for v in newer.json()["versions"]] == [2]
    documented("get", DATA, newer)
    same = get(server, f"/v1/stores/{sid}/data/catalogue", **{"If-None-Match": '"catalogue-2"'})
    assert same.status_code == 304 and same.headers["ETag"] == '"catalogue-2"'
    documented("get", DATA, same)

    full = get(server, f"/v1/stores/{sid}/data/catalogue/1/full")
    assert full.status_code == 200 and full.content == v1[2]
    assert int(full.headers["Content-Length"]) == len(v1[2])
    assert full.headers["ETag"] == f'"sha256:{store_data.digest(v1[2])}"'
    documented("get", PAYLOAD, full)
    delta = get(server, f"/v1/stores/{sid}/data/catalogue/2/delta")
    assert delta.status_code == 200 and delta.content == v2[3]
    documented("get", PAYLOAD, delta)
    for missing in ("1/delta", "3/full", "2/other"):
        gone = get(server, f"/v1/stores/{sid}/data/catalogue/{missing}")
        assert gone.status_code == 404, missing
        documented("get", PAYLOAD, gone)
    not_a_version = get(server, f"/v1/stores/{sid}/data/catalogue/x/full")
    assert not_a_version.status_code == 400
    documented("get", PAYLOAD, not_a_version)
    store.prune_versions(sid, "catalogue", 1)
    pruned = get(server, f"/v1/stores/{sid}/data/catalogue/1/full")
    assert pruned.status_code == 404
    documented("get", PAYLOAD, pruned)

    kept = requests.post(f"{server.url}/v1/stores/{sid}/lanes/lane-01/heartbeat",
                         json=beat("lane-01", sid), headers=AUTH, timeout=10)
    assert kept.status_code == 200
    documented("post", HEARTBEAT, kept)
    refused = requests.post(f"{server.url}/v1/stores/{sid}/lanes/lane-01/heartbeat",
                            json=beat("lane-02", sid), headers=AUTH, timeout=10)
    assert refused.status_code == 400
    documented("post", HEARTBEAT, refused)

    fleet = get(server, f"/v1/stores/{sid}/lanes")
    assert fleet.status_code == 200
    documented("get", LANES, fleet)
    (row,) = fleet.json()["lanes"]
    assert row["latest"]["catalogue"] == 2 and row["behind"] == []  # the example is on 42

    for path in (f"/v1/stores/{sid}/data/catalogue", f"/v1/stores/{sid}/data/catalogue/2/full",
                 f"/v1/stores/{sid}/lanes"):
        assert requests.get(server.url + path, timeout=10).status_code == 401


def test_the_yaml_checks_can_fail():
    """The schemas are strict where the contract is fixed: a fleet row with a field the
    contract does not name, or a version list without its ETag's version, is refused."""
    import jsonschema

    lanes = response_schema(API, "get", LANES, 200)
    row = {"store_id": "s", "lane_id": "l", "last_seen": "2026-12-01T00:00:00Z",
           "silent_s": 0, "versions": {}, "latest": {}, "behind": [], "staged": {},
           "health": {"state": "ok", "summary": ""},
           "outbox": {"pending": 0, "dead": 0, "oldest_pending_at": None}, "alerts": []}
    check(API, {"store_id": "s", "lanes": [row]}, lanes)
    for bad in (dict(row, extra=1), dict(row, behind=["prices"]), dict(row, silent_s=-1)):
        with pytest.raises(jsonschema.ValidationError):
            check(API, {"store_id": "s", "lanes": [bad]}, lanes)
    with pytest.raises(jsonschema.ValidationError):
        check(API, {"store_id": "s", "kind": "catalogue", "versions": []},
              response_schema(API, "get", DATA, 200))
