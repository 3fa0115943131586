"""Staff mode's health page: what each device says, whether the payment provider answers,
how far behind the behaviour events are, and the staff alerts still open.

The devices' own lines come from the runtime (``app.runtime.KioskRuntime``); this
module adds what the lane's thread can check itself, and words staff read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.domain.payment import PaymentError, ProviderRefused, error_text
from app.services.payments import PaymentProvider
from app.services.staff_port import Elapsed, Said
from app.services.store_data import DataStatus
from app.storage.outbox import Outbox

# Where a technician goes from here (issue 20): every check with its fix, and the logs.
MORE = "More: `kiosk doctor` checks this PC, each line with its fix; logs: journalctl -u kiosk"
ProbeOrder = "HEALTHCHECK0000"  # an order no lane ever creates: any answer means "reachable"


def reach(provider: PaymentProvider) -> tuple[str, int, str]:
    """How the payment provider answered a query for an order that does not exist, as
    (``"answered"``, ``"refused"`` or ``"unreachable"``, milliseconds, what it said): a
    refusal naming the order (404, "not found", a status) is an answer; anything else
    (timeout, connection refused) is not. A ``ProviderRefused`` (the provider answered
    with a refusal of its own: a wrong merchant id, serial, key or secret, a clock off)
    says what ``error_text`` gives: "refused by the provider: <code> <message>; check
    setting <setting>". Milliseconds on the monotonic clock."""
    started = time.monotonic()

    def ms() -> int:
        return round((time.monotonic() - started) * 1000)
    try:
        provider.query(ProbeOrder)
        return "answered", ms(), ""
    except ProviderRefused as exc:  # it answered, with a refusal: its code, the setting
        return "refused", ms(), error_text(exc)
    except Exception as exc:  # noqa: BLE001 - any answer at all is what is being checked
        said = str(exc)
        reachable = "status" in said or "404" in said or "not found" in said.lower()
        # The code and the setting are what an integrator needs: never cut them off.
        shown = error_text(exc) if isinstance(exc, PaymentError) and (
            exc.code or exc.setting) else said[:80]
        return ("answered", ms(), "") if reachable else ("unreachable", ms(), shown)


def provider_reach(provider: PaymentProvider) -> str:
    """``reach`` in English, for logs and the CLI: "answered in 12 ms", "answered in 12 ms
    but refused by the provider: ...", "NOT REACHABLE: ..."."""
    kind, ms, said = reach(provider)
    if kind == "unreachable":
        return f"NOT REACHABLE: {said}"
    return f"answered in {ms} ms" + (f" but {said}" if kind == "refused" else "")


def _ago(seconds: float) -> str:
    whole = max(0, int(seconds))
    h, rest = divmod(whole, 3600)
    return f"{h} h {rest // 60} min" if h else f"{rest // 60} min {rest % 60} s"


def store_data_lines(status: DataStatus, stale_after_s: float) -> list[str]:
    """The store-data lines in English (logs, the CLI): versions, staged, the age of the
    last contact with head office, a stale alert past ``stale_after_s``, refusals."""
    def shown(kind: str) -> str:
        st = status.kinds[kind]
        return "local import" if st.local else str(st.applied) if st.applied else "-"
    staged = ", ".join(f"{k} {v}" for k, v in status.staged().items()) or "-"
    checked = (f"head office checked {_ago(status.age_s)} ago" if status.age_s is not None
               else "head office not reached yet")
    lines = [f"Store data: catalogue {shown('catalogue')}, promotions {shown('promotions')}, "
             f"lane keys {shown('lane-keys')}; staged {staged}; {checked}"]
    if status.stale:
        lines.append(f"Alert (store-data): store data not checked with head office for "
                     f"{_ago(status.age_s) if status.age_s is not None else 'ever'} (over "
                     f"{_ago(stale_after_s)}): this lane sells on the data it has")
    lines += [f"Store data refused ({k}): {st.last_refusal}"
              for k, st in status.kinds.items() if st.last_refusal]
    return lines


