"""Receipts through a real pty to the virtual printer, and every printer fault.

The kiosk side is the code a store runs: SerialLink (python-escpos on
pyserial), the status queries, the persisted print queue and its worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app import bootstrap
from app.services.exit_pass import load_public_keys, verify
from app.services.printing import JobOutcome, PrintQueue
from app.services.receipts import issue_receipt, reprint
from app.storage.print_jobs import PrintJobs
from devices.decoder import Decoder, load_image
from devices.printer import (
    EscPosPrinter,
    PrinterState,
    SerialLink,
    parse_status,
    read_status,
)
from devices.receipt import ReceiptStyle
from devices.sim.printer import VirtualPrinter
from tests.helpers import wait_for
from tests.unit.factories import paid_sale


# --- status bytes --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("printer", "cause", "paper", "state"),
    [
        (b"\x12", b"\x12", b"\x12", PrinterState.OK),
        (b"\x12", b"\x12", b"\x1e", PrinterState.PAPER_NEAR_END),
        (b"\x1a", b"\x32", b"\x72", PrinterState.PAPER_OUT),
        (b"\x1a", b"\x16", b"\x12", PrinterState.COVER_OPEN),
        (b"\x1a", b"\x12", b"\x12", PrinterState.OFFLINE),
        (b"", None, None, PrinterState.UNKNOWN),  # no reply: never "fine", never "no paper"
        (b"\xff", None, None, PrinterState.UNKNOWN),  # not a status byte (fixed bits wrong)
        (b"\x12", None, None, PrinterState.OK),  # online, paper sensor silent
    ],
)
def test_status_replies_are_read_as_the_epson_spec_says(printer, cause, paper, state):
    assert parse_status(printer, cause, paper).state is state


# --- the virtual printer, through a pty ----------------------------------------------------
@pytest.fixture
def printer_sim(tmp_path):
    with VirtualPrinter(tmp_path / "receipts", link=tmp_path / "printer") as sim:
        yield sim


@pytest.fixture
def signer(kiosk):
    return bootstrap.build_signer(kiosk.settings)


def receipt_printer(link_factory, jobs_path, style, clock, *, status_timeout=0.3, **kw):
    """The print queue over the ESC/POS printer, as bootstrap.build_printer wires them."""
    return PrintQueue(EscPosPrinter(link_factory, style, status_timeout=status_timeout),
                      jobs_path, clock, **kw)


class Lane:
    """The kiosk's printer worker on the virtual printer's port."""

    def __init__(self, kiosk, port: str, **kw) -> None:
        self.kiosk = kiosk
        self.jobs = PrintJobs(kiosk.db)
        self.outcomes: list[JobOutcome] = []
        self.printer = receipt_printer(lambda: SerialLink(port), kiosk.settings.database_path,
                                       ReceiptStyle(), kiosk.clock, port_name=port,
                                       poll_s=0.1, backoff_s=0.05, backoff_max_s=0.2, **kw)
        self.printer.on_outcome(self.outcomes.append)
        self.printer.start()

    def stop(self) -> None:
        self.printer.stop()

    def job(self, job_id: int):
        return self.jobs.get(job_id)


def test_a_receipt_prints_with_the_sale_and_a_scannable_signed_exit_pass(kiosk, printer_sim,
                                                                           signer):
    lane = Lane(kiosk, str(printer_sim.link))
    try:
        sale = paid_sale()
        issued = issue_receipt(lane.jobs, sale, signer, kiosk.clock)
        lane.printer.wake()
        assert wait_for(lambda: lane.job(issued.job_id).status == "printed")
        (text_path,) = printer_sim.wait_for_receipts(1)
    finally:
        lane.stop()
    text = text_path.read_text(encoding="utf-8")
    for expected in ("扫码购示范店", "纯牛奶 250ml", "Whole Milk 250ml", "2 x 6.50", "-1.20",
                     "第二件半价 2nd at half price", "1.234 kg x 6.98/kg", "合计 TOTAL",
                     "CNY 62.13", "微信支付 WeChat Pay", "M000001", "出口凭证 EXIT PASS"):
        assert expected in text, expected
    assert "COPY" not in text
    # The QR on the paper, read back by the kiosk's own decoder, is the signed pass.
    png = text_path.with_suffix(".png")
    reads = Decoder().read_image(load_image(str(png))).reads
    assert [r.text for r in reads] == [issued.exit_pass]
    verdict = verify(reads[0].text, load_public_keys(kiosk.settings.public_keys_path))
    assert verdict.valid and verdict.exit_pass.order_id == sale.order_id
    assert verdict.exit_pass.total_minor == sale.total.minor and verdict.exit_pass.exit_audit
    assert lane.outcomes == [JobOutcome(issued.job_id, sale.order_id, True, "printed")]


def test_paper_out_before_payment_is_reported_and_nothing_is_printed_until_refilled(
        kiosk, printer_sim, signer):
    printer_sim.set_state(paper_out=True)
    lane = Lane(kiosk, str(printer_sim.link))
    try:
        status = lane.printer.status()  # what the pay screen asks before showing a QR
        assert status.state is PrinterState.PAPER_OUT and not status.can_print
        assert "exit pass will be shown on the screen" in status.shopper_notice()[1]
        issued = issue_receipt(lane.jobs, paid_sale(), signer, kiosk.clock)
        lane.printer.wake()
        # The screen is told the receipt is waiting (so it shows the exit pass)...
        assert wait_for(lambda: lane.outcomes == [
            JobOutcome(issued.job_id, paid_sale().order_id, False, "pending", "paper_out")])
        job = lane.job(issued.job_id)
        assert job.status == "pending" and job.attempts == 0  # ...and not a byte was sent
        assert lane.printer.health().pending_jobs == 1
        printer_sim.set_state(paper_out=False)  # staff changed the roll
        assert wait_for(lambda: lane.job(issued.job_id).status == "printed")
    finally:
        lane.stop()
    (receipt,) = printer_sim.wait_for_receipts(1)
    assert "COPY" not in receipt.read_text(encoding="utf-8")  # nothing had printed before


def test_paper_running_out_mid_receipt_leaves_it_pending_then_prints_a_copy(
        kiosk, printer_sim, signer):
    printer_sim.set_state(paper_left=400)  # runs out part way through the receipt
    lane = Lane(kiosk, str(printer_sim.link))
    try:
        issued = issue_receipt(lane.jobs, paid_sale(), signer, kiosk.clock)
        lane.printer.wake()
        assert wait_for(lambda: lane.outcomes and lane.outcomes[0].status == "pending")
        job = lane.job(issued.job_id)
        assert job.status == "pending" and job.copy and "paper_out" in job.last_error
        assert lane.outcomes[0].printed is False  # the screen shows the exit pass
        printer_sim.set_state(paper_out=False)
        assert wait_for(lambda: lane.job(issued.job_id).status == "printed")
    finally:
        lane.stop()
    first, second = printer_sim.wait_for_receipts(2)
    assert first.name == "0001-incomplete.txt"
    assert "EXIT PASS" not in first.read_text(encoding="utf-8")
    copy = second.read_text(encoding="utf-8")
    assert "*** 副本 COPY ***" in copy and "EXIT PASS (副本 COPY)" in copy
    assert issued.exit_pass in copy


def test_a_cover_opened_mid_receipt_is_handled_like_paper_out(kiosk, printer_sim, signer):
    lane = Lane(kiosk, str(printer_sim.link))
    try:
        printer_sim.set_state(cover_open=True)
        assert lane.printer.status().state is PrinterState.COVER_OPEN
        issued = issue_receipt(lane.jobs, paid_sale(), signer, kiosk.clock)
        lane.printer.wake()
        assert wait_for(lambda: [o.detail for o in lane.outcomes] == ["cover_open"])
        assert lane.job(issued.job_id).status == "pending"
        printer_sim.set_state(cover_open=False)
        assert wait_for(lambda: lane.job(issued.job_id).status == "printed")
    finally:
        lane.stop()


def test_an_unplugged_printer_is_reopened_and_the_receipt_still_prints(kiosk, tmp_path,
                                                                        signer):
    link = tmp_path / "printer"
    out = tmp_path / "receipts"
    first = VirtualPrinter(out, link=link).start()
    lane = Lane(kiosk, str(link))
    try:
        assert wait_for(lambda: lane.printer.health().status.state is PrinterState.OK)
        first.unplug()
        assert wait_for(lambda: lane.printer.health().status.state
                        is PrinterState.DISCONNECTED)
        issued = issue_receipt(lane.jobs, paid_sale(), signer, kiosk.clock)
        lane.printer.wake()
        assert wait_for(lambda: [o.status for o in lane.outcomes] == ["pending"])
        assert lane.job(issued.job_id).status == "pending"
        with VirtualPrinter(out, link=link) as second:  # plugged back in
            assert wait_for(lambda: lane.job(issued.job_id).status == "printed")
            assert second.wait_for_receipts(1)
        assert lane.printer.health().reopen_count >= 1
    finally:
        lane.stop()


def test_a_silent_printer_is_unknown_and_its_receipt_is_unconfirmed_not_lost(
        kiosk, printer_sim, signer):
    printer_sim.set_state(silent=True)
    lane = Lane(kiosk, str(printer_sim.link), status_timeout=0.1)
    try:
        status = lane.printer.status()
        assert status.state is PrinterState.UNKNOWN and not status.can_print
        assert "not answering" in status.shopper_notice()[1]
        issued = issue_receipt(lane.jobs, paid_sale(), signer, kiosk.clock)
        # A printer that never answers status may still print; the worker will not
        # send a job on an unknown state, so the job waits for staff or an answer.
        lane.printer.wake()
        assert wait_for(lambda: [o.detail for o in lane.outcomes] == ["unknown"])
        assert lane.job(issued.job_id).status == "pending"
        printer_sim.set_state(silent=False)
        assert wait_for(lambda: lane.job(issued.job_id).status == "printed")
    finally:
        lane.stop()


def test_a_printer_that_goes_silent_after_printing_leaves_the_job_unconfirmed(
        kiosk, printer_sim, signer):
    lane = Lane(kiosk, str(printer_sim.link), status_timeout=0.1)
    try:
        lane.printer.stop()  # drive one job by hand to control the timing
        issued = issue_receipt(lane.jobs, paid_sale(), signer, kiosk.clock)
        worker = receipt_printer(lambda: SerialLink(str(printer_sim.link)),
                                 kiosk.settings.database_path, ReceiptStyle(), kiosk.clock,
                                 status_timeout=0.1)
        outcomes: list[JobOutcome] = []
        worker.on_outcome(outcomes.append)
        job = lane.jobs.get(issued.job_id)
        assert worker.status().can_print
        printer_sim.set_state(silent=True)  # answers nothing once the bytes are sent
        worker._print(lane.jobs, job)
        assert lane.job(issued.job_id).status == "unconfirmed"
        assert outcomes[0].printed is False and outcomes[0].status == "unconfirmed"
        worker.stop()
    finally:
        lane.stop()


def test_staff_reprint_prints_a_copy(kiosk, printer_sim, signer):
    lane = Lane(kiosk, str(printer_sim.link))
    try:
        sale = paid_sale()
        issue_receipt(lane.jobs, sale, signer, kiosk.clock)
        lane.printer.wake()
        assert printer_sim.wait_for_receipts(1)
        copy_id = reprint(lane.jobs, sale.order_id, kiosk.clock)
        lane.printer.wake()
        assert wait_for(lambda: lane.job(copy_id).status == "printed")
        _, copy = printer_sim.wait_for_receipts(2)
        assert "*** 副本 COPY ***" in copy.read_text(encoding="utf-8")
        with pytest.raises(KeyError):
            reprint(lane.jobs, "no-such-order", kiosk.clock)
    finally:
        lane.stop()


def test_names_the_printer_font_lacks_are_folded_on_the_way_to_a_gbk_printer(kiosk, printer_sim,
                                                                              signer):
    # Issue 17, part 2: the virtual printer has the GBK font of the printers stores buy.
    from tests.unit.test_printer_charset import hostile_report, hostile_sale

    lane = Lane(kiosk, str(printer_sim.link))
    try:
        sale = hostile_sale()
        issued = issue_receipt(lane.jobs, sale, signer, kiosk.clock)
        copy_id = reprint(lane.jobs, sale.order_id, kiosk.clock)
        report_id = lane.jobs.add_document("Z4", hostile_report("Z"), kiosk.clock.now())
        lane.printer.wake()
        for job_id in (issued.job_id, copy_id, report_id):
            assert wait_for(lambda job_id=job_id: lane.job(job_id).status == "printed")
        receipt, copy, report = printer_sim.wait_for_receipts(3)
    finally:
        lane.stop()
    assert printer_sim.undecodable == 0  # nothing printed as junk
    text = receipt.read_text(encoding="utf-8")
    assert "瑞士奶酪(R) 1/2公斤 ￥12.30 特价EUR" in text and "Kase(R) 1/2 kg" in text
    assert "副本 COPY" in copy.read_text(encoding="utf-8")
    assert "  payé(R) 1/2: 1  23.45" in report.read_text(encoding="utf-8")


def test_receipts_queued_before_a_restart_print_after_it(kiosk, printer_sim, signer):
    jobs = PrintJobs(kiosk.db)
    issued = issue_receipt(jobs, paid_sale(), signer, kiosk.clock)  # the kiosk then crashed
    lane = Lane(kiosk, str(printer_sim.link))  # ...and started again
    try:
        assert wait_for(lambda: lane.job(issued.job_id).status == "printed")
    finally:
        lane.stop()


def test_read_status_on_a_real_pty(printer_sim):
    link = SerialLink(printer_sim.port)
    link.open()
    try:
        assert read_status(link, 0.3).state is PrinterState.OK
        printer_sim.set_state(paper_near_end=True)
        status = read_status(link, 0.3)
        assert status.state is PrinterState.PAPER_NEAR_END and status.can_print
    finally:
        link.close()


def test_the_control_file_changes_the_printer_state(printer_sim):
    link = SerialLink(printer_sim.port)
    link.open()
    try:
        (printer_sim.out_dir / "control").write_text("paper-out\n")
        assert wait_for(lambda: read_status(link, 0.3).state is PrinterState.PAPER_OUT)
        (printer_sim.out_dir / "control").write_text("paper-ok\n")
        assert wait_for(lambda: read_status(link, 0.3).state is PrinterState.OK)
    finally:
        link.close()


def test_receipt_png_is_readable(kiosk, printer_sim, signer, tmp_path: Path):
    lane = Lane(kiosk, str(printer_sim.link))
    try:
        issue_receipt(lane.jobs, paid_sale(), signer, kiosk.clock)
        lane.printer.wake()
        (receipt,) = printer_sim.wait_for_receipts(1)
    finally:
        lane.stop()
    from PIL import Image

    image = Image.open(receipt.with_suffix(".png"))
    assert image.width == 576 and image.height > 600
    # Ink on the paper: text and the QR, not an empty image.
    dark = image.convert("L").histogram()[:128]
    dark = sum(dark)
    assert dark > 5000


class GarbageLink:
    """A printer port that streams bytes no ESC/POS reply starts with (a wrong baud rate, a
    broken cable, another device on the port): every read returns at once, full."""

    baudrate = 9600

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def open(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def ask(self, query: bytes, timeout: float, reply_bytes: int = 1) -> bytes:
        return b"\xaa" * reply_bytes

    def read(self, count: int, timeout: float) -> bytes:
        return b"\xaa" * count

    def close(self) -> None:
        pass


def test_a_printer_streaming_garbage_is_given_up_on_quickly(tmp_path):
    # Issue 16, fault 8: the wait for "printed" read garbage until the print timeout
    # (about 21 s) while holding the printer; Pay's status check waited behind it.
    import threading
    import time

    from devices.printer import EscPosPrinter

    printer = EscPosPrinter(GarbageLink, ReceiptStyle(), status_timeout=0.3, print_timeout=20.0)
    printer.open()
    started = time.monotonic()
    assert printer.wait_printed(7, 4000) is None  # unknown, not printed
    assert time.monotonic() - started < 3.0
    status = printer.status()
    assert status.state.value == "unknown"

    queue = PrintQueue(printer, tmp_path / "jobs.db", clock=None,  # type: ignore[arg-type]
                       port_name="garbage")
    hold = threading.Event()

    def busy() -> None:
        with queue._lock:
            hold.wait(10)
    t = threading.Thread(target=busy)
    t.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        said = queue.status(wait_s=0.5)
        assert time.monotonic() - started < 2.0  # bounded as a whole, not by the other talk
        assert said.state.value == "unknown" and "busy" in said.detail
    finally:
        hold.set()
        t.join()
