"""One `dockerd` per network namespace: start, wait until it answers, tear down without a trace.

Reusable beyond the lab's compute zone (anything that wants a real Docker daemon inside a
namespace it made): a `Dockerd` names the namespace, a hostname and two directories, and every
path the daemon uses lies inside them, so `stop` (also after a SIGKILL of the daemon, its
containerd or anything else) finds and removes all of it:

    run_dir/   docker.sock, dockerd.pid, dockerd.log, exec/ (--exec-root: containerd's socket,
               the shims' state, the containers' netns files)
    data_dir/  --data-root (images, containers, volumes, swarm state, overlay2 mounts)
    cgroups    <controller>/<cgroup_parent>/… of every cgroup v1 hierarchy (or the unified one)

The daemon runs `nsenter --net=/run/netns/NS` (not `ip netns exec`, which remounts /sys and
leaves dockerd without cgroups) under `unshare --uts`, so it has the namespace's firewall, its
own hostname and the host's mount namespace (its mounts are found in /proc/self/mountinfo).
A daemon is never started in the host's namespace: `netns` must name a file under /run/netns.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reachproof.errors import LabError
from reachproof.lab.netns import netns_path, netns_pids
from reachproof.lab.state import stop_pids

CGROUP_ROOT = Path("/sys/fs/cgroup")
MNT_DETACH = 2
READY_TIMEOUT = 30.0

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Dockerd:
    """A Docker daemon inside network namespace `netns` (a name under /run/netns)."""

    netns: str
    hostname: str
    run_dir: Path  # short: the containerd socket path below must stay under 108 bytes
    data_dir: Path
    cgroup_parent: str  # e.g. "rp-agent1": containers' cgroups are <controller>/rp-agent1/<id>
    args: tuple[str, ...] = ()  # more dockerd options: --bip, --icc=false, --ipv6, …

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "dockerd.pid"

    @property
    def log(self) -> Path:
        return self.run_dir / "dockerd.log"

    @property
    def host(self) -> str:
        """The `-H` / DOCKER_HOST value of this daemon."""
        return f"unix://{self.socket}"

    def cli(self, *args: str) -> list[str]:
        """A docker CLI command for this daemon (the CLI talks to the socket: no netns needed)."""
        return ["docker", "-H", self.host, *args]

    def command(self) -> list[str]:
        netns_file = netns_path(self.netns)  # refuses anything but a name under /run/netns
        return [
            "nsenter",
            f"--net={netns_file}",
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            self.hostname,
            "dockerd",
            "--data-root",
            str(self.data_dir),
            "--exec-root",
            str(self.run_dir / "exec"),
            "--pidfile",
            str(self.pidfile),
            "-H",
            self.host,
            "--storage-driver",
            "overlay2",
            "--cgroup-parent",
            f"/{self.cgroup_parent}",
            *self.args,
        ]


def start(daemon: Dockerd, timeout: float = READY_TIMEOUT) -> None:
    """Start `daemon` and return once it answers /_ping; LabError (with its log) otherwise."""
    if not netns_path(daemon.netns).exists():
        raise LabError(f"dockerd: network namespace {daemon.netns!r} does not exist")
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        raise LabError("dockerd/docker not found: install Debian's docker.io (make system-deps)")
    daemon.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    daemon.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with daemon.log.open("ab") as log:
        try:
            proc = subprocess.Popen(
                daemon.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise LabError(f"cannot start dockerd in {daemon.netns}: {exc}") from exc
    wait_ready(daemon, timeout, proc)


def wait_ready(daemon: Dockerd, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(daemon):
            return
        if proc is not None and proc.poll() is not None:
            raise LabError(
                f"dockerd in {daemon.netns} exited with status {proc.returncode}:\n{_tail(daemon)}"
            )
        time.sleep(0.05)
    raise LabError(f"dockerd in {daemon.netns} not ready after {timeout:.0f}s:\n{_tail(daemon)}")


def ping(daemon: Dockerd) -> bool:
    """The daemon answers `GET /_ping` with OK on its socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(daemon.socket))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = sock.recv(4096)
    except OSError:
        return False
    return answer.startswith(b"HTTP/1.") and answer.rstrip().endswith(b"OK")


