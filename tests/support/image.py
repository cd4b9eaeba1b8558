"""The container image built from the repository's own Dockerfile with buildah, and commands run
in it, as its non-root user, with ``buildah run --isolation chroot`` (no Docker engine here, and
``podman run`` is refused by the sandbox).

No registry is reachable, so the Dockerfile's base, ``debian:bookworm-slim``, is made here the
way Debian's official image is: ``debootstrap --variant=minbase bookworm`` and the same slimming
(dpkg excludes docs, man pages and translations; apt keeps no downloaded packages), imported
under that name. Everything lives in a buildah storage of its own, never the machine's.

The debootstrapped root filesystem is cached for the day under ``~/.cache/failover-tests`` (it
takes minutes); in CI it is made fresh, once per run. The wheels are built on the host with
``pip wheel`` and copied in, as the Dockerfile says (PyPI is not reachable from a build here).

In CI a missing buildah or debootstrap fails the test run; elsewhere the tests skip and say what
to install.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BASE_NAME = "docker.io/library/debian:bookworm-slim"  # what `FROM debian:bookworm-slim` resolves to
IMAGE_NAME = "localhost/failover:test"
BUILD_STAGE_NAME = "localhost/failover-build:test"
MIRROR = "http://deb.debian.org/debian"
INSTALL = "apt-get install -y buildah debootstrap"
BASE_LABEL = "org.failover.test.rootfs"
UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}

# Debian's official slim images (debuerreotype): what dpkg leaves out, what apt keeps.
DPKG_SLIM = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
"""
_APT_RM = "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"
APT_CLEAN = f"""\
DPkg::Post-Invoke {{ "{_APT_RM}"; }};
APT::Update::Post-Invoke {{ "{_APT_RM}"; }};
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""
# The official image's sources: the point releases, the stable updates and the security archive.
DEBIAN_SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
APT_CONFIG = {
    "etc/apt/sources.list.d/debian.sources": DEBIAN_SOURCES,
    "etc/apt/apt.conf.d/docker-clean": APT_CLEAN,
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "etc/apt/apt.conf.d/docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": "force-unsafe-io\n",
    "etc/dpkg/dpkg.cfg.d/docker": DPKG_SLIM,
}
# What the slim image does not carry (the excludes above apply to packages installed later).
SLIMMED = ("usr/share/groff", "usr/share/info", "usr/share/linda", "usr/share/lintian/overrides",
           "usr/share/locale", "usr/share/man")


def require_tools() -> tuple[str, str]:
    """buildah and debootstrap, as root (debootstrap and a chroot build need it)."""
    buildah = shutil.which("buildah")
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if os.access("/usr/sbin/debootstrap", os.X_OK)
                                                  else None)
    problem = None
    if buildah is None or debootstrap is None:
        problem = f"buildah and debootstrap are needed to build the image: {INSTALL}"
    elif os.geteuid() != 0:
        problem = "building the image with debootstrap and buildah --isolation chroot needs root"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem + " (required in CI)")
        pytest.skip(problem)
    assert buildah is not None and debootstrap is not None
    return buildah, debootstrap


def cache_dir() -> Path:
    if os.environ.get("CI"):  # a fresh base on every CI run
        return Path(tempfile.mkdtemp(prefix="failover-image-"))
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "failover-tests" / "image"


def run(cmd: Sequence[str], timeout: float, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


@dataclass
class Buildah:
    """buildah on a storage of its own under ``cache``."""

    binary: str
    cache: Path

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.cache / "storage"), "--runroot", str(self.cache / "run"), *args]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run(self.cmd(*args), timeout)

    def image(self, name: str) -> dict[str, Any] | None:
        images: list[dict[str, Any]] = json.loads(self("images", "--json").stdout or "[]")
        return next((image for image in images if name in (image.get("names") or [])), None)

    def label(self, name: str, key: str) -> str | None:
        if self.image(name) is None:
            return None
        config: dict[str, Any] = json.loads(self("inspect", "--type", "image", name).stdout)
        value = (config.get("OCIv1", {}).get("config", {}).get("Labels") or {}).get(key)
        return None if value is None else str(value)


    def discard(self) -> None:
        """Everything in this storage, and the storage itself (CI's is fresh on every run)."""
        subprocess.run(self.cmd("rm", "--all"), capture_output=True, check=False, timeout=300)
        subprocess.run(self.cmd("rmi", "--all", "--force"), capture_output=True, check=False, timeout=300)
        remove_tree(self.cache)


def base_rootfs(debootstrap: str, cache: Path) -> Path:
    """A tarball of bookworm minbase, slimmed like the official image; made once a day."""
    recipe = hashlib.sha256(repr((sorted(APT_CONFIG.items()), SLIMMED)).encode()).hexdigest()[:8]
    tarball = cache / f"debian-bookworm-slim-{datetime.date.today().isoformat()}-{recipe}.tar"
    if tarball.exists():
        return tarball
    for old in cache.glob("debian-bookworm-slim-*.tar"):
        old.unlink()
    cache.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        run([debootstrap, "--variant=minbase", "bookworm", str(rootfs), MIRROR], timeout=900)
        (rootfs / "etc/apt/sources.list").unlink()  # debootstrap's, bookworm alone: debian.sources instead
        for path, text in APT_CONFIG.items():
            (rootfs / path).write_text(text)
        for folder in SLIMMED:
            for entry in (rootfs / folder).glob("*"):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        for entry in (rootfs / "usr/share/doc").rglob("*"):
            if entry.is_file() and entry.name != "copyright":
                entry.unlink()
        for folder in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for entry in (rootfs / folder).glob("*"):
                if entry.is_file():
                    entry.unlink()
        for entry in (rootfs / "var/cache/apt").glob("*.bin"):
            entry.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."], timeout=300)
        partial.rename(tarball)
    finally:
        remove_tree(rootfs)
    return tarball


def mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mounts") as table:
        points = [line.split()[1].replace("\\040", " ") for line in table]
    return [p for p in points if p == str(root) or p.startswith(f"{root}/")]


def remove_tree(root: Path) -> None:
    """Unmount what is mounted below it (a failed debootstrap's /proc, buildah's overlay), then
    delete it; never delete through a mount that stays (it could reach the host's files)."""
    for point in sorted(mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False, timeout=30)
    if mounts_under(root):
        raise AssertionError(f"{root}: still mounted ({', '.join(mounts_under(root))}); not deleting it")
    shutil.rmtree(root, ignore_errors=True)


def import_base(buildah: Buildah, tarball: Path) -> None:
    """The tarball as ``debian:bookworm-slim`` in buildah's storage, unless it is there already."""
    if buildah.label(BASE_NAME, BASE_LABEL) == tarball.name:
        return
    # a new base: the images built on the old one, their cached layers included, go with it
    subprocess.run(buildah.cmd("rm", "--all"), capture_output=True, check=False, timeout=300)
    subprocess.run(buildah.cmd("rmi", "--all", "--force"), capture_output=True, check=False, timeout=300)
    container = buildah("from", "scratch").stdout.strip()
    try:
        buildah("add", container, str(tarball), "/", timeout=300)
        buildah("config", "--label", f"{BASE_LABEL}={tarball.name}", "--cmd", "bash", container)
        buildah("commit", "--rm", container, BASE_NAME, timeout=300)
    except BaseException:
        subprocess.run(buildah.cmd("rm", container), capture_output=True, check=False)
        raise


def build_context(where: Path) -> Path:
    """The repository's Dockerfile and .dockerignore, and the wheels `pip wheel` makes of it."""
    source = where / "source"
    context = where / "context"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "failover", source / "failover", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    context.mkdir(parents=True)
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy2(REPO / name, context / name)
    # SOURCE_DATE_EPOCH: the same sources make the same wheel, so an unchanged tree reuses the build's layers
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(context / "dist" / "wheels"),
         f"{source}[speed]"], timeout=600, cwd=where, env=dict(os.environ, SOURCE_DATE_EPOCH="315532800"))
    return context


