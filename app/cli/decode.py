"""``kiosk decode``: read the barcodes in image files with the kiosk's own decoder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from app import bootstrap
from app.cli.root import Context
from app.domain.rejections import Refused


@click.command()
@click.argument("images", nargs=-1, required=True,
                type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, one per line.")
@click.option("--lookup", is_flag=True,
              help="Also say what the kiosk would put in the cart for each code.")
@click.pass_obj
def decode(obj: Context, images: tuple[Path, ...], as_json: bool, lookup: bool) -> None:
    """Read the barcodes in image files with the kiosk's own decoder pipeline.

    Prints, per image, the codes found, their symbology, the pass that read
    them and the milliseconds it took: the answer to "why won't this label
    scan?". Exits 1 when an image cannot be read or holds no code.
    """
    from devices.decoder import load_image

    decoder = bootstrap.build_decoder(obj.settings)
    kiosk = obj.kiosk() if lookup else None
    failed = False
    for path in images:
        record: dict[str, Any] = {"image": str(path)}
        try:
            result = decoder.read_image(load_image(str(path)))
        except ValueError as exc:
            record["error"] = str(exc)
            failed = True
        else:
            record["ms"] = round(result.ms, 2)
            record["passes"] = result.passes
            record["codes"] = [
                {"text": r.text, "symbology": r.symbology, "aim": r.aim, "engine": r.engine,
                 "pass": r.pass_name, "box": list(r.box)}
                for r in result.reads
            ]
            record["dropped"] = [r.text for r in result.dropped]
            failed = failed or not result.reads
            if kiosk is not None:
                for code in record["codes"]:
                    try:
                        found = kiosk.lookup(code["aim"] + code["text"])
                        code["cart"] = f"{found.item.product.code} {found.item.product.name_en}"
                    except Refused as exc:
                        code["cart"] = f"refused: {exc.refusal.message_en}"
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        elif "error" in record:
            click.echo(record["error"], err=True)
        elif not record["codes"]:
            click.echo(f"{path}: no code found ({record['ms']} ms, tried "
                       f"{', '.join(record['passes'])})")
        else:
            for code in record["codes"]:
                line = (f"{path}: {code['symbology']} {code['text']!r} "
                        f"({code['pass']}, {record['ms']} ms)")
                if "cart" in code:
                    line += f" -> {code['cart']}"
                click.echo(line)
    if kiosk is not None:
        kiosk.close()
    if failed:
        sys.exit(1)
