"""The composition root: the one place that reads settings and wires storage, services and UI.

Everything else receives what it needs as arguments, so tests and scenarios
build the same objects with other settings (cosmicpython's bootstrap pattern).
Kivy is imported only inside ``run_ui``: the CLI's catalogue commands and the
tests never load a window system.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from app.config import Settings
from app.domain.barcodes import BarcodeRules
from app.domain.clock import Clock
from app.domain.promotions import Promotion
from app.domain.tax import TaxPolicy
from app.services import catalogue as catalogue_service
from app.services.clock import SystemClock
from app.storage.catalogue_repo import SqliteCatalogue
from app.storage.db import open_database

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Kiosk:
    """Everything a running kiosk is made of, wired once."""

    settings: Settings
    db: sqlite_utils.Database
    catalogue: SqliteCatalogue
    rules: BarcodeRules
    tax: TaxPolicy
    clock: Clock

    def promotions(self) -> list[Promotion]:
        return self.catalogue.promotions()

    def lookup(self, raw: str | bytes, *, member: bool = False) -> catalogue_service.Lookup:
        barcodes = self.settings.barcodes
        return catalogue_service.lookup(
            raw,
            catalogue=self.catalogue,
            rules=self.rules,
            tax=self.tax,
            promotions=self.promotions(),
            today=self.clock.now().date() if barcodes.refuse_expired else None,
            member=member,
            max_length=barcodes.max_length,
        )

    def close(self) -> None:
        self.db.close()


def build(settings: Settings, clock: Clock | None = None) -> Kiosk:
    db = open_database(settings.database_path)
    catalogue = SqliteCatalogue(db, settings.store.currency)
    catalogue.check_currency()
    rules = BarcodeRules(settings.store.currency, settings.barcodes.layouts())
    return Kiosk(
        settings=settings,
        db=db,
        catalogue=catalogue,
        rules=rules,
        tax=settings.store.tax_policy(),
        clock=clock or SystemClock(),
    )


def resolve_seed(path: str) -> Path | None:
    """A seed path from settings: absolute, relative to the working directory, or to the project."""
    if not path:
        return None
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return PROJECT_ROOT / candidate


def seed_demo_store(kiosk: Kiosk) -> list[str]:
    """Load the demo catalogue and promotions into an empty kiosk; returns what was loaded."""
    done = []
    csv_path = resolve_seed(kiosk.settings.catalogue.seed_csv)
    if csv_path is not None and kiosk.catalogue.count() == 0:
        rows = catalogue_service.import_catalogue(
            kiosk.catalogue,
            csv_path,
            tax_classes=frozenset(kiosk.settings.store.tax_classes),
            replace=True,
        )
        done.append(f"{rows} products from {csv_path}")
    promo_path = resolve_seed(kiosk.settings.catalogue.seed_promotions)
    if promo_path is not None and not kiosk.promotions():
        promotions = catalogue_service.load_promotions_file(
            promo_path, kiosk.settings.store.currency
        )
        kiosk.catalogue.replace_promotions(promotions)
        done.append(f"{len(promotions)} promotions from {promo_path}")
    return done


def run_ui(kiosk: Kiosk, *, screenshot: Path | None = None) -> None:
    """Start the touch screen (blocks until the window closes)."""
    from app.ui.app import KioskApp  # Kivy loads here and only here

    KioskApp(kiosk, screenshot=screenshot).run()
