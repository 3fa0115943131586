"""Use cases over the domain: catalogue import and lookup, and (later) checkout, staff, outbox."""
