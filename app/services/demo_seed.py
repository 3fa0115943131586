"""The demo store's data: its catalogue, promotions and staff, loaded into an empty kiosk.

For `kiosk demo`, scenarios and the UI tests; a real store imports its own
catalogue (`kiosk catalog import`) and adds its own staff (`kiosk staff add`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

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


__all__ = ["DEMO_STAFF", "seed_catalogue", "seed_staff"]
