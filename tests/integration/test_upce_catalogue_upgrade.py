"""A catalogue imported before issue 17 part 1 still finds a UPC-E by every path.

Before, the import stored an 8-digit code that is both a valid UPC-E and a valid
EAN-8 only under its EAN-8 key (``00000001234565``). Scans now key a UPC-E by its
GTIN-12, and a camera sends only that (``0012345000065``), so on a kiosk upgraded
without re-importing its catalogue the issue's case came back: the label was
refused as unknown. Migration m011 adds the GTIN-12 row, as an import now does.
"""

from __future__ import annotations

import sqlite_utils

from app.domain.barcodes import BarcodeRules
from app.domain.catalogue import find_item
from app.services.catalogue import read_code
from app.storage.catalogue_repo import SqliteCatalogue
from app.storage.db import open_database
from app.storage.migrations import MIGRATIONS

RULES = BarcodeRules("CNY", {})
# The 8 printed digits, ]E0 + 8, the camera's 13 digits, UPC-A, GTIN-14, GS1, Digital Link.
FORMS = ["01234565", "]E001234565", "0012345000065", "012345000065", "00012345000065",
         "(01)00012345000065", "https://id.gs1.org/01/00012345000065"]


def old_database(path):
    """The database as the kiosk before this change left it: the 8 digits imported as
    an EAN-8 only, plus an EAN-8 that cannot be a UPC-E, and a GTIN-13."""
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before="m011_upce_catalogue_keys")
    for code, name in (("00000001234565", "Gum"), ("00000096385074", "Tea"),
                       ("06900000000014", "Milk")):
        db.execute("INSERT INTO products (code, name_zh, name_en, price, unit, tax_class) "
                   "VALUES (?, ?, ?, 350, 'each', 'food')", (code, name, name))
    db.conn.commit()
    db.close()


def test_a_catalogue_imported_before_finds_a_upce_label_by_every_path(tmp_path):
    path = tmp_path / "kiosk.db"
    old_database(path)
    db = open_database(path)
    catalogue = SqliteCatalogue(db, "CNY")
    for form in FORMS:
        item = find_item(read_code(form, RULES, 512), catalogue, None)
        assert (form, item.product.name_en, item.product.code) == \
            (form, "Gum", "00012345000065")
    assert catalogue.get("00000001234565").name_en == "Gum"  # the old row stays
    assert catalogue.get("00000096385074").name_en == "Tea"
    assert db.execute("SELECT count(*) FROM products").fetchone()[0] == 4  # one row added
    assert catalogue.count() == 3  # Gum's two rows are one product
    db.close()
    again = open_database(path)  # not applied twice
    assert again.execute("SELECT count(*) FROM products").fetchone()[0] == 4
