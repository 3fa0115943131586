"""Everything that talks to hardware or outside services, each with a simulated twin.

Camera, decoder, scanners, printer, payment adapters and the membership client
arrive with their issues; the simulators live in ``devices.sim``.
"""
