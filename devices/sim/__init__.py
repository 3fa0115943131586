"""Simulated devices and servers that ship with the product (virtual printer, payment, backend)."""
