"""The store's rules in pure Python: money, barcodes, catalogue, cart and pricing.

Nothing here does I/O, starts threads or reads the clock; callers pass time in.
It imports only the standard library, biip (GS1 parsing) and itself.
"""
