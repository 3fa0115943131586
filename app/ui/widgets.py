"""The kiosk's own widgets: live camera preview, payment/exit-pass QR, cart row, keypad.

Their look is in kiosk.kv; what is here is what kv cannot say: copying
camera frames into a texture, drawing a QR, and a keypad's typing.
"""

from __future__ import annotations

from typing import Any

from kivy.animation import Animation
from kivy.clock import Clock
from kivy.graphics.texture import Texture
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.image import Image
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from app.ui.linebreak import has_cjk, wrap_lines
from devices.camera import Camera, preview_rgb
from devices.payment.qr import payment_qr


class LineBreaking:
    """Mixed into a Label: Chinese text is broken into lines by the Chinese line-breaking
    rules (app.ui.linebreak, clreq / JIS X 4051 kinsoku) instead of Kivy's own wrapping,
    which cuts a run of characters anywhere ("、" or "）" starting a line). The label's
    ``text`` stays as given; only what is drawn has the line breaks, worked out again on
    every redraw (text, width or font changed) with the label's own font measure."""

    def texture_update(self, *largs: Any) -> None:
        core = self._label  # type: ignore[attr-defined]
        text, width = self.text, self.text_size[0]  # type: ignore[attr-defined]
        if text and width and not self.shorten and not self.markup \
                and has_cjk(text):  # type: ignore[attr-defined]
            pad = core.options["padding"]
            core.text = "\n".join(wrap_lines(text, width - pad[0] - pad[2],
                                             lambda s: core.get_extents(s)[0]))
        super().texture_update(*largs)  # type: ignore[misc]


class KioskLabel(LineBreaking, Label):
    """Every text on the kiosk's screens (kv's ``Txt`` and the staff pages)."""


class KioskButton(LineBreaking, Button):
    """Every button on the kiosk's screens (kv's ``KButton``)."""


class CameraPreview(Image):
    """The live camera picture with the guide box; ``flash`` it on a read."""

    guide = ListProperty([0.6, 0.7])  # the guide box, as shares of the frame
    live = BooleanProperty(True)  # False: the camera is lost; the picture and box grey out
    flash_rgba = ListProperty([0, 0, 0, 0])
    camera: Camera | None = ObjectProperty(None, allownone=True)
    fps = NumericProperty(15)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._seq = -1
        self._event = Clock.schedule_interval(self._update, 1 / 15)
        self.fit_mode = "contain"

    def _update(self, _dt: float) -> None:
        # The UI thread reads the newest frame the capture thread left; it never waits.
        if self.camera is None or not self.get_root_window():
            return
        frame = self.camera.latest()
        if frame is None or frame.seq == self._seq:
            return
        self._seq = frame.seq
        data, w, h = preview_rgb(frame.image, 480)
        texture = self.texture
        if texture is None or texture.size != (w, h):
            texture = Texture.create(size=(w, h), colorfmt="rgb")
        texture.blit_buffer(data, colorfmt="rgb", bufferfmt="ubyte")
        self.texture = texture
        self.canvas.ask_update()

    def flash(self, ok: bool) -> None:
        self.flash_rgba = [0.1, 0.8, 0.3, 0.9] if ok else [0.9, 0.15, 0.1, 0.9]
        Animation.cancel_all(self, "flash_rgba")
        Animation(flash_rgba=[0, 0, 0, 0], duration=0.6, t="in_quad").start(self)


class QrImage(Image):
    """A QR code drawn crisp (nearest-neighbour scaling) from ``payload``."""

    payload = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fit_mode = "contain"

    def on_payload(self, _widget: QrImage, payload: str) -> None:
        if not payload:
            self.texture = None
            return
        image = payment_qr(payload, module_px=4).convert("RGB")
        w, h = image.size
        texture = Texture.create(size=(w, h), colorfmt="rgb")
        texture.blit_buffer(image.transpose(1).tobytes(), colorfmt="rgb", bufferfmt="ubyte")
        texture.mag_filter = "nearest"
        texture.min_filter = "nearest"
        self.texture = texture


class CartRow(RecycleDataViewBehavior, BoxLayout):
    """One cart line; its words come from app.ui.present.cart_row."""

    line_id = NumericProperty(0)
    name = StringProperty("")
    detail = StringProperty("")
    savings = StringProperty("")
    regular = StringProperty("")
    total = StringProperty("")
    quantity = StringProperty("")
    can_change = BooleanProperty(True)
    can_plus = BooleanProperty(True)  # off at the line's quantity limit
    can_remove = BooleanProperty(True)
    highlight = BooleanProperty(False)
    needs_age = BooleanProperty(False)
    picture = StringProperty("")  # the item's picture file; '' = none (no space kept)
    needed = NumericProperty(0)  # the height its words need, in pixels (kiosk.kv)


class Keypad(BoxLayout):
    """Digits typed on screen (phone numbers, barcodes, PLUs); ``entered`` on OK."""

    typed = StringProperty("")
    max_length = NumericProperty(20)
    masked = BooleanProperty(False)  # a PIN shows as dots
    # Keep the digits after OK (the phone number: a refused number is fixed with Del, not
    # typed again); the screen clears them when it changes (KioskApp._clear_keypads).
    keep_typed = BooleanProperty(False)
    __events__ = ("on_entered",)

    def press(self, key: str) -> None:
        if key == "clear":
            self.typed = ""
        elif key == "back":
            self.typed = self.typed[:-1]
        elif key == "ok":
            if self.typed:
                typed = self.typed
                if not self.keep_typed:
                    self.typed = ""
                self.dispatch("on_entered", typed)
        elif key.isdigit() and len(self.typed) < self.max_length:
            self.typed += key

    def on_entered(self, text: str) -> None:
        pass


class ConfirmBox(ModalView):
    """A question before an irreversible step (``LaneView.confirm``): opened and closed
    by ``KioskApp.show`` as the lane asks and is answered; its words are in kiosk.kv."""


class CodeEntry(ModalView):
    """The manual-entry keypad for a barcode or PLU, over the shopping screen."""


class ProduceTile(RecycleDataViewBehavior, ButtonBehavior, BoxLayout):
    """One item of the "Find produce" grid (app.ui.present.produce_tile): a tap picks it."""

    code = StringProperty("")
    name = StringProperty("")
    other_name = StringProperty("")
    price = StringProperty("")
    tag = StringProperty("")
    picture = StringProperty("")  # '' = the plain tile with ``initials``
    initials = StringProperty("")


class ProducePicker(ModalView):
    """The "Find produce" grid over the shopping screen: departments, pictures, search.
    Its contents come from ``LaneView.produce``; it is open while that is."""


class SearchPad(ModalView):
    """Letters for the grid's search (a name in English; any text from a keyboard or an
    input method goes into the same search while this is open)."""

    ROWS = ("QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM")


class DemoShelf(ModalView):
    """Demo only: products and member codes to hold under the simulated camera."""
