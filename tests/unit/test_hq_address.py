"""Reading a ``--store nats://...`` address: what the docs show, and the same pasted with
spaces after the commas (it named a server " nats://..." that could never connect)."""

from __future__ import annotations

from hq.store_address import nats_servers


def test_a_nats_address_lists_every_server():
    assert nats_servers("nats://127.0.0.1:4222,127.0.0.1:4223,nats://h:4224") == [
        "nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://h:4224"]


def test_spaces_around_the_commas_are_not_part_of_a_server():
    assert nats_servers("nats://a:1, nats://b:2 ,c:3,") == [
        "nats://a:1", "nats://b:2", "nats://c:3"]
