"""Object-storage servers the file backend's tests start on free loopback ports: moto's S3
server (PyPI, in the dev group) and Azurite (npm; installed into ``.cache/azurite`` when
missing). One of each per test session, stopped at exit."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AZURITE_DIR = ROOT / ".cache" / "azurite"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every installation; not a secret)
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]

    def options(self) -> dict[str, str]:
        """seed 003's fsspec-style names, pointed at this server."""
        return {"key": "testing", "secret": "testing", "endpoint_url": self.endpoint}

    def create_bucket(self, name: str | None = None) -> str:
        bucket = name or f"omniq-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=10).read()
        return bucket


@dataclass
class AzureServer:
    endpoint: str
    proc: subprocess.Popen[bytes]

    def options(self) -> dict[str, str]:
        return {
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
            "endpoint_url": self.endpoint,
        }

    def create_container(self) -> str:
        # obstore cannot create a container: one signed REST call does
        name = f"omniq-{uuid.uuid4().hex[:12]}"
        _azure_create_container(self.endpoint, name)
        return name


_S3: S3Server | None = None
_AZURE: AzureServer | None = None


def shared_s3() -> S3Server:
    global _S3
    if _S3 is None or _S3.proc.poll() is not None:
        port = free_port()
        exe = Path(sys.executable).parent / "moto_server"
        proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(_stop, proc)
        _wait_port(port, proc, "moto_server")
        _S3 = S3Server(f"http://127.0.0.1:{port}", proc)
    return _S3


def azurite_binary() -> Path:
    """Azurite's blob server, installed from the npm registry on first use."""
    found = shutil.which("azurite-blob")
    if found:
        return Path(found)
    local = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
    if not local.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("Azurite needs npm (Node.js) to install: apt-get install npm")
        AZURITE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(AZURITE_DIR), "azurite@3"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
    return local


def shared_azurite() -> AzureServer:
    global _AZURE
    if _AZURE is None or _AZURE.proc.poll() is not None:
        port = free_port()
        folder = tempfile.mkdtemp(prefix="omniq-azurite-")
        proc = subprocess.Popen(
            [
                str(azurite_binary()),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--location",
                folder,
                "--silent",
                "--skipApiVersionCheck",
                "--loose",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        atexit.register(_stop, proc)
        atexit.register(shutil.rmtree, folder, True)
        _wait_port(port, proc, "azurite-blob")
        _AZURE = AzureServer(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", proc)
    return _AZURE


def _azure_create_container(endpoint: str, name: str) -> None:
    """PUT ?restype=container with a SharedKey signature (Azure's REST API)."""
    import base64
    import hashlib
    import hmac
    from email.utils import formatdate

    date = formatdate(usegmt=True)
    version = "2021-08-06"
    canonical_headers = f"x-ms-date:{date}\nx-ms-version:{version}\n"
    path = endpoint.split("://", 1)[1].split("/", 1)[1]  # devstoreaccount1
    canonical_resource = f"/{AZURITE_ACCOUNT}/{path}/{name}\nrestype:container"
    to_sign = "PUT\n\n\n\n\n\n\n\n\n\n\n\n" + canonical_headers + canonical_resource
    signature = base64.b64encode(
        hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    request = urllib.request.Request(
        f"{endpoint}/{name}?restype=container",
        method="PUT",
        headers={
            "x-ms-date": date,
            "x-ms-version": version,
            "Authorization": f"SharedKey {AZURITE_ACCOUNT}:{signature}",
            "Content-Length": "0",
        },
    )
    urllib.request.urlopen(request, timeout=10).read()
