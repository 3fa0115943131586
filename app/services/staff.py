"""Staff mode: a PIN (or badge + PIN) opens it, and every action in it is audited.

The lane owns the screen; staff mode is one of its screens (``Screen.STAFF``)
with pages of its own (``StaffView``): the PIN pad, the menu, a line or sale
picker, and results. Each action checks the role (attendant or manager),
does its work through the same services the shopper's screens use, and writes
an audit row (and, in a session, a ``staff_action`` event). Staff mode signs
itself out after ``staff.idle_s``; the PIN lockout is StaffBook's, on disk.

Runs on the lane's thread, like the lane.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from app.domain.clock import Clock
from app.domain.money import Money
from app.domain.payment import PaymentState
from app.domain.rejections import Refused
from app.domain.sale import PaidSale
from app.domain.scan_input import ScanKind
from app.services import staff_actions as act
from app.services.payments import PaymentDesk
from app.services.reports import Reports
from app.services.staff_port import (
    Elapsed,
    LaneControl,
    LaneState,
    Said,
    StaffView,
    StoreDataDesk,
)
from app.storage.audit import AuditLog
from app.storage.outbox import Outbox
from app.storage.print_jobs import PrintJobs
from app.storage.staff_book import StaffBook, StaffError, StaffMember

if TYPE_CHECKING:
    from app.services.store_data import DataStatus

log = logging.getLogger(__name__)

MANAGER_ONLY = {"override_price", "refund", "z_report"}
PUBLISH_EVERY = timedelta(seconds=5)


@dataclass
class StaffParts:
    """What staff mode works with; ``app.bootstrap`` wires the real ones."""

    clock: Clock
    lane_id: str
    currency: str
    outbox: Outbox  # staff alerts, and the staff_action event in a shopper's session
    desk: PaymentDesk  # refunds, and what a sale's payment says
    recent_sales: Callable[[int], list[PaidSale]]  # the newest paid sales, newest first
    book: StaffBook
    audit: AuditLog
    reports: Reports
    jobs: PrintJobs
    verify_pass: Callable[[str], tuple[bool, str]]  # (valid, what staff read)
    health: Callable[[], list[Said]]  # the device health page (app.services.health)
    flush_outbox: Callable[[], str]  # wake the uploader; returns the outbox's state
    retry_dead: Callable[[], int]
    wake_printer: Callable[[], None]
    idle: timedelta = timedelta(minutes=2)
    # Seconds that never step: the idle sign-out is measured on it, not the wall clock.
    monotonic: Callable[[], float] = time.monotonic
    zone: tzinfo = UTC  # the store's time zone (store.time_zone): times staff read
    # The lane's store data (versions from head office); None: store sync is not set up
    # on this lane, and the store data page says so.
    store_data: StoreDataDesk | None = None


class StaffMode:
    def __init__(self, lane: LaneControl, parts: StaffParts) -> None:
        self.lane, self.p = lane, parts
        self.clock = parts.clock
        self.member: StaffMember | None = None
        self._last = self.p.monotonic()
        self._badge: StaffMember | None = None
        self._published: float | None = None  # monotonic seconds

    # -- in and out ---------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.lane.staff_view() is not None

    def open_pin_pad(self, badge: str | None = None) -> None:
        """The hidden gesture (a corner held) or a staff badge scanned."""
        self._badge = self.p.book.by_badge(badge) if badge else None
        if badge and self._badge is None:
            return  # not one of ours: nothing happens, as for any unknown code
        self._last = self.p.monotonic()
        until = self.p.book.locked_until(self.clock.now())
        shown = f"{until.astimezone(self.p.zone):%H:%M}" if until else ""
        self._enter(StaffView("pin", badge_name=self._badge.name if self._badge else "",
                              locked_until=shown,
                              message=f"Locked until {shown} / 锁定至 {shown}"
                              if until else "", level="error" if until else "info"))

    def pin(self, pin: str) -> None:
        now = self.clock.now()
        self._last = self.p.monotonic()
        try:
            member = self.p.book.sign_in(pin, now, self._badge.badge if self._badge else None)
        except StaffError as exc:
            self.p.audit.append("staff_sign_in_refused", self._badge.name if self._badge
                                else "unknown", {"reason": type(exc).__name__}, now)
            self._page("pin", message=str(exc), level="error")
            return
        self.member = member
        self._record("sign_in", {})
        self._page("menu", name=member.name, role=member.role, message="", level="info")

    def sign_out(self, reason: str = "signed out") -> None:
        if self.member is not None:
            self._record("sign_out", {"reason": reason})
        self.member, self._badge = None, None
        self.lane.leave_staff()

    def tick(self) -> None:
        if self.active and self.p.monotonic() - self._last >= self.p.idle.total_seconds():
            self.sign_out("idle")
            return
        view = self.lane.staff_view()
        if view is not None and view.page == "menu" and self.member is not None:
            # A payment may complete (or a poll change it) while the menu is up.
            state = lane_state_lines(self.lane.lane_state(), self.lane.is_open)
            if state != view.state:
                self.lane.show_staff(replace(view, state=state))

    def publish_audit_head(self) -> None:
        """Every few seconds: carry the audit log's head to the file beside the database;
        a log that no longer reaches the head written before raises a staff alert."""
        mono = self.p.monotonic()
        if self._published is not None and \
                mono - self._published < PUBLISH_EVERY.total_seconds():
            return
        self._published = mono
        if not self.p.audit.publish_head():
            self.p.outbox.alert("audit", "the audit log no longer reaches its last "
                                     "recorded head: run `kiosk audit verify`", self.clock.now())

    # -- the actions --------------------------------------------------------------------------
    def do(self, action: str, *args: Any) -> None:
        """Run a menu action (its handler is ``_<action>``), role and audit included."""
        self._last = self.p.monotonic()
        if self.member is None:
            self._page("pin", message="Sign in first / 请先登录", level="error")
            return
        if action in MANAGER_ONLY and not self.member.manager:
            self._page("menu", message=f"{action}: managers only / 需要店长权限",
                       level="error")
            return
        handler = getattr(self, f"_{action}", None)
        if handler is None:
            raise ValueError(f"no staff action {action!r}")
        try:
            handler(*args)
        except (StaffError, Refused, ValueError, KeyError) as exc:
            message = exc.refusal.message_en if isinstance(exc, Refused) else str(exc)
            view = self.lane.staff_view()
            self._page(view.page if view else "menu",
                       message=message, level="error")

    def menu(self) -> None:
        self._last = self.p.monotonic()
        self._page("menu", message="", text="", choices=(), chosen="")

    def _reset(self, answer: str | None = None) -> None:
        """Reset asks first, saying what will be lost (the cart, its total, an open
        payment, the member); ``answer`` "confirmed" (the confirmation's button) resets."""
        if answer != "confirmed":
            self._page("confirm", purpose="reset", message="",
                       heading=Said.of("staff_reset_title"),
                       lines=reset_loss_lines(self.lane.lane_state()))
            return
        had = self.lane.shopper_session() is not None
        self._record("reset", {"reason": "staff reset", "had_session": had})
        self.lane.abandon("staff_reset")
        self._page("menu", message="Lane reset / 已重置", level="ok")

    def _pick_line(self, purpose: str) -> None:
        lines = self.lane.cart_lines()
        if not lines:
            raise StaffError("the cart is empty / 购物车为空")
        self._page("lines", purpose=purpose, choices=tuple(
            (str(ln.line_id), f"{ln.product.name_zh} {ln.product.name_en} x{ln.quantity}")
            for ln in lines), message="")

    def _void_line(self, line_id: str | None = None) -> None:
        if line_id is None:
            self._pick_line("void_line")
            return
        if self.lane.shopper_session() is None:
            raise StaffError("no shopper session / 没有购物会话")
        line = self.lane.void_line(int(line_id), self._name)
        self._record("void_line", {"line_id": line.line_id, "product": line.product.code,
                                   "quantity": line.quantity}, event=False)
        self._page("menu", message=f"Voided / 已删除: {line.product.name_en}", level="ok")

    def _override_price(self, line_id: str | None = None, amount: str | None = None) -> None:
        if line_id is None:
            self._pick_line("override_price")
            return
        if amount is None:
            self._page("amount", purpose="override_price", chosen=line_id,
                       message="New line total, e.g. 1250 = 12.50 / 输入新价格（分）")
            return
        if self.lane.shopper_session() is None:
            raise StaffError("no shopper session / 没有购物会话")
        total = Money(int(amount), self.p.currency)
        line = self.lane.override_price(int(line_id), total, self._name)
        self._record("override_price", {"line_id": line.line_id, "product": line.product.code,
                                        "total_minor": total.minor}, event=False)
        self._page("menu", message=f"Price set / 已改价: {total.to_decimal_string()}",
                   level="ok")

    def _approve_age(self) -> None:
        waiting = self.lane.pending_age_lines()
        if self.lane.shopper_session() is None or not waiting:
            raise StaffError("nothing waits for an age check / 没有待核验商品")
        self._record("approve_age", {"lines": [ln.line_id for ln in waiting]}, event=False)
        self.lane.approve_age(self._name)
        self._page("menu", message="Age check approved / 已确认年龄", level="ok")

    def _recent_sales(self) -> tuple[tuple[str, str], ...]:
        out = []
        for sale in self.p.recent_sales(8):
            order_id = sale.order_id
            refunded = self.p.desk.repo.refunded_minor(order_id)
            paid_at = sale.paid_at.astimezone(self.p.zone)
            out.append((order_id, f"{paid_at:%H:%M} {sale.total.to_decimal_string()} "
                                  f"x{sale.item_count}  {order_id[-10:]}"
                                  + ("  REFUNDED / 已退款" if refunded else "")))
        return tuple(out)

    def _refund(self, order_id: str | None = None) -> None:
        if order_id is None:
            self._page("sales", purpose="refund", choices=self._recent_sales(), message="")
            return
        repo = self.p.desk.repo
        payment = repo.get(order_id)
        if payment is None or payment.state is not PaymentState.PAID:
            raise StaffError(f"{order_id} is not a paid sale / 不是已付款订单")
        if repo.refunded_minor(order_id) >= (payment.paid_minor or payment.amount_minor):
            raise StaffError(f"{order_id} was already refunded / 该订单已退款")
        # Audited by the desk, in the same transaction as the refund's record.
        self.p.desk.refund(order_id, reason=f"staff {self._name}", actor=self._name)
        self._page("menu", message=f"Refunded / 已退款: {order_id}", level="ok")

    def _reprint(self, order_id: str | None = None) -> None:
        if order_id is None:
            self._page("sales", purpose="reprint", choices=self._recent_sales(), message="")
            return
        act.reprint_receipt(self.p.jobs, self.p.audit, self.clock, self._acting(), order_id,
                            self.p.wake_printer)
        self._page("menu", message=f"Reprinting / 补打中: {order_id}", level="ok")

    def _verify_pass(self) -> None:
        self._page("verify", message="Scan the exit pass / 请扫描出口凭证", level="info",
                   text="")

    def scanned(self, text: str, kind: ScanKind) -> None:
        """A code scanned while staff mode is open: an exit pass to check, or a badge."""
        self._last = self.p.monotonic()
        view = self.lane.staff_view()
        if view is None:
            return
        if kind is ScanKind.STAFF_BADGE and view.page == "pin":
            self.open_pin_pad(text)
            return
        if view.page != "verify" or self.member is None:
            return
        valid, what = self.p.verify_pass(text)
        self._record("verify_pass", {"valid": valid, "verdict": what[:200]})
        self._page("verify", title="Exit pass / 出口凭证", text=what,
                   message="VALID / 有效" if valid else "NOT VALID / 无效",
                   level="ok" if valid else "error")

    def _open_lane(self) -> None:
        self._set_open(True)

    def _close_lane(self) -> None:
        self._set_open(False)

    def _set_open(self, is_open: bool) -> None:
        self.lane.set_open(is_open)
        self._record("open_lane" if is_open else "close_lane", {})
        self._page("menu", level="ok",
                   message="Lane open / 通道已开放" if is_open else "Lane closed / 通道已关闭")

    def _flush_outbox(self) -> None:
        state = self.p.flush_outbox()
        self._record("flush_outbox", {})
        self._page("menu", message=state, level="ok")

    def _retry_dead(self) -> None:
        count = act.retry_dead_letters(self.p.retry_dead, self.p.audit, self.clock,
                                       self._acting())
        self._page("menu", message=f"{count} events queued again / 已重新排队", level="ok")

    def _audit_log(self) -> None:
        entries = self.p.audit.entries()[-25:]
        verdict = self.p.audit.verify(self.p.reports.z_heads())
        head = Said.of("audit_chain_ok") if verdict.ok else Said.of(
            "audit_chain_broken", seq=verdict.bad_seq, reason=verdict.reason)
        self._record("read_audit_log", {})
        self._text_page(Said.of("audit_title", chain=head),
                        [audit_row(e.seq, e.at, e.kind, e.actor, e.detail, self.p.currency)
                         for e in reversed(entries)])

    def _device_health(self) -> None:
        self._record("device_health", {})
        self._text_page(Said.of("health_title"), self.p.health())

    def _x_report(self) -> None:
        report = self.p.reports.x(self.clock.now())
        self._record("x_report", {"sales_count": report.body["sales_count"]})
        self._text_page(Said.of("x_title"), report_lines(report), purpose="x_report")

    def _z_report(self) -> None:
        report = act.close_period(self.p.reports, self.p.jobs, self.clock,
                                  act.Acting(self._name, self.p.lane_id), self.p.wake_printer)
        self._text_page(Said.of("z_title", number=report.z_number), report_lines(report))

    def _print_x(self) -> None:
        report = self.p.reports.x(self.clock.now())
        self.p.jobs.add_document("X", report.text(), self.clock.now())
        self.p.wake_printer()
        self._record("print_x_report", {})
        self._text_page(Said.of("x_title_printing"), report_lines(report))

    def _store_data(self, choice: str | None = None) -> None:
        """The store data page (``choice`` None); a kind's "Roll back" button (``choice``
        the kind) asks first; its "Yes" (``choice`` "confirmed", the kind in the
        confirmation's ``chosen``) rolls back. Rolling back is for managers (it changes
        the prices shoppers pay, as a price override does) and only between shoppers
        (docs/store-sync.md: a lane changes versions only when no session or payment is
        open); StoreData audits it (who, kind, from, to) in the rollback's transaction."""
        data = self.p.store_data
        if data is None:
            self._data_page(None)
            return
        if choice is None:
            self._data_page(data)
            return
        view = self.lane.staff_view()
        confirmed = choice == "confirmed"
        kind = (view.chosen if view and view.purpose == "store_data" else "") \
            if confirmed else choice
        if kind not in STORE_DATA_KINDS:
            raise ValueError(f"no store data kind {kind!r}")
        if not self.member or not self.member.manager:
            self._data_page(data, Said.of("store_data_managers_only"), "error")
            return
        busy = self.lane.shopper_busy()
        if busy is not None:
            self._record("store_data_rollback_refused", {"kind": kind, "why": busy},
                         event=False)
            self._data_page(data, Said.of(f"store_data_busy_{busy}"), "error")
            return
        status = data.status().kinds.get(kind)
        if status is None or status.applied is None or status.previous is None:
            self._data_page(data, Said.of("store_data_nothing_to_roll_back",
                                          kind=Said.of(f"store_the_{kind}")), "error")
            return
        if not confirmed:
            self._page("confirm", purpose="store_data", chosen=kind, message="",
                       notice=None, heading=Said.of(
                           "store_data_rollback_title", kind=Said.of(f"store_the_{kind}"),
                           version=status.previous),
                       lines=rollback_lines(kind, status.applied, status.previous))
            return
        try:
            was, now = data.rollback(kind, self._name)
        except ValueError as exc:  # StoreDataRefused too: nothing to go back to
            self._data_page(data, Said.of("store_data_rollback_refused",
                                          kind=Said.of(f"store_the_{kind}"),
                                          reason=str(exc)), "error")
            return
        self._data_page(data, Said.of("store_data_rolled_back",
                                      kind=Said.of(f"store_the_{kind}"), was=was, now=now),
                        "ok")

    def _data_page(self, data: StoreDataDesk | None, notice: Said | None = None,
                   level: str = "info") -> None:
        manager = bool(self.member and self.member.manager)
        if data is None:
            lines: tuple[Said, ...] = (Said.of("store_data_not_set_up"),)
            offers: tuple[tuple[str, Said], ...] = ()
        else:
            status = data.status()
            lines, offers = store_data_lines(status), rollback_offers(status, manager)
        self._page("data", purpose="store_data", chosen="", message="", notice=notice,
                   level=level, heading=Said.of("store_data_title"), lines=lines,
                   offers=offers)

    def _text_page(self, heading: Said, lines: list[Said], purpose: str = "") -> None:
        """A text page in words: the screen words ``heading`` and ``lines`` in its language;
        ``title``/``text`` stay empty (they carry English-only pages: the pass verdict)."""
        self._page("text", title="", text="", heading=heading, lines=tuple(lines),
                   purpose=purpose)

    # -- helpers ------------------------------------------------------------------------------
    @property
    def _name(self) -> str:
        assert self.member is not None
        return self.member.name

    def _acting(self) -> act.Acting:
        """Who acts (the signed-in staff member) at this lane, with the open shopper
        session's staff_action event, if a session is open."""
        return act.Acting(self.member.name if self.member else "unknown", self.p.lane_id,
                          act.session_event(self.p.outbox, self.lane.shopper_session()))

    def _record(self, action: str, detail: dict[str, Any], event: bool = True) -> None:
        act.record(self.p.audit, self.clock, self._acting(), action, detail, event=event)

    def _enter(self, view: StaffView) -> None:
        self.lane.enter_staff(replace(view, lane_open=self.lane.is_open))

    def _page(self, page: str, **changes: Any) -> None:
        current = self.lane.staff_view() or StaffView(page)
        changes.setdefault("lane_open", self.lane.is_open)
        if page not in ("text", "confirm", "data"):  # words belong to the page that set them
            changes.setdefault("heading", None)
            changes.setdefault("lines", ())
        if page != "data":
            changes.setdefault("offers", ())
        if "message" in changes:  # a new outcome: words replace the last one's
            changes.setdefault("notice", None)
        if page == "menu":
            changes["state"] = lane_state_lines(self.lane.lane_state(), self.lane.is_open)
        self.lane.show_staff(replace(current, page=page, **changes))


# -- staff pages in words (Said: worded by the screen, app/ui/strings.py) --------------------
MAX_STATE_LINES = 4  # cart lines listed on the menu; the rest are counted


def lane_state_lines(state: LaneState, is_open: bool = True) -> tuple[Said, ...]:
    """The staff menu's summary of the lane: the cart (its lines and total), the open
    payment (provider, wallet, amount, how long it has been open), a pending age check,
    the member; or that no one is shopping."""
    out: list[Said] = [] if is_open else [Said.of("staff_state_closed")]
    if not state.in_session:
        return (*out, Said.of("staff_state_idle"))
    out.append(Said.of("staff_state_cart", count=state.item_count, total=state.total))
    for line in state.lines[:MAX_STATE_LINES]:
        out.append(Said.of("staff_state_line", name=line.name, quantity=line.quantity
                           if line.weight_g is None else f"{line.weight_g / 1000:.3f} kg",
                           total=line.total))
    if len(state.lines) > MAX_STATE_LINES:
        out.append(Said.of("staff_state_more", count=len(state.lines) - MAX_STATE_LINES))
    if state.payment is not None:
        p = state.payment
        out.append(Said.of(
            "staff_state_payment", provider=Said.of(f"provider_{p.provider}",
                                                    fallback=p.provider),
            how=Said.of(f"pay_mode_{p.mode}", fallback=p.mode,
                        wallet=Said.of(f"wallet_{p.wallet}", fallback=p.wallet)
                        if p.wallet else Said.of("wallet_any")),
            amount=p.amount, age=Elapsed(p.started_at)))
    if state.age_pending:
        out.append(Said.of("staff_state_age", names=state.age_pending))
    if state.member_id:
        out.append(Said.of("staff_state_member", member=state.member_id))
    return tuple(out)


def reset_loss_lines(state: LaneState) -> tuple[Said, ...]:
    """What a reset will lose, for its confirmation: the cart ("the cart of 5 items,
    ¥42.10, will be cleared"), an open payment (settled first: checked, then closed),
    the member's session; or that nothing is in progress."""
    if not state.in_session:
        return (Said.of("staff_reset_nothing"),)
    out = [Said.of("staff_reset_cart", count=state.item_count, total=state.total)]
    if state.payment is not None:
        out.append(Said.of("staff_reset_payment", amount=state.payment.amount,
                           provider=Said.of(f"provider_{state.payment.provider}",
                                            fallback=state.payment.provider)))
    if state.age_pending:
        out.append(Said.of("staff_reset_age", names=state.age_pending))
    if state.member_id:
        out.append(Said.of("staff_reset_member", member=state.member_id))
    return tuple(out)


def audit_row(seq: int, at: str, kind: str, actor: str, detail: dict[str, Any],
              currency: str) -> Said:
    """One audit log row in words: its time in the store's zone, its kind and details
    named in staff's language, amounts (``*_minor``) as money."""
    try:
        when: object = datetime.fromisoformat(at)
    except ValueError:
        when = at
    items = tuple(Said.of("audit_detail", name=Said.of(f"detail_{k}", fallback=k),
                          value=_detail_value(k, v, currency))
                  for k, v in detail.items() if k != "lane" and v not in (None, "", [], {}))
    return Said.of("audit_row", seq=seq, at=when, kind=Said.of(f"audit_kind_{kind}",
                                                               fallback=kind),
                   actor=Said.of(f"actor_{actor}", fallback=actor) if actor == "kiosk"
                   else actor, detail=items[:4])


def _detail_value(key: str, value: Any, currency: str) -> object:
    if key.endswith("_minor") and isinstance(value, int) and not isinstance(value, bool):
        return Money(value, currency)
    if isinstance(value, bool):
        return Said.of("yes" if value else "no")
    if key == "method":
        return Said.of(f"provider_{value}", fallback=str(value))
    if key == "reason" and isinstance(value, str):  # "signed out", "idle", "staff reset"
        return Said.of(f"reason_{value.replace(' ', '_')}", fallback=value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)[:40]


def report_lines(report: Any) -> list[Said]:
    """An X or Z report (``app.services.reports.Report``) in words: the period in the
    store's zone, money formatted, methods named."""
    b = report.body

    def money(minor: int) -> Money:
        return Money(minor, report.currency)
    start = report.local(report.opened_at)
    out = [Said.of("report_period", start=start if start else Said.of("report_first_sale"),
                   end=report.local(report.closed_at)),
           Said.of("report_sales", count=b["sales_count"], total=money(b["sales_minor"]))]
    for method, row in sorted(b["by_method"].items()):
        out.append(Said.of("report_method", count=row["count"], total=money(row["minor"]),
                           method=Said.of(f"provider_{method}", fallback=method)))
    out += [Said.of("report_refunds", count=b["refunds_count"],
                    total=money(b["refunds_minor"])),
            Said.of("report_net", total=money(b["net_minor"])),
            Said.of("report_voids", count=b["voids"]),
            Said.of("report_overrides", count=b["price_overrides"]),
            Said.of("report_abandoned", count=b["abandoned_carts"]),
            Said.of("report_exit_audits", count=b["exit_audits"]),
            Said.of("report_flagged", count=b["payments_flagged"]),
            Said.of("report_audit_head", seq=b["audit_seq"], hash=b["audit_hash"][:16])]
    return out


STORE_DATA_KINDS = ("catalogue", "promotions", "lane-keys")  # docs/store-sync.md


def _instant(value: object) -> object:
    """A time StoreData keeps as ISO 8601 text, as a datetime (shown in the store's zone);
    anything else as it is."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def store_data_lines(status: DataStatus) -> tuple[Said, ...]:
    """The store data page (``status``: ``app.services.store_data.DataStatus``) in words:
    when head office was last reached and, when that is too long ago, what it means and
    what to do; then per kind the version applied (when, effective from), versions
    waiting (and from when), the one before it, versions rolled back and the last refused
    download's reason."""
    out: list[Said] = []
    if status.checked_at is None:
        out.append(Said.of("store_data_never_reached"))
    else:
        out.append(Said.of("store_data_reached", age=Elapsed(status.checked_at),
                           at=status.checked_at))
    if status.stale:
        out.append(Said.of("store_data_stale", age=Elapsed(status.checked_at))
                   if status.checked_at is not None else Said.of("store_data_stale_never"))
    if status.last_error:
        out.append(Said.of("store_data_last_error", reason=status.last_error))
    for kind in STORE_DATA_KINDS:
        ks = status.kinds.get(kind)
        name = Said.of(f"store_kind_{kind}")
        if ks is not None and ks.local:
            out.append(Said.of("store_data_kind_local", kind=name))
        elif ks is None or ks.applied is None:
            out.append(Said.of("store_data_kind_none", kind=name))
        else:
            out.append(Said.of("store_data_kind", kind=name, version=ks.applied))
            if ks.applied_at and ks.effective_at:
                out.append(Said.of("store_data_applied", at=_instant(ks.applied_at),
                                   effective=_instant(ks.effective_at)))
            elif ks.applied_at:
                out.append(Said.of("store_data_applied_now", at=_instant(ks.applied_at)))
        staged = ks.staged if ks else ()
        times = (ks.staged_effective if ks else ()) or (None,) * len(staged)
        for version, when in zip(staged, times, strict=True):
            out.append(Said.of("store_data_staged_at", version=version, at=_instant(when))
                       if when else Said.of("store_data_staged", version=version))
        if ks is not None and ks.previous is not None:
            out.append(Said.of("store_data_previous", version=ks.previous))
        if ks is not None and ks.rolled_back:
            out.append(Said.of("store_data_rolled_back_list",
                               versions=", ".join(str(v) for v in ks.rolled_back)))
        if ks is not None and ks.last_refusal:
            out.append(Said.of("store_data_refused", reason=ks.last_refusal))
    return tuple(out)


def rollback_offers(status: DataStatus, manager: bool) -> tuple[tuple[str, Said], ...]:
    """One "Roll back <kind> to version N" button per kind with a version before the one
    applied (``(kind, words)``); for an attendant they say "(manager)"."""
    out = []
    for kind in STORE_DATA_KINDS:
        ks = status.kinds.get(kind)
        if ks is not None and ks.applied is not None and ks.previous is not None:
            out.append((kind, Said.of("store_data_rollback_button" if manager
                                      else "store_data_rollback_button_manager",
                                      kind=Said.of(f"store_kind_{kind}"),
                                      version=ks.previous)))
    return tuple(out)


def rollback_lines(kind: str, applied: int, previous: int) -> tuple[Said, ...]:
    """The rollback confirmation: what shoppers get after it, what becomes of the version
    set aside, and that it is audited under the staff member's name."""
    return (Said.of(f"store_data_rollback_effect_{kind.replace('-', '_')}", version=previous),
            Said.of("store_data_rollback_set_aside", version=applied),
            Said.of("store_data_rollback_audited"))


def menu_actions(manager: bool) -> list[str]:
    actions = ["reset", "void_line", "approve_age", "reprint", "verify_pass", "open_lane",
               "close_lane", "flush_outbox", "retry_dead", "audit_log", "device_health",
               "x_report", "print_x", "store_data"]
    if manager:
        actions[3:3] = ["override_price", "refund"]
        actions.append("z_report")
    return actions


__all__ = ["MANAGER_ONLY", "STORE_DATA_KINDS", "StaffMode", "StaffParts", "StaffView",
           "menu_actions", "rollback_lines", "rollback_offers", "store_data_lines"]