def _tail(daemon: Dockerd) -> str:
    try:
        return daemon.log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def docker(daemon: Dockerd, *args: str, timeout: float = 120.0, stdin: bytes | None = None) -> str:
    """Run a docker CLI command against `daemon`; its stdout, or LabError with its stderr."""
    try:
        done = subprocess.run(
            daemon.cli(*args), input=stdin, capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"docker {' '.join(args[:3])} on {daemon.netns}: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()
        raise LabError(f"docker {' '.join(args)} on {daemon.netns}: {reason}")
    return done.stdout.decode(errors="replace")


# --- teardown -----------------------------------------------------------------------------------


def stop(daemon: Dockerd, grace: float = 10.0) -> list[str]:
    """Remove every trace of `daemon`; idempotent, works whatever was killed before.

    Containers are removed through the daemon while it answers (that also unmounts their
    filesystems and removes their cgroups); then dockerd, containerd and every shim or container
    process left (found by their command lines and cgroups) are killed, the mounts under its
    directories detached, its cgroups and directories removed. Returns what it removed.
    """
    removed: list[str] = []
    if ping(daemon):
        with contextlib.suppress(LabError):
            ids = docker(daemon, "ps", "-aq", timeout=20).split()
            if ids:
                docker(daemon, "rm", "-f", "-v", *ids, timeout=60)
                removed.append(f"{len(ids)} containers of {daemon.netns}")
        with contextlib.suppress(LabError):
            docker(daemon, "swarm", "leave", "--force", timeout=20)
    stop_pids(daemon_pids(daemon), grace, f"processes of dockerd in {daemon.netns}")
    stop_pids(proxy_pids(daemon), 2.0, f"processes of dockerd in {daemon.netns}")
    stop_pids(cgroup_pids(daemon.cgroup_parent), 2.0, f"processes of dockerd in {daemon.netns}")
    detached = unmount_under((daemon.run_dir, daemon.data_dir))
    if detached:
        removed.append(f"{detached} mounts of {daemon.netns}")
    removed += remove_cgroups(daemon.cgroup_parent)
    for directory in (daemon.run_dir, daemon.data_dir):
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(str(directory))
    return removed


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def daemon_pids(daemon: Dockerd) -> set[int]:
    """dockerd, its containerd and the containerd shims: every process naming its directories."""
    marks = (str(daemon.run_dir) + "/", str(daemon.data_dir) + " ", f"unix://{daemon.socket}")
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            line = _cmdline(int(entry)) + " "
            if any(mark in line for mark in marks):
                found.add(int(entry))
    return found


def proxy_pids(daemon: Dockerd) -> set[int]:
    """docker-proxy processes (published ports) a killed dockerd left in its namespace."""
    found = set()
    for pid in netns_pids([daemon.netns]):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "docker-proxy":
                found.add(pid)
    return found


def _cgroup_dirs(cgroup_parent: str) -> list[Path]:
    if not cgroup_parent or "/" in cgroup_parent or cgroup_parent in {".", ".."}:
        raise LabError(f"invalid cgroup parent {cgroup_parent!r}")
    dirs = [CGROUP_ROOT / cgroup_parent]
    if CGROUP_ROOT.is_dir():
        dirs += [c / cgroup_parent for c in CGROUP_ROOT.iterdir() if c.is_dir()]
    return [d for d in dirs if d.is_dir()]


def cgroup_pids(cgroup_parent: str) -> set[int]:
    """Processes in any cgroup under `cgroup_parent` (containers outliving their shim)."""
    found: set[int] = set()
    for top in _cgroup_dirs(cgroup_parent):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in procs.read_text().split())
    return found


def remove_cgroups(cgroup_parent: str) -> list[str]:
    """rmdir every (empty) cgroup under `cgroup_parent`, deepest first, in every hierarchy."""
    removed = []
    for top in _cgroup_dirs(cgroup_parent):
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
            removed.append(str(top))
    return removed


def mounts_under(roots: Sequence[Path]) -> list[str]:
    """Mount points (from /proc/self/mountinfo) inside any of `roots`, deepest first."""
    prefixes = [str(r).rstrip("/") + "/" for r in roots]
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if any(point.startswith(p) or point + "/" == p for p in prefixes):
                found.append(point)
    return sorted(set(found), key=lambda p: -p.count("/"))


def unmount_under(roots: Sequence[Path]) -> int:
    count = 0
    for _ in range(3):  # a detached parent can reveal mounts stacked below it
        points = mounts_under(roots)
        if not points:
            break
        for point in points:
            if _libc.umount2(point.encode(), MNT_DETACH) == 0:
                count += 1
    return count
