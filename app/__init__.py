"""The scan-and-go checkout kiosk: domain, services, storage, UI and their wiring."""
