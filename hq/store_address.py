"""Reading a ``--store`` address (``sqlite:PATH``, ``nats://HOST:PORT,...``) into the
store it names."""

from __future__ import annotations

from pathlib import Path

from hq.stores import HEARTBEAT_TTL_S, HqStore, StoreUnavailable


def nats_servers(address: str) -> list[str]:
    """``nats://HOST:PORT[,HOST:PORT...]`` (each part with or without ``nats://``, spaces
    around commas allowed) as a list of ``nats://HOST:PORT``."""
    parts = (u.strip() for u in address.split(","))
    return [u if u.startswith("nats://") else f"nats://{u}" for u in parts if u]


def open_store(address: str, *, heartbeat_ttl_s: float = HEARTBEAT_TTL_S) -> HqStore:
    """The store an address names: ``sqlite:PATH`` (``sqlite::memory:`` for a throwaway
    one) or ``nats://HOST:PORT[,HOST:PORT...]``, keeping lanes' heartbeats for
    ``heartbeat_ttl_s`` seconds (``hq.heartbeat_ttl_s``). Raises ValueError for any other
    form; StoreUnavailable for a SQLite file that cannot be opened (no such folder, not a
    database, no permission) or a JetStream that cannot be reached."""
    if address.startswith("sqlite:"):
        import sqlite3

        from hq.sqlite_store import SqliteStore

        path = address.removeprefix("sqlite:")
        if not path:
            raise ValueError("sqlite: needs a file path, e.g. sqlite:hq.db")
        try:
            return SqliteStore(Path(path), heartbeat_ttl_s=heartbeat_ttl_s)
        except sqlite3.Error as exc:  # the commands say "cannot open", not a traceback
            raise StoreUnavailable(f"{path}: {exc}") from None
    if address.startswith("nats://"):
        from hq.nats_store import NatsStore

        servers = nats_servers(address)
        # R3 needs three servers to place its copies; one server holds R1.
        return NatsStore(servers, replicas=3 if len(servers) >= 3 else 1,
                         heartbeat_ttl_s=heartbeat_ttl_s)
    raise ValueError(f"unknown store address {address!r}: use sqlite:PATH or "
                     "nats://HOST:PORT[,HOST:PORT...]")
