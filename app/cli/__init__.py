"""The ``kiosk`` command: run the kiosk, manage its catalogue and settings.

One module per command group, each a thin layer: parse the options, call a
service (through ``app.bootstrap``'s builders), print. Staff actions the staff
screen also takes (reprint, Z report, dead letters, staff changes) go through
``app.services.staff_actions``, so both leave the same audit rows. To add a
command: a module here with its ``click`` command or group, added below.

Exit codes: 0 success; 1 refused or failed (the message says why and what to
do); 2 bad usage (click's convention).
"""

from __future__ import annotations

from app.cli.audit import audit
from app.cli.catalog import catalog
from app.cli.config import config
from app.cli.db import db
from app.cli.decode import decode
from app.cli.doctor import doctor
from app.cli.exit_pass import exit_pass_group
from app.cli.hq import hq
from app.cli.install import install
from app.cli.outbox import outbox
from app.cli.pay import pay
from app.cli.printer import printer
from app.cli.promotions import promotions
from app.cli.report import report
from app.cli.restarts import restarts
from app.cli.root import Context, main
from app.cli.run import demo, run
from app.cli.scenario import scenario
from app.cli.sim import sim
from app.cli.staff import staff
from app.cli.sync import sync

for _command in (decode, demo, run, catalog, promotions, config, db, printer, exit_pass_group,
                 pay, outbox, staff, audit, report, scenario, sim, hq, restarts, install,
                 doctor, sync):
    main.add_command(_command)

__all__ = ["Context", "main"]
