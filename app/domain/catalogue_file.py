"""The catalogue file's rules: what a good row of a product CSV is, and how it is stored.

One rule for every place a catalogue file is read: ``kiosk catalog import`` on a lane
(``app.services.catalogue.import_catalogue``) and ``kiosk hq publish catalogue`` at head
office (``hq.publish``) both run :func:`validated_file_rows`, so a file one refuses the
other refuses with the same line and reason (docs/store-sync.md). Pure: it reads a text
stream it is given and keeps no state between calls.

A file is UTF-8 CSV with a header row naming :data:`COLUMNS` (the first four required,
any order); each good row becomes a :data:`ProductRow` (the products table's 11 columns,
``code`` normalised to its catalogue key by ``gtin.catalogue_keys``; an 8-digit code
that is both a UPC-E and an EAN-8 gives two rows, one per key). Prices are in minor units
of the store's currency (``exponent``: its decimals).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import IO, Any

from app.domain.gtin import catalogue_keys

#: The products table's columns, in order; also the file's columns (the first four required).
COLUMNS = (
    "code",
    "name_zh",
    "name_en",
    "price",
    "member_price",
    "unit",
    "tax_class",
    "min_age",
    "quantity_limit",
    "department",
    "image",
)
REQUIRED_COLUMNS = COLUMNS[:4]
OPTIONAL_COLUMNS = COLUMNS[4:]
MAX_REPORTED_ERRORS = 20
PROGRESS_EVERY = 20_000  # rows between progress callbacks

#: One stored product: (code key, name_zh, name_en, price minor, member_price minor or
#: None, unit, tax_class, min_age, quantity_limit or None, department, image).
ProductRow = tuple[str, str, str, int, int | None, str, str, int, int | None, str, str]


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


def header_error(header: list[str]) -> RowError | None:
    """Line 1's problem (missing or unknown columns), or None for a good header."""
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if not missing and not unknown:
        return None
    parts = [f"missing column(s) {', '.join(missing)}"] if missing else []
    parts += [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
    return RowError(1, "; ".join(parts))


def validated_file_rows(
    text: IO[str],
    exponent: int,
    tax_classes: frozenset[str],
    errors: list[RowError],
    on_row: Callable[[int], None] = lambda _line: None,
) -> Iterator[ProductRow]:
    """The stored rows of a whole catalogue file, read from ``text`` (a text stream
    opened with ``newline=""``; ``encoding="utf-8-sig"`` so a BOM is ignored).

    Every problem is appended to ``errors`` as a :class:`RowError` (line, reason): a
    bad header, a bad row, bytes that are not UTF-8, a CSV format error. Once there is
    one, no more rows are yielded (the rest are still checked, so every bad line is
    named): a caller keeps the rows only when ``errors`` is empty at the end.
    ``exponent``: the currency's decimals (``money.exponent_of``); ``tax_classes``: the
    store's classes (``store.tax_classes``). ``on_row(line)`` is called every
    :data:`PROGRESS_EVERY` rows.
    """
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        errors.append(RowError(1, "the file is empty"))
        return
    except UnicodeDecodeError:
        errors.append(RowError(1, "the file is not UTF-8"))
        return
    problem = header_error(header)
    if problem is not None:
        errors.append(problem)
        return
    try:
        yield from _validated_rows(reader, header, exponent, tax_classes, errors, on_row)
    except UnicodeDecodeError:
        errors.append(RowError(reader.line_num + 1, "the file is not UTF-8"))
    except csv.Error as exc:
        errors.append(RowError(reader.line_num, f"CSV format error: {exc}"))


def validate_file(text: IO[str], exponent: int,
                  tax_classes: frozenset[str]) -> tuple[list[ProductRow], list[RowError]]:
    """Every stored row of a small catalogue file and every error, at once (tests, tools;
    a large file is better streamed with :func:`validated_file_rows`)."""
    errors: list[RowError] = []
    rows = list(validated_file_rows(text, exponent, tax_classes, errors))
    return ([] if errors else rows), errors


def file_error(errors: list[RowError]) -> CatalogueImportError:
    """The error for a refused file: the first :data:`MAX_REPORTED_ERRORS` and the count."""
    return CatalogueImportError(errors[:MAX_REPORTED_ERRORS], len(errors))
