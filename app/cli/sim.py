"""``kiosk sim``: the simulated devices an integrator runs instead of hardware."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click


@click.group()
def sim() -> None:
    """Simulated devices an integrator runs instead of hardware."""


@sim.command("scanner")
@click.argument("codes", nargs=-1)
@click.option("--link", type=click.Path(path_type=Path, dir_okay=False),
              help="Also make the port reachable at this path (like /dev/serial/by-id/...).")
@click.option("--aim", default="", help="AIM symbology identifier to prefix, e.g. ']E0'.")
@click.option("--suffix", type=click.Choice(["CR", "LF", "CRLF", "TAB"]), default="CR",
              show_default=True, help="What the scanner sends after each code.")
@click.option("--delay", type=click.FloatRange(0, 3600), default=2.0, show_default=True,
              help="Seconds to wait before sending CODES, so the kiosk can open the port "
              "(opening a serial port discards what was sent before).")
def sim_scanner(codes: tuple[str, ...], link: Path | None, aim: str, suffix: str,
                delay: float) -> None:
    """A serial barcode scanner on a virtual serial port (a pty).

    Prints the port to set as scanner.serial_port, waits --delay seconds,
    sends CODES, then sends each line typed on standard input as one scan,
    until end of input.
    """
    from devices.scanner import SUFFIXES
    from devices.sim.serial_scanner import VirtualSerialScanner

    if not (aim == "" or (len(aim) == 3 and aim.isascii() and aim.startswith("]"))):
        raise click.BadParameter("an AIM identifier is ']' and two characters, e.g. ']E0'",
                                 param_hint="--aim")
    with VirtualSerialScanner(link) as scanner:
        click.echo(f"virtual serial scanner on {scanner.port}"
                   + (f" (also {link})" if link else ""), err=True)
        if codes:
            time.sleep(delay)
        for code in codes:
            scanner.send(code, aim, SUFFIXES[suffix])
        if codes:
            time.sleep(0.5)  # let the kiosk read them before the port closes
        for line in sys.stdin:
            if line.strip():
                scanner.send(line.strip(), aim, SUFFIXES[suffix])


@sim.command("printer")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("receipts"), show_default=True,
              help="Where each receipt goes, as NNNN.txt and NNNN.png.")
@click.option("--link", type=click.Path(path_type=Path, dir_okay=False),
              help="Also make the port reachable at this path.")
@click.option("--paper", type=click.Choice(["58", "80"]), default="80", show_default=True,
              help="Paper width in mm.")
@click.option("--font", "font_set", type=click.Choice(["gbk", "gb18030"]), default="gbk",
              show_default=True,
              help="The printer's Chinese font: two-byte GBK (most printers) or full GB18030.")
def sim_printer(out_dir: Path, link: Path | None, paper: str, font_set: str) -> None:
    """A virtual ESC/POS receipt printer on a pty, until Ctrl-C.

    Set printer.port to the printed port (or the link). Faults while it runs:
    write a line to OUT/control: paper-out, paper-ok, near-end, cover-open,
    cover-closed, offline, online, silent (no status replies), answer,
    paper-left N (paper runs out after N more bytes). Text its font has no glyph
    for is printed as junk, as a real printer does, and reported here.
    """
    from devices.sim.printer import VirtualPrinter

    with VirtualPrinter(out_dir, paper_mm=int(paper), link=link, font_set=font_set) as vp:
        click.echo(f"virtual printer on {vp.port}" + (f" (also {link})" if link else "")
                   + f"; receipts in {out_dir}/; faults: echo paper-out > {out_dir}/control",
                   err=True)
        seen = reported = 0
        try:
            while True:
                files = vp.wait_for_receipts(seen + 1, timeout=1.0)
                for path in files[seen:]:
                    click.echo(str(path))
                seen = len(files)
                if vp.undecodable > reported:
                    reported = vp.undecodable
                    click.echo(f"{reported} character(s) not in the {font_set} font so far, "
                               "printed as junk", err=True)
        except KeyboardInterrupt:
            pass


def _serve_until_interrupted(server: Any, banner: str) -> None:
    """Say ``banner`` (on stderr: where it listens), then run a simulator's HTTP server in
    the foreground until Ctrl-C (or SIGTERM, app.cli.root), then free its port. The banner
    is inside the ``try``: a SIGTERM as soon as it is read (a test, a service manager) is
    a clean stop, not an abort with status 1."""
    try:
        click.echo(banner, err=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@sim.group("pay", invoke_without_command=True)
@click.pass_context
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--outcome", default="manual", show_default=True,
              help="How every order ends unless scripted otherwise: OUTCOME[:SECONDS[:AMOUNT]],"
              " e.g. approve:3, decline, pay_late:5, pay_on_close, never_answer, slow:4, "
              "bad_signature, wrong_amount:0:1, manual (Pay/Decline on the web page).")
@click.option("--keys", "keys_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where the simulated WeChat Pay and Alipay keys are written (default: a "
              "temporary folder; printed at start).")
def sim_pay(ctx: click.Context, port: int, outcome: str, keys_dir: Path | None) -> None:
    """The payment provider simulator on 127.0.0.1, until Ctrl-C.

    Speaks the store-gateway contract (adapters 'simulator' and 'gateway'), and
    WeChat Pay v3 and Alipay enough to run those adapters for real. Open
    http://127.0.0.1:PORT/ to pay or decline orders by hand. `kiosk sim pay code`
    makes a simulated phone show a payment code (ask a running simulator).
    """
    if ctx.invoked_subcommand is not None:
        return
    from devices.sim.payprovider import OUTCOMES, PayServer, Script

    name, *rest = outcome.split(":")
    if name not in OUTCOMES:
        raise click.BadParameter(f"one of {', '.join(OUTCOMES)}", param_hint="--outcome")
    try:
        script = Script(name, float(rest[0]) if rest else 0.0,
                        int(rest[1]) if len(rest) > 1 else None)
    except ValueError:
        raise click.BadParameter("OUTCOME[:SECONDS[:AMOUNT]]", param_hint="--outcome") from None
    try:
        server = PayServer(port, keys_dir=keys_dir)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
    server.provider.default = script
    _ = server.keys  # the key files exist before anyone is told where they are
    _serve_until_interrupted(server, f"payment simulator on {server.url} (orders: "
                             f"{server.url}/); outcome {outcome}; keys in {server.keys_dir}")


@sim_pay.command("code")
@click.option("--wallet", default="wechat", show_default=True,
              help="Whose phone: wechat (18 digits, 10-15), alipay (16-24 digits, 25-30) or "
              "unionpay (19 digits, 62).")
@click.option("--then", "then", default="approve", show_default=True,
              help="What the phone does when the code is charged: approve, password[:N] "
              "(asks for the password, approved after N s), decline[:N] (asks, the shopper "
              "gives up after N s), never (asks, nobody answers), insufficient.")
@click.option("--url", default="http://127.0.0.1:8765", show_default=True,
              help="The running payment simulator (`kiosk sim pay`).")
def sim_pay_code(wallet: str, then: str, url: str) -> None:
    """Issue a payment code from a simulated phone: prints the code and when it expires.

    The code is valid 60 s and can be charged once. Show it to the kiosk by
    typing it at the code entry, sending it from `kiosk sim scanner`, or holding
    it up on the demo shelf ("phone: payment code").
    """
    import requests

    try:
        reply = requests.post(f"{url.rstrip('/')}/sim/wallets/code",
                              json={"wallet": wallet, "then": then}, timeout=5)
    except requests.RequestException as exc:
        raise click.ClickException(f"no payment simulator at {url}: {exc}") from None
    if reply.status_code != 201:
        try:
            reason = str(reply.json().get("error", reply.text))
        except ValueError:
            reason = reply.text[:200]
        raise click.ClickException(reason)
    issued = reply.json()
    click.echo(issued["code"])
    click.echo(f"{issued['wallet']} payment code, then {issued['then']}; valid "
               f"{issued['expires_in_s']:g} s, until {issued['expires_at']}; usable once",
               err=True)


@sim.command("backend")
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True)
@click.option("--db", "db_file", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("membership-backend.db"), show_default=True,
              help="The backend's own SQLite file.")
def sim_backend(port: int, db_file: Path) -> None:
    """The reference membership backend on 127.0.0.1, until Ctrl-C.

    Stores events (deduplicated by event_id), answers member look-ups, shows
    counts at http://127.0.0.1:PORT/. Misbehave while it runs:
    POST /sim/mode {"status": 503, "retry_after": 5, "slow": 2, "reject_types": [...]}.
    Its bearer token is "kiosk-sim-token".
    """
    from devices.sim.membership_backend import BackendServer

    try:
        server = BackendServer(port, db_file)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
    _serve_until_interrupted(server, f"membership backend on {server.url}; events in {db_file}")


@sim.command("frames")
@click.argument("outdir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("codes", nargs=-1, required=True)
@click.option("--size", default="1280x720", show_default=True, help="Frame size, WxH.")
def sim_frames(outdir: Path, codes: tuple[str, ...], size: str) -> None:
    """Write camera-like frames (a cluttered scene) showing each code, as PNGs.

    For camera.source = 'folder', and to try `kiosk decode` on frames like a
    camera's. A code's symbology follows its form: 8/12/13 digits EAN/UPC,
    URLs QR, anything else Code 128.
    """
    import cv2

    from devices.sim.frames import Scene

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter("use WIDTHxHEIGHT, e.g. 1280x720", param_hint="--size") from None
    if not (320 <= width <= 7680 and 240 <= height <= 4320):
        raise click.BadParameter("frames must be 320x240 to 7680x4320", param_hint="--size")
    outdir.mkdir(parents=True, exist_ok=True)
    scene = Scene(width, height)
    for i, code in enumerate(codes):
        try:
            frame = scene.frame(code)
        except (ValueError, RuntimeError) as exc:
            raise click.ClickException(f"cannot render {code!r}: {exc}") from None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in code[:20])
        path = outdir / f"{i:03d}-{safe}.png"
        cv2.imwrite(str(path), frame)
        click.echo(str(path))
