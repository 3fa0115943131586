"""Checks over the laid-out screen, run by the flows on every screen in every look.

They read the real widget tree of the running kiosk (Kivy imported inside the
functions: the flows configure the window first) and return what is wrong as
sentences, [] when nothing is:

- ``layout_faults``: a visible widget outside the screen's area (under the top bar),
  outside the panel it belongs to, or over a sibling in a box or grid; a text cut
  short ("...") or bigger than its widget; a cart line whose name is cut.
- ``line_break_faults``: a drawn line of Chinese text that starts with closing
  punctuation or ends with an opening bracket (app/ui/linebreak.py).
- ``contrast_pairs``: every visible text and button with the colour it is drawn in
  and the colour under it, for the WCAG check (tests/ui/contrast.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.ui.linebreak import breaks_rules

SLACK = 1.5  # pixels: rounding in Kivy's layouts


def _rect(w: Any) -> tuple[float, float, float, float]:
    x, y = w.to_window(w.x, w.y)
    return x, y, x + w.width, y + w.height


def _shown(w: Any) -> bool:
    return w.opacity > 0 and w.width > 0.5 and w.height > 0.5


def _name(w: Any) -> str:
    text = getattr(w, "text", "")
    ident = next((k for k, v in _ids(w).items() if v is w), "")
    what = type(w).__name__ + (f"#{ident}" if ident else "")
    return f"{what} {text[:30]!r}" if isinstance(text, str) and text else what


def _ids(w: Any) -> dict[str, Any]:
    from kivy.app import App

    app = App.get_running_app()
    ids = dict(app.root.ids)
    ids.update(app.root.ids.staff_screen.ids)
    return ids


def visible_tree(top: Any, *, scrolled: bool = False) -> Iterator[tuple[Any, Any]]:
    """(widget, parent) for every visible widget under ``top``; a scrolling view is
    yielded but its content (clipped by design) only with ``scrolled``; a hidden widget
    and what is in it are not."""
    from kivy.uix.scrollview import ScrollView

    for child in top.children:
        if not _shown(child):
            continue
        yield child, top
        if scrolled or not isinstance(child, ScrollView):
            yield from visible_tree(child, scrolled=scrolled)


def _inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    return (inner[0] >= outer[0] - SLACK and inner[1] >= outer[1] - SLACK
            and inner[2] <= outer[2] + SLACK and inner[3] <= outer[3] + SLACK)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return (min(a[2], b[2]) - max(a[0], b[0]) > SLACK
            and min(a[3], b[3]) - max(a[1], b[1]) > SLACK)


def areas(app: Any) -> list[tuple[Any, tuple[float, float, float, float]]]:
    """What is on the glass now: the current screen with its area, and any popup."""
    from kivy.core.window import Window
    from kivy.uix.modalview import ModalView

    screens = app.root.ids.screens
    shown: list[tuple[Any, tuple[float, float, float, float]]] = [
        (screens.current_screen, _rect(screens))]
    if screens.current == "staff":  # the staff page under the staff screen's own bar
        pages = app.root.ids.staff_screen.ids.staff_pages
        shown = [(app.root.ids.staff_screen, _rect(screens)),
                 (pages.current_screen, _rect(pages))]
    for child in Window.children:
        if isinstance(child, ModalView):
            shown.append((child, _rect(child.children[0]) if child.children else _rect(child)))
    return shown


def settle(app: Any) -> None:
    """Lay everything out now (texts first, then every layout from the top down), so a
    check never reads a layout Kivy has been asked to redo but has not yet."""
    from kivy.core.window import Window
    from kivy.uix.label import Label
    from kivy.uix.layout import Layout
    from kivy.uix.recyclelayout import RecycleLayout

    for _ in range(2):  # a layout changes widths, which change the texts' heights
        for top in Window.children:
            for w in top.walk():
                if isinstance(w, Label):
                    w.texture_update()
            for w in top.walk():
                if isinstance(w, Layout) and not isinstance(w, RecycleLayout):
                    w.do_layout()  # (a recycle layout is laid out by its view)


def layout_faults(app: Any) -> list[str]:
    """Everything laid out wrong on the glass now (see the module docstring)."""
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.gridlayout import GridLayout
    from kivy.uix.label import Label

    from app.ui.widgets import CartRow

    settle(app)
    faults: list[str] = []
    for top, area in areas(app):
        tree = list(visible_tree(top))
        for w, parent in tree:
            r = _rect(w)
            if not _inside(r, area):
                faults.append(f"{_name(w)} at {_fmt(r)} is outside the screen area {_fmt(area)}")
            elif isinstance(parent, (BoxLayout, GridLayout)) and not _inside(r, _rect(parent)):
                faults.append(f"{_name(w)} at {_fmt(r)} spills out of {_name(parent)} "
                              f"at {_fmt(_rect(parent))}")
            if isinstance(w, Label) and w.text.strip():
                if w.is_shortened:
                    faults.append(f"{_name(w)} is cut short")
                tw, th = w.texture_size
                if tw > w.width + SLACK or th > w.height + SLACK:
                    faults.append(f"{_name(w)}: its text ({tw:.0f}x{th:.0f}) is bigger than "
                                  f"the widget ({w.width:.0f}x{w.height:.0f})")
        for parent in {id(p): p for _, p in tree}.values():
            if not isinstance(parent, (BoxLayout, GridLayout)):
                continue
            kids = [c for c in parent.children if _shown(c)]
            for i, a in enumerate(kids):
                for b in kids[i + 1:]:
                    if _overlap(_rect(a), _rect(b)):
                        faults.append(f"{_name(a)} overlaps {_name(b)}")
        faults += touch_blockers(top)
    cart = app.root.ids.get("cart")
    if cart is not None and app.root.ids.screens.current == "shopping":
        for row in (w for w in cart.walk() if isinstance(w, CartRow) and w.name):
            faults += [f"cart line {row.name!r}: {f}" for f in cart_row_faults(row)]
    return faults


def touch_blockers(top: Any) -> list[str]:
    """A hidden but disabled button lying over a visible one: Kivy lets a disabled widget
    swallow the touches on it, so the visible button cannot be pressed (the demo phone's
    hidden buttons over the wallets did this)."""
    from kivy.uix.button import Button
    from kivy.uix.scrollview import ScrollView

    def unscrolled(w: Any) -> Iterator[Any]:  # a scroll view only passes on its own touches
        for child in w.children:
            yield child
            if not isinstance(child, ScrollView):
                yield from unscrolled(child)

    shown = {id(w) for w, _ in visible_tree(top)}
    buttons = [w for w in unscrolled(top) if isinstance(w, Button)
               and w.width > 1 and w.height > 1]
    live = [w for w in buttons if id(w) in shown and not w.disabled]
    dead = [w for w in buttons if id(w) not in shown and w.disabled]
    return [f"hidden {_name(b)} swallows the touches on {_name(w)}"
            for b in dead for w in live if _overlap(_rect(b), _rect(w))]


def cart_row_faults(row: Any) -> list[str]:
    """A cart line whose name is cut, whose age tag is not drawn, or whose texts spill
    out of the line."""
    from kivy.uix.label import Label

    faults = []
    name = row.ids.get("row_name")
    if name is None:
        return ["no row_name label"]
    drawn = "".join(drawn_lines(name)).replace(" ", "")
    if drawn != name.text.replace(" ", "").replace("\n", "") or name.is_shortened:
        faults.append(f"the name is drawn as {drawn!r}")
    if row.needs_age and "[18+]" not in "".join(
            "".join(drawn_lines(w)) for w in row.walk() if isinstance(w, Label)):
        faults.append("the [18+] tag is not drawn")
    box = _rect(row)
    # Taller than its words need (or the touch targets): a height measured while the line
    # was laid out at some passing width, kept for good, pushes "-", "+" and Remove down
    # and out of the cart's view (review of issue 19: after a declined payment).
    from kivy.app import App
    from kivy.metrics import sp

    app = App.get_running_app()
    words = row.ids.row_name.height + row.ids.row_detail.height + \
        row.ids.row_savings.height
    if words > 0:  # (a recycled row not yet given its words says nothing)
        room = max(app.target + sp(12), words + 40, row.needed) + SLACK
        if row.height > room + sp(22) * app.scale * 1.35 * 2:
            faults.append(f"the line is {row.height:.0f} px high; its words need "
                          f"{row.needed:.0f}")
    for w in row.walk(restrict=True):
        if w is not row and _shown(w) and isinstance(w, Label) and w.text.strip() \
                and not _inside(_rect(w), box):
            faults.append(f"{_name(w)} spills out of the line")
    return faults


def drawn_lines(label: Any) -> list[str]:
    """The lines a Label has drawn, as its core label laid them out (what the glass shows)."""
    label.texture_update()
    lines = getattr(label._label, "_cached_lines", None) or []
    return ["".join(word.text for word in line.words) for line in lines]


def line_break_faults(app: Any) -> list[str]:
    """Every drawn line of a visible label that breaks the Chinese line-breaking rules."""
    from kivy.uix.label import Label

    faults = []
    for top, _area in areas(app):
        for w, _parent in visible_tree(top, scrolled=True):
            if isinstance(w, Label) and w.text.strip():
                bad = breaks_rules(drawn_lines(w))
                if bad:
                    faults.append(f"{_name(w)} draws {drawn_lines(w)}")
    return faults


def contrast_faults(app: Any, png: Path) -> list[str]:
    """Every text and button on the glass under WCAG AA in the screenshot ``png`` just
    taken of it (tests/ui/contrast.py)."""
    from kivy.uix.modalview import ModalView

    from tests.ui.contrast import screenshot_faults

    shown = areas(app)
    popups = [(top, area) for top, area in shown if isinstance(top, ModalView)]
    # Under a popup the screen is dimmed on purpose: only the popup is read then, and of
    # two (the produce search pad over the grid) only the top one (Window.children[0]).
    return screenshot_faults(app, png, popups[:1] or shown)


def _fmt(r: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in r) + ")"
