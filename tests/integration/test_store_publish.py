"""Publishing store data at head office (issue 22, docs/store-sync.md): versions validated
with the kiosk's own rules, signed, kept in the embedded store with full and delta payloads,
pruned, and served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.bootstrap import PROJECT_ROOT
from app.domain import store_data
from app.domain.catalogue_file import COLUMNS
from app.services.catalogue import CatalogueImportError, import_catalogue
from hq.publish import PublishRefused, gzip_lines, publish
from hq.service import HqServer
from hq.sqlite_store import SqliteStore
from hq.stores import StoreUnavailable, VersionTaken

HEADER = ",".join(COLUMNS) + "\n"
TAX = frozenset({"standard", "food", "zero"})
TOKEN = "t0ken"
NOW = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
ROWS_V1 = (
    "6900000000014,纯牛奶,Milk,6.50,5.90,each,food,0,,dairy,\n"
    "6900000000083,酸奶,Yogurt,3.00,,each,food,0,,dairy,\n"
    "12345670,橙,Orange,2.00,,each,food,0,,fruit,\n"  # UPC-E and EAN-8: two keys
    "4011,香蕉,Banana,7.98,,kg,food,0,,fruit,\n"
)
# v2: the yogurt's price changed, the banana removed, a pear added.
ROWS_V2 = (
    "6900000000014,纯牛奶,Milk,6.50,5.90,each,food,0,,dairy,\n"
    "6900000000083,酸奶,Yogurt,3.20,,each,food,0,,dairy,\n"
    "12345670,橙,Orange,2.00,,each,food,0,,fruit,\n"
    "4012,梨,Pear,9.90,,kg,food,0,,fruit,\n"
)
BAD = (
    "6900000000014,纯牛奶,Milk,6.50,5.90,each,food,0,,dairy,\n"
    "6900000000084,奶,Milk,1.00,,each,food,0,,dairy,\n"  # line 3: wrong check digit
    "6900000000083,酸奶,Yogurt,abc,,each,food,0,,dairy,\n"  # line 4: not an amount
    "6900000000014,纯牛奶,Milk,6.50,,each,food,0,,dairy,\n"  # line 5: duplicate
)


def csv_file(folder: Path, body: str, name: str = "c.csv") -> Path:
    path = folder / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


@pytest.fixture
def hq_store(tmp_path):
    store = SqliteStore(tmp_path / "hq.db")
    yield store
    store.close()


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


def rows_of(data: bytes) -> dict:
    return {row[0]: tuple(row) for row in store_data.decode_lines(data)}


def pub(store, key, source, kind="catalogue", **kw):
    kw.setdefault("tax_classes", TAX)
    kw.setdefault("now", NOW)
    return publish(store, key, "store-01", kind, source, **kw)


def test_a_version_and_its_delta(tmp_path, hq_store, key):
    m1 = pub(hq_store, key, csv_file(tmp_path, ROWS_V1, "v1.csv"), note="first")
    m2 = pub(hq_store, key, csv_file(tmp_path, ROWS_V2, "v2.csv"))
    assert (m1.version, m1.delta, m2.version) == (1, None, 2)
    assert m1.note == "first" and m1.effective_at == m1.published_at == "2026-12-01T00:30:00Z"
    full1 = hq_store.payload("store-01", "catalogue", 1, "full")
    full2 = hq_store.payload("store-01", "catalogue", 2, "full")
    delta = hq_store.payload("store-01", "catalogue", 2, "delta")
    assert hq_store.payload("store-01", "catalogue", 1, "delta") is None
    ops = [tuple(op) for op in store_data.decode_lines(delta)]
    assert ops == [
        ("+", "06900000000083", "酸奶", "Yogurt", 320, None, "each", "food", 0, None,
         "dairy", ""),
        ("-", "PLU:4011"),
        ("+", "PLU:4012", "梨", "Pear", 990, None, "kg", "food", 0, None, "fruit", ""),
    ]
    assert store_data.apply_ops(rows_of(full1), ops) == rows_of(full2)
    # The manifest's signed figures are the bytes' own.
    for data, payload in ((full2, m2.full), (delta, m2.delta)):
        store_data.check_payload(data, payload)
    assert (m2.full.rows, m2.delta.rows, m2.delta.base) == (5, 3, 1)
    # Sorted by key, and the same bytes store_data's encoder makes of those rows.
    keys = list(rows_of(full2))
    assert keys == sorted(keys)
    assert full2 == store_data.encode_lines(rows_of(full2).values())[0]


def test_full_rows_are_the_rows_the_kiosk_stores(tmp_path, hq_store, key, kiosk):
    source = PROJECT_ROOT / "seeds" / "catalogue.csv"
    manifest = pub(hq_store, key, source)
    import_catalogue(kiosk.catalogue, source, tax_classes=TAX, replace=True)
    stored = kiosk.catalogue._conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM products ORDER BY code").fetchall()
    full = hq_store.payload("store-01", "catalogue", 1, "full")
    assert [tuple(r) for r in store_data.decode_lines(full)] == [tuple(r) for r in stored]
    assert manifest.full.rows == len(stored) > 200


def test_a_bad_row_refuses_the_whole_version_as_the_kiosk_does(tmp_path, hq_store, key,
                                                                 kiosk):
    pub(hq_store, key, csv_file(tmp_path, ROWS_V1, "v1.csv"))
    bad = csv_file(tmp_path, BAD, "bad.csv")
    with pytest.raises(PublishRefused) as refused:
        pub(hq_store, key, bad)
    with pytest.raises(CatalogueImportError) as imported:
        import_catalogue(kiosk.catalogue, bad, tax_classes=TAX, replace=True)
    # One rule: the same lines and reasons as `kiosk catalog import`.
    assert refused.value.errors == imported.value.errors
    assert [e.line for e in refused.value.errors] == [3, 4, 5]
    assert "wrong check digit" in str(refused.value)
    assert "line 4: price 'abc' is not an amount" in str(refused.value)
    # Nothing stored: still version 1, and no payload file for a version 2.
    assert hq_store.latest_version("store-01", "catalogue") == 1
    assert sorted(p.name for p in (tmp_path / "hq.db.versions/store-01/catalogue").iterdir()) \
        == ["1.full.jsonl.gz"]


def test_the_signature_verifies_with_the_key_and_no_other(tmp_path, hq_store, key):
    pub(hq_store, key, csv_file(tmp_path, ROWS_V1))
    [(raw, signature)] = hq_store.versions_after("store-01", "catalogue", None)
    manifest = store_data.manifest_from_bytes(raw)
    assert manifest.key_id == store_data.key_id(
        key.public_key().public_bytes_raw())
    key.public_key().verify(signature, raw)
    with pytest.raises(InvalidSignature):
        Ed25519PrivateKey.generate().public_key().verify(signature, raw)
    with pytest.raises(InvalidSignature):
        key.public_key().verify(signature, raw.replace(b'"version":1', b'"version":2'))


def test_promotions_and_lane_keys(tmp_path, hq_store, key):
    promotions = PROJECT_ROOT / "seeds" / "promotions.toml"
    m = pub(hq_store, key, promotions, kind="promotions")
    rows = list(store_data.decode_lines(hq_store.payload("store-01", "promotions", 1, "full")))
    assert m.full.rows == len(rows) >= 3 and [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert {"promo_id": "YOGURT-3FOR2"}.items() <= dict(rows)["YOGURT-3FOR2"].items()

    lane_a, lane_b = (base64.b64encode(Ed25519PrivateKey.generate().public_key()
                                       .public_bytes_raw()).decode() for _ in range(2))
    keys = tmp_path / "lane-keys.toml"
    keys.write_text(f'lane-02 = "{lane_b}"\nlane-01 = "{lane_a}"\n')
    pub(hq_store, key, keys, kind="lane-keys")
    rows = list(store_data.decode_lines(hq_store.payload("store-01", "lane-keys", 1, "full")))
    assert rows == [["lane-01", lane_a], ["lane-02", lane_b]]

    keys.write_text(f'lane-01 = "{lane_a}"\nlane-03 = "c2hvcnQ="\n')  # 5 bytes
    with pytest.raises(PublishRefused, match="the key for 'lane-03' is not a base64 Ed25519"):
        pub(hq_store, key, keys, kind="lane-keys")
    bad_promo = tmp_path / "p.toml"
    bad_promo.write_text('[[promotion]]\npromo_id = "X"\nkind = "multi_buy"\ntreshold = 1\n')
    with pytest.raises(PublishRefused, match="unknown field"):
        pub(hq_store, key, bad_promo, kind="promotions")
    assert hq_store.latest_version("store-01", "lane-keys") == 1
    assert hq_store.latest_version("store-01", "promotions") == 1


def test_two_publishers_racing_for_one_version(tmp_path, key):
    """Two store objects on one database (as two publisher processes would have): the one
    that stores second gets VersionTaken, and the first one's payloads are untouched."""
    first, second = SqliteStore(tmp_path / "hq.db"), SqliteStore(tmp_path / "hq.db")
    v1, v2 = csv_file(tmp_path, ROWS_V1, "v1.csv"), csv_file(tmp_path, ROWS_V2, "v2.csv")
    pub(first, key, v1)
    won: list = []

    class Racing:
        """``second``, but the other publisher stores its version 2 in between."""

        def __getattr__(self, name):
            return getattr(second, name)

        def publish_version(self, *args):
            won.append(pub(first, key, v2))
            return second.publish_version(*args)

    try:
        with pytest.raises(VersionTaken, match="published by another publisher"):
            pub(Racing(), key, v1, note="the loser")
        [(raw, _sig)] = first.versions_after("store-01", "catalogue", 1)
        assert store_data.manifest_from_bytes(raw) == won[0]
        for fmt in ("full", "delta"):
            store_data.check_payload(first.payload("store-01", "catalogue", 2, fmt),
                                     won[0].payload(fmt))
        assert second.latest_version("store-01", "catalogue") == 2
        leftovers = [p.name for p in (tmp_path / "hq.db.versions/store-01/catalogue").iterdir()
                     if p.name.endswith(".tmp")]
        assert leftovers == []
    finally:
        first.close()
        second.close()


