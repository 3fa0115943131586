"""Catalogue use cases: import the store's product file, import promotions, and resolve a scan.

``import_catalogue`` validates every row and switches the new catalogue in only
when the whole file is good, so a file with a bad row leaves the previous
catalogue exactly as it was, and the error names the line and the reason. The
rows are written in short transactions beside the live catalogue
(``SqliteCatalogue.load``), so a large import never blocks the lane's writes for
more than one batch (issue 16, fault 2). The file's rules (what a good row is) are
``app.domain.catalogue_file``'s, which head office publishes with too; their names are
re-exported here for the callers that always imported them from this module.
``lookup`` is what `kiosk catalog lookup` and the checkout use to turn any
scanned string into a product, the weight/price/quantity in the code, and the
price the line will cost.
"""

from __future__ import annotations

import io
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from app.domain.barcodes import BarcodeRules, ScannedCode, interpret
from app.domain.cart import Cart
from app.domain.catalogue import Catalogue, Product, ScannedItem, find_item
from app.domain.catalogue_file import (
    COLUMNS,
    MAX_REPORTED_ERRORS,
    OPTIONAL_COLUMNS,
    PROGRESS_EVERY,
    REQUIRED_COLUMNS,
    CatalogueImportError,
    ProductRow,
    RowError,
    validated_file_rows,
)
from app.domain.gtin import gtin_keys
from app.domain.money import exponent_of
from app.domain.pricing import PricedLine, price_cart
from app.domain.promotions import Promotion
from app.domain.promotions_file import parse_promotions
from app.domain.rejections import Refusal, Refused
from app.domain.scan_input import clean_scan
from app.domain.tax import TaxPolicy
from app.storage.catalogue_repo import ImportRunning, SqliteCatalogue

Progress = Callable[[int, int], None]  # (bytes read, total bytes)


BATCH_ROWS = 2000
# Files above this size are validated in a second process while this one writes
# to SQLite: validation is pure Python and about as costly as the inserts, and
# sqlite3 cannot overlap the two within one process (the GIL). Below it the
# process start-up (~0.3 s) is not worth it.
PARALLEL_FROM_BYTES = 4_000_000

Message = tuple[Any, ...]  # ("rows", batch, bytes read) | ("done", errors) | ("failed", text)


def _validation_messages(
    path: Path, exponent: int, tax_classes: frozenset[str]
) -> Iterator[Message]:
    """Parse and validate a catalogue file: batches of rows, then the list of errors."""
    errors: list[RowError] = []
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        # The rules are app.domain.catalogue_file's, the same head office publishes with.
        batch: list[ProductRow] = []
        for row in validated_file_rows(text, exponent, tax_classes, errors):
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                yield ("rows", batch, raw.tell())
                batch = []
        if batch and not errors:
            yield ("rows", batch, raw.tell())
    yield ("done", errors)


def _validation_worker(path: str, exponent: int, tax_classes: list[str], pipe: Any) -> None:
    try:
        for message in _validation_messages(Path(path), exponent, frozenset(tax_classes)):
            pipe.send(message)
    except BaseException as exc:  # reported to the parent, which raises it
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


def _messages_from_worker(
    path: Path, exponent: int, tax_classes: frozenset[str]
) -> Iterator[Message]:
    context = multiprocessing.get_context("spawn")  # no fork: the parent may hold threads and locks
    receive, send = context.Pipe(duplex=False)
    worker = context.Process(
        target=_validation_worker,
        args=(str(path), exponent, sorted(tax_classes), send),
        name="catalogue-validation",
        daemon=True,
    )
    worker.start()
    send.close()
    try:
        while True:
            try:
                message: Message = receive.recv()
            except EOFError:
                raise RuntimeError(
                    "the catalogue validation process stopped unexpectedly"
                ) from None
            yield message
            if message[0] != "rows":
                return
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join()
        receive.close()


