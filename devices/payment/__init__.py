"""Payment QR adapters, registered as entry points in the ``kiosk.payment`` group.

``load_adapter`` finds an adapter class by name among the installed entry
points (the built-ins are registered the same way as a third party's, in
pyproject.toml) and builds it with ``from_options(options, kiosk_id)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

import requests

from app.domain.payment import PaymentError, ProviderRefused, ProviderStatus, ProviderView
from app.services.payment_port import CredentialCheck

GROUP = "kiosk.payment"


class AdapterNotFound(LookupError):
    """No installed adapter has that name; the message lists the ones that are."""


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_adapter(name: str, options: Mapping[str, Any], kiosk_id: str) -> Any:
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise AdapterNotFound(
            f"payment.adapter {name!r} is not installed; installed: {', '.join(available())}"
        )
    cls = found[0].load()
    return cls.from_options(options, kiosk_id)


def probe_order_no() -> str:
    """An order number no kiosk ever creates (kiosk orders start with the lane id), within
    every provider's out_trade_no rules (6-32 letters and digits)."""
    return f"DOCTOR{time.time_ns() // 1000}"


def probe_credentials(query: Callable[[str], ProviderView], http: requests.Session,
                      name: str) -> CredentialCheck:
    """``check_credentials`` for an adapter whose ``query`` goes through ``http``: query an
    order that does not exist and read the answer. The reply's ``Date`` header is caught
    with a response hook on ``http`` (the adapter's own request, signed as every other).

    NOT_FOUND (or any view) from a verified reply: reached and accepted.
    ``ProviderRefused``: reached, refused (a key, a secret, a merchant id, the clock: the
    refusal's ``setting`` says which). ``PaymentError`` with a reply: reached, but the reply
    was not believed (a wrong platform/public key: not accepted). No reply at all: not
    reached."""
    replies: list[requests.Response] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        replies.append(response)

    http.hooks["response"].append(hook)
    sent = time.time()
    try:
        view = query(probe_order_no())
        outcome = (True, True, f"{name} accepted a signed query and its reply verified ("
                   + ("no such order, as expected" if view.status is ProviderStatus.NOT_FOUND
                      else f"answered {view.status.value}") + ")", "")
    except ProviderRefused as exc:
        outcome = (True, False, f"{name} refused the kiosk's request: {exc}", exc.setting)
    except PaymentError as exc:
        outcome = (bool(replies), False, str(exc), exc.setting)
    finally:
        received = time.time()
        http.hooks["response"].remove(hook)
    date = replies[-1].headers.get("Date", "") if replies else ""
    reached, accepted, detail, setting = outcome
    return CredentialCheck(reached, accepted, detail, setting, date, sent, received)
