"""Which characters a receipt printer's font has, and what the rest is folded to.

A Chinese-model receipt printer in Chinese character mode (``FS &``) prints
ASCII (one byte, one column) and the two-byte GBK set (CP936 without its
single-byte 0x80 euro: two bytes, two columns). That is the font the printers
stores buy carry, even the ones sold as "GB18030": GB18030's four-byte
sequences (``¥`` is ``81 30 84 36``, also ``®``, ``ä``, ``½``, ``™``) and its
two-byte codes that GBK leaves undefined (``€`` at ``A2 E3``) come out as
junk (one public report: ``¥`` printed as "0 6"). GB2312 is smaller still
and would fold away characters (``é``, ``ü``, traditional forms) the GBK
font does print, so GBK is the set. An English-only printer prints ASCII.

``fold`` turns any text into text made only of characters the font has:
kept as is when it has them; else an explicit table (``FOLDS``) for signs
whose compatibility decomposition is missing or not printable (``¥`` to the
full-width ``￥``, ``®`` to ``(R)``, ``€`` to ``EUR``, the fraction slash of
``½`` to ``/``); else the Unicode NFKD decomposition with its combining marks
dropped (``ä`` to ``a``, ``²`` to ``2``, ``™`` to ``TM``), each part folded
again; else ``?``. Control characters are dropped (line breaks become a
space): a product name must not carry printer commands. After folding,
``width`` is exact: one column per ASCII character, two per GBK character,
which is what the printer does.

Source of the rule: the printer vendors' code tables (GBK two-byte font in
Chinese mode); Python's ``gbk`` codec is the reference for the set.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Charset = Literal["gbk", "ascii"]

# Signs whose NFKD form is missing, or is itself not in the font. Values are
# folded again, so each needs only to be closer to printable.
FOLDS: dict[str, str] = {
    "¥": "￥",  # U+00A5 is four bytes in GB18030; the full-width yen/yuan sign is A3 A4
    "®": "(R)",
    "©": "(C)",
    "℗": "(P)",
    "™": "TM",
    "€": "EUR",  # GB18030 A2 E3, undefined in GBK fonts
    "£": "GBP",
    "¢": "c",
    "⁄": "/",  # FRACTION SLASH: NFKD of ½ is 1⁄2
    "ß": "ss",
    "ẞ": "SS",
    "æ": "ae",
    "Æ": "AE",
    "œ": "oe",
    "Œ": "OE",
    "ø": "o",
    "Ø": "O",
    "đ": "d",
    "Đ": "D",
    "ł": "l",
    "Ł": "L",
    "ı": "i",
    "þ": "th",
    "Þ": "Th",
    "ð": "d",
    "Ð": "D",
    "•": "·",
    "«": '"',
    "»": '"',
    "¿": "?",
    "¡": "!",
    "¦": "|",
    "\u00a0": " ",  # no-break space
    "\t": " ",
    # Line breaks (a footer or store name written on two lines): a space, so the words
    # stay apart; the layout does its own wrapping. Still no byte below 0x20 is sent.
    "\n": " ",
    "\r": " ",
    "\x0b": " ",
    "\x0c": " ",
    "\x85": " ",
    "\u2028": " ",
    "\u2029": " ",
}

# GBK characters an English-only printer needs an ASCII form for (NFKD has none).
ASCII_FOLDS: dict[str, str] = {
    "￥": "CNY",
    "×": "x",
    "÷": "/",
    "·": ".",
    "—": "-",
    "–": "-",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "°": "deg",
    "±": "+/-",
    "μ": "u",  # micro sign, via NFKD
    "、": ",",
    "，": ",",
    "。": ".",
    "：": ":",
    "；": ";",
    "（": "(",
    "）": ")",
    "！": "!",
    "？": "?",
}

UNKNOWN = "?"
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # the only non-printable ASCII; GBK is two bytes


def sendable(char: str, charset: Charset) -> bool:
    """True when the printer's font has ``char`` (one character): printable ASCII, or
    (``"gbk"``) a character Python's ``gbk`` codec encodes as two bytes."""
    if char.isascii():
        return char.isprintable()
    if charset == "ascii":
        return False
    try:
        return len(char.encode("gbk")) == 2
    except UnicodeEncodeError:
        return False


def _fold_char(char: str, charset: Charset, depth: int = 0) -> str:
    if sendable(char, charset):
        return char
    if depth > 4:
        return UNKNOWN
    table = ASCII_FOLDS.get(char) if charset == "ascii" else None
    replacement = table or FOLDS.get(char)
    if replacement is None and unicodedata.category(char) in ("Cc", "Cf", "Mn", "Me"):
        return ""  # controls, format characters, combining marks: nothing to print
    if replacement is None:
        decomposed = unicodedata.normalize("NFKD", char)
        if decomposed == char:
            return UNKNOWN
        replacement = decomposed
    folded = "".join(_fold_char(c, charset, depth + 1) for c in replacement)
    # A Hangul syllable decomposes into jamo the font lacks too: one '?', not three.
    return UNKNOWN if folded and not folded.strip(UNKNOWN) else folded


def fold(text: str, charset: Charset) -> str:
    """``text`` made only of characters the printer's font has (see the module docstring).

    ``charset`` is ``"gbk"`` (a Chinese printer in Chinese mode) or ``"ascii"``.
    Idempotent: ``fold(fold(t, c), c) == fold(t, c)``. Never raises.
    """
    try:
        text.encode("gbk" if charset == "gbk" else "ascii")  # the usual case, in one call
    except UnicodeEncodeError:
        pass
    else:
        if not _CONTROL.search(text):
            return text
    return "".join(_fold_char(c, charset) for c in text)


def width(text: str) -> int:
    """Columns folded ``text`` takes on the printer: 1 per ASCII character, 2 per
    GBK character (the two-byte font's glyphs are double width)."""
    return sum(1 if c.isascii() else 2 for c in text)


def encode(text: str, charset: Charset) -> bytes:
    """The bytes the printer is sent for ``text``: folded, then GBK (or ASCII) encoded.
    Every character is one byte (ASCII) or two (GBK); never a four-byte sequence."""
    return fold(text, charset).encode("gbk" if charset == "gbk" else "ascii")


__all__ = ["ASCII_FOLDS", "FOLDS", "Charset", "encode", "fold", "sendable", "width"]
