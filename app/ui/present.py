"""What each screen says, worked out from a ``LaneView`` in the shopper's language.

Pure functions (no Kivy), so the wording, the money formatting and the cart
rows are tested without a window; kiosk.kv only binds widgets to the dicts
these return.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from app.domain.catalogue import Product, Unit
from app.domain.money import Money
from app.domain.pricing import PricedLine
from app.lane import LaneView, Notice
from app.services.catalogue import ProduceGrid
from app.services.staff import STORE_DATA_KINDS
from app.services.staff_port import Bilingual, Elapsed, Said, StaffView
from app.ui.strings import say

LOCALES = {"zh": "zh_CN", "en": "en_US"}


def money(m: Money | None, language: str) -> str:
    return m.format(LOCALES[language]) if m is not None else ""


def notice_text(notice: Notice | None, language: str) -> str:
    if notice is None:
        return ""
    return say(language, notice.key, **dict(notice.values))


def _no_picture(_image: str) -> str:
    return ""


def cart_row(pl: PricedLine, language: str, *, highlight: bool, frozen: bool,
             full: bool = False, picture: Callable[[str], str] = _no_picture
             ) -> dict[str, Any]:
    """One cart line's words; ``full``: the line is at its quantity limit, so "+" is off
    (``LaneView.full_lines``); ``picture`` turns the product's ``image`` into a file to show
    ('' = none: app.services.pictures.Pictures.path)."""
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
        "can_plus": not frozen and not full,
        "can_remove": not frozen,
        "highlight": highlight,
        "needs_age": line.needs_age_check,
        "picture": picture(product.image),
    }


def cart_rows(view: LaneView, language: str,
              picture: Callable[[str], str] = _no_picture) -> list[dict[str, Any]]:
    if view.priced is None:
        return []
    rows = [cart_row(pl, language, highlight=pl.line.line_id == view.last_line_id,
                     frozen=view.frozen, full=pl.line.line_id in view.full_lines,
                     picture=picture)
            for pl in view.priced.lines]
    return rows


def scroll_to_row(heights: list[float], spacing: float, viewport: float, index: int,
                  scroll_y: float) -> float:
    """The RecycleView ``scroll_y`` (1.0 top, 0.0 bottom) that shows row ``index`` whole,
    moving as little as possible from ``scroll_y``; rows are stacked top down with
    ``heights`` (pixels) and ``spacing`` between them in a ``viewport`` that tall. A
    cart that fits needs no scrolling (1.0). Raises IndexError for a row not there."""
    total = sum(heights) + spacing * max(0, len(heights) - 1)
    room = total - viewport
    if room <= 0:
        return 1.0
    top = sum(heights[:index]) + spacing * index  # the row's top, from the content's top
    bottom = top + heights[index]
    shown_top = (1.0 - scroll_y) * room  # the viewport's top, from the content's top
    if top < shown_top:
        shown_top = top
    elif bottom > shown_top + viewport:
        shown_top = bottom - viewport
    return min(1.0, max(0.0, 1.0 - shown_top / room))


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


def department_name(department: str, language: str) -> str:
    """A catalogue department (a slug such as ``produce``) in words; one the strings do
    not know is shown as the catalogue wrote it."""
    return say(language, f"dept_{department}") or department


def initials(name: str) -> str:
    """What a tile with no picture shows: the first letters of two words of an English
    name ("Sweet Corn" -> "SC"), or the first two characters of a Chinese one."""
    words = [w for w in name.replace("&", " ").split() if w[:1].isalnum()]
    if words and words[0].isascii():
        return "".join(w[0] for w in words[:2]).upper()
    return name.strip()[:2]


def produce_tile(product: Product, language: str, picture: Callable[[str], str]
                 ) -> dict[str, Any]:
    """One tile of the "Find produce" grid: both names (the shopper's language first),
    the price (per kg for weighed items, with a "weigh first" tag: typing such a PLU is
    refused until it is weighed), the picture ('' = a plain tile with ``initials``)."""
    first, second = (product.name_zh, product.name_en) if language == "zh" else \
        (product.name_en, product.name_zh)
    weighed = product.unit is Unit.KG
    price = money(product.price, language) + (say(language, "per_kg") if weighed else "")
    return {"code": product.code, "name": first, "other_name": second, "price": price,
            "tag": say(language, "produce_weigh") if weighed else "",
            "picture": picture(product.image), "initials": initials(product.name_en)}


def produce(grid: ProduceGrid | None, language: str, picture: Callable[[str], str]
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """The grid's parts for kiosk.kv: department buttons (``All`` first), tiles, and the
    words around them (``produce_hint``: what to do, or why nothing is shown;
    ``produce_search``: the search button's words)."""
    if grid is None:
        return [], [], {"produce_hint": "", "produce_search": say(language,
                                                                 "produce_search_hint")}
    departments = [{"department": "", "text": say(language, "produce_all"),
                    "selected": grid.department == ""}]
    departments += [{"department": d, "text": f"{department_name(d, language)} ({n})",
                     "selected": grid.department == d} for d, n in grid.departments]
    tiles = [produce_tile(p, language, picture) for p in grid.items]
    if not grid.departments:
        hint = say(language, "produce_empty")
    elif not tiles:
        hint = say(language, "produce_none", search=grid.search)
    elif grid.more:
        hint = say(language, "produce_more", count=len(tiles))
    else:
        hint = say(language, "produce_tap")
    search = say(language, "produce_search", search=grid.search) if grid.search else \
        say(language, "produce_search_hint")
    return departments, tiles, {"produce_hint": hint, "produce_search": search}


def seconds_left(deadline: datetime | None, now: datetime) -> int:
    if deadline is None:
        return 0
    return max(0, int((deadline - now).total_seconds() + 0.999))


def code_payment(view: LaneView, language: str, now: datetime) -> dict[str, Any]:
    """The pay screen's payment-code parts: ``show_code`` (offer "show your payment code to
    the camera": the adapter takes codes and no code charge is open), ``confirming`` (a
    code charge is open: "confirm on your phone" instead of the QR), ``confirm_wallet``
    and ``confirm_countdown`` (seconds to the deadline, from ``PaymentView.deadline``);
    ``type_code_offer``: offer typing the code's digits (with or without a camera)."""
    pay = view.payment
    confirming = pay is not None and pay.mode == "code"
    left = seconds_left(pay.deadline, now) if confirming and pay is not None else 0
    offer = view.takes_codes and not confirming and not view.checking_printer
    return {
        # "Show it to the camera" only while the camera works (a hand scanner, if fitted,
        # is offered by ``camera_words``' pay_camera instead).
        "show_code": offer and view.camera_ok,
        "type_code_offer": offer,  # typing the digits needs no camera
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
    # By phone: the number, masked (138****5678), which the shopper recognises; else the
    # member id, of which a provisional one (a hash) shows only its end.
    shown = view.member_masked or (view.member_id if not view.member_id.startswith("P")
                                   else "·" * 4 + view.member_id[-4:])
    return f"{say(language, 'member_label')} {shown}{extra}"


def age_lines(view: LaneView, language: str) -> str:
    return "\n".join(say(language, "age_line", name_zh=zh, name_en=en, min_age=age)
                     for _, zh, en, age in view.age_lines)


def pay_summary(view: LaneView, language: str) -> str:
    """The pay screens' line under the amount: the item count, the savings (when any) and
    the member (masked as everywhere): "3 items · You save ¥2.40 · Member 138****5678"."""
    p = view.priced
    if p is None:
        return ""
    parts = [say(language, "items", count=p.item_count)]
    if p.savings:
        parts.append(f"{say(language, 'savings')} {money(p.savings, language)}")
    member = member_line(view, language)
    if member:
        parts.append(member)
    return "  ·  ".join(parts)


def scan_with(wallets: tuple[str, ...], language: str) -> str:
    """One aggregated QR: "Scan the QR code with WeChat Pay or Alipay" (every wallet it
    serves, ``payment.wallets``); any wallet when none are listed."""
    if not wallets:
        return say(language, "scan_to_pay_any")
    names = say(language, "wallets_or").join(wallet_name(w, language) for w in wallets)
    return say(language, "scan_to_pay_wallets", wallets=names)

# Notices about a payment that ended without money, or could not start: on the shopping
# screen they are shown in the cart's panel, where the shopper is looking after the pay
# screen, not in the narrow column beside the camera (issue 19).
PAYMENT_OUTCOMES = frozenset({
    "payment_cancelled", "payment_expired", "payment_failed", "nothing_to_pay", "disk_full",
    "clock_wrong", "declined_insufficient_funds", "declined_code_expired",
    "declined_code_used", "declined_code_invalid", "declined_declined",
})


def payment_outcome(view: LaneView, language: str) -> str:
    """The shopping screen's banner over the cart: a payment outcome notice
    (``PAYMENT_OUTCOMES``) in ``language``, or '' (the notice then shows beside the camera)."""
    notice = view.notice
    if view.screen.value != "shopping" or notice is None or notice.key not in PAYMENT_OUTCOMES:
        return ""
    return notice_text(notice, language)


def camera_words(view: LaneView, language: str) -> dict[str, str]:
    """What each screen that relies on the camera says, in ``language``: its usual words
    while the camera works; while it does not (``LaneView.camera_ok``), that it does not and
    what to do instead (type the code, the hand scanner if one is fitted, call staff), so
    no screen goes on asking for a barcode under a dead camera (issue 19).

    Keys: ``attract_prompt``, ``attract_hint`` (the attract screen's two lines),
    ``member_prompt``, ``cart_hint`` (an empty cart's line), ``camera_warning`` (beside
    the greyed camera picture), ``pay_camera`` (the pay screen, instead of "show your
    payment code to the camera")."""
    if view.camera_ok:
        return {"attract_prompt": say(language, "prompt"),
                "attract_hint": say(language, "prompt_scan"),
                "member_prompt": say(language, "member_prompt"),
                "cart_hint": say(language, "cart_empty_hint"),
                "camera_warning": "", "pay_camera": ""}
    scanner = "_scanner" if view.hand_scanner else ""
    shopping = say(language, f"camera_down_shopping{scanner}")
    return {"attract_prompt": say(language, "camera_down_prompt"),
            "attract_hint": say(language, f"camera_down_attract{scanner}"),
            "member_prompt": say(language, "camera_down_member"),
            "cart_hint": shopping, "camera_warning": shopping,
            "pay_camera": say(language, f"camera_down_pay{scanner}")}


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
    or the English-and-Chinese text a page carries, such as a pass verdict),
    ``staff_state`` (the lane's state on the menu), ``staff_message`` (the last outcome:
    its words when it has them) and ``rollback_<kind>`` (the store data page's buttons,
    "" for a kind with nothing to roll back to; one per ``STORE_DATA_KINDS``)."""
    offers = {f"rollback_{kind}": "" for kind in STORE_DATA_KINDS}
    if st is None:
        return {"staff_title": "", "staff_text": "", "staff_state": ""} | offers
    for choice, label in st.offers:
        offers[f"rollback_{choice}"] = words(label, language, zone, now)
    return {
        "staff_title": words(st.heading, language, zone, now) if st.heading else st.title,
        "staff_text": "\n".join(words(line, language, zone, now) for line in st.lines)
        if st.lines else st.text,
        "staff_state": "\n".join(words(line, language, zone, now) for line in st.state),
        "staff_message": words(st.notice, language, zone, now) if st.notice else st.message,
    } | offers

