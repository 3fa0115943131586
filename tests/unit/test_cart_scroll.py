"""Which scroll position shows the cart line just scanned (app.ui.present.scroll_to_row)."""

from __future__ import annotations

import pytest

from app.ui.present import scroll_to_row

ROWS = [100.0] * 8  # eight lines of 100 px, 2 px apart: 814 px in a 400 px cart


def shown(scroll_y: float, viewport: float = 400.0) -> tuple[float, float]:
    """The content's pixels (from its top) that a scroll_y shows."""
    room = sum(ROWS) + 2 * (len(ROWS) - 1) - viewport
    top = (1 - scroll_y) * room
    return top, top + viewport


@pytest.mark.parametrize("index", range(8))
@pytest.mark.parametrize("start", [1.0, 0.5, 0.0])
def test_the_row_is_shown_whole_from_anywhere(index, start):
    y = scroll_to_row(ROWS, 2, 400, index, start)
    top, bottom = shown(y)
    row_top = index * 102
    assert top - 1e-6 <= row_top and row_top + 100 <= bottom + 1e-6


def test_the_newest_at_the_bottom_scrolls_to_the_end_and_a_cart_that_fits_does_not():
    assert scroll_to_row(ROWS, 2, 400, 7, 1.0) == 0.0
    assert scroll_to_row(ROWS[:3], 2, 400, 2, 1.0) == 1.0


def test_a_row_already_shown_does_not_move_the_cart():
    assert scroll_to_row(ROWS, 2, 400, 3, 0.5) == 0.5  # rows 3 and 4 are in view at 0.5
