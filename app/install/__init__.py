"""Installing the kiosk on a store PC (``kiosk install``): the plan, as data, and its executor.

``plan.py`` builds the list of steps (write a file, make a directory, run a command,
migrate the database, ...) from the options and what is already installed, with no
I/O; ``execute.py`` reads what is installed and runs a plan, or prints it
(``--dry-run``). The dry run and the real run are the same plan. ``files.py`` holds
the texts the plan writes: systemd units, udev rules, the X server's configuration.
"""
