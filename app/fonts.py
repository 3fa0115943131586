"""Finding a font with Chinese glyphs, for the screen and the virtual printer's receipts.

The set-up command installs WenQuanYi Micro Hei (Debian ``fonts-wqy-microhei``);
Noto Sans CJK works too. ``ui.font`` overrides the search.
"""

from __future__ import annotations

from pathlib import Path

CANDIDATES = (
    "assets/fonts/kiosk-cjk.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
)


class FontMissing(RuntimeError):
    """No font with Chinese glyphs was found; the message says how to get one."""


def find_cjk_font(configured: str, project_root: Path) -> Path:
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FontMissing(f"ui.font {configured!r} does not exist")
        return path
    for candidate in CANDIDATES:
        path = Path(candidate)
        if not path.is_absolute():
            path = project_root / path
        if path.is_file():
            return path
    raise FontMissing(
        "no font with Chinese glyphs found: install fonts-wqy-microhei "
        "(apt-get install fonts-wqy-microhei) or set ui.font to a .ttf/.ttc/.otf file"
    )
