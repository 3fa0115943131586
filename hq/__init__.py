"""The head office: the service every lane of a chain talks to.

It serves the lanes' HTTP contract (docs/membership-api.yaml: event batches, member
look-ups, the member-code key, audit heads) over a pluggable store
(:mod:`hq.stores`, :mod:`hq.store_address`): an embedded SQLite file by default (the
demo and a single store),
NATS JetStream for a chain. It imports the kiosk's event types and contracts from
``app.domain``, never its UI, lane, storage or devices, so it deploys on its own.
"""
