"""Real etcd servers on 127.0.0.1 and free ports: one member, or a three-member cluster whose
members the tests stop, kill, pause (SIGSTOP) and bring back.

Each cluster gets fresh data directories under a tmp dir, short Raft timings (heartbeat 50 ms,
election 500 ms) so that elections and lease expiry take well under a second or two, and a
log file per member (``member.log()`` shows its tail). Only the processes started here are
signalled, by their pid, and every one is waited for.

In CI a missing ``etcd`` fails the test run; elsewhere the tests skip and say what to install
(Debian's etcd-server, 3.4, gives ``/usr/bin/etcd``).

Fixtures (a test module says ``pytest_plugins = ["tests.support.etcd"]``):

* ``etcd_server``: one member, per module.
* ``etcd_cluster``: three members, started once per module (``etcd_cluster_shared``) and
  healed before each test (paused members resumed, stopped ones restarted, all healthy).
* ``etcd_factory``: ``etcd_factory(size=1, tls=False, extra_args=())`` starts a cluster of
  one's own (auth, TLS, odd flags), stopped when the test ends.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from failover.store.etcd_client import EtcdClient
from tests.support.bind import free_port

HOST = "127.0.0.1"
INSTALL = "apt-get install -y etcd-server"


def etcd_binary() -> str | None:
    return shutil.which("etcd") or next(
        (p for p in ("/usr/bin/etcd", "/usr/local/bin/etcd") if os.access(p, os.X_OK)), None
    )


def require_etcd() -> str:
    binary = etcd_binary()
    if binary is None:
        message = f"etcd is not installed: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    return binary


@dataclass
class TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    binary: str
    extra_args: list[str] = field(default_factory=list)
    tls: TlsFiles | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    paused: bool = False
    wanted: bool = False  # started by us and not stopped since: if it is not running, it crashed

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, initial_cluster: str, token: str) -> None:
        assert not self.running, f"{self.name} is already running"
        args = [
            self.binary, "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster, "--initial-cluster-token", token,
            "--initial-cluster-state", "new",  # ignored once the data dir exists (a restart)
            "--heartbeat-interval", "50", "--election-timeout", "500",
            "--logger", "zap", "--log-outputs", "stderr", *self.extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with (self.data_dir.parent / f"{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.paused, self.wanted = False, True

    def _signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            os.kill(self.process.pid, signum)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets open but answers nothing (a hung member)."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (after SIGCONT if paused), wait; SIGKILL if it does not exit in time."""
        self.wanted = False
        if self.paused:
            self.resume()
        if self.running:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL, the way a machine dies."""
        self.wanted = False
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=10)
        self.paused = False

    def healthy(self, timeout: float = 0.5) -> bool:
        """``GET /health`` says true: the member has a leader and a quorum serves reads."""
        try:
            response = self.http("GET", "/health", timeout)
            return response.status_code == 200 and response.json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False

    def http(self, method: str, path: str, timeout: float = 2.0, **kwargs: Any) -> httpx.Response:
        """One plain request to this member (with the client certificate under TLS)."""
        verify: Any = True
        if self.tls is not None:
            verify = ssl.create_default_context(cafile=str(self.tls.ca_file))
            verify.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        with httpx.Client(verify=verify, trust_env=False, timeout=timeout) as client:
            return client.request(method, self.endpoint + path, **kwargs)

    def log(self, limit: int = 3000) -> str:
        path = self.data_dir.parent / f"{self.name}.log"
        return path.read_text(errors="replace")[-limit:] if path.exists() else ""


@dataclass
class EtcdCluster:
    members: list[EtcdMember]
    token: str
    tls: TlsFiles | None = None

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def client(self, **kwargs: Any) -> EtcdClient:
        if self.tls is not None:
            kwargs.setdefault("ca_file", str(self.tls.ca_file))
            kwargs.setdefault("cert_file", str(self.tls.client_cert))
            kwargs.setdefault("key_file", str(self.tls.client_key))
        return EtcdClient(self.endpoints, **kwargs)

    def restart(self, member: EtcdMember) -> None:
        """Start a stopped or killed member again on its own data directory."""
        member.start(self.initial_cluster, self.token)

    def wait_healthy(self, deadline: float = 30.0) -> None:
        """Wait until every running, unpaused member reports healthy; fail with their logs."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if any(m.wanted and not m.running for m in self.members):
                break  # one exited on its own: waiting will not help
            live = [m for m in self.members if m.running and not m.paused]
            if live and all(m.healthy() for m in live):
                return
            time.sleep(0.05)
        logs = "\n".join(f"--- {m.name} (pid {m.process.pid if m.process else '-'}):\n{m.log()}" for m in self.members)
        raise RuntimeError(f"etcd did not become healthy within {deadline}s:\n{logs}")

    def heal(self, deadline: float = 30.0) -> None:
        """Resume paused members, restart stopped ones, and wait until all are healthy."""
        for member in self.members:
            if member.paused:
                member.resume()
            if not member.running:
                self.restart(member)
        self.wait_healthy(deadline)

    def leader(self) -> EtcdMember:
        """The member that is Raft leader now (asked of the reachable members)."""
        for member in self.members:
            if not member.running or member.paused:
                continue
            try:
                status = member.http("POST", "/v3/maintenance/status", 0.5, json={}).json()
            except (httpx.HTTPError, ValueError):
                continue
            if status.get("leader") and status["leader"] == status.get("header", {}).get("member_id"):
                return member
        raise RuntimeError("no member says it is the leader")

    def close(self) -> None:
        for member in self.members:
            member.stop()


