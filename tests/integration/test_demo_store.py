"""The demo store in seeds/ has what the foundation issue promises an integrator."""

import csv
from collections import Counter

from app.bootstrap import PROJECT_ROOT, seed_demo_store
from app.domain.catalogue import Unit
from app.domain.gtin import is_valid_gtin
from app.domain.promotions import PromoKind

SEEDS = PROJECT_ROOT / "seeds"


def test_catalogue_file_shape():
    rows = list(csv.DictReader((SEEDS / "catalogue.csv").open(encoding="utf-8")))
    assert len(rows) >= 200
    for row in rows:
        code = row["code"]
        assert is_valid_gtin(code) or (code.isdigit() and len(code) in (4, 5)), code
        assert row["name_zh"] and row["name_en"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in row["name_zh"])
    assert (
        sum(1 for r in rows if r["unit"] == "kg" and r["code"][:2] in ("20", "21", "22", "23"))
        >= 10
    )
    assert sum(1 for r in rows if len(r["code"]) in (4, 5)) >= 5
    assert sum(1 for r in rows if r["min_age"] == "18") >= 5
    assert sum(1 for r in rows if r["member_price"]) >= 10
    assert sum(1 for r in rows if r["quantity_limit"]) >= 3


def test_seeding_loads_everything_and_promotions_cover_real_products(demo_kiosk):
    k = demo_kiosk
    promotions = k.promotions()
    kinds = Counter(p.kind for p in promotions)
    assert set(kinds) == set(PromoKind)
    for promo in promotions:
        for code in promo.products:
            assert k.catalogue.get(code) is not None, f"{promo.promo_id} names unknown {code}"
    assert seed_demo_store(k) == []  # a second run loads nothing twice


def test_demo_lookups_with_every_code_kind(demo_kiosk):
    k = demo_kiosk
    assert k.lookup("6900000000014").item.product.name_en == "Whole Milk 250ml"
    banana = k.lookup("2100101012341")
    assert banana.item.product.unit is Unit.KG and banana.line.total.minor == 861
    assert k.lookup("4046").item.product.name_en == "Avocado"


def test_expired_gs1_item_refused_using_the_injected_clock(demo_kiosk):
    import pytest

    from app.domain.rejections import Refused

    with pytest.raises(Refused) as info:
        demo_kiosk.lookup("(01)06900000000014(17)261124")  # clock says 2026-11-25
    assert info.value.refusal.code == "expired"
    assert demo_kiosk.lookup("(01)06900000000014(17)261125").item.code.expiry is not None


def test_members_file():
    rows = list(csv.DictReader((SEEDS / "members.csv").open(encoding="utf-8")))
    assert len(rows) >= 3 and all(r["member_id"] and r["phone"] for r in rows)
