"""One lane: the shopper's flow as a headless state machine, put together from its parts.

The screens (attract, member, shopping, age check, pay, receipt, "still
there?", lane closed, out of order, error, staff) are states of this object,
not of Kivy: the touch UI renders the ``LaneView`` it publishes and forwards
touches; the headless scenario runner drives the very same methods. Every
change goes through the shopping session (cart and event in one transaction)
and the payment desk (state persisted before every provider call), so a kiosk
killed at any point comes back, through ``boot``, to the same cart and payment.

Where each part lives: ``core`` (state, publishing the view), ``flow`` (screen
to screen), ``scanning`` (what a scan does, cart changes), ``paying``,
``timers`` (one handler per screen), ``staff_side`` (what staff mode may do),
``produce`` (the "Find produce" picture grid, which adds through ``scanning``).
"""

from __future__ import annotations

from app.lane.flow import ScreenFlow
from app.lane.paying import Paying
from app.lane.produce import ProducePicking
from app.lane.scanning import Scanning
from app.lane.staff_side import StaffSide
from app.lane.timers import Timers
from app.services.staff_port import LaneControl


class Lane(StaffSide, Timers, Paying, ProducePicking, Scanning, ScreenFlow):
    """A lane: construct with ``LaneParts``, then ``boot()``; one thread owns it."""


def as_lane_control(lane: Lane) -> LaneControl:
    """The lane as staff mode sees it (also how mypy checks that ``Lane`` keeps the port)."""
    return lane


__all__ = ["Lane", "as_lane_control"]