def test_pruning_keeps_the_newest(tmp_path, hq_store, key):
    for n in range(1, 6):
        body = ROWS_V1.replace("6.50,5.90", f"6.{n}0,5.90")
        pub(hq_store, key, csv_file(tmp_path, body), keep=2)
    kept = [store_data.manifest_from_bytes(raw).version
            for raw, _ in hq_store.versions_after("store-01", "catalogue", None)]
    assert kept == [4, 5]
    assert hq_store.payload("store-01", "catalogue", 3, "full") is None
    folder = tmp_path / "hq.db.versions/store-01/catalogue"
    assert sorted(p.name for p in folder.iterdir()) == [
        "4.delta.jsonl.gz", "4.full.jsonl.gz", "5.delta.jsonl.gz", "5.full.jsonl.gz"]
    assert hq_store.prune_versions("store-01", "catalogue", 1) == 1


def test_gzip_lines_is_the_format_encoder():
    rows = [("a", 1, None, "é"), ("b", [1, 2], {"x": "y"})]
    lines = [json.dumps(list(r), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
             for r in rows]
    assert gzip_lines(lines) == store_data.encode_lines(rows)


# -- HTTP ------------------------------------------------------------------------------------

@pytest.fixture
def served(hq_store):
    server = HqServer(hq_store, token=TOKEN).start()
    yield server
    server.stop()


def get(server, path, **headers):
    return requests.get(server.url + path, timeout=10,
                        headers={"Authorization": f"Bearer {TOKEN}", **headers})


def test_listing_answers_304_200_and_404(tmp_path, hq_store, key, served):
    assert get(served, "/v1/stores/store-01/data/catalogue").status_code == 404
    pub(hq_store, key, csv_file(tmp_path, ROWS_V1, "v1.csv"))
    pub(hq_store, key, csv_file(tmp_path, ROWS_V2, "v2.csv"))

    r = get(served, "/v1/stores/store-01/data/catalogue")
    assert r.status_code == 200 and r.headers["ETag"] == '"catalogue-2"'
    body = r.json()
    assert (body["store_id"], body["kind"], body["latest"]) == ("store-01", "catalogue", 2)
    assert [v["manifest"]["version"] for v in body["versions"]] == [1, 2]
    for v in body["versions"]:
        raw = base64.b64decode(v["manifest_b64"])
        key.public_key().verify(base64.b64decode(v["signature"]), raw)
        assert store_data.manifest_from_bytes(raw).as_json() == v["manifest"]

    r = get(served, "/v1/stores/store-01/data/catalogue", **{"If-None-Match": '"catalogue-2"'})
    assert (r.status_code, r.headers["ETag"], r.content) == (304, '"catalogue-2"', b"")
    r = get(served, "/v1/stores/store-01/data/catalogue", **{"If-None-Match": '"catalogue-1"'})
    assert r.status_code == 200 and [v["manifest"]["version"] for v in r.json()["versions"]] \
        == [2]
    # A version head office never had (another store's, a wiped one): every kept version.
    r = get(served, "/v1/stores/store-01/data/catalogue", **{"If-None-Match": '"catalogue-9"'})
    assert [v["manifest"]["version"] for v in r.json()["versions"]] == [1, 2]
    # Another kind's tag names nothing for this one.
    r = get(served, "/v1/stores/store-01/data/catalogue", **{"If-None-Match": '"promotions-2"'})
    assert r.status_code == 200
    assert get(served, "/v1/stores/store-02/data/catalogue").status_code == 404
    assert get(served, "/v1/stores/store-01/data/promotions").status_code == 404


def test_payload_downloads(tmp_path, hq_store, key, served):
    pub(hq_store, key, csv_file(tmp_path, ROWS_V1, "v1.csv"))
    m2 = pub(hq_store, key, csv_file(tmp_path, ROWS_V2, "v2.csv"))
    for fmt in ("full", "delta"):
        r = get(served, f"/v1/stores/store-01/data/catalogue/2/{fmt}")
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/gzip"
        assert int(r.headers["Content-Length"]) == len(r.content) == m2.payload(fmt).size
        assert store_data.digest(r.content) == m2.payload(fmt).sha256
        assert r.headers["ETag"] == f'"sha256:{m2.payload(fmt).sha256}"'
    assert get(served, "/v1/stores/store-01/data/catalogue/1/delta").status_code == 404
    assert get(served, "/v1/stores/store-01/data/catalogue/3/full").status_code == 404


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/v1/stores/bad%20id/data/catalogue", 400, "not a store id"),
    ("/v1/stores/..%2F..%2Fetc/data/catalogue/1/full", 400, "not a store id"),
    ("/v1/stores/store-01/data/prices", 404, "no data kind 'prices'"),
    ("/v1/stores/store-01/data/catalogue/one/full", 400, "not a whole number"),
    ("/v1/stores/store-01/data/catalogue/0/full", 400, "not a whole number"),
    ("/v1/stores/store-01/data/catalogue/99999999999999999999/full", 400, "not a whole"),
    ("/v1/stores/store-01/data/catalogue/1/half", 404, "no payload format 'half'"),
])
def test_bad_requests_say_why(tmp_path, hq_store, key, served, path, status, says):
    pub(hq_store, key, csv_file(tmp_path, ROWS_V1))
    r = get(served, path)
    assert r.status_code == status and says in r.json()["error"]


