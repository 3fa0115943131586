"""What each screen says, worked out from a ``LaneView`` in the shopper's language.

Pure functions (no Kivy), so the wording, the money formatting and the cart
rows are tested without a window; kiosk.kv only binds widgets to the dicts
these return.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.domain.catalogue import Product, Unit
from app.domain.money import Money
from app.domain.pricing import PricedLine
from app.lane import LaneView, Notice
from app.services.catalogue import ProduceGrid
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
             picture: Callable[[str], str] = _no_picture) -> dict[str, Any]:
    """One cart row's words; ``picture`` turns the product's ``image`` into a file to show
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
                     frozen=view.frozen, picture=picture) for pl in view.priced.lines]
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
