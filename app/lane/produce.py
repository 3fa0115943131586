"""The "Find produce" grid: loose items without a barcode, picked by picture (issue 19).

A shopper who cannot find a PLU sticker opens the grid from the shopping screen
or the code pad, narrows it by department or by a word of the name (Chinese or
English), and taps a picture. The tap adds nothing by itself: it types the
item's PLU (``Scanning.typed_code``), so the line, its price, its events and any
refusal (an item sold by weight must be weighed and its label scanned) are
exactly those of typing the code on the pad.
"""

from __future__ import annotations

from app.domain.barcodes import PLU_PREFIX
from app.lane.scanning import Scanning
from app.lane.views import Screen


class ProducePicking(Scanning):
    def find_produce(self, department: str = "", search: str = "") -> None:
        """Open the grid, or show it again for ``department`` ('' = all) and ``search``
        (a part of a Chinese or English name; '' = all): ``LaneView.produce`` holds the
        ``ProduceGrid``. Only on the shopping screen (a session is open: a tile adds to
        its cart); elsewhere, or on a lane without a grid, nothing happens."""
        self._touched()
        if self.p.produce is None or self.session is None or \
                self._view.screen is not Screen.SHOPPING:
            return
        self._show(produce=self.p.produce(department, search))

    def close_produce(self) -> None:
        """The grid's Close: back to the cart, nothing added."""
        self._touched()
        if self._view.produce is not None:
            self._show(produce=None)

    def pick_produce(self, code: str) -> None:
        """A tile tapped: ``code`` is its catalogue key (``PLU:4046``). The grid closes and
        the PLU's digits go through ``typed_code``, as if typed on the code pad. A key that
        is not a PLU is ignored (the grid only ever shows PLU items)."""
        digits = code[len(PLU_PREFIX):] if code.startswith(PLU_PREFIX) else ""
        if not (digits.isdigit() and digits.isascii()) or self._view.produce is None:
            return
        self._show(produce=None)
        self.typed_code(digits)


__all__ = ["ProducePicking"]
