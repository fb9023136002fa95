"""The supervisor's state directory, and the builder's side of it: start, wait, inspect, stop.

Files in DIR (all the supervisor ever leaves behind, even when SIGKILLed):
    services.json    the ServicePlan (written by `start_supervisor`)
    supervisor.pid   pid of the running daemon (atomic; removed on a clean stop)
    ready            JSON {"listeners", "namespaces", "pid", "seconds"} once every listener is open
    failed           one line: why it could not start (namespace missing, port in use, ...)
    supervisor.log   the daemon's stdout and stderr
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from reachproof.errors import LabError
from reachproof.files import write_private
from reachproof.lab.services.spec import ServicePlan

PLAN_FILE = "services.json"
PID_FILE = "supervisor.pid"
READY_FILE = "ready"
FAILED_FILE = "failed"
LOG_FILE = "supervisor.log"
MODULE = "reachproof.lab.services"
POLL = 0.02


@dataclass(frozen=True)
class Ready:
    listeners: int
    namespaces: int
    pid: int
    seconds: float


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one, never a partial write (files.py)."""
    write_private(path, text.encode("utf-8"))


def daemon_command(plan_path: Path, state_dir: Path) -> list[str]:
    return [sys.executable, "-m", MODULE, "--plan", str(plan_path), "--state-dir", str(state_dir)]


def read_ready(state_dir: Path) -> Ready | None:
    try:
        raw = json.loads((state_dir / READY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Ready(
        int(raw["listeners"]), int(raw["namespaces"]), int(raw["pid"]), float(raw["seconds"])
    )


def read_failed(state_dir: Path) -> str | None:
    try:
        return (state_dir / FAILED_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (nobody reaped the daemon yet) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def supervisor_pid(state_dir: Path) -> int | None:
    """The pid in DIR's pidfile if that process is alive and is a supervisor (not a reused pid)."""
    try:
        pid = int((state_dir / PID_FILE).read_text(encoding="ascii").strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if MODULE.encode() in cmdline and process_alive(pid) else None


def start_supervisor(
    plan: ServicePlan, state_dir: Path, *, timeout: float = 120.0, bind: str = "::"
) -> Ready:
    """Write the plan, start the daemon, and return once it is ready; LabError with the reason.

    `bind` other than `::` is for tests that run listeners in the host namespace on loopback.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    plan_path = state_dir / PLAN_FILE
    write_atomic(plan_path, plan.to_json())
    command = [*daemon_command(plan_path, state_dir), "--wait", f"{timeout:g}", "--bind", bind]
    try:
        # The launcher exits once the daemon reports ready or failed (or after `timeout`).
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout + 10
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"service supervisor did not report within {timeout:g} s") from exc
    ready = read_ready(state_dir)
    if done.returncode == 0 and ready is not None:
        return ready
    reason = read_failed(state_dir) or done.stderr.strip() or f"exit status {done.returncode}"
    raise LabError(f"service supervisor failed: {reason} (log: {state_dir / LOG_FILE})")


def _wait_gone(pid: int, deadline: float) -> bool:
    while process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def stop_supervisor(state_dir: Path, *, timeout: float = 10.0) -> None:
    """SIGTERM the daemon, SIGKILL it if it lingers, then drop its pid and ready files."""
    pid = supervisor_pid(state_dir)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, time.monotonic() + timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, time.monotonic() + timeout):
                raise LabError(f"service supervisor (pid {pid}) survived SIGKILL")
    for name in (PID_FILE, READY_FILE):
        (state_dir / name).unlink(missing_ok=True)
