"""Payment QR adapters, registered as entry points in the ``kiosk.payment`` group."""
