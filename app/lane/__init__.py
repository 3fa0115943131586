"""The lane: the shopper's flow, screen by screen, headless (``Lane``), and the thread that
runs it under the touch screen (``LaneWorker``). Kivy-free: ``app.ui`` renders its views."""

from app.lane.lane import Lane
from app.lane.parts import LaneParts, LaneTimings
from app.lane.views import LaneView, Notice, PaymentView, ReceiptView, Screen
from app.lane.worker import InlineLane, LaneWorker

__all__ = ["Lane", "LaneParts", "LaneTimings", "LaneView", "LaneWorker", "InlineLane", "Notice",
           "PaymentView", "ReceiptView", "Screen"]
