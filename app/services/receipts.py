"""Issuing a paid sale's receipt: sign its exit pass and queue it for the printer.

The job is queued in the kiosk database, so a receipt survives a crash, a
dead printer or a restart; the printer thread prints it when it can. The
exit pass is returned too, for the screen: it is shown there whenever the
receipt did not print (or may not have).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.clock import Clock
from app.domain.exit_pass import ExitPass
from app.domain.sale import PaidSale
from app.services.exit_pass import PassSigner
from app.storage.print_jobs import PrintJobs


@dataclass(frozen=True)
class IssuedReceipt:
    exit_pass: str  # the signed pass, as its QR holds it
    job_id: int


def exit_pass_for(sale: PaidSale) -> ExitPass:
    return ExitPass(
        lane_id=sale.lane_id,
        order_id=sale.order_id,
        total_minor=sale.total.minor,
        currency=sale.currency,
        item_count=sale.item_count,
        issued_at=int(sale.paid_at.timestamp()),
        exit_audit=sale.exit_audit,
    )


def issue_receipt(jobs: PrintJobs, sale: PaidSale, signer: PassSigner,
                  clock: Clock) -> IssuedReceipt:
    exit_pass = signer.sign(exit_pass_for(sale))
    return IssuedReceipt(exit_pass, jobs.add(sale, exit_pass, clock.now()))


def reprint(jobs: PrintJobs, order_id: str, clock: Clock) -> int:
    """Staff asked for another copy of a sale's receipt (raises KeyError if there is none)."""
    return jobs.reprint(order_id, clock.now())


# What the shopper is told before paying at a lane without a receipt printer (zh, en).
NO_PRINTER_NOTICE = ("本机没有收据打印机：收据和出口凭证将显示在屏幕上",
                     "This lane has no receipt printer: your receipt and exit pass will be "
                     "shown on screen")
