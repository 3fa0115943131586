"""What each screen says, worked out from a ``LaneView`` in the shopper's language.

Pure functions (no Kivy), so the wording, the money formatting and the cart
rows are tested without a window; kiosk.kv only binds widgets to the dicts
these return.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from app.domain.money import Money
from app.domain.pricing import PricedLine
from app.lane import LaneView, Notice
from app.services.staff_port import Bilingual, Elapsed, Said, StaffView
from app.ui.strings import say

LOCALES = {"zh": "zh_CN", "en": "en_US"}


def money(m: Money | None, language: str) -> str:
    return m.format(LOCALES[language]) if m is not None else ""


def notice_text(notice: Notice | None, language: str) -> str:
    if notice is None:
        return ""
    return say(language, notice.key, **dict(notice.values))


def cart_row(pl: PricedLine, language: str, *, highlight: bool, frozen: bool) -> dict[str, Any]:
    line, product = pl.line, pl.line.product
    name = product.name_zh if language == "zh" else product.name_en
    if line.weighed:
        kg = f"{(line.weight_g or 0) / 1000:.3f}"
        detail = f"{say(language, 'weight', kg=kg)} × {money(pl.unit_price, language)}" \
                 f"{say(language, 'per_kg')}"
    else:
        detail = f"{line.quantity} × {money(pl.unit_price, language)}"
    savings = [f"{adj.name(language)}  -{money(adj.saving, language)}"
               for adj in pl.adjustments]
    if product.member_price is not None and not any(a.code == "member_price"
                                                    for a in pl.adjustments):
        # Not a member (yet): say what the member price would be.
        savings.insert(0, f"{say(language, 'member_label')} "
                          f"{money(product.member_price, language)}")
    return {
        "line_id": line.line_id,
        "name": name,
        "detail": detail,
        "savings": "\n".join(savings),
        "regular": money(pl.regular, language) if pl.saving else "",
        "total": money(pl.total, language),
        "quantity": "" if line.weighed else str(line.quantity),
        "can_change": not frozen and not line.weighed and line.label_price is None,
        "can_remove": not frozen,
        "highlight": highlight,
        "needs_age": line.needs_age_check,
    }


def cart_rows(view: LaneView, language: str) -> list[dict[str, Any]]:
    if view.priced is None:
        return []
    rows = [cart_row(pl, language, highlight=pl.line.line_id == view.last_line_id,
                     frozen=view.frozen) for pl in view.priced.lines]
    return rows


def totals(view: LaneView, language: str) -> dict[str, str]:
    p = view.priced
    if p is None:
        return {"count": say(language, "items", count=0), "subtotal": "", "savings": "",
                "total": ""}
    return {
        "count": say(language, "items", count=p.item_count),
        "subtotal": money(p.subtotal, language) if p.savings else "",
        "savings": money(p.savings, language) if p.savings else "",
        "total": money(p.total, language),
    }


def seconds_left(deadline: datetime | None, now: datetime) -> int:
    if deadline is None:
        return 0
    return max(0, int((deadline - now).total_seconds() + 0.999))


def code_payment(view: LaneView, language: str, now: datetime) -> dict[str, Any]:
    """The pay screen's payment-code parts: ``show_code`` (offer "show your payment code to
    the camera": the adapter takes codes and no code charge is open), ``confirming`` (a
    code charge is open: "confirm on your phone" instead of the QR), ``confirm_wallet``
    and ``confirm_countdown`` (seconds to the deadline, from ``PaymentView.deadline``)."""
    pay = view.payment
    confirming = pay is not None and pay.mode == "code"
    left = seconds_left(pay.deadline, now) if confirming and pay is not None else 0
    return {
        "show_code": view.takes_codes and not confirming and not view.checking_printer,
        "confirming": confirming,
        "confirm_wallet": say(language, "confirm_wallet", wallet=wallet_name(
            pay.wallet, language)) if confirming and pay is not None else "",
        "confirm_countdown": say(language, "confirm_countdown", seconds=left)
        if confirming and pay is not None and not pay.closing else "",
    }


def wallet_name(wallet: str, language: str) -> str:
    return say(language, f"wallet_{wallet}") or wallet


def member_line(view: LaneView, language: str) -> str:
    if not view.member_id:
        return ""
    extra = say(language, "member_provisional") if view.member_provisional else ""
    shown = view.member_id if not view.member_id.startswith("P") else "·" * 4 + \
        view.member_id[-4:]  # a provisional id is a hash: show only its end
    return f"{say(language, 'member_label')} {shown}{extra}"


def age_lines(view: LaneView, language: str) -> str:
    return "\n".join(say(language, "age_line", name_zh=zh, name_en=en, min_age=age)
                     for _, zh, en, age in view.age_lines)


# -- staff pages ------------------------------------------------------------------------------
def elapsed(seconds: float, language: str) -> str:
    """A duration as staff read it: "45 s", "3 min 20 s", "2 h 5 min" (zh: 秒/分/小时)."""
    whole = max(0, int(seconds))
    h, rest = divmod(whole, 3600)
    m, sec = divmod(rest, 60)
    units = ("小时", "分", "秒") if language == "zh" else (" h", " min", " s")
    parts = [(h, units[0]), (m, units[1]), (sec, units[2])]
    if h:
        parts = parts[:2]
    elif not m:
        parts = parts[2:]
    gap = "" if language == "zh" else " "
    return gap.join(f"{n}{unit}" for n, unit in parts if n or unit == units[2])


def worded(value: object, language: str, zone: tzinfo, now: datetime) -> str:
    """One value of a ``Said`` in ``language``: money formatted, times in the store's zone
    (``zone``), durations up to ``now``, nested ``Said`` worded, tuples joined."""
    if isinstance(value, Said):
        return words(value, language, zone, now)
    if isinstance(value, Money):
        return money(value, language)
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=zone)
        return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Elapsed):
        return elapsed((now - value.since).total_seconds(), language)
    if isinstance(value, Bilingual):
        return value.zh if language == "zh" else value.en
    if isinstance(value, tuple):
        return ("，" if language == "zh" else ", ").join(
            worded(v, language, zone, now) for v in value)
    return str(value)


def words(said: Said, language: str, zone: tzinfo, now: datetime) -> str:
    """A staff page's line (``Said``) in ``language``; its ``fallback`` (else its key) for
    a key the strings do not have."""
    values = {name: worded(v, language, zone, now) for name, v in said.values}
    counts = {name: v for name, v in said.values if name == "count"}  # plural choice
    text = say(language, said.key, **values | counts) if said.values else say(language,
                                                                                said.key)
    return text or said.fallback or said.key


def staff_page(st: StaffView | None, language: str, zone: tzinfo,
               now: datetime) -> dict[str, str]:
    """The staff screen's worded parts: ``staff_title`` and ``staff_text`` (a page in words,
    or the English-and-Chinese text a page carries, such as a pass verdict) and
    ``staff_state`` (the lane's state on the menu)."""
    if st is None:
        return {"staff_title": "", "staff_text": "", "staff_state": ""}
    return {
        "staff_title": words(st.heading, language, zone, now) if st.heading else st.title,
        "staff_text": "\n".join(words(line, language, zone, now) for line in st.lines)
        if st.lines else st.text,
        "staff_state": "\n".join(words(line, language, zone, now) for line in st.state),
    }
