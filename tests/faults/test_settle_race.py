"""Two settlers of one unpaid payment end it once (issue 16, fault 7).

Two processes on one database file (the lane and ``kiosk pay cancel``, or
``kiosk pay cancel`` and ``kiosk pay recover``) settle the same unpaid order at
once. Whatever the interleaving, the payment ends in exactly one final state,
with one audit row and one end event: a final row is never overwritten by
another state (only a payment the provider says is paid may still become paid).
"""

from __future__ import annotations

import pytest

from app import bootstrap
from app.config import load_settings
from app.domain.payment import FINAL, PaymentState, ProviderStatus, ProviderView
from app.services.payments import OrderRequest
from tests.unit.factories import paid_sale


class Closable:
    """An in-memory provider whose close closes an unpaid order (WeChat Pay's close)."""

    name = "closable"

    def __init__(self) -> None:
        self.orders: dict[str, str] = {}
        self.on_close = None

    def create(self, order: OrderRequest) -> str:
        self.orders.setdefault(order.out_trade_no, "waiting")
        return f"qr:{order.out_trade_no}"

    def query(self, no: str) -> ProviderView:
        status = {"waiting": ProviderStatus.WAITING, "closed": ProviderStatus.CLOSED}
        return ProviderView(status[self.orders[no]])

    def close(self, no: str) -> ProviderView | None:
        self.orders[no] = "closed"
        hook, self.on_close = self.on_close, None
        if hook is not None:
            hook(no)  # the other process settles it while this one's close is on its way
        return None


def ends(kiosk, no: str) -> tuple[list[str], list[str]]:
    db = kiosk.db
    audit = [k for (k,) in db.execute(
        "SELECT kind FROM audit_log WHERE kind IN ('payment_cancelled', 'payment_expired', "
        "'payment_failed') AND detail LIKE ?", [f'%{no}%'])]
    events = [t for (t,) in db.execute(
        "SELECT type FROM outbox WHERE type IN ('payment_cancelled', 'payment_expired', "
        "'payment_failed') AND payload LIKE ?", [f'%{no}%'])]
    return audit, events


@pytest.mark.parametrize("late", ["recover", "cancel"])
@pytest.mark.parametrize("hook", ["read", "close"])
def test_two_desks_on_one_file_settle_an_unpaid_payment_once(data_dir, clock, late, hook):
    # Two kiosks built on one data directory: two connections to one database file.
    # The late desk reads the payment open; the other then settles it (``hook`` "read":
    # right after the late desk's read; "close": while the late desk's close is on its
    # way to the provider); then the late desk goes on with what it read.
    one = bootstrap.build(load_settings(data_dir=data_dir, environ={}), clock=clock)
    two = bootstrap.build(load_settings(data_dir=data_dir, environ={}), clock=clock)
    try:
        assert one.db.conn is not two.db.conn
        provider = Closable()
        early = bootstrap.build_payment_desk(one, provider)
        slow = bootstrap.build_payment_desk(two, provider)
        no = early.start("cart-1", paid_sale(), "test").out_trade_no
        other = []

        def the_other_settles(order: str) -> None:
            other.append(early.cancel(order) if late == "recover" else early.recover())

        if hook == "close":
            provider.on_close = the_other_settles
        else:
            real_get = slow.repo.get

            def get(order: str):  # noqa: ANN202
                found = real_get(order)
                if not other:
                    the_other_settles(order)
                return found

            slow.repo.get = get  # type: ignore[method-assign]
        mine = slow.recover()[0] if late == "recover" else slow.cancel(no)
        assert other  # the other desk settled it in between
        on_disk = early.repo.get(no)
        assert on_disk.state in FINAL and on_disk.state is not PaymentState.PAID
        seen = [PaymentState(s) for s, _ in early.repo.steps(no)]
        first_final = next(i for i, s in enumerate(seen) if s in FINAL)
        # Once final, never open again, never another final state.
        assert set(seen[first_final:]) == {on_disk.state}, seen
        audit, events = ends(one, no)
        assert len(audit) == 1 and len(events) == 1, (audit, events)
        assert audit[0] == events[0] == f"payment_{on_disk.state.value}"
        assert mine.state is on_disk.state  # each desk reports what is on disk
    finally:
        two.close()
        one.close()
