"""devices.systemd against real Unix datagram sockets standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import threading
import uuid

import pytest

from app.lane.worker import LaneWorker
from devices.systemd import Notifier, Watchdog, socket_address, watchdog_interval_s


def listener(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_messages_reach_a_socket_named_by_path(tmp_path):
    path = tmp_path / "notify"
    sock = listener(str(path))
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000"}
    n = Notifier(env)
    assert n.ready("selling: lane 1")
    assert sock.recv(4096) == b"READY=1\nSTATUS=selling: lane 1"
    assert n.status("two\nlines")  # a newline would start a field of its own
    assert sock.recv(4096) == b"STATUS=two lines"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
    assert env == {}  # unset, so a child process never speaks for the kiosk
    n.close()
    sock.close()


def test_an_abstract_namespace_socket_is_reached_by_its_at_name():
    name = f"@kiosk-test-{uuid.uuid4().hex}"
    sock = listener(socket_address(name))
    assert socket_address(name) == b"\0" + name[1:].encode()
    n = Notifier({"NOTIFY_SOCKET": name})
    assert n.ready()
    assert sock.recv(4096) == b"READY=1"
    sock.close()


def test_without_notify_socket_nothing_is_sent_and_a_gone_socket_is_not_fatal(tmp_path):
    assert not Notifier({}).enabled
    assert Notifier({}).ready() is False
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert n.ready() is False  # logged once; the kiosk goes on
    with pytest.raises(ValueError):
        socket_address("relative/path")


def test_the_watchdog_interval_is_for_this_process_only():
    pid = os.getpid()
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}, pid) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)},
                               pid) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid + 1)},
                               pid) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}, pid) is None
    assert watchdog_interval_s({}, pid) is None


def test_pings_at_half_the_interval_only_while_every_source_beats(tmp_path):
    path = tmp_path / "notify"
    sock = listener(str(path))
    sock.settimeout(0.05)
    now = [100.0]
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
    dog = Watchdog(n, ("lane", "screen"), monotonic=lambda: now[0])
    assert dog.every_s == 1.0

    def pings() -> int:
        count = 0
        while True:
            try:
                assert sock.recv(64) == b"WATCHDOG=1"
            except TimeoutError:
                return count
            count += 1

    dog.beat("lane")
    assert pings() == 1  # due at once
    now[0] += 0.5
    dog.beat("lane")
    dog.beat("screen")
    assert pings() == 0  # not yet half the interval
    now[0] += 0.6
    dog.beat("screen")
    assert pings() == 1
    # The lane stops beating (hung): the screen's beats no longer ping.
    for _ in range(5):
        now[0] += 0.6
        dog.beat("screen")
    assert pings() == 0
    dog.beat("lane")  # it came back
    assert pings() == 1
    with pytest.raises(KeyError):
        dog.beat("printer")
    sock.close()


def test_the_lane_worker_beats_on_every_pass_of_its_loop(demo_kiosk):
    from app import bootstrap

    beats = threading.Semaphore(0)
    worker = LaneWorker(lambda: bootstrap.build_lane(bootstrap.build(demo_kiosk.settings)),
                        lambda _view: None, tick_s=0.01, beat=beats.release)
    worker.start()
    try:
        for _ in range(5):  # the lane's ticks alone keep it beating
            assert beats.acquire(timeout=10)
    finally:
        worker.stop()
