"""Everything that talks to hardware or outside services, each with a simulated twin.

Camera, decoder, scanners, printer, payment adapters and the membership client
arrive with their issues; the simulators live in ``devices.sim``.
"""

from devices import escpos_setup as _escpos_setup  # noqa: E402,F401 - before any escpos import
