"""``python -m app.cli``: the ``kiosk`` command without its console script."""

from app.cli import main

main()