def import_catalogue(
    catalogue: SqliteCatalogue,
    path: Path,
    *,
    tax_classes: frozenset[str],
    replace: bool = False,
    progress: Progress | None = None,
    parallel: bool | None = None,
) -> int:
    """Validate and load a catalogue CSV (UTF-8, header row); returns the products loaded.

    An 8-digit code that is both a valid UPC-E and a valid EAN-8 is stored under
    both keys (``gtin.catalogue_keys``) and counted once.

    ``parallel`` forces validation in a second process on (True) or off (False);
    by default large files use one. Raises ``CatalogueImportError`` for a bad file and
    ``ImportRunning`` while another import runs on the same database; either way the
    catalogue is unchanged.
    """
    exponent = exponent_of(catalogue.currency)
    total = path.stat().st_size
    if parallel is None:
        parallel = total >= PARALLEL_FROM_BYTES
    source = _messages_from_worker if parallel else _validation_messages
    errors: list[RowError] = []

    class _Abort(Exception):
        pass

    aliases = 0  # second keys of 8-digit codes (UPC-E and EAN-8): rows, not products

    def rows() -> Iterator[ProductRow]:
        nonlocal aliases
        for message in source(path, exponent, tax_classes):
            if message[0] == "rows":
                yield from message[1]
                aliases += sum(
                    1 for r in message[1] if r[0][:6] == "000000" and gtin_keys(r[0])[0] != r[0]
                )
                if progress:
                    progress(message[2], total)
            elif message[0] == "done":
                errors.extend(message[1])
            else:
                raise RuntimeError(message[1])
        if errors:
            raise _Abort  # load() then drops what it built; the live catalogue is untouched

    meta = {"currency": catalogue.currency, "source": path.name}
    try:
        loaded = catalogue.load(rows(), replace=replace, meta=meta)
    except _Abort:
        raise CatalogueImportError(errors[:MAX_REPORTED_ERRORS], len(errors)) from None
    if progress:
        progress(total, total)
    return loaded - aliases


def load_promotions_file(path: Path, currency: str) -> list[Promotion]:
    """Read a promotions TOML file (``[[promotion]]`` tables); ValueError names the bad one
    (the rule is ``app.domain.promotions_file.parse_promotions``, head office's too)."""
    try:
        return parse_promotions(path.read_text(encoding="utf-8"), currency)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


SEARCH_MAX_CHARS = 40  # a longer search is cut: names are shorter than this
GRID_LIMIT = 60  # tiles at most in one grid; ``ProduceGrid.more`` says there were more


@dataclass(frozen=True, slots=True)
class ProduceGrid:
    """The "Find produce" grid: the departments that sell PLU items (``(department,
    count)``), the department and search it was asked for, and the PLU items that match
    (at most ``GRID_LIMIT``; ``more``: some were left out, a narrower search finds them)."""

    departments: tuple[tuple[str, int], ...]
    department: str
    search: str
    items: tuple[Product, ...]
    more: bool


def produce_grid(catalogue: SqliteCatalogue, *, department: str = "", search: str = "",
                 limit: int = GRID_LIMIT) -> ProduceGrid:
    """PLU items (loose produce, bread: no barcode, keyed ``PLU:nnnn``) for a shopper to
    pick by picture (issue 19): those of ``department`` ('' = every department) whose
    Chinese or English name contains ``search`` (trimmed, cut to ``SEARCH_MAX_CHARS``;
    ASCII letters case-insensitive; '' = all). Items that are not PLUs (a barcode of their
    own, scale-label RCNs) never appear: a shopper scans those. One range seek of the
    catalogue's primary key each for the departments and the items (bench/produce_bench.py)."""
    search = " ".join(search.split())[:SEARCH_MAX_CHARS]
    items = catalogue.plu_products(department=department or None, search=search,
                                   limit=limit + 1)
    return ProduceGrid(tuple(catalogue.plu_departments()), department, search,
                       tuple(items[:limit]), len(items) > limit)


@dataclass(frozen=True, slots=True)
class Lookup:
    """A scan resolved: the item, and what its line would cost on its own."""

    item: ScannedItem
    line: PricedLine


def read_code(raw: str | bytes, rules: BarcodeRules, max_length: int) -> ScannedCode:
    """Clean and interpret untrusted scanner input (raises ``Refused``)."""
    return interpret(clean_scan(raw, max_length), rules)


def lookup(
    raw: str | bytes,
    *,
    catalogue: Catalogue,
    rules: BarcodeRules,
    tax: TaxPolicy,
    promotions: list[Promotion],
    today: date | None,
    member: bool = False,
    max_length: int = 512,
) -> Lookup:
    """Resolve any scanned string to a product and its line price, or raise ``Refused``."""
    code = read_code(raw, rules, max_length)
    item = find_item(code, catalogue, today)
    cart = Cart()
    cart.add(item)
    priced = price_cart(cart.lines, promotions, member=member, tax=tax, currency=rules.currency)
    return Lookup(item, priced.lines[0])


__all__ = [
    "COLUMNS",
    "OPTIONAL_COLUMNS",
    "PROGRESS_EVERY",
    "REQUIRED_COLUMNS",
    "CatalogueImportError",
    "ImportRunning",
    "Lookup",
    "ProduceGrid",
    "Refusal",
    "Refused",
    "RowError",
    "import_catalogue",
    "load_promotions_file",
    "lookup",
    "produce_grid",
    "read_code",
]
