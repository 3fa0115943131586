"""The payment QR as the screen shows it: error correction M, a full quiet zone, big enough.

A phone reads a QR from about 40 cm when each module is at least ~0.8 mm on
the glass. ``module_px_for`` turns the screen's pixel density into the module
size that gives that; ``payment_qr`` draws the payload (WeChat ``code_url``,
Alipay ``qr_code``, or the gateway's payload) with the qrcode library.
"""

from __future__ import annotations

import qrcode
from PIL import Image

MIN_MODULE_MM = 0.8  # read at 40 cm by a phone camera, with margin
QUIET_ZONE = 4  # modules of white around the code, as the QR standard requires


def module_px_for(screen_dpi: float, min_module_mm: float = MIN_MODULE_MM) -> int:
    """Pixels per module so a module is at least ``min_module_mm`` on this screen."""
    return max(4, round(min_module_mm / 25.4 * screen_dpi + 0.499))


def payment_qr(payload: str, module_px: int = 10) -> Image.Image:
    if not payload:
        raise ValueError("no QR payload: the provider order was not created")
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M,
                       box_size=module_px, border=QUIET_ZONE)
    qr.add_data(payload)
    qr.make(fit=True)
    image: Image.Image = qr.make_image(fill_color="black", back_color="white").get_image()
    return image.convert("L")
