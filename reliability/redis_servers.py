"""Redis topologies started with the machine's ``redis-server``: a 3-master Cluster and a
Sentinel set-up (a master, a replica, three sentinels), on free loopback ports. The reliability
scenario ``redis-ha``, the benchmarks and the tests (through tests/backends/redis_servers.py,
which turns a missing ``redis-server`` into a skip) all start theirs here.

Each runs in a temporary folder without persistence. The shared ones (:func:`shared_cluster`,
:func:`shared_sentinel`) start on first use and stop when the test process exits; a test that
breaks its topology (a failover) starts a private one with :func:`start_sentinel` and stops it
itself. Every server also dies with the test process (``PR_SET_PDEATHSIG``), so a killed test
run leaves nothing behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from redis.crc import key_slot

HOST = "127.0.0.1"
SENTINEL_MASTER = "omniq-test"
#: Ports are drawn from here up to the system's range of ephemeral ports (which any outgoing
#: connection may take between the check that a port is free and the server's bind: "Address
#: already in use" failed a run); a Cluster node's bus (port + 10000) stays below it too.
_MIN_PORT = 10_000


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


_PR_SET_PDEATHSIG = 1


def missing_redis_server() -> str | None:
    """Why no topology can be started here (``redis-server`` or ``redis-cli`` missing), or
    None."""
    if shutil.which("redis-server") and shutil.which("redis-cli"):
        return None
    return "redis-server and redis-cli are needed to start a Redis Cluster / Sentinel set-up"


def require_redis_server() -> None:
    """Raises RuntimeError, saying what is missing, when no topology can be started here."""
    problem = missing_redis_server()
    if problem is not None:
        raise RuntimeError(problem)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


_taken: set[int] = set()


def free_port(*, with_bus: bool = False) -> int:
    """A loopback port nothing listens on (and port + 10000 too, for a cluster node's bus)."""
    top = _ephemeral_low() - (10_000 if with_bus else 0)
    for _ in range(1000):
        port = random.randrange(_MIN_PORT, top)
        wanted = [port, port + 10_000] if with_bus else [port]
        if any(p in _taken for p in wanted) or not all(map(_port_is_free, wanted)):
            continue
        _taken.update(wanted)
        return port
    raise RuntimeError("no free loopback port found")


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM when the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _cli(port: int, *args: str, password: str | None = None, timeout: float = 10.0) -> str:
    auth = ["-a", password, "--no-auth-warning"] if password else []
    done = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(port), *auth, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout.strip()


def _replicating(port: int, replicas: int, key: str, password: str | None = None) -> bool:
    """Whether ``replicas`` replicas of the master at ``port`` have a write made now (a SET of
    ``key``, then WAIT on the same connection). A replica reports its link up, and its master
    reports it ``state=online``, as soon as it has loaded the first copy; but the master
    buffers the writes until the replica's first acknowledgement, up to a second later. A
    master killed in between took every write since with it (a run lost all 600 tasks of a
    scenario that broke the master 0.6 s after the start), so a topology is ready only once
    a write reaches every replica."""
    auth = ["-a", password, "--no-auth-warning"] if password else []
    done = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(port), *auth],
        input=f"SET {key} 1\nWAIT {replicas} 200\n",
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    lines = done.stdout.split()
    return len(lines) == 2 and lines[0] == "OK" and lines[1].isdigit() and int(lines[1]) >= replicas


def _key_of(port: int) -> str:
    """A key whose slot the Cluster master at ``port`` serves."""
    myself = next(line for line in _cli(port, "cluster", "nodes").splitlines() if "myself" in line)
    slot = int(myself.split()[8].partition("-")[0])
    return next(f"ready-{n}" for n in itertools.count() if key_slot(f"ready-{n}".encode()) == slot)


