"""The demo store's data: its catalogue, promotions and staff, loaded into an empty kiosk.

For `kiosk demo`, scenarios and the UI tests; a real store imports its own
catalogue (`kiosk catalog import`) and adds its own staff (`kiosk staff add`).
"""

from __future__ import annotations

import colorsys
import zlib
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from app.services.catalogue import import_catalogue, load_promotions_file
from app.storage.catalogue_repo import SqliteCatalogue
from app.storage.staff_book import StaffBook

DEMO_STAFF = (("Demo Manager 店长", "manager", "2580"),
              ("Demo Attendant 店员", "attendant", "1470"))


def seed_catalogue(catalogue: SqliteCatalogue, csv_path: Path | None,
                   promotions_path: Path | None, *, tax_classes: frozenset[str],
                   currency: str) -> list[str]:
    """Load the catalogue CSV into an empty catalogue and the promotions file where none
    are in force; returns what was loaded, one line each (nothing is loaded twice)."""
    done = []
    if csv_path is not None and catalogue.count() == 0:
        rows = import_catalogue(catalogue, csv_path, tax_classes=tax_classes, replace=True)
        done.append(f"{rows} products from {csv_path}")
    if promotions_path is not None and not catalogue.promotions():
        promotions = load_promotions_file(promotions_path, currency)
        catalogue.replace_promotions(promotions)
        done.append(f"{len(promotions)} promotions from {promotions_path}")
    return done


PICTURE_PX = 192  # the demo's pictures: small squares, scaled down on screen
# A colour that reads as the item (RGB), by a word of its English name; others get a
# colour of their own from their name, so two items side by side rarely match.
ITEM_COLOURS = {
    "avocado": (86, 130, 46), "lemon": (240, 205, 40), "corn": (235, 190, 50),
    "coconut": (150, 190, 110), "pineapple": (225, 170, 35), "guava": (160, 200, 90),
    "banana": (245, 215, 60), "apple": (200, 40, 40), "orange": (245, 140, 20),
    "grape": (110, 50, 130), "tomato": (215, 50, 35), "cucumber": (60, 130, 60),
    "potato": (185, 150, 100), "carrot": (240, 120, 30), "cabbage": (170, 210, 140),
    "broccoli": (40, 120, 50), "onion": (190, 120, 150), "ginger": (205, 170, 110),
    "garlic": (225, 220, 200), "spinach": (40, 100, 40), "mango": (245, 175, 40),
    "watermelon": (60, 150, 70), "bun": (205, 150, 80), "baguette": (210, 160, 90),
}


def _colour(name_en: str) -> tuple[int, int, int]:
    lowered = name_en.lower()
    for word, rgb in ITEM_COLOURS.items():
        if word in lowered:
            return rgb
    hue = (zlib.crc32(name_en.encode()) % 360) / 360
    r, g, b = colorsys.hls_to_rgb(hue, 0.5, 0.55)
    return int(r * 255), int(g * 255), int(b * 255)


def _initials(name_en: str) -> str:
    words = [w for w in name_en.replace("&", " ").split() if w[:1].isalpha()]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def draw_picture(name_en: str, department: str, target: Path) -> None:
    """A simple picture of an item, drawn: a coloured shape (a round for produce, a rounded
    square for the rest) with the initials of ``name_en``, as a ``PICTURE_PX`` square PNG
    with a transparent background, written to ``target`` (its folder is made)."""
    size = PICTURE_PX
    picture = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    pen = ImageDraw.Draw(picture)
    fill = _colour(name_en)
    box = (8, 8, size - 8, size - 8)
    if department == "produce":
        pen.ellipse(box, fill=fill, outline=(40, 40, 40), width=4)
    else:
        pen.rounded_rectangle(box, radius=36, fill=fill, outline=(40, 40, 40), width=4)
    # Dark letters on a light colour, white on a dark one (relative luminance, sRGB).
    light = 0.2126 * fill[0] + 0.7152 * fill[1] + 0.0722 * fill[2] > 140
    font = ImageFont.load_default(size=size * 0.38)
    pen.text((size / 2, size / 2), _initials(name_en), font=font, anchor="mm",
             fill=(20, 20, 20) if light else (255, 255, 255))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    picture.save(partial, "PNG")
    partial.replace(target)  # never a half-written picture under the real name


def seed_pictures(catalogue: SqliteCatalogue, folder: Path) -> list[str]:
    """Draw the picture of every product whose ``image`` names a file missing under
    ``folder`` (catalogue.images_dir): the demo store ships no image files, it draws
    its own (``draw_picture``). Pictures already there are left alone; a path outside
    the folder is skipped. Returns one line saying how many were drawn, or nothing."""
    drawn = 0
    for image, name_en, department in catalogue.pictured():
        relative = Path(image)
        if relative.is_absolute() or ".." in relative.parts:
            continue
        target = folder / relative
        if not target.exists():
            draw_picture(name_en, department, target)
            drawn += 1
    return [f"{drawn} item pictures drawn in {folder}"] if drawn else []


def seed_staff(book: StaffBook, now: datetime) -> list[str]:
    """The demo store's staff, so staff mode can be tried (never in a real store); nothing
    if the kiosk has staff already."""
    if book.members():
        return []
    done = []
    for name, role, pin in DEMO_STAFF:
        book.add(name, role, pin, now)
        done.append(f"{role} {name!r} PIN {pin}")
    return done


__all__ = ["DEMO_STAFF", "draw_picture", "seed_catalogue", "seed_pictures", "seed_staff"]