def store_data_page(status: DataStatus, stale_after_s: float, now: datetime) -> list[Said]:
    """``store_data_lines`` in words (``Said``) for staff's health page; ``now``: the wall
    clock, from which the screen words how long ago head office was reached."""
    def shown(kind: str) -> object:
        st = status.kinds[kind]
        return Said.of("health_data_local") if st.local else st.applied or "-"
    staged = ", ".join(f"{k} {v}" for k, v in status.staged().items()) or "-"
    checked: object = Said.of("health_data_checked", ago=Elapsed(status.checked_at)) \
        if status.checked_at else Said.of("health_data_never")
    lines = [Said.of("health_store_data", catalogue=shown("catalogue"),
                     promotions=shown("promotions"), lane_keys=shown("lane-keys"),
                     staged=staged, checked=checked)]
    if status.stale:
        since = status.checked_at or now - timedelta(seconds=status.age_s or stale_after_s)
        lines.append(Said.of("health_alert", kind=Said.of("alert_store-data"),
                             message=Said.of("health_data_stale", ago=Elapsed(since),
                                             limit=Elapsed(now - timedelta(
                                                 seconds=stale_after_s)))))
    lines += [Said.of("health_data_refused", kind=k, reason=st.last_refusal)
              for k, st in status.kinds.items() if st.last_refusal]
    return lines


def health_lines(devices: Callable[[], list[str]], provider: PaymentProvider, outbox: Outbox,
                 alerts: Callable[[], list[tuple[str, str]]],
                 store_data: Callable[[], tuple[DataStatus, float]] | None = None
                 ) -> list[str]:
    """The device health page, one line each: ``devices`` (camera, decoder, printer,
    scanners), then the payment provider, the events waiting, the store data
    (``store_data()``: (status, stale_after_s); absent when sync is not set up), up to
    five open alerts (``alerts()``: (kind, message), newest first), and ``MORE`` (the
    doctor, the logs)."""
    try:
        lines = list(devices())
    except Exception as exc:  # noqa: BLE001 - a health page must always show
        lines = [f"(devices: {exc})"]
    lines.append(f"Payment ({provider.name}): {provider_reach(provider)}")
    st = outbox.status()
    lines.append(f"Events: {st.pending} waiting, {st.in_flight} sending, {st.dead} set aside, "
                 f"oldest {st.oldest_pending or '-'}, last upload {st.last_upload or 'never'}")
    if store_data is not None:
        try:
            lines += store_data_lines(*store_data())
        except Exception as exc:  # noqa: BLE001 - a health page must always show
            lines.append(f"(store data: {exc})")
    lines += [f"Alert ({kind}): {message}" for kind, message in alerts()] or ["Alerts: none"]
    lines.append(MORE)
    return lines


def _when(iso: str | None) -> object:
    """An outbox time (ISO 8601) for the screen: a datetime it shows in the store's time
    zone, or "never"."""
    if not iso:
        return Said.of("health_never")
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return iso


def health_page(devices: Callable[[], list[Said]], provider: PaymentProvider, outbox: Outbox,
                alerts: Callable[[], list[tuple[str, str]]],
                store_data: Callable[[], tuple[DataStatus, float]] | None = None,
                now: Callable[[], datetime] | None = None) -> list[Said]:
    """The device health page in words (``Said``, worded by the screen in staff's
    language): the devices' lines (``devices()``, from the runtime), the payment
    provider's reach, the events waiting, the store data (``store_data()``: (status,
    stale_after_s); ``now``: the wall clock) and up to five open alerts, as
    ``health_lines``."""
    try:
        lines = list(devices())
    except Exception as exc:  # noqa: BLE001 - a health page must always show
        lines = [Said.of("health_devices_failed", error=str(exc))]
    kind, ms, said = reach(provider)
    name = Said.of(f"provider_{provider.name}", fallback=provider.name)
    lines.append(Said.of(f"health_payment_{kind}", provider=name, ms=ms, error=said))
    st = outbox.status()
    lines.append(Said.of("health_events", pending=st.pending, sending=st.in_flight,
                         dead=st.dead, oldest=_when(st.oldest_pending) if st.oldest_pending
                         else "-", last=_when(st.last_upload)))
    if store_data is not None:
        try:
            lines += store_data_page(*store_data(), (now or _wall_now)())
        except Exception as exc:  # noqa: BLE001 - a health page must always show
            lines.append(Said.of("health_devices_failed", error=f"store data: {exc}"))
    lines += [Said.of("health_alert", kind=Said.of(f"alert_{kind}", fallback=kind),
                      message=message) for kind, message in alerts()] \
        or [Said.of("health_no_alerts")]
    return lines


def _wall_now() -> datetime:
    return datetime.now(UTC).astimezone()


def outbox_state(outbox: Outbox, flush: Callable[[], None]) -> str:
    """Ask the uploader to send now (``flush``), then say what is waiting, for staff."""
    flush()
    st = outbox.status()
    return (f"Upload asked / 已请求上传: {st.pending} waiting, {st.in_flight} sending, "
            f"{st.dead} set aside; last upload {st.last_upload or 'never'}")


__all__ = ["health_lines", "health_page", "outbox_state", "provider_reach", "reach",
           "store_data_lines", "store_data_page"]
