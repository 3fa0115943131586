"""High contrast meets WCAG AA in every pair of colours the screens draw (issue 19).

Over the palettes (app/ui/themes.py PAIRS); tests/ui/contrast.py checks the rendered
screenshots' pixels, for whatever this list misses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.ui.themes import PAIRS, THEMES
from tests.ui.contrast import LARGE_AA, TEXT_AA, luminance, needed, ratio

ROOT = Path(__file__).resolve().parents[2]


def test_the_wcag_formula_gives_the_known_figures():
    assert ratio((0, 0, 0), (1, 1, 1)) == pytest.approx(21.0)
    assert ratio((1, 1, 1), (1, 1, 1)) == pytest.approx(1.0)
    assert luminance((0.5, 0.5, 0.5)) == pytest.approx(0.2140, abs=1e-4)  # #808080
    assert ratio((1, 1, 1), (0x76 / 255,) * 3) == pytest.approx(4.54, abs=0.01)  # #767676
    assert needed(24, False) == LARGE_AA and needed(19, True) == LARGE_AA
    assert needed(22, False) == TEXT_AA


def test_call_staff_was_under_aa_in_high_contrast():
    # White on the high-contrast alert red: 3.1:1, what the issue measured; now black.
    alert = THEMES["contrast"]["alert"]
    assert ratio((1, 1, 1), alert) < TEXT_AA <= ratio(THEMES["contrast"]["on_alert"], alert)


@pytest.mark.parametrize(("fg", "bg", "kind"), PAIRS)
def test_every_pair_in_high_contrast_meets_aa(fg, bg, kind):
    theme = THEMES["contrast"]
    want = TEXT_AA if kind == "text" else LARGE_AA
    got = ratio(theme[fg], theme[bg])
    assert got >= want, f"{fg} on {bg}: {got:.2f}:1, under {want}:1"


@pytest.mark.parametrize(("fg", "bg", "kind"), [p for p in PAIRS if p[2] == "text"])
def test_every_text_pair_in_the_normal_theme_meets_aa_too(fg, bg, kind):
    theme = THEMES["normal"]
    assert ratio(theme[fg], theme[bg]) >= TEXT_AA, (fg, bg)


def test_every_colour_the_layout_uses_is_in_a_checked_pair():
    used = set(re.findall(r'app\.theme\["([a-z_]+)"\]', (ROOT / "kiosk.kv").read_text()))
    used |= {"edge"}
    paired = {k for fg, bg, _ in PAIRS for k in (fg, bg)}
    assert used <= paired | {"quiet"}, sorted(used - paired)
    assert set(THEMES["normal"]) == set(THEMES["contrast"])
    assert set(THEMES["contrast"]) <= paired, sorted(set(THEMES["contrast"]) - paired)
