"""Canary secrets: configure recognisable payment, backend and staff secrets, run a whole
session with staff actions, uploads and reports, then search every log line, event,
report, export and the database dump for them. None may appear."""

from __future__ import annotations

import io
import json
import logging
import re
import sqlite3

import requests

from app import bootstrap
from app.config import load_settings
from app.logs import JournalFormatter, configure_logging
from app.services.uploads import EventUploader
from app.storage.outbox import Outbox
from devices.membership import MembershipBackend
from devices.sim.membership_backend import BackendServer
from devices.sim.payprovider import PayServer

PAY_SECRET = "CANARY-pay-secret-7f3a91"
TOKEN = "CANARY-kiosk-token-52c0de"
PIN = "735194"
MILK = "6900000000014"
BEER = "6900000001769"


def test_no_secret_reaches_logs_events_reports_or_exports(tmp_path, clock, caplog):
    caplog.set_level(logging.DEBUG)
    pay = PayServer(0, secret=PAY_SECRET).start()
    backend = BackendServer(0, tmp_path / "backend.db").start()
    backend.mode.token = TOKEN
    backend.add_member("M000001", "王芳", "gold", "13800000001")
    handlers: list[logging.Handler] = []
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "kiosk.toml").write_text(
            f'[payment]\nadapter = "simulator"\nwallets = []\n'
            f'options = {{ base_url = "{pay.url}", secret = "{PAY_SECRET}" }}\n'
            f'[membership]\nbase_url = "{backend.url}"\ntoken = "{TOKEN}"\n',
            encoding="utf-8")
        settings = load_settings(data_dir=data, environ={})
        # The journal's lines as `kiosk run` writes them (app.logs: redacted), and the
        # same records formatted with no redaction: the code itself must log no secret.
        journal, bare = io.StringIO(), io.StringIO()
        handlers += [configure_logging(settings, stream=journal, level="debug"),
                     logging.StreamHandler(bare)]
        handlers[1].setFormatter(JournalFormatter(journal=True))
        logging.getLogger().addHandler(handlers[1])
        kiosk = bootstrap.build(settings, clock)
        bootstrap.seed_demo_store(kiosk)
        book = bootstrap.build_staff_book(kiosk)
        book.add("Canary Manager", "manager", PIN, clock.now())
        lane = bootstrap.build_lane(kiosk, receipt_notice=lambda: None)
        lane.boot()

        # A whole session: member by phone, scans, an age check, staff actions, payment.
        lane.start()
        lane.member_phone("13800000001")
        lane.scan(MILK)
        lane.scan(BEER)
        lane.staff.open_pin_pad()
        lane.staff.pin("000000")  # a wrong PIN first: logged as refused, never the PIN
        lane.staff.pin(PIN)
        lane.staff.do("approve_age")
        lane.staff.do("override_price", "1", "500")
        lane.staff.do("device_health")
        lane.staff.do("audit_log")
        lane.staff.sign_out()
        lane.pay()
        no = lane.view.payment.out_trade_no
        assert requests.post(f"{pay.url}/sim/orders/{no}/pay", timeout=5).ok
        clock.advance(seconds=2)
        lane.tick()
        assert lane.view.receipt is not None
        reports = bootstrap.build_reports(kiosk)
        x, z = reports.x(clock.now()), reports.z(clock.now(), "Canary Manager")

        # Events delivered to the backend, as the uploader sends them.
        uploader = EventUploader(MembershipBackend(backend.url, TOKEN, "lane-01", "store-001"),
                                 settings.database_path, clock)
        box = Outbox.open(settings.database_path)
        uploader._outbox = box
        while box.status().pending:
            uploader.drain_once(box)
        assert backend.store.conn.execute("SELECT count(*) FROM events").fetchone()[0] > 10

        secret_file = settings.staff_secret_path.read_bytes()
        pin_hash = bytes(kiosk.db.execute("SELECT pin_hash FROM staff").fetchone()[0])
        key_body = "".join(settings.private_key_path.read_text().splitlines()[1:-1])
        canaries = [PAY_SECRET, TOKEN, PIN, secret_file.hex(), pin_hash.hex(), key_body,
                    key_body[:24]]

        haystacks = {
            "logs": "\n".join(r.getMessage() + str(r.args) for r in caplog.records),
            "journal": journal.getvalue(),
            "journal unredacted": bare.getvalue(),
            "events": "\n".join(p for (p,) in kiosk.db.execute("SELECT payload FROM outbox")),
            "backend": "\n".join(b for (b,) in backend.store.conn.execute(
                "SELECT body FROM events")),
            "reports": json.dumps([x.to_dict(), z.to_dict()], ensure_ascii=False)
            + x.text() + z.text(),
            "audit": json.dumps([e.to_dict() for e in bootstrap.build_audit(kiosk).entries()],
                                ensure_ascii=False),
            "staff page": str(lane.view),
            "print jobs": "\n".join(f"{a} {b}" for a, b in kiosk.db.execute(
                "SELECT sale, document FROM print_jobs")),
        }
        for name, text in haystacks.items():
            for canary in canaries:
                assert canary not in text, f"{name} holds a secret"
        # The database holds PIN hashes in its staff table by design, never plain secrets.
        kiosk.db.conn.commit()
        dump = "\n".join(sqlite3.connect(settings.database_path).iterdump())
        for canary in (PAY_SECRET, TOKEN, key_body, secret_file.hex()):
            assert canary not in dump
        assert not re.search(rf"\b{PIN}\b", dump)
        kiosk.close()
        assert journal.getvalue().count("\n") > 5  # the session was logged
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
        pay.stop()
        backend.stop()
