"""What a receipt printer can say about itself: its state, and what to tell the shopper.

The printer's real-time status (DLE EOT) is read by ``devices.printer`` and
acted on by the print queue (``app.services.printing``); both speak these
types. A printer that does not answer is ``UNKNOWN``: never "fine".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PrinterState(StrEnum):
    OK = "ok"
    PAPER_NEAR_END = "paper_near_end"  # still prints; staff should change the roll
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # no (valid) reply to the status query
    DISCONNECTED = "disconnected"  # the port cannot be opened or has gone


@dataclass(frozen=True)
class PrinterStatus:
    state: PrinterState
    detail: str = ""

    @property
    def can_print(self) -> bool:
        return self.state in (PrinterState.OK, PrinterState.PAPER_NEAR_END)

    def shopper_notice(self) -> tuple[str, str] | None:
        """What to tell the shopper before they pay (zh, en), or None if all is well."""
        if self.can_print:
            return None
        if self.state is PrinterState.UNKNOWN:
            return ("打印机没有响应，可能无法打印小票。付款后出口凭证会显示在屏幕上。",
                    "The printer is not answering and may not print your receipt. After you "
                    "pay, your exit pass will be shown on the screen.")
        return ("打印机暂时无法打印小票。付款后出口凭证会显示在屏幕上，小票稍后可找店员补打。",
                "The printer cannot print a receipt right now. After you pay, your exit pass "
                "will be shown on the screen; staff can reprint the receipt later.")


class PrinterGone(Exception):
    """The printer's port cannot be opened, or vanished mid-conversation; the message
    says why (the operating system's words)."""


__all__ = ["PrinterGone", "PrinterState", "PrinterStatus"]
