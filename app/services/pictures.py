"""Item pictures: the catalogue's ``image`` column, turned into a file the screen may show.

The ``image`` column holds a path relative to the catalogue's picture folder
(``catalogue.images_dir``, by default ``<data dir>/images``), e.g.
``demo/plu-4046.png``; '' means the item has no picture. PNG or JPEG, any size
(the screen scales it down). A picture is shown only if its file is inside that
folder and Pillow can read it: a missing or damaged file, an absolute path or
one that climbs out with ``..`` is refused, the screen shows no picture (the
produce grid a plain tile with the item's initials) and the refusal is logged
once per path, not on every redraw.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

FORMATS = ("PNG", "JPEG")


class Pictures:
    """Resolves ``image`` values under one folder, remembering each answer (the screen
    asks on every redraw; a file checked once is not opened again)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._known: dict[str, str] = {}

    def path(self, image: str) -> str:
        """The absolute path of the picture ``image`` names, as a string for Kivy's
        ``Image.source``; '' when there is none to show (empty, outside the folder,
        missing, unreadable, not PNG/JPEG). The first refusal of each value is logged
        as a warning naming the file and why."""
        if not image:
            return ""
        known = self._known.get(image)
        if known is not None:
            return known
        shown, why = self._check(image)
        if why:
            log.warning("item picture %r not shown: %s (catalogue.images_dir is %s)",
                        image, why, self.folder)
        self._known[image] = shown
        return shown

    def _check(self, image: str) -> tuple[str, str]:
        relative = Path(image)
        if relative.is_absolute() or ".." in relative.parts:
            return "", "the image column must be a path inside the picture folder"
        target = self.folder / relative
        try:
            with Image.open(target) as picture:
                kind = picture.format
                picture.verify()  # reads the whole file: a truncated one fails here
        except FileNotFoundError:
            return "", "no such file"
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            return "", f"unreadable ({type(exc).__name__}: {exc})"
        if kind not in FORMATS:
            return "", f"{kind} is not one of {', '.join(FORMATS)}"
        return str(target.resolve()), ""


__all__ = ["FORMATS", "Pictures"]
