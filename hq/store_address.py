"""Reading a ``--store`` address (``sqlite:PATH``, ``nats://HOST:PORT,...``) into the
store it names."""

from __future__ import annotations

from pathlib import Path

from hq.stores import HqStore


def open_store(address: str) -> HqStore:
    """The store an address names: ``sqlite:PATH`` (``sqlite::memory:`` for a throwaway
    one) or ``nats://HOST:PORT[,HOST:PORT...]``. Raises ValueError for any other form."""
    if address.startswith("sqlite:"):
        from hq.sqlite_store import SqliteStore

        path = address.removeprefix("sqlite:")
        if not path:
            raise ValueError("sqlite: needs a file path, e.g. sqlite:hq.db")
        return SqliteStore(Path(path))
    if address.startswith("nats://"):
        raise ValueError("the JetStream store is not built yet (issue 21); use sqlite:PATH")
    raise ValueError(f"unknown store address {address!r}: use sqlite:PATH or "
                     "nats://HOST:PORT[,HOST:PORT...]")
