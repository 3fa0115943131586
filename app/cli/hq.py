"""``kiosk hq``: the head-office service (package ``hq``) and its operations.

``kiosk hq serve`` serves the lanes' contract (docs/membership-api.yaml) over a store
address: ``sqlite:PATH`` (embedded, the default) or ``nats://HOST:PORT,...``.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click


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
def hq_serve(address: str, host: str, port: int, token: str) -> None:
    """Serve the lanes' contract until Ctrl-C or SIGTERM.

    Stateless: start as many as you like over one store, behind any HTTP load
    balancer. When the store cannot answer, lanes get 503 with Retry-After and
    keep their events.
    """
    from hq.service import HqServer
    from hq.store_address import open_store
    from hq.stores import StoreUnavailable

    try:
        store = open_store(address)
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