def test_a_lane_without_the_token_gets_nothing(tmp_path, hq_store, key, served):
    pub(hq_store, key, csv_file(tmp_path, ROWS_V1))
    for path in ("/v1/stores/store-01/data/catalogue", "/v1/stores/store-01/data/catalogue/1/full"):
        assert requests.get(served.url + path, timeout=10).status_code == 401


def test_a_store_that_cannot_answer_gives_503(hq_store):
    class Down:
        def __getattr__(self, name):
            return getattr(hq_store, name)

        def latest_version(self, *_args):
            raise StoreUnavailable("nats down")

        def payload(self, *_args):
            raise StoreUnavailable("nats down")

    server = HqServer(Down(), token=TOKEN).start()  # type: ignore[arg-type]
    try:
        for path in ("/v1/stores/s/data/catalogue", "/v1/stores/s/data/catalogue/1/full"):
            r = get(server, path)
            assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    finally:
        server.stop()


# -- the command line ------------------------------------------------------------------------

def kiosk(*args, cwd):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "KIVY_NO_ARGS": "1",
                               "PYTHONPATH": str(PROJECT_ROOT)})


def test_the_commands_end_to_end(tmp_path):
    made = kiosk("hq", "keygen", "--key", "hq.pem", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((tmp_path / "hq.pem").stat().st_mode) == 0o600
    line = made.stdout.splitlines()[0]
    assert line.startswith('sync.hq_public_key = "')
    again = kiosk("hq", "keygen", "--key", "hq.pem", cwd=tmp_path)
    assert again.returncode == 1 and "never overwritten" in again.stderr
    shown = kiosk("hq", "key", "--key", "hq.pem", cwd=tmp_path)
    assert shown.stdout == made.stdout

    csv_file(tmp_path, ROWS_V1, "v1.csv")
    csv_file(tmp_path, ROWS_V2, "v2.csv")
    csv_file(tmp_path, BAD, "bad.csv")
    common = ["--store", "store-01", "--key", "hq.pem", "--store-address", "sqlite:hq.db"]
    first = kiosk("hq", "publish", "catalogue", "v1.csv", *common, "--effective-at",
                  "2026-12-01T09:00", "--time-zone", "Asia/Shanghai", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "catalogue version 1 for store store-01" in first.stdout
    assert "full: 5 rows" in first.stdout
    assert "effective at 2026-12-01T01:00:00Z (2026-12-01 09:00:00 Asia/Shanghai)" \
        in first.stdout
    second = kiosk("hq", "publish", "catalogue", "v2.csv", *common, "--effective-at",
                   "2026-12-01T09:00+08:00", "--note", "week 49", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "version 2" in second.stdout and "delta against version 1: 3 rows" in second.stdout
    refused = kiosk("hq", "publish", "catalogue", "bad.csv", *common, cwd=tmp_path)
    assert refused.returncode == 1
    assert "line 3: GTIN 6900000000084" in refused.stderr
    assert "line 5: code 6900000000014 already on line 2" in refused.stderr
    # The lane's import says the same lines and reasons.
    lane = kiosk("--data-dir", str(tmp_path / "lane"), "catalog", "import", "bad.csv", cwd=tmp_path)
    assert lane.returncode != 0
    reasons = [ln for ln in refused.stderr.splitlines() if ln.startswith("line ")]
    assert reasons and all(r in lane.stderr + lane.stdout for r in reasons)
    bad_time = kiosk("hq", "publish", "catalogue", "v1.csv", *common, "--effective-at",
                     "tomorrow", cwd=tmp_path)
    assert bad_time.returncode == 2 and "--effective-at" in bad_time.stderr

    store = SqliteStore(tmp_path / "hq.db")
    try:
        versions = [store_data.manifest_from_bytes(raw)
                    for raw, _ in store.versions_after("store-01", "catalogue", None)]
        assert [(m.version, m.effective_at, m.note) for m in versions] == [
            (1, "2026-12-01T01:00:00Z", ""), (2, "2026-12-01T01:00:00Z", "week 49")]
        public = base64.b64decode(line.split('"')[1])
        assert versions[0].key_id == store_data.key_id(public)
    finally:
        store.close()


PUBLISHER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from hq.publish import load_key_file, publish
from hq.sqlite_store import SqliteStore
from hq.stores import VersionTaken
store = SqliteStore(Path(sys.argv[1]))
key = load_key_file(Path(sys.argv[2]))
published = taken = 0
for n in range(int(sys.argv[4])):
    while True:
        try:
            publish(store, key, "store-01", "catalogue", Path(sys.argv[3]),
                    tax_classes=frozenset({"food"}), keep=100)
            published += 1
            break
        except VersionTaken:
            taken += 1
store.close()
print(published, taken)
"""


@pytest.mark.slow
def test_two_publisher_processes_on_one_database(tmp_path):
    """Two processes publish at once, each retrying on VersionTaken: the versions are
    1..N without a gap, and every one's payloads are exactly what its manifest signed
    (no publisher overwrote another's files)."""
    made = kiosk("hq", "keygen", "--key", "hq.pem", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    SqliteStore(tmp_path / "hq.db").close()  # the schema exists before both start
    sources = [csv_file(tmp_path, ROWS_V1, "a.csv"), csv_file(tmp_path, ROWS_V2, "b.csv")]
    env = {**__import__("os").environ, "PYTHONPATH": str(PROJECT_ROOT)}
    runs = [subprocess.Popen([sys.executable, "-c", PUBLISHER, str(tmp_path / "hq.db"),
                              str(tmp_path / "hq.pem"), str(source), "15"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for source in sources]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum(int(out.split()[0]) for out, _ in outputs) == 30
    store = SqliteStore(tmp_path / "hq.db")
    try:
        kept = store.versions_after("store-01", "catalogue", None)
        manifests = [store_data.manifest_from_bytes(raw) for raw, _ in kept]
        assert [m.version for m in manifests] == list(range(1, 31))
        previous = None
        for m in manifests:
            full = store.payload("store-01", "catalogue", m.version, "full")
            store_data.check_payload(full, m.full)
            if previous is not None:  # each delta leads from the version before to this
                delta = store.payload("store-01", "catalogue", m.version, "delta")
                store_data.check_payload(delta, m.delta)
                ops = store_data.decode_lines(delta)
                assert store_data.apply_ops(rows_of(previous), ops) == rows_of(full)
            previous = full
    finally:
        store.close()
    assert not [p for p in (tmp_path / "hq.db.versions").rglob("*.tmp")]


# -- hostile store ids (review of issue 22) --------------------------------------------------

@pytest.mark.parametrize("store_id", ["store-01\n", "../x", "..", "a/b", "%2e%2e", "店-01",
                                      "s" * 65, ""])
def test_a_store_id_that_is_not_one_is_refused_and_nothing_is_written(tmp_path, hq_store,
                                                                        key, store_id):
    # Before: "store-01\n" passed (a regex "$" matches before a final newline): a payload
    # folder named with a newline beside the database, and a NATS key with one in it.
    source = csv_file(tmp_path, "".join(ROWS_V1))
    with pytest.raises(ValueError, match="not a store id"):
        publish(hq_store, key, store_id, "catalogue", source, tax_classes=TAX, now=NOW)
    assert not hq_store.versions_dir.exists() or list(hq_store.versions_dir.iterdir()) == []


def test_a_manifest_naming_a_store_id_with_a_newline_is_not_a_manifest():
    full = store_data.Payload("full", "0" * 64, 20, 0)
    fine = store_data.Manifest("store-01", "catalogue", 1, "2026-12-01T01:00:00Z",
                               "2026-12-01T00:30:00Z", "CNY", full, None, "0" * 16)
    assert store_data.manifest_from_bytes(store_data.manifest_bytes(fine)) == fine
    bad = store_data.manifest_bytes(fine).replace(b'"store-01"', b'"store-01\\n"')
    with pytest.raises(store_data.StoreDataError, match="store_id"):
        store_data.manifest_from_bytes(bad)


def test_a_nats_token_never_carries_a_newline():
    from hq.nats_store import token, untoken
    assert token("store-01") == "store-01"
    encoded = token("store-01\n")
    assert "\n" not in encoded and encoded.startswith("=")
    assert untoken(encoded) == "store-01\n"


# -- empty versions (review of issue 22) -----------------------------------------------------

def test_an_empty_catalogue_or_lane_keys_file_is_refused_unless_allowed(tmp_path, hq_store,
                                                                         key):
    # Before: a header-only catalogue was published as a version deleting every product of
    # every lane of the store (its delta: one "-" per product), and an empty lane-keys
    # file one that makes every lane refuse every exit pass.
    pub(hq_store, key, csv_file(tmp_path, "".join(ROWS_V1)))
    header_only = csv_file(tmp_path, "", name="header-only.csv")
    with pytest.raises(PublishRefused, match="no products.*--allow-empty"):
        pub(hq_store, key, header_only)
    no_keys = tmp_path / "keys.toml"
    no_keys.write_text("# every lane's key goes here\n")
    with pytest.raises(PublishRefused, match="no lane keys"):
        pub(hq_store, key, no_keys, kind="lane-keys")
    assert hq_store.latest_version("store-01", "catalogue") == 1
    assert hq_store.latest_version("store-01", "lane-keys") is None
    assert sorted(p.name for p in (hq_store.versions_dir / "store-01" / "catalogue")
                  .iterdir()) == ["1.full.jsonl.gz"]
    # Meant: said so.
    emptied = pub(hq_store, key, header_only, allow_empty=True)
    assert emptied.version == 2 and emptied.full.rows == 0
    assert emptied.delta is not None and emptied.delta.rows == 5  # 4 products, 5 keys
    no_promotions = tmp_path / "none.toml"
    no_promotions.write_text("")
    assert pub(hq_store, key, no_promotions, kind="promotions").full.rows == 0  # ends them


def test_a_local_effective_time_the_clocks_skip_or_repeat_is_refused_not_guessed():
    # Before: 02:30 on the spring-forward night was published as 03:30, and 01:30 on the
    # fall-back night as the first of the two, both silently.
    import click

    from app.cli.hq import _effective_at
    ny = "America/New_York"
    with pytest.raises(click.BadParameter, match="does not exist"):
        _effective_at("2026-03-08T02:30", ny)
    with pytest.raises(click.BadParameter, match="happens twice"):
        _effective_at("2026-11-01T01:30", ny)
    when, _ = _effective_at("2026-11-01T01:30-04:00", ny)  # the offset says which
    assert store_data.instant_text(when) == "2026-11-01T05:30:00Z"
    when, _ = _effective_at("2026-12-01T09:00", "Asia/Shanghai")
    assert store_data.instant_text(when) == "2026-12-01T01:00:00Z"
    when, _ = _effective_at("2026-03-08T03:30", ny)
    assert store_data.instant_text(when) == "2026-03-08T07:30:00Z"


@pytest.mark.slow
def test_a_publisher_killed_before_claiming_leaves_nothing_the_next_publish_keeps(tmp_path):
    # A real process killed (SIGKILL) after writing its temporary payloads, before the
    # version's row: nothing published, the next publish works, and the orphan it left
    # (before: there forever, tens of MB for a big catalogue) is swept once it is old.
    import os
    import time

    source = csv_file(tmp_path, "".join(ROWS_V1))
    key_path = tmp_path / "k.pem"
    from hq.publish import create_key_file
    create_key_file(key_path)
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from hq.sqlite_store import SqliteStore\n"
        "from hq import publish as p\n"
        "store = SqliteStore(Path(sys.argv[1]))\n"
        "store._claim_version = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "p.publish(store, p.load_key_file(Path(sys.argv[2])), 'store-01', 'catalogue',\n"
        f"          Path(sys.argv[3]), tax_classes=frozenset({sorted(TAX)!r}))\n")
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "hq.db"),
                             str(key_path), str(source)], cwd=PROJECT_ROOT, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert killed.returncode == -9
    folder = tmp_path / "hq.db.versions" / "store-01" / "catalogue"
    orphans = list(folder.glob(".*.tmp"))
    assert len(orphans) == 1
    store = SqliteStore(tmp_path / "hq.db")
    try:
        assert store.latest_version("store-01", "catalogue") is None
        from hq.publish import load_key_file
        key = load_key_file(key_path)
        assert pub(store, key, source).version == 1
        assert orphans[0].exists()  # young: it could be a live publisher's
        an_hour_ago = time.time() - 3700
        os.utime(orphans[0], (an_hour_ago, an_hour_ago))
        assert pub(store, key, csv_file(tmp_path, "".join(ROWS_V2), "v2.csv")).version == 2
        assert not orphans[0].exists()
        assert sorted(p.name for p in folder.iterdir()) == [
            "1.full.jsonl.gz", "2.delta.jsonl.gz", "2.full.jsonl.gz"]
    finally:
        store.close()


@pytest.mark.parametrize("lane", ['"lane\\"07"', '"lane 07"', '"lane\\n07"', '"店01"',
                                  "l" * 33])
def test_lane_keys_naming_a_lane_no_lane_can_be_are_refused(tmp_path, hq_store, key, lane):
    # Before: published as is; every lane rewrites its exit-pass key file with these ids
    # ('"lane"07" = ...' is not TOML: each lane then refused every exit pass).
    good = base64.b64encode(Ed25519PrivateKey.generate().public_key()
                            .public_bytes_raw()).decode()
    keys = tmp_path / "keys.toml"
    keys.write_text(f'lane-01 = "{good}"\n{lane} = "{good}"\n', encoding="utf-8")
    with pytest.raises(PublishRefused, match="is not a lane id"):
        pub(hq_store, key, keys, kind="lane-keys")
    assert hq_store.latest_version("store-01", "lane-keys") is None


def test_lane_keys_both_above_and_in_a_lanes_table_are_refused_not_half_published(
        tmp_path, hq_store, key):
    # Before: only the [lanes] table was published; lane-01 above it silently left out
    # (every other lane would refuse its exit passes).
    a, b = (base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
            .decode() for _ in range(2))
    keys = tmp_path / "keys.toml"
    keys.write_text(f'lane-01 = "{a}"\n[lanes]\nlane-02 = "{b}"\n', encoding="utf-8")
    with pytest.raises(PublishRefused, match="both above and in \\[lanes\\].*'lane-01'"):
        pub(hq_store, key, keys, kind="lane-keys")
    assert hq_store.latest_version("store-01", "lane-keys") is None
    keys.write_text(f'[lanes]\nlane-01 = "{a}"\nlane-02 = "{b}"\n', encoding="utf-8")
    assert pub(hq_store, key, keys, kind="lane-keys").full.rows == 2


def test_a_pruning_that_fails_after_the_version_is_kept_does_not_say_not_published(
        tmp_path, hq_store, key, monkeypatch, caplog):
    # Before: publish raised StoreUnavailable from the pruning after the version was
    # stored, so `kiosk hq publish` said "not published" and the publisher published it
    # again (a second, needless version for every lane).
    def locked(*args, **kwargs):
        raise StoreUnavailable("database is locked")

    monkeypatch.setattr(hq_store, "prune_versions", locked)
    m = pub(hq_store, key, csv_file(tmp_path, "".join(ROWS_V1)))
    assert hq_store.latest_version("store-01", "catalogue") == m.version == 1
    assert "pruning older versions failed" in caplog.text


@pytest.mark.parametrize("kind", ["promotions", "lane-keys"])
def test_a_toml_file_that_is_not_utf8_says_so_once(tmp_path, hq_store, key, kind):
    # Before (promotions): "p.toml: promotions not published: 1 problem(s); nothing was
    # stored\np.toml is not UTF-8" inside the same message again.
    source = tmp_path / "p.toml"
    source.write_bytes('[[promotion]]\nname_zh = "酸奶"\n'.encode("gbk"))
    with pytest.raises(PublishRefused) as refused:
        pub(hq_store, key, source, kind=kind)
    assert str(refused.value).count("not published") == 1
    assert refused.value.errors[0].reason == f"{source} is not UTF-8"
