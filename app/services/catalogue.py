"""Catalogue use cases: import the store's product file, import promotions, and resolve a scan.

``import_catalogue`` validates every row and switches the new catalogue in only
when the whole file is good, so a file with a bad row leaves the previous
catalogue exactly as it was, and the error names the line and the reason. The
rows are written in short transactions beside the live catalogue
(``SqliteCatalogue.load``), so a large import never blocks the lane's writes for
more than one batch (issue 16, fault 2).
``lookup`` is what `kiosk catalog lookup` and the checkout use to turn any
scanned string into a product, the weight/price/quantity in the code, and the
price the line will cost.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from operator import itemgetter
from pathlib import Path
from typing import Any

from app.domain.barcodes import BarcodeRules, ScannedCode, interpret
from app.domain.cart import Cart
from app.domain.catalogue import Catalogue, Product, ScannedItem, find_item
from app.domain.gtin import catalogue_keys, gtin_keys
from app.domain.money import exponent_of
from app.domain.pricing import PricedLine, price_cart
from app.domain.promotions import Promotion, promotion_from_dict
from app.domain.rejections import Refusal, Refused
from app.domain.scan_input import clean_scan
from app.domain.tax import TaxPolicy
from app.storage.catalogue_repo import COLUMNS, ImportRunning, ProductRow, SqliteCatalogue

# The file's columns are the table's columns, in the same order; the first four are required.
REQUIRED_COLUMNS = COLUMNS[:4]
OPTIONAL_COLUMNS = COLUMNS[4:]
MAX_REPORTED_ERRORS = 20
PROGRESS_EVERY = 20_000  # rows between progress callbacks

Progress = Callable[[int, int], None]  # (bytes read, total bytes)


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class CatalogueImportError(ValueError):
    """The file was refused; ``errors`` lists the first bad rows, ``error_count`` all of them."""

    def __init__(self, errors: list[RowError], error_count: int) -> None:
        shown = "\n".join(str(e) for e in errors)
        more = error_count - len(errors)
        super().__init__(
            f"catalogue not imported: {error_count} bad row(s); "
            "the previous catalogue is unchanged\n"
            + shown
            + (f"\n... and {more} more" if more > 0 else "")
        )
        self.errors = errors
        self.error_count = error_count


def _parse_minor(text: str, exponent: int) -> int:
    """'12.50' -> 1250 exactly; ValueError otherwise. The hot path of a million-row import."""
    whole, dot, frac = text.partition(".")
    if not whole.isdigit() or not whole.isascii():
        if whole or not dot:
            raise ValueError(f"price {text!r} is not an amount like 12.50")
        whole = "0"
    if dot:
        if not frac.isdigit() or not frac.isascii() or len(frac) > exponent:
            raise ValueError(f"price {text!r} must have at most {exponent} decimals")
        frac = frac.ljust(exponent, "0")
    else:
        frac = "0" * exponent
    return int(whole + frac)


def _duplicate(code: str, key: str, line: int, written: str | None) -> str:
    # Name the key when the two were written differently: an 8-digit UPC-E and its
    # 12-digit UPC-A are one product (gtin.gtin_keys). ``written`` None: line ``line``
    # took the fast path, a bare GTIN-13 (the key without its leading 0).
    if written is None:
        written = key[1:]
    if written == code:
        return f"code {code} already on line {line}"
    return f"code {code} already on line {line} as {written} (both are GTIN {key})"


def _validated_rows(
    reader: Any,  # a csv.reader: rows, and line_num for error messages
    header: list[str],
    exponent: int,
    tax_classes: frozenset[str],
    errors: list[RowError],
    on_row: Callable[[int], None],
) -> Iterator[ProductRow]:
    width = len(header)
    # Put every row's fields in the standard column order; a column the file
    # leaves out reads as "" (the extra field appended to each row below).
    order = [header.index(c) if c in header else width for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    standard = order == list(range(len(order))) and width == len(order)
    pick = itemgetter(*order)
    seen: dict[str, int] = {}  # key -> the line that first used it
    # key -> the code as written on that line, for codes off the fast path (kept apart
    # so a bare GTIN-13 row stores one int: validation is most of the import's cost).
    written_as: dict[str, str] = {}
    rows_read = 0
    for row in reader:
        rows_read += 1
        line = reader.line_num  # the file's line, even after quoted multi-line fields
        if rows_read % PROGRESS_EVERY == 0:
            on_row(line)
        if not row:
            continue
        try:
            if len(row) != width:
                raise ValueError(f"expected {width} fields, found {len(row)}")
            if not standard:
                row.append("")
                row = list(pick(row))
            (
                code,
                name_zh,
                name_en,
                price_text,
                member_text,
                unit,
                tax_class,
                age,
                limit_text,
                dept,
                image,
            ) = row  # noqa: E501
            # Fast paths for the common shapes (a bare GTIN-13, "12.50"); anything
            # else takes the general, slower checks with their precise messages.
            # An EAN-8 padded to 13 digits ("00000...") takes the general path: it
            # may be a UPC-E too (gtin.gtin_keys).
            if (
                len(code) == 13
                and code.isdigit()
                and code.isascii()
                and (code[0] != "0" or code[:5] != "00000")
            ):
                digits = code.encode()
                odd, even = digits[-2::-2], digits[-3::-2]
                if (3 * (sum(odd) - 288) + sum(even) - 288 + digits[-1] - 48) % 10:
                    catalogue_keys(code)  # raises with the reason: what it looks like
                code = "0" + code
                if code in seen:
                    first = seen[code]
                    raise ValueError(_duplicate(code[1:], code, first, written_as.get(code)))
                seen[code] = line
                aliases: tuple[str, ...] = ()
            else:
                # The same normalisation a scan goes through (gtin.gtin_keys): an
                # 8-digit UPC-E that is also a valid EAN-8 is stored under both keys.
                code, *more = catalogue_keys(code)
                aliases = tuple(more)
                written = row[0].strip()
                for key in (code, *aliases):
                    if key in seen:
                        raise ValueError(_duplicate(written, key, seen[key], written_as.get(key)))
                for key in (code, *aliases):
                    seen[key] = line
                    written_as[key] = written
            name_zh = name_zh.strip()
            name_en = name_en.strip()
            if not name_zh or not name_en:
                raise ValueError("name_zh and name_en are both required")
            if not (name_zh + name_en).isprintable():
                raise ValueError("names may not contain control characters")
            whole, _, frac = price_text.partition(".")
            if (
                len(frac) == exponent
                and whole.isdigit()
                and frac.isdigit()
                and price_text.isascii()
            ):
                price = int(whole + frac)
            else:
                price = _parse_minor(price_text.strip(), exponent)
            member = _parse_minor(member_text.strip(), exponent) if member_text else None
            if member is not None and member > price:
                raise ValueError("member_price is above price")
            unit = unit.strip() or "each"
            if unit != "each" and unit != "kg":
                raise ValueError(f"unit must be 'each' or 'kg', not {unit!r}")
            tax_class = tax_class.strip() or "standard"
            if tax_class not in tax_classes:
                raise ValueError(
                    f"tax_class {tax_class!r} is not in store.tax_classes "
                    f"({', '.join(sorted(tax_classes))})"
                )
            min_age = int(age) if age and age != "0" else 0
            if not 0 <= min_age <= 99:
                raise ValueError("min_age must be 0-99")
            limit = int(limit_text) if limit_text else None
            if limit is not None and limit < 1:
                raise ValueError("quantity_limit must be at least 1")
        except ValueError as exc:
            reason = str(exc)
            if reason.startswith("invalid literal for int()"):
                reason = "min_age and quantity_limit must be whole numbers"
            errors.append(RowError(line, reason))
            continue
        if not errors:  # once a row is bad nothing will be written; only keep checking
            product: ProductRow = (
                code,
                name_zh,
                name_en,
                price,
                member,
                unit,
                tax_class,
                min_age,
                limit,
                dept.strip(),
                image.strip(),
            )
            yield product
            for alias in aliases:  # empty but for an 8-digit UPC-E that is also an EAN-8
                # The same product under its other key: a scan finds it by either.
                yield (alias, *product[1:])


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
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            yield ("done", [RowError(1, "the file is empty")])
            return
        except UnicodeDecodeError:
            yield ("done", [RowError(1, "the file is not UTF-8")])
            return
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if missing or unknown:
            parts = [f"missing column(s) {', '.join(missing)}"] if missing else []
            parts += [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
            yield ("done", [RowError(1, "; ".join(parts))])
            return
        rows = _validated_rows(reader, header, exponent, tax_classes, errors, lambda _: None)
        batch: list[ProductRow] = []
        try:
            for row in rows:
                batch.append(row)
                if len(batch) == BATCH_ROWS:
                    yield ("rows", batch, raw.tell())
                    batch = []
        except UnicodeDecodeError:
            errors.append(RowError(reader.line_num + 1, "the file is not UTF-8"))
        except csv.Error as exc:
            errors.append(RowError(reader.line_num, f"CSV format error: {exc}"))
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
    """Read a promotions TOML file (``[[promotion]]`` tables); ValueError names the bad one."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    entries = data.get("promotion", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected [[promotion]] tables")
    promotions = [promotion_from_dict(entry, currency) for entry in entries]
    ids = [p.promo_id for p in promotions]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate promo_id {', '.join(duplicates)}")
    return promotions


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
