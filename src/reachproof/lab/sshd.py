"""Real OpenSSH servers in the lab (`lab up --ssh`): one sshd per host that is an ssh vantage.

Each sshd runs inside its host's namespace (through `ip netns exec`, so the namespace's
/etc/netns files apply to it and its sessions), listens on the host's lab address and uses no
file of the machine's own ssh setup, only these under the lab's state directory:

    STATE/ssh/client_key(.pub)   the key every ssh vantage logs in with (as root)
    STATE/ssh/authorized_keys    that key: the only one a lab sshd accepts
    STATE/ssh/known_hosts        every lab sshd's host key, by address
    STATE/ssh/<host>/            sshd_config, host_key, sshd.pid, sshd.log

A client reaches an sshd from inside the same namespace (`ip netns exec NS ssh … root@ADDR`),
so nothing needs a route to or from the host's namespace. Stopping needs nothing from here:
`state.teardown` ends every process left in the lab's namespaces (an sshd, and the sessions
that outlive a killed sshd), and the state directory goes with the rest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from reachproof.errors import LabError, PrerequisiteError
from reachproof.files import write_private
from reachproof.lab.netns import netns_pids

SSH_DIR = "ssh"
PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; its systemd unit makes it
LOG_TAIL = 2000
USER = "root"  # raw sockets work at the far end, as for a netns vantage


def ssh_client_argv(identity: str, known_hosts: str, destination: str) -> list[str]:
    """The ssh invocation of an audit vantage: no prompt, no config or key of the caller's
    own account, and only the host key that `known_hosts` pins. The README shows this form."""
    return [
        "ssh",
        "-T",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-i", identity,
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-F", "/dev/null",
        destination,
    ]  # fmt: skip


@dataclass(frozen=True)
class SshHost:
    """A lab host that gets an sshd: its inventory name, namespace and listening address."""

    name: str
    netns: str
    address: IPv4Address


@dataclass(frozen=True)
class SshFiles:
    """The lab's ssh files, all under STATE/ssh."""

    directory: Path

    @property
    def client_key(self) -> Path:
        return self.directory / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    def host_dir(self, host: SshHost) -> Path:
        return self.directory / host.name

    def pid_file(self, host: SshHost) -> Path:
        return self.host_dir(host) / "sshd.pid"

    def client_command(self, host: SshHost, remote: Sequence[str] = ()) -> tuple[str, ...]:
        """The vantage command that logs in to `host` from inside its own namespace."""
        ssh = ssh_client_argv(str(self.client_key), str(self.known_hosts), f"{USER}@{host.address}")
        return ("ip", "netns", "exec", host.netns, *ssh, *remote)


def ssh_files(state: Path) -> SshFiles:
    return SshFiles(state / SSH_DIR)


def sshd_program() -> str:
    """The absolute path of sshd (it re-executes itself, so it must be started by one)."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    found = shutil.which("sshd", path=path)
    if found is None:
        raise PrerequisiteError("`sshd` not found: `lab up --ssh` needs the openssh-server package")
    return str(Path(found).absolute())


def sshd_config(files: SshFiles, host: SshHost) -> str:
    directory = files.host_dir(host)
    return "\n".join(
        (
            f"ListenAddress {host.address}",
            "Port 22",
            f"HostKey {directory / 'host_key'}",
            f"PidFile {files.pid_file(host)}",
            f"AuthorizedKeysFile {files.authorized_keys}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            # Every vantage of the hosts it serves (an agent's containers too) may log in at once.
            "MaxStartups 100:30:200",
            "",
        )
    )


def _keygen(path: Path) -> str:
    """A new ed25519 key at `path`; its public line."""
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rp-lab", "-f", str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
    except FileNotFoundError as exc:
        raise PrerequisiteError("`ssh-keygen` not found: install openssh-client") from exc
    except subprocess.CalledProcessError as exc:
        raise LabError(f"ssh-keygen failed: {exc.stderr.decode(errors='replace')}") from exc
    return path.with_suffix(".pub").read_text(encoding="utf-8").strip()


def prepare(files: SshFiles, hosts: Sequence[SshHost]) -> None:
    """Keys, known_hosts, authorized_keys and one sshd_config per host (all 0600, in 0700)."""
    files.directory.mkdir(mode=0o700)
    client = _keygen(files.client_key)
    write_private(files.authorized_keys, f"{client}\n".encode())
    known: list[str] = []
    for host in hosts:
        files.host_dir(host).mkdir(mode=0o700)
        key_type, key = _keygen(files.host_dir(host) / "host_key").split()[:2]
        known.append(f"{host.address} {key_type} {key}")
        write_private(files.host_dir(host) / "sshd_config", sshd_config(files, host).encode())
    write_private(files.known_hosts, ("\n".join(known) + "\n").encode())


def start(files: SshFiles, hosts: Sequence[SshHost], timeout: float = 15.0) -> None:
    """Start every host's sshd inside its namespace; return once each has written its pidfile
    (sshd writes it after its listening socket is bound)."""
    program = sshd_program()
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    started: list[tuple[SshHost, subprocess.Popen[bytes]]] = []
    for host in hosts:
        config = files.host_dir(host) / "sshd_config"
        with (files.host_dir(host) / "sshd.log").open("wb") as log:
            process = subprocess.Popen(
                ["ip", "netns", "exec", host.netns, program, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # no terminal signal of `lab up` reaches it
            )
        started.append((host, process))
    deadline = time.monotonic() + timeout
    waiting = list(started)
    while waiting:
        for host, process in list(waiting):
            if files.pid_file(host).exists():
                waiting.remove((host, process))
            elif process.poll() is not None:
                raise LabError(f"sshd of {host.name} exited with status {process.returncode}: "
                               + _log_tail(files, host))  # fmt: skip
        if waiting and time.monotonic() > deadline:
            names = ", ".join(h.name for h, _ in waiting)
            raise LabError(f"sshd of {names} not listening after {timeout:g}s")
        time.sleep(0.02)


def running(files: SshFiles, namespaces: Sequence[str]) -> tuple[int, int]:
    """(sshd alive, sshd started) of a lab: a pidfile's process counts only when it lives
    in one of the lab's `namespaces` (never a recycled pid)."""
    pids: list[int] = []
    for pid_file in files.directory.glob("*/sshd.pid"):
        try:
            pids.append(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            pids.append(-1)
    inside = netns_pids(namespaces) if pids else set()
    return sum(1 for pid in pids if pid in inside), len(pids)


def _log_tail(files: SshFiles, host: SshHost) -> str:
    try:
        text = (files.host_dir(host) / "sshd.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-LOG_TAIL:].strip() or "(empty log)"
