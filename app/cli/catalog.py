"""``kiosk catalog``: import the product catalogue, resolve a scanned code as the cart would."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from app.cli.root import Context
from app.domain.catalogue import Unit
from app.domain.rejections import Refused
from app.services.catalogue import CatalogueImportError, ImportRunning, import_catalogue


@click.group()
def catalog() -> None:
    """Import the product catalogue and look codes up."""


@catalog.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--replace",
    is_flag=True,
    help="Replace the whole catalogue (default: add to it, updating same codes).",
)
@click.pass_obj
def catalog_import(obj: Context, file: Path, replace: bool) -> None:
    """Import products from a CSV file; all rows or none.

    Columns: code, name_zh, name_en, price (required); member_price, unit (each|kg),
    tax_class, min_age, quantity_limit, department, image (optional).
    """
    kiosk = obj.kiosk()
    total = file.stat().st_size
    with click.progressbar(
        length=total, label="importing", file=sys.stderr, show_pos=False, show_percent=True
    ) as bar:
        seen = [0]

        def progress(done: int, _total: int) -> None:
            bar.update(done - seen[0])
            seen[0] = done

        try:
            rows = import_catalogue(
                kiosk.catalogue,
                file,
                replace=replace,
                progress=progress,
                tax_classes=frozenset(obj.settings.store.tax_classes),
            )
        except (CatalogueImportError, ImportRunning) as exc:
            click.echo("", err=True)
            raise click.ClickException(str(exc)) from None
    click.echo(f"imported {rows} products from {file}; catalogue now has {kiosk.catalogue.count()}")


def _decode_argv(code: str) -> str | bytes:
    # Bytes that are not UTF-8 arrive as surrogate escapes; give the scan check the raw bytes.
    try:
        code.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(code)
    return code


@catalog.command("lookup")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--member", is_flag=True, help="Price as for an identified member.")
@click.pass_obj
def catalog_lookup(obj: Context, code: str, as_json: bool, member: bool) -> None:
    """Resolve any scanned string: product, weight/price/quantity in the code, line price.

    CODE '-' reads the raw scanner bytes from standard input. A refused code
    prints the reason and exits 1.
    """
    raw: str | bytes = sys.stdin.buffer.read() if code == "-" else _decode_argv(code)
    kiosk = obj.kiosk()
    try:
        result = kiosk.lookup(raw, member=member)
    except Refused as refused:
        r = refused.refusal
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "ok": False,
                        "refused": r.code,
                        "message_en": r.message_en,
                        "message_zh": r.message_zh,
                        "input": r.preview,
                    },
                    ensure_ascii=False,
                    indent=2,
                )
            )
        else:
            click.echo(f"refused ({r.code}): {r.message_en}\n  {r.message_zh}", err=True)
            if r.preview:
                click.echo(f"  input: {r.preview}", err=True)
        sys.exit(1)
    item, line = result.item, result.line
    product = item.product
    data: dict[str, Any] = {
        "ok": True,
        "code_kind": item.code.kind.value,
        "key": product.code,
        "name_zh": product.name_zh,
        "name_en": product.name_en,
        "unit": product.unit.value,
        "unit_price": product.price.to_decimal_string(),
        "member_price": product.member_price.to_decimal_string() if product.member_price else None,
        "quantity": item.quantity,
        "weight_g": item.weight_g,
        "label_price": item.label_price.to_decimal_string() if item.label_price else None,
        "expiry": item.code.expiry.isoformat() if item.code.expiry else None,
        "batch": item.code.batch,
        "min_age": product.min_age,
        "regular_price": line.regular.to_decimal_string(),
        "adjustments": [
            {
                "code": a.code,
                "name_zh": a.name_zh,
                "name_en": a.name_en,
                "saving": a.saving.to_decimal_string(),
            }
            for a in line.adjustments
        ],
        "line_price": line.total.to_decimal_string(),
        "currency": line.total.currency,
    }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    per = "/kg" if product.unit is Unit.KG else " each"
    click.echo(f"{product.name_zh} / {product.name_en}")
    click.echo(f"  key          {product.code}  ({item.code.kind.value})")
    click.echo(f"  unit price   {product.price.format()}{per}")
    if product.member_price:
        click.echo(f"  member price {product.member_price.format()}{per}")
    if item.weight_g is not None:
        click.echo(f"  weight       {item.weight_g / 1000:.3f} kg")
    if item.label_price is not None:
        click.echo(f"  label price  {item.label_price.format()}")
    if product.unit is Unit.EACH:
        click.echo(f"  quantity     {item.quantity}")
    if item.code.expiry:
        click.echo(f"  expiry       {item.code.expiry.isoformat()}")
    if item.code.batch:
        click.echo(f"  batch        {item.code.batch}")
    if product.min_age:
        click.echo(f"  age check    {product.min_age}+ (staff approve before payment)")
    for adj in line.adjustments:
        click.echo(f"  {adj.name_en:<12} -{adj.saving.format()}  {adj.name_zh}")
    click.echo(f"  line price   {line.total.format()}")
