"""Payment QR adapters, registered as entry points in the ``kiosk.payment`` group.

``load_adapter`` finds an adapter class by name among the installed entry
points (the built-ins are registered the same way as a third party's, in
pyproject.toml) and builds it with ``from_options(options, kiosk_id)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

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
