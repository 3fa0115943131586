"""What the screens say when something goes wrong (issue 19), without a window: the camera's
words on every screen that relies on it, a payment's outcome over the cart, and words for
every notice the lane raises by table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.lane import LaneView, Notice, Screen
from app.lane.views import TYPED_REFUSALS
from app.ui import present
from app.ui.strings import STRINGS, say

LANGUAGES = ("zh", "en")


def test_every_typed_refusal_and_payment_outcome_has_words_in_both_languages():
    for key in {*TYPED_REFUSALS.values(), *present.PAYMENT_OUTCOMES}:
        assert all(key in STRINGS[language] for language in LANGUAGES), key


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_working_camera_keeps_the_usual_words(language):
    words = present.camera_words(LaneView(Screen.ATTRACT), language)
    assert words["attract_prompt"] == say(language, "prompt")
    assert words["attract_hint"] == say(language, "prompt_scan")
    assert words["camera_warning"] == words["pay_camera"] == ""


@pytest.mark.parametrize("language,broken,scanner", [("zh", "摄像头无法使用", "扫描枪"),
                                                     ("en", "camera is not working",
                                                      "hand scanner")])
def test_a_lost_camera_is_named_on_every_screen_that_relies_on_it(language, broken, scanner):
    view = LaneView(Screen.SHOPPING, camera_ok=False)
    words = present.camera_words(view, language)
    for key in ("attract_hint", "member_prompt", "cart_hint", "camera_warning", "pay_camera"):
        assert broken in words[key], key
    # The attract screen's own prompt does not ask for a member code under the camera.
    assert words["attract_prompt"] == say(language, "camera_down_prompt")
    assert all(scanner not in w for w in words.values())  # none fitted: not offered
    fitted = present.camera_words(LaneView(Screen.SHOPPING, camera_ok=False,
                                           hand_scanner=True), language)
    assert scanner in fitted["camera_warning"] and scanner in fitted["pay_camera"]


def test_the_pay_screen_offers_the_camera_for_a_payment_code_only_while_it_works():
    def offer(**changes: object) -> dict[str, object]:
        return present.code_payment(LaneView(Screen.PAY, takes_codes=True, **changes), "en",
                                    datetime(2026, 11, 30, tzinfo=UTC))

    assert offer()["show_code"] and offer()["type_code_offer"]
    lost = offer(camera_ok=False)
    assert not lost["show_code"] and lost["type_code_offer"]  # typing needs no camera
    # A hand scanner is offered in words of its own, never as "show it to the camera".
    assert not offer(camera_ok=False, hand_scanner=True)["show_code"]


def test_a_payment_outcome_is_shown_over_the_cart_only():
    declined = Notice.of("declined_declined", "warn")
    on_cart = LaneView(Screen.SHOPPING, notice=declined)
    assert "not been charged" in present.payment_outcome(on_cart, "en")
    assert "未扣款" in present.payment_outcome(on_cart, "zh")
    assert present.payment_outcome(LaneView(Screen.PAY, notice=declined), "en") == ""
    added = LaneView(Screen.SHOPPING, notice=Notice.of("added", "ok", name_en="Milk"))
    assert present.payment_outcome(added, "en") == ""
