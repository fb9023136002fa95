"""The session image of the docker lab: built locally at first use, no registry, cached by hash.

Two layers of cache under /var/cache/reachproof (outside the repo; survives `lab down`):

    rootfs-<h1>.tar   `mmdebstrap --variant=minbase bookworm` with python3, dropbear (sshd on
                      2200, as Backend.AI's containers run it) and the OpenSSH client (`ssh sub1`);
                      h1 hashes the recipe. ~75 s the first time, from Debian's mirror.
    image-<h2>.tar    the rootfs plus the lab's service program (reachproof.lab.services and the
                      two modules it imports) and the container's init script; h2 hashes h1
                      and those sources, so editing the services rebuilds only this (~2 s).

`load(daemon, image)` imports the tar into one daemon (`docker import`, ~2 s); every agent's
daemon gets its own copy, as each real agent pulls its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from reachproof.errors import LabError
from reachproof.lab.dockerd import Dockerd, docker

CACHE_DIR = Path(os.environ.get("REACHPROOF_CACHE", "/var/cache/reachproof"))
SUITE = "bookworm"
PACKAGES = ("python3", "dropbear-bin", "openssh-client")
_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
_HOOKS = (
    'chroot "$1" useradd -m -u 1000 -s /bin/sh work',
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
)
# Where the service program goes inside the image (Debian's python3 searches it).
SITE = "usr/local/lib/python3.11/dist-packages"
_SERVICE_MODULES = ("__init__.py", "errors.py", "files.py", "lab/__init__.py")
INIT = "/usr/local/sbin/reachproof-init"
PLAN_PATH = "/etc/reachproof/services.json"
SSH_DIR = "/home/config/ssh"  # id_cluster + id_cluster.pub, as Backend.AI mounts them

# The container's PID 1: the session keypair installed as Backend.AI's kernel runner does
# (backend-ai-facts.md, "SSH between containers"), dropbear on 2200, then the services.
SSH_CONFIG = (
    "Host main* sub*\\n  Port 2200\\n  User work\\n  StrictHostKeyChecking no\\n"
    f"  UserKnownHostsFile /dev/null\\n  IdentityFile {SSH_DIR}/id_cluster\\n  LogLevel ERROR\\n"
)
INIT_SCRIPT = f"""#!/bin/sh
set -e
if [ -f {SSH_DIR}/id_cluster.pub ]; then
  chown -R work:work /home/config && chmod 600 {SSH_DIR}/id_cluster
  for home in /home/work /root; do
    install -d -m 700 "$home/.ssh"
    printf '{SSH_CONFIG}' > "$home/.ssh/config"
  done
  cat {SSH_DIR}/id_cluster.pub > /home/work/.ssh/authorized_keys
  chmod 600 /home/work/.ssh/authorized_keys /root/.ssh/config /home/work/.ssh/config
  chown -R work:work /home/work/.ssh
fi
mkdir -p /etc/dropbear
dropbear -R -p 2200 -P /run/dropbear.pid
exec python3 -m reachproof.lab.services --plan {PLAN_PATH} --state-dir /run/reachproof --foreground
"""


@dataclass(frozen=True)
class Image:
    tar: Path
    name: str  # reachproof-lab:<hash>


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()


def rootfs_command(out: Path) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--quiet",
        f"--include={','.join(PACKAGES)}",
        *(f"--dpkgopt=path-exclude={e}" for e in _EXCLUDES),
        *(f"--customize-hook={hook}" for hook in _HOOKS),
        SUITE,
        str(out),
    ]


def _service_files() -> list[tuple[str, bytes]]:
    """(path in the image, content) of the service program, read from this installation."""
    root = resources.files("reachproof")
    files = [(name, root.joinpath(name).read_bytes()) for name in _SERVICE_MODULES]
    services = root.joinpath("lab", "services")
    for item in sorted(services.iterdir(), key=lambda t: t.name):
        if item.name.endswith(".py"):
            files.append((f"lab/services/{item.name}", item.read_bytes()))
    return [(f"{SITE}/reachproof/{name}", data) for name, data in files]


def ensure_image(cache: Path = CACHE_DIR, log: Path | None = None) -> Image:
    """The image tar, built first if the cache has none for this recipe and these sources."""
    recipe = "\0".join(rootfs_command(Path("OUT"))).encode()
    base = cache / f"rootfs-{_sha(recipe)[:16]}.tar"
    extra = [(path, data, 0o644) for path, data in _service_files()]
    extra.append((INIT.lstrip("/"), INIT_SCRIPT.encode(), 0o755))
    key = _sha(base.name.encode(), *(p.encode() + b"\0" + d for p, d, _ in extra))[:16]
    image = Image(cache / f"image-{key}.tar", f"reachproof-lab:{key}")
    if image.tar.exists():
        return image
    cache.mkdir(parents=True, exist_ok=True)
    if not base.exists():
        _build_rootfs(base, log)
    partial = image.tar.with_suffix(".partial")
    shutil.copyfile(base, partial)
    with tarfile.open(partial, "a") as tar:
        for path, data, mode in extra:
            info = tarfile.TarInfo(f"./{path}")
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    partial.replace(image.tar)
    return image


def _build_rootfs(out: Path, log: Path | None) -> None:
    if shutil.which("mmdebstrap") is None:
        raise LabError("mmdebstrap not found: install it (make system-deps) to build the lab image")
    partial = out.with_suffix(".partial.tar")
    sink = log.open("ab") if log is not None else None
    try:
        done = subprocess.run(
            ["nice", "-n", "10", *rootfs_command(partial)],
            stdin=subprocess.DEVNULL,
            stdout=sink or subprocess.DEVNULL,
            stderr=sink or subprocess.PIPE,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"building the lab image failed: {exc}") from exc
    finally:
        if sink is not None:
            sink.close()
    if done.returncode != 0:
        with contextlib.suppress(OSError):
            partial.unlink()
        reason = (done.stderr or b"").decode(errors="replace")[-1500:] or f"see {log}"
        raise LabError(f"mmdebstrap exited with {done.returncode}: {reason}")
    partial.replace(out)


def load(daemon: Dockerd, image: Image) -> None:
    """`docker import` the image into `daemon`, with the init script as its entrypoint."""
    docker(
        daemon,
        "import",
        "--change",
        f'ENTRYPOINT ["{INIT}"]',
        str(image.tar),
        image.name,
        timeout=300,
    )
