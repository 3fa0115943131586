"""WCAG 2.1 contrast: the formula, and a check over a rendered screenshot's widgets.

``ratio`` is WCAG 2.1's contrast ratio of two sRGB colours (relative luminance,
https://www.w3.org/TR/WCAG21/#dfn-relative-luminance and #dfn-contrast-ratio).
AA asks 4.5:1 for text, 3:1 for large text (18 pt, i.e. 24 px, or 14 pt bold, i.e.
18.67 px) and for the visual boundary of a control (success criteria 1.4.3 and
1.4.11). ``screenshot_faults`` measures what was drawn: for every visible text it
takes the widget's rect from the widget tree, finds the background (the commonest
colour there) and the text colour (the commonest colour that is not background,
antialiasing aside) in the screenshot's pixels, and checks their ratio; for every
button, its boundary (its fill, or the edge drawn on it) against what surrounds it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

TEXT_AA = 4.5
LARGE_AA = 3.0  # large text, and a control's boundary
LARGE_PX = 24.0  # 18 pt at 96 px per inch
LARGE_BOLD_PX = 18.67  # 14 pt bold


def luminance(rgb: Sequence[float]) -> float:
    """WCAG relative luminance of an sRGB colour given as 0..1 channels (alpha ignored)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(float(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG contrast ratio of two colours (1.0 to 21.0), either order."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def needed(font_px: float, bold: bool) -> float:
    """The AA ratio for text of ``font_px`` pixels: 3.0 if it is large text, else 4.5."""
    return LARGE_AA if font_px >= LARGE_PX or (bold and font_px >= LARGE_BOLD_PX) else TEXT_AA


def _clip(r: tuple[float, ...], c: tuple[float, ...]) -> tuple[float, ...]:
    return max(r[0], c[0]), max(r[1], c[1]), min(r[2], c[2]), min(r[3], c[3])


def _texts(top: Any, clip: tuple[float, ...]) -> Iterator[tuple[Any, tuple[float, ...]]]:
    """(label, its drawn rect clipped to what scrolls it) for every visible label."""
    from kivy.uix.label import Label
    from kivy.uix.scrollview import ScrollView

    for child in top.children:
        if child.opacity <= 0 or child.width < 1 or child.height < 1:
            continue
        x, y = child.to_window(child.x, child.y)
        rect = _clip((x, y, x + child.width, y + child.height), clip)
        if rect[2] - rect[0] < 4 or rect[3] - rect[1] < 4:
            continue
        if isinstance(child, Label):
            yield child, rect
        yield from _texts(child, rect if isinstance(child, ScrollView) else clip)


def _pixels(image: Any, rect: tuple[float, ...]) -> Any:
    height = image.shape[0]
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    crop = image[max(0, height - y1):max(0, height - y0), max(0, x0):max(0, x1)]
    return crop.reshape(-1, 3)


def _commonest(pixels: Any) -> list[tuple[tuple[int, int, int], int]]:
    """The colours in ``pixels`` (N x 3, BGR bytes) with their counts, commonest first."""
    import numpy

    packed = (pixels[:, 0].astype(numpy.int32) << 16) | (pixels[:, 1].astype(numpy.int32) << 8) \
        | pixels[:, 2].astype(numpy.int32)
    values, counts = numpy.unique(packed, return_counts=True)
    order = numpy.argsort(-counts, kind="stable")
    return [(((int(v) >> 16) & 255, (int(v) >> 8) & 255, int(v) & 255), int(n))
            for v, n in zip(values[order], counts[order], strict=True)]


def _rgb(bgr: tuple[int, ...]) -> tuple[float, float, float]:
    return bgr[2] / 255, bgr[1] / 255, bgr[0] / 255


def measure(image: Any, rect: tuple[float, ...]) -> tuple[tuple[float, ...],
                                                          tuple[float, ...]] | None:
    """(text colour, background colour) drawn in ``rect`` (window pixels, y up) of the BGR
    ``image``; None when nothing but background is there."""
    pixels = _pixels(image, rect)
    if len(pixels) < 20:
        return None
    colours = _commonest(pixels)
    bg = colours[0][0]
    back = _rgb(bg)
    ink = [(c, n) for c, n in colours[1:] if sum(abs(a - b) for a, b in zip(c, bg, strict=True))
           > 60]
    total = sum(n for _, n in ink)
    if total < 12:
        return None
    # Antialiasing only mixes the text colour with the background, so the text colour is
    # the farthest from it; a few pixels (2%, at least 3) must have it, so a stray pixel
    # of something else does not count.
    ranked = sorted(ink, key=lambda cn: ratio(_rgb(cn[0]), back), reverse=True)
    enough, seen = max(3, 0.02 * total), 0
    for colour, count in ranked:
        seen += count
        if seen >= enough:
            return _rgb(colour), back
    return _rgb(ranked[-1][0]), back


def screenshot_faults(app: Any, png: Path, tops: list[tuple[Any, tuple[float, ...]]]) -> list[str]:
    """Every visible text in ``tops`` (widget, area rect) whose drawn contrast in the
    screenshot ``png`` is under AA, and every button whose boundary is under 3:1 against
    what surrounds it; as sentences. Disabled controls are left out (WCAG exempts them)."""
    import cv2
    from kivy.uix.button import Button

    image = cv2.imread(str(png))
    if image is None:
        return [f"{png} is not a PNG"]
    faults = []
    for top, area in tops:
        for label, rect in _texts(top, area):
            if not label.text.strip() or label.disabled:
                continue  # WCAG 1.4.3 and 1.4.11 leave inactive controls out
            tw, th = label.texture_size
            cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
            cut = rect[3] - rect[1] < label.height - 1 or rect[2] - rect[0] < label.width - 1
            if isinstance(label, Button) and cut:
                # A button scrolled part-way out of the cart: its sliver holds whatever
                # the scroll view draws at its edge, not the button's text; it is read
                # when scrolled in (review of issue 19: a false 1.27:1 on the tour).
                continue
            drawn = rect if isinstance(label, Button) else _clip(
                (cx - tw / 2, cy - th / 2, cx + tw / 2, cy + th / 2), rect)
            found = measure(image, drawn)
            if found is None:
                continue
            text, back = found
            want = needed(label.font_size, label.bold)
            got = ratio(text, back)
            if got < want - 0.05:  # 8-bit rounding of the colours
                faults.append(f"{type(label).__name__} {label.text[:24]!r}: text "
                              f"{_hex(text)} on {_hex(back)} is {got:.2f}:1, under {want}:1")
            if isinstance(label, Button):
                edge, ring = _band(image, rect, inside=True), _band(image, rect, inside=False)
                if edge is not None and ring is not None and ratio(edge, ring) < LARGE_AA - 0.05:
                    faults.append(f"button {label.text[:24]!r}: its edge {_hex(edge)} on "
                                  f"{_hex(ring)} is {ratio(edge, ring):.2f}:1, under 3:1")
    return faults


def _band(image: Any, rect: tuple[float, ...], *, inside: bool) -> tuple[float, ...] | None:
    """The commonest colour in a 2-pixel band just inside ``rect``'s edge (the control's
    boundary: its fill, or the edge drawn on it) or just outside it (what it sits on)."""
    import numpy

    x0, y0, x1, y1 = rect
    a, b = (1, 3) if inside else (-4, -2)
    bands = [_pixels(image, (x0 + a, y0 + 4, x0 + b, y1 - 4)),
             _pixels(image, (x1 - b, y0 + 4, x1 - a, y1 - 4)),
             _pixels(image, (x0 + 4, y0 + a, x1 - 4, y0 + b)),
             _pixels(image, (x0 + 4, y1 - b, x1 - 4, y1 - a))]
    found = [band for band in bands if len(band)]
    if not found:
        return None
    pixels = numpy.concatenate(found)
    return _rgb(_commonest(pixels)[0][0]) if len(pixels) >= 10 else None


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb[:3])