def build_image(buildah: Buildah, context: Path) -> None:
    bud = ["bud", "--isolation", "chroot", "--pull-never", "--layers", "--format", "docker",
           "-f", str(context / "Dockerfile")]
    if not os.environ.get("CI"):
        # A cache kept between runs: the build stage tagged too, so that pruning the layers
        # earlier runs left behind keeps its apt step (CI's storage is thrown away instead).
        buildah(*bud, "--target", "build", "-t", BUILD_STAGE_NAME, str(context), timeout=1200)
    buildah(*bud, "--jobs", "2", "-t", IMAGE_NAME, str(context), timeout=1200)
    if not os.environ.get("CI"):
        buildah("rmi", "--prune", timeout=300)


@dataclass
class Image:
    buildah: Buildah
    name: str = IMAGE_NAME

    def size(self) -> float:
        """Bytes, as buildah says it: the uncompressed layers, in decimal units ("199 MB")."""
        image = self.buildah.image(self.name)
        assert image is not None, f"{self.name} is not in the storage"
        number, unit = str(image["size"]).split()
        return float(number) * UNITS[unit]

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.buildah("inspect", "--type", "image", self.name).stdout)
        return config

    def container(self) -> str:
        return self.buildah("from", "--pull-never", self.name).stdout.strip()

    def run_cmd(self, container: str, command: Sequence[str], volumes: Sequence[str] = (),
                env: dict[str, str] | None = None) -> list[str]:
        """``buildah run`` as the image's own user (its USER: no --user given)."""
        args = ["run", "--isolation", "chroot"]
        for volume in volumes:
            args += ["--volume", volume]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        return self.buildah.cmd(*args, container, "--", *command)

    def run(self, container: str, command: Sequence[str], volumes: Sequence[str] = (),
            env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.run_cmd(container, command, volumes, env), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def remove(self, container: str) -> None:
        subprocess.run(self.buildah.cmd("rm", container), capture_output=True, check=False, timeout=60)


def built_image(where: Path) -> Image:
    """The base (cached for the day outside CI), then the image from the repository's Dockerfile."""
    binary, debootstrap = require_tools()
    cache = cache_dir()
    buildah = Buildah(binary, cache)
    import_base(buildah, base_rootfs(debootstrap, cache))
    build_image(buildah, build_context(where))
    return Image(buildah)
