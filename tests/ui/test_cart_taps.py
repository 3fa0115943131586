"""A cart you can check, and fewer taps (issue 19), on the real Kivy screen under Xvfb.

Each flow in tests/ui/flows.py runs in its own process (one Kivy window per process)
against the demo rig, in Chinese and in English: the newest of eight lines scrolled
into view and lit, a mistyped phone number kept to fix and then shown masked, "+" off
at the limit, "-" at 1 asking, the pay screen's summary and its way back to the cart,
"Cancel and start again", and one aggregated QR with no wallet to choose.
"""

from __future__ import annotations

import pytest

from tests.ui.test_shopper_flows import display, drive  # noqa: F401 - the fixture

pytestmark = pytest.mark.ui


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_cart_you_can_check(language, tmp_path, display):  # noqa: F811
    drive("cart_you_can_check", tmp_path, "--language", language, timeout=900)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_one_aggregated_qr_needs_no_wallet_choice(language, tmp_path, display):  # noqa: F811
    drive("one_qr", tmp_path, "--language", language, "--aggregated-qr")
