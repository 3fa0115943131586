"""Where a line of shopper text may break: Chinese line-breaking rules (kinsoku) for the labels.

Kivy's own wrapping breaks at spaces and, for a run with no spaces (every Chinese
sentence), after whichever character fills the line: a line then starts with
"、", "。" or "）", and a closing "”" may sit alone. ``wrap_lines`` lays a text out
into lines that fit a width by a measuring function and breaks only where the
Unicode line-breaking algorithm (UAX #14, through the ``uniseg`` library, which
implements it from the Unicode data) allows. UAX #14's classes carry the rules of
W3C "Requirements for Chinese Text Layout" (clreq, section 3.1.7 "Prohibition
rules for line start and line end") and JIS X 4051: closing punctuation
(CL/CP: ，。、）」』》〉】), exclamation and question marks (EX: ！？), non-starters
(NS: ；：) never start a line; opening brackets (OP: （「『《〈【) never end one; a
quotation mark stays with the character it quotes (“ with the one after it, ” with
the one before). ``uniseg`` rather than own tables: it is a maintained, pure-Python
implementation of the whole algorithm (numbers, Latin words and CJK mixed, as the
cart's names are), where a hand-written list would miss classes.

Pure Python, no Kivy: app/ui/widgets.py ``LineBreaking`` feeds a label's text through
``wrap_lines`` with the label's own font measure.
"""

from __future__ import annotations

from collections.abc import Callable

from uniseg.linebreak import line_break_units

# clreq 3.1.7 / JIS X 4051: what may not start a line, and what may not end one. Used by the
# tests and ``breaks_rules`` to check any laid-out text; the breaking itself is UAX #14's.
NO_LINE_START = frozenset("，。、；：？！）」』”’》〉】〕］｝,.;:?!)]}")
NO_LINE_END = frozenset("（「『“‘《〈【〔［｛([{")


def wrap_lines(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Lay ``text`` out in lines no wider than ``width`` (pixels, as ``measure`` counts them).

    ``measure(s)`` gives the width of ``s`` on one line, in the same unit as ``width``.
    Existing newlines are kept. A line breaks only at a UAX #14 break opportunity
    (clreq / JIS X 4051 kinsoku, see the module docstring), so no line starts with
    closing punctuation and none ends with an opening bracket. Spaces at a break are
    dropped. A single unbreakable run wider than ``width`` (a long code) is cut
    between characters, as nothing else can fit it. Returns the lines, without
    newlines; an empty text gives ``[""]``. ``width`` <= 0 gives the paragraphs as
    they are (nothing to lay out against).
    """
    if width <= 0:
        return text.split("\n")
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(_wrap_paragraph(paragraph, width, measure))
    return lines


def _wrap_paragraph(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    if not text or measure(text.rstrip()) <= width:
        return [text.rstrip() if text.strip() else text]
    lines: list[str] = []
    line = ""
    for unit in line_break_units(text):
        candidate = line + unit
        if line and measure(candidate.rstrip()) <= width:
            line = candidate
            continue
        if line:
            lines.append(line.rstrip())
        line = unit
        # One unit wider than the line (the first one too): cut it.
        if measure(line.rstrip()) > width:
            cut = _cut(line, width, measure)
            lines.extend(cut[:-1])
            line = cut[-1]
    lines.append(line.rstrip())
    return lines


def _cut(unit: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """An unbreakable run wider than the line, cut between characters (at least one a line).
    Even then no piece starts with closing punctuation: it hangs at the end of the line
    before, past the width (JIS X 4051 burasage); and none ends with an opening bracket or
    quote: it goes down to the next line with what it opens (clreq 3.1.7)."""
    pieces: list[str] = []
    piece = ""
    for char in unit:
        if piece and char not in NO_LINE_START and measure((piece + char).rstrip()) > width:
            head = piece.rstrip("".join(NO_LINE_END))
            if not head:  # nothing but openers so far: no break would keep the rule
                head = piece
            pieces.append(head)
            piece = piece[len(head):] + char
        else:
            piece += char
    pieces.append(piece)
    return pieces


def breaks_rules(lines: list[str]) -> list[str]:
    """The lines of a laid-out text that break the rules: starting with a character of
    ``NO_LINE_START`` (after the first line) or ending with one of ``NO_LINE_END`` (before
    the last); [] when every break is allowed. For tests and screenshot checks."""
    bad = [line for line in lines[1:] if line.lstrip()[:1] in NO_LINE_START]
    bad += [line for line in lines[:-1] if line.rstrip()[-1:] in NO_LINE_END]
    return bad


def has_cjk(text: str) -> bool:
    """Whether ``text`` has a CJK ideograph or CJK/full-width punctuation (U+3000-U+9FFF,
    U+FF00-U+FFEF): the texts whose line breaks need the rules (Kivy's own wrapping
    serves space-separated English)."""
    return any("\u3000" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" or c in "“”‘’"
               for c in text)


__all__ = ["NO_LINE_END", "NO_LINE_START", "breaks_rules", "has_cjk", "wrap_lines"]
