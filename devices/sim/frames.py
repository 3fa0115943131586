"""Camera-like frames of given barcodes, for the generated camera source, tests and benchmarks.

A frame is a cluttered scene (shelf-like blocks, printed text, a gradient of
uneven light and sensor noise) with, optionally, one rendered barcode held
somewhere near the middle at a slight tilt. The clutter matters: a blank frame
is far cheaper to decode than what a real camera sees, so an idle-frame figure
measured on blank frames would flatter the decoder.

A frame can also show a shopper's phone with a wallet's payment code on its
screen (symbology ``PHONE``), as WeChat Pay, Alipay and UnionPay show it: a
Code 128 barcode of the code above a QR of the same code (issue 18).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import qrcode
import zxingcpp

# Shop names for the symbologies a generated frame can show -> zxing-cpp writers.
WRITERS = {
    "EAN-13": zxingcpp.BarcodeFormat.EAN13,
    "EAN-8": zxingcpp.BarcodeFormat.EAN8,
    "UPC-A": zxingcpp.BarcodeFormat.UPCA,
    "UPC-E": zxingcpp.BarcodeFormat.UPCE,
    "Code 128": zxingcpp.BarcodeFormat.Code128,
    "QR Code": zxingcpp.BarcodeFormat.QRCode,
}


# A phone's payment-code screen (render_phone): not a symbology of its own but two of them.
PHONE = "phone"


def symbology_for(code: str) -> str:
    """The symbology a product code is normally printed in: digits -> EAN/UPC, else Code 128/QR."""
    if code.isdigit():
        return {8: "EAN-8", 12: "UPC-A", 13: "EAN-13"}.get(len(code), "Code 128")
    if code.startswith(("http://", "https://")) or len(code) > 40:
        return "QR Code"
    return "Code 128"


def render_barcode(code: str, symbology: str | None = None, module_px: int = 3) -> np.ndarray:
    """A clean grayscale image of ``code`` with quiet zones, ``module_px`` pixels per module."""
    kind = symbology or symbology_for(code)
    if kind == PHONE:
        return render_phone(code, module_px)
    if kind not in WRITERS:
        raise ValueError(f"cannot render symbology {kind!r}; known: {', '.join(WRITERS)}")
    barcode = zxingcpp.create_barcode(code, WRITERS[kind])
    image = np.array(zxingcpp.write_barcode_to_image(barcode, scale=module_px, add_hrt=True))
    return image.astype(np.uint8)


def render_phone(code: str, module_px: int = 3) -> np.ndarray:
    """A phone held up with its wallet's payment code on screen, grayscale: a dark body
    around a white screen that shows a Code 128 of ``code`` (zxing-cpp's writer, no digits
    under it, as the wallets hide them) above a QR of ``code`` (the ``qrcode`` library,
    error correction M), each with its quiet zone. ``module_px``: pixels per bar module;
    the QR's modules are twice that. Raises ValueError for a code Code 128 cannot hold."""
    bars = zxingcpp.write_barcode_to_image(
        zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.Code128), scale=module_px,
        add_hrt=False)
    barcode = np.array(bars).astype(np.uint8)
    barcode = cv2.resize(barcode, (barcode.shape[1], 40 * module_px),
                         interpolation=cv2.INTER_NEAREST)  # bars as tall as the apps draw them
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M,
                       box_size=2 * module_px, border=4)
    qr.add_data(code)
    qr.make(fit=True)
    square = np.array(qr.make_image(fill_color="black", back_color="white").convert("L"),
                      dtype=np.uint8)
    quiet = 10 * module_px  # Code 128 needs 10 modules of white each side
    width = max(barcode.shape[1] + 2 * quiet, square.shape[1]) + 2 * module_px
    gap, header = 6 * module_px, 12 * module_px
    height = header + barcode.shape[0] + gap + square.shape[0] + 2 * gap
    screen = np.full((height, width), 255, np.uint8)
    screen[:header // 2, :] = 90  # the app's title bar
    y = header
    x = (width - barcode.shape[1]) // 2
    screen[y:y + barcode.shape[0], x:x + barcode.shape[1]] = barcode
    y += barcode.shape[0] + gap
    x = (width - square.shape[1]) // 2
    screen[y:y + square.shape[0], x:x + square.shape[1]] = square
    bezel = 8 * module_px
    phone = np.full((height + 2 * bezel, width + 2 * bezel), 25, np.uint8)
    phone[bezel:bezel + height, bezel:bezel + width] = screen
    return phone


@dataclass
class Scene:
    """A reusable cluttered background; frames differ by noise, light and where the code is."""

    width: int = 1280
    height: int = 720
    seed: int = 7

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        img = np.full((self.height, self.width), 150, np.uint8)
        for _ in range(30):  # packaging and shelf edges
            x, y = rng.integers(0, self.width), rng.integers(0, self.height)
            w, h = rng.integers(20, 300), rng.integers(20, 200)
            shade = int(rng.integers(30, 230))
            cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), shade, -1)
        for _ in range(15):  # printed words: strong edges a decoder has to reject
            x, y = rng.integers(0, self.width - 200), rng.integers(20, self.height)
            scale = float(rng.uniform(0.5, 2.0))
            shade = int(rng.integers(0, 255))
            cv2.putText(img, "SALE 5.99 Milk", (int(x), int(y)), 0, scale, shade, 2)
        for _ in range(3):  # hands, cables: curves
            pts = rng.integers(0, [self.width, self.height], size=(5, 2)).astype(np.int32)
            cv2.polylines(img, [pts], False, int(rng.integers(0, 255)), int(rng.integers(2, 12)))
        xs = np.linspace(0.75, 1.15, self.width, dtype=np.float32)  # uneven light
        self.background = np.clip(img.astype(np.float32) * xs[None, :], 0, 255).astype(np.uint8)
        # Drawing fresh Gaussian noise for 1280x720 costs ~15 ms, as much as decoding the
        # frame; a few fields drawn once and rolled by a random offset look as fresh.
        self._noise = [rng.normal(0, 1, (self.height, self.width)).astype(np.float32)
                       for _ in range(3)]

    def frame(
        self,
        code: str | None = None,
        *,
        symbology: str | None = None,
        module_px: int = 3,
        angle: float = 4.0,
        offset: tuple[int, int] = (0, 0),
        noise: float = 2.0,
        rng: np.random.Generator | None = None,
        color: bool = True,
    ) -> np.ndarray:
        """One frame (BGR if ``color``), with ``code`` pasted near the centre when given."""
        rng = rng or np.random.default_rng()
        img = self.background.copy()
        if code is not None:
            label = render_barcode(code, symbology, module_px)
            # A label larger than the guide box's usual share of the frame (a phone in a
            # small frame) is held further from the camera: scaled down to fit.
            fit = min(1.0, 0.55 * self.width / label.shape[1],
                      0.65 * self.height / label.shape[0])
            if fit < 1.0:
                label = cv2.resize(label, (int(label.shape[1] * fit),
                                           int(label.shape[0] * fit)),
                                   interpolation=cv2.INTER_AREA)
            h, w = label.shape
            pad = np.full((h + 16, w + 16), 255, np.uint8)
            pad[8 : 8 + h, 8 : 8 + w] = label
            h, w = pad.shape
            rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            cx = self.width // 2 + offset[0]
            cy = self.height // 2 + offset[1]
            rot[0, 2] += cx - w / 2
            rot[1, 2] += cy - h / 2
            mask = cv2.warpAffine(np.full_like(pad, 255), rot, (self.width, self.height))
            warped = cv2.warpAffine(pad, rot, (self.width, self.height))
            img = np.where(mask > 127, warped, img)
        if noise:
            field = self._noise[int(rng.integers(len(self._noise)))]
            field = np.roll(field, int(rng.integers(self.width)), axis=1)
            img = np.clip(img + noise * field, 0, 255).astype(np.uint8)
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if color else img
