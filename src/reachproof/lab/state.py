"""The lab's state directory, its supervisor process, and teardown by prefix.

Everything a lab creates is findable from its prefix alone, so `lab down --prefix P` works
after a crash, a SIGKILL of the supervisor, or a half-finished `lab up`:

    /run/netns/P-*            the namespaces (their links, bridges and nft tables die with them)
    /etc/netns/P-*/           per-namespace hosts files
    /run/reachproof/lab/P/    state: lab.json, services.json, supervisor.pid, ready|failed, log,
                              ssh/ (keys and sshd files of `lab up --ssh`, lab/sshd.py)
    the inventory files       recorded in lab.json with their digests if the lab created them
                              (the ssh one only with --ssh)
    processes                 the supervisor (found by its command line), and anything living
                              in a lab namespace: sshd and its sessions, a check's workers

/run is a tmpfs like /run/netns itself: state and namespaces vanish together on reboot.
The one thing a lab leaves is /run/sshd, the empty privilege-separation directory that the
openssh-server package's own service makes as well (other labs' sshd may still use it).

Teardown runs as root and removes what a prefix names, so the prefix is checked
(topology.check_prefix) wherever a path is built from it, every directory it removes is
checked to lie inside the lab's own roots (`inside`), and an inventory file, which may be
anywhere, is removed only when the lab created it and nobody changed it since.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reachproof.errors import LabError
from reachproof.files import write_private
from reachproof.lab.netns import ETC_NETNS_DIR, list_netns, netns_pids, remove_netns
from reachproof.lab.topology import check_prefix

STATE_ROOT = Path("/run/reachproof/lab")
LAB_FILE = "lab.json"
PLAN_FILE = "services.json"
TLS_DIR = "tls"  # the lab CA (its key stays here) and the TLS services' certificates
PID_FILE = "supervisor.pid"
READY_FILE = "ready"
FAILED_FILE = "failed"
SUPERVISOR_MODULE = "reachproof.lab.services"


def state_dir(prefix: str) -> Path:
    check_prefix(prefix)
    return STATE_ROOT / prefix


def inside(path: Path, root: Path) -> Path:
    """`path`, once shown to lie strictly inside `root` with symlinks resolved (LabError
    otherwise): whatever a prefix or a state file says, a removal stays in the lab's roots."""
    real_root = root.resolve()
    real = path.resolve()
    if real == real_root or not real.is_relative_to(real_root):
        raise LabError(f"refusing to remove {path}: it is not inside {root}")
    return path


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LabState:
    """What lab.json records: enough for `status` and `down`."""

    prefix: str
    agents: int
    sessions: str
    faults: tuple[str, ...]
    perimeter: str
    inventory: str
    namespaces: int
    services: int = 0
    # sha256 of the inventory the lab wrote; "" when the file was there before (not ours)
    inventory_sha256: str = ""
    ssh_inventory: str = ""  # with `lab up --ssh`
    ssh_inventory_sha256: str = ""
    runtime: str = "netns"
    container_families: str = "4,6"  # `lab up --container-families`
    created: float = field(default_factory=time.time)

    def inventories(self) -> tuple[tuple[str, str], ...]:
        """(path, sha256 when the lab created it) of each inventory file it wrote."""
        both = (
            (self.inventory, self.inventory_sha256),
            (self.ssh_inventory, self.ssh_inventory_sha256),
        )
        return tuple((path, sha256) for path, sha256 in both if path)

    def write(self) -> None:
        text = json.dumps(asdict(self), indent=1) + "\n"
        write_private(state_dir(self.prefix) / LAB_FILE, text.encode("utf-8"))

    @classmethod
    def read(cls, prefix: str) -> LabState | None:
        try:
            raw = json.loads((state_dir(prefix) / LAB_FILE).read_text(encoding="utf-8"))
            raw["faults"] = tuple(raw.get("faults", ()))
            return cls(**raw)
        except (OSError, ValueError, TypeError):
            return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _is_our_supervisor(pid: int, directory: Path) -> bool:
    """True when `pid` is a supervisor started for `directory` (never kill a recycled pid)."""
    args = _cmdline(pid)
    return "--state-dir" in args and str(directory) in args


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it holds no sockets any more, so count it as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def supervisor_pid(prefix: str) -> int | None:
    """The pid in the pidfile when that process is alive and really this lab's supervisor."""
    directory = state_dir(prefix)
    try:
        pid = int((directory / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and _is_our_supervisor(pid, directory) else None


def _supervisor_pids(prefix: str) -> set[int]:
    """The pidfile's process plus any process whose command line names this state dir
    (a supervisor that died before writing its pidfile, or a stray launcher)."""
    directory = state_dir(prefix)
    found: set[int] = set()
    pid = supervisor_pid(prefix)
    if pid is not None:
        found.add(pid)
    for entry in os.listdir("/proc"):
        if (
            entry.isdigit()
            and int(entry) != os.getpid()
            and _is_our_supervisor(int(entry), directory)
        ):
            found.add(int(entry))
    return found


def stop_supervisor(prefix: str, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns when every process is gone."""
    stop_pids(_supervisor_pids(prefix), grace, f"supervisor process(es) of lab {prefix!r}")


def stop_lab_processes(prefix: str, grace: float = 2.0) -> None:
    """End every process that lives in one of the lab's namespaces (they hold the namespaces
    alive; an sshd's sessions even outlive a killed sshd)."""
    stop_pids(
        netns_pids(list_netns(prefix)), grace, f"process(es) in the namespaces of lab {prefix!r}"
    )


def stop_pids(pids: set[int], grace: float, what: str) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = {p for p in pids if pid_alive(p)}
            if not pids:
                return
            time.sleep(0.02)
    if pids:
        raise LabError(f"{what} {sorted(pids)} did not exit")


def teardown(prefix: str) -> list[str]:
    """Remove every trace of lab `prefix`; idempotent. Returns what it removed, for the log."""
    removed: list[str] = []
    state = LabState.read(prefix)
    stop_supervisor(prefix)
    from reachproof.lab.dockerlab import stop_compute  # the docker runtime's daemons, if any

    removed += stop_compute(prefix)
    stop_lab_processes(prefix)
    # The supervisor's sockets held references to the namespaces; now they can go.
    stuck: list[LabError] = []  # one namespace that cannot go must not keep the rest
    for name in list_netns(prefix):
        try:
            remove_netns(name)
        except LabError as exc:
            stuck.append(exc)
            continue
        removed.append(f"netns {name}")
    if ETC_NETNS_DIR.is_dir():
        for path in ETC_NETNS_DIR.glob(f"{prefix}-*"):
            shutil.rmtree(inside(path, ETC_NETNS_DIR), ignore_errors=True)
            removed.append(str(path))
    for recorded, sha256 in state.inventories() if state is not None else ():
        if _ours(Path(recorded), sha256):
            Path(recorded).unlink()
            removed.append(recorded)
    if state is not None and state.inventory:
        inventory = Path(state.inventory)
        # .reachproof/lab/<prefix>/ was made for this lab alone; leave it if anything else is there.
        if inventory.parent.name == prefix:
            with contextlib.suppress(OSError):
                inventory.parent.rmdir()
    directory = state_dir(prefix)
    if directory.exists():
        shutil.rmtree(inside(directory, STATE_ROOT), ignore_errors=True)
        removed.append(str(directory))
    if stuck:
        more = f" (and {len(stuck) - 1} more namespaces alike)" if len(stuck) > 1 else ""
        raise LabError(f"{stuck[0]}{more}; everything else of lab {prefix} is removed")
    return removed


def _ours(path: Path, sha256: str) -> bool:
    """`path` is an inventory this lab created (`sha256` recorded), unchanged since."""
    if not sha256:
        return False
    try:
        return path.is_file() and digest(path.read_bytes()) == sha256
    except OSError:
        return False