def _wait_until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert callable(check)
        if check():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Servers:
    """A group of redis-server processes in one temporary folder."""

    folder: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="omniq-redis-"))
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: the ports of the servers paused (SIGSTOP) now
    paused: set[int] = field(default_factory=set)

    def running(self) -> list[int]:
        """The ports of the servers that run and answer (started, neither killed nor paused)."""
        return [port for port in self.processes if port not in self.paused]

    def start(
        self, port: int, *args: str, config: str | None = None, password: str | None = None
    ) -> None:
        """``redis-server [config] --port P ...``; returns once it answers PING."""
        command = ["redis-server"]
        if config is not None:
            path = os.path.join(self.folder, f"{port}.conf")
            with open(path, "w", encoding="utf-8") as out:
                out.write(config)
            command.append(path)
        command += ["--port", str(port), "--bind", HOST, "--dir", self.folder]
        command += ["--save", "", "--appendonly", "no", "--logfile", f"{port}.log", *args]
        self.processes[port] = subprocess.Popen(
            command,
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        process = self.processes[port]

        def answers() -> bool:
            if process.poll() is not None:
                said = ""
                log = os.path.join(self.folder, f"{port}.log")
                with contextlib.suppress(OSError), open(log, encoding="utf-8") as lines:
                    said = lines.read()[-300:].strip()
                raise RuntimeError(f"redis-server on port {port} exited: {said}")
            return _cli(port, "ping", password=password) == "PONG"

        _wait_until(answers, f"redis-server on port {port}")

    def kill(self, port: int) -> None:
        """SIGKILL: the server vanishes without a word, as a crashed host would."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(10)

    def pause(self, port: int) -> None:
        """SIGSTOP: the server hangs with its connections open, answering nothing (a stalled
        host, a stop-the-world pause); :meth:`resume` lets it go on."""
        self.processes[port].send_signal(signal.SIGSTOP)
        self.paused.add(port)

    def resume(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGCONT)
        self.paused.discard(port)

    def keep(self, folder: str) -> str:
        """Copies the servers' logs and configs into a new folder under ``folder``, with
        ``state.txt``: each running server's key count and replication state (what a failed
        failover run needs to be understood). Returns the new folder."""
        lines = []
        for port in self.processes:
            if port in self.paused:
                lines.append(f"{port} paused")
                continue
            replication = _cli(port, "info", "replication", timeout=5).splitlines()
            wanted = ("role", "master_port", "master_link_status", "slave")
            state = " ".join(line for line in replication if line.startswith(wanted))
            lines.append(f"{port} keys={_cli(port, 'dbsize', timeout=5)} {state}")
        dest = tempfile.mkdtemp(prefix="redis-", dir=folder)
        shutil.copytree(self.folder, dest, dirs_exist_ok=True)
        with open(os.path.join(dest, "state.txt"), "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        return dest

    def stop(self) -> None:
        """Stops every server and removes the folder (kept first under
        ``$OMNIQ_KEEP_REDIS_LOGS`` when that is set, see :meth:`keep`)."""
        if os.environ.get("OMNIQ_KEEP_REDIS_LOGS"):
            self.keep(os.environ["OMNIQ_KEEP_REDIS_LOGS"])
        for process in self.processes.values():
            process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes.clear()
        self.paused.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Cluster:
    servers: Servers
    ports: list[int]

    @property
    def nodes(self) -> list[str]:
        return [f"{HOST}:{p}" for p in self.ports]

    def roles(self) -> dict[int, tuple[str, int | None]]:
        """port -> ("master", None) or ("slave", its master's port), for the running nodes,
        as each node sees itself."""
        seen: dict[int, tuple[str, int | None]] = {}
        for port in self.servers.running():
            with contextlib.suppress(subprocess.TimeoutExpired):
                for line in _cli(port, "cluster", "nodes", timeout=2).splitlines():
                    fields = line.split()
                    if len(fields) > 3 and "myself" in fields[2]:
                        if "master" in fields[2]:
                            seen[port] = ("master", None)
                        else:
                            seen[port] = ("slave", self._port_of(port, fields[3]))
        return seen

    def _port_of(self, asking: int, node_id: str) -> int | None:
        for line in _cli(asking, "cluster", "nodes", timeout=2).splitlines():
            fields = line.split()
            if fields and fields[0] == node_id:
                return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        return None

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot now."""
        running = self.servers.running()
        slot = int(_cli(running[0], "cluster", "keyslot", key))
        for port in running:
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                for line in _cli(port, "cluster", "nodes", timeout=2).splitlines():
                    fields = line.split()
                    if len(fields) < 9 or "master" not in fields[2] or "fail" in fields[2]:
                        continue
                    for part in fields[8:]:
                        low, _, high = part.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no master serves the slot of {key!r}")

    def replica_of(self, master: int) -> int:
        return self.replicas_of(master)[0]

    def replicas_of(self, master: int) -> list[int]:
        """The ports of ``master``'s replicas (at least one)."""
        found = [
            port for port, (role, of) in self.roles().items() if role == "slave" and of == master
        ]
        if not found:
            raise RuntimeError(f"no replica of the master on port {master}")
        return found


def start_cluster(masters: int = 3, replicas: int = 0) -> Cluster:
    """``masters`` cluster-enabled servers joined by ``redis-cli --cluster create``, each with
    ``replicas`` replicas that take over within a few seconds of their master's failure
    (cluster-node-timeout 2 s); returns once every node reports ``cluster_state:ok`` (and every
    replica is in sync)."""
    require_redis_server()
    servers = Servers()
    ports = [free_port(with_bus=True) for _ in range(masters * (1 + replicas))]
    try:
        for port in ports:
            servers.start(
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                "2000",
                # a replica may always take over, however long it was cut off
                *("--cluster-replica-validity-factor", "0"),
                *("--repl-diskless-sync-delay", "0"),
            )
        created = subprocess.run(
            [
                *("redis-cli", "--cluster", "create"),
                *(f"{HOST}:{p}" for p in ports),
                *("--cluster-replicas", str(replicas), "--cluster-yes"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed: {created.stdout}{created.stderr}"
            )
        _wait_until(
            lambda: all("cluster_state:ok" in _cli(p, "cluster", "info") for p in ports),
            "the cluster to be ready",
        )
        if replicas:
            heads = [p for p in ports if "role:master" in _cli(p, "info", "replication")]
            keys = {p: _key_of(p) for p in heads}
            _wait_until(
                lambda: all(_replicating(p, replicas, keys[p]) for p in heads),
                "the replicas to sync",
            )
    except BaseException:
        servers.stop()
        raise
    return Cluster(servers, ports)


@dataclass
class SentinelSetup:
    servers: Servers
    master_port: int
    replica_port: int
    sentinel_ports: list[int]
    master_name: str = SENTINEL_MASTER
    #: the master's and replica's password, and the sentinels' own (None: none)
    password: str | None = None
    sentinel_password: str | None = None

    @property
    def sentinels(self) -> list[str]:
        return [f"{HOST}:{p}" for p in self.sentinel_ports]

    def fail_over(self) -> None:
        """``SENTINEL FAILOVER``: the replica is promoted and the old master demoted while both
        keep running (a planned switch, or what a network split does to clients)."""
        reply = _cli(
            self.sentinel_ports[0],
            *("sentinel", "failover", self.master_name),
            password=self.sentinel_password,
        )
        if reply != "OK":
            raise RuntimeError(f"SENTINEL FAILOVER answered {reply!r}")

    def current_master_port(self) -> int | None:
        """The master's port as the first sentinel that answers sees it."""
        for port in self.sentinel_ports:
            with contextlib.suppress(subprocess.TimeoutExpired):
                reply = _cli(
                    port,
                    *("sentinel", "get-master-addr-by-name", self.master_name),
                    password=self.sentinel_password,
                )
                lines = reply.split()
                if len(lines) == 2:
                    return int(lines[1])
        return None


def start_sentinel(
    sentinels: int = 3,
    *,
    ready_to_fail_over: bool = False,
    password: str | None = None,
    sentinel_password: str | None = None,
    replicas: int = 1,
) -> SentinelSetup:
    """A master, ``replicas`` replicas of it (``replica_port`` is the first) and ``sentinels``
    sentinels (quorum: a majority) that fail over after one second without an answer. Returns
    once the replicas are in sync and every sentinel answers for the master; with
    ``ready_to_fail_over``, only once they also know the replicas and each other (that takes a
    few seconds of their hellos), so that a failover can be voted at once. ``password``
    protects the master and the replicas, ``sentinel_password`` the sentinels."""
    require_redis_server()
    servers = Servers()
    master = free_port()
    replica_ports = [free_port() for _ in range(replicas)]
    sentinel_ports = [free_port() for _ in range(sentinels)]
    quorum = sentinels // 2 + 1
    try:
        # no wait before a full sync (Redis waits 5 s for more replicas to share it by default)
        data = ["--repl-diskless-sync-delay", "0"]
        if password:
            data += ["--requirepass", password, "--masterauth", password]
        servers.start(master, *data, password=password)
        for replica in replica_ports:
            servers.start(replica, *data, "--replicaof", HOST, str(master), password=password)
        _wait_until(
            lambda: _replicating(master, replicas, "omniq:ready", password), "the replicas to sync"
        )
        auth = f"sentinel auth-pass {SENTINEL_MASTER} {password}\n" if password else ""
        if sentinel_password:
            auth += f"requirepass {sentinel_password}\nsentinel sentinel-pass {sentinel_password}\n"
        for port in sentinel_ports:
            servers.start(
                port,
                "--sentinel",
                config=(
                    f"sentinel monitor {SENTINEL_MASTER} {HOST} {master} {quorum}\n"
                    f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
                    f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
                    f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n{auth}"
                ),
                password=sentinel_password,
            )

        def known(port: int) -> bool:
            info = _cli(port, "info", "sentinel", password=sentinel_password)
            if ready_to_fail_over:
                return f"slaves={replicas},sentinels={sentinels}" in info
            return "status=ok" in info

        _wait_until(lambda: all(known(p) for p in sentinel_ports), "the sentinels to agree")
    except BaseException:
        servers.stop()
        raise
    return SentinelSetup(
        servers,
        master,
        replica_ports[0],
        sentinel_ports,
        password=password,
        sentinel_password=sentinel_password,
    )


_lock = threading.Lock()
_cluster: Cluster | None = None
_sentinel: SentinelSetup | None = None


def shared_cluster() -> Cluster:
    """The cluster of this test process, started on first use."""
    global _cluster
    with _lock:
        if _cluster is None:
            _cluster = start_cluster()
            atexit.register(_cluster.servers.stop)
        return _cluster


def shared_sentinel() -> SentinelSetup:
    """The Sentinel set-up of this test process, started on first use. Never fail it over:
    tests that do start their own."""
    global _sentinel
    with _lock:
        if _sentinel is None:
            _sentinel = start_sentinel()
            atexit.register(_sentinel.servers.stop)
        return _sentinel


__all__ = [
    "HOST",
    "SENTINEL_MASTER",
    "Cluster",
    "SentinelSetup",
    "Servers",
    "free_port",
    "missing_redis_server",
    "require_redis_server",
    "shared_cluster",
    "shared_sentinel",
    "start_cluster",
    "start_sentinel",
]