def start_etcd(workdir: Path, size: int = 1, deadline: float = 30.0, tls: bool = False,
               extra_args: tuple[str, ...] = ()) -> EtcdCluster:
    """``size`` members on loopback, healthy; with ``tls``, clients must use https and
    present a certificate signed by ``cluster.tls.ca_file``."""
    binary = require_etcd()
    workdir.mkdir(parents=True, exist_ok=True)
    files = make_tls_files(workdir / "tls") if tls else None
    args = list(extra_args)
    if files is not None:
        args += ["--cert-file", str(files.server_cert), "--key-file", str(files.server_key),
                 "--trusted-ca-file", str(files.ca_file), "--client-cert-auth"]
    members = [EtcdMember(f"m{i}", free_port(), free_port(), workdir / f"m{i}.etcd", binary, args, files)
               for i in range(size)]
    cluster = EtcdCluster(members, f"failover-test-{os.getpid()}-{free_port()}", files)
    for member in members:
        member.start(cluster.initial_cluster, cluster.token)
    try:
        cluster.wait_healthy(deadline)
    except BaseException:
        cluster.close()
        raise
    return cluster


def make_tls_files(directory: Path) -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def issue(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
              ca: bool, usages: tuple[Any, ...] = ()) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]),
                critical=False)
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False), critical=True)
        return builder.sign(signer, hashes.SHA256())

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "failover test CA")])
    ca_cert = issue("failover test CA", ca_key, ca_name, ca_key, ca=True)
    ca_file, _ = write("ca", ca_cert, ca_key)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    # etcd 3.4's JSON gateway dials its own gRPC server with the server certificate, so under
    # --client-cert-auth that certificate must be good for client auth too.
    both = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    server = write("server", issue("etcd", server_key, ca_name, ca_key, False, both), server_key)
    client = write("client", issue("failover", client_key, ca_name, ca_key, False, (ExtendedKeyUsageOID.CLIENT_AUTH,)),
                   client_key)
    return TlsFiles(ca_file, server[0], server[1], client[0], client[1])


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = start_etcd(tmp_path_factory.mktemp("etcd"), size=1)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def etcd_cluster_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = start_etcd(tmp_path_factory.mktemp("etcd3"), size=3)
    yield cluster
    cluster.close()


@pytest.fixture
def etcd_cluster(etcd_cluster_shared: EtcdCluster) -> EtcdCluster:
    etcd_cluster_shared.heal()
    return etcd_cluster_shared


@pytest.fixture
def etcd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., EtcdCluster]]:
    started: list[EtcdCluster] = []

    def start(size: int = 1, tls: bool = False, extra_args: tuple[str, ...] = ()) -> EtcdCluster:
        cluster = start_etcd(tmp_path_factory.mktemp("etcd"), size, tls=tls, extra_args=extra_args)
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.close()
