"""The promotions file's rules: ``[[promotion]]`` TOML tables into :class:`Promotion`\\ s.

One rule for every place a promotions file is read: ``kiosk promotions import`` on a lane
(``app.services.catalogue.load_promotions_file``) and ``kiosk hq publish promotions`` at
head office (``hq.publish``). Pure: it takes the file's text.
"""

from __future__ import annotations

import tomllib

from app.domain.promotions import Promotion, promotion_from_dict


def parse_promotions(text: str, currency: str) -> list[Promotion]:
    """The promotions of a TOML text of ``[[promotion]]`` tables (each as
    ``promotion_from_dict`` reads it, amounts in ``currency``), in file order.

    ValueError with the reason: not TOML, ``promotion`` not a list of tables, a bad
    promotion (named by ``promotion_from_dict``), or a ``promo_id`` used twice.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    entries = data.get("promotion", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("expected [[promotion]] tables")
    promotions = [promotion_from_dict(entry, currency) for entry in entries]
    ids = [p.promo_id for p in promotions]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate promo_id {', '.join(duplicates)}")
    return promotions
