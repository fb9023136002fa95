"""Ctrl-C during a real `reachproof check` (a local vantage sweeping loopback only): exit 130,
the worker gone, no report or pcap left behind. The signal goes to the command's process
group, as a terminal sends it; workers run in sessions of their own, so only the engine can
stop them (and nmap, which has a session of its own too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prereq import interruptible, require

POLICY = """policy "loopback"
role user, target
service any-tcp = tcp/1-65535
rule R1 "Nothing listens on loopback":
    deny user -> target:any-tcp closed-ok
"""
INVENTORY = """version: 1
vantages:
  here: {transport: local}
  there: {transport: local}
hosts:
  me: {role: user, vantage: here}
  lo: {role: target, ipv4: 127.0.0.1, vantage: there}
"""
# UDP to a target that is itself a vantage: a sensor worker listens there while probes run.
UDP_POLICY = POLICY.replace("tcp/1-65535", "udp/1-65535")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate: object, timeout: float) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


@pytest.mark.parametrize(
    ("engine", "policy"), [("connect", POLICY), ("nmap", POLICY), ("connect", UDP_POLICY)]
)
def test_ctrl_c_during_check_exits_130_and_leaves_nothing(
    tmp_path: Path, engine: str, policy: str
) -> None:
    if engine == "nmap":
        require(programs=["nmap"])
    (tmp_path / "lo.policy").write_text(policy)
    (tmp_path / "lo.yaml").write_text(INVENTORY)
    out = tmp_path / "reports" / "run"
    command = [sys.executable, "-m", "reachproof", "check", "-P", str(tmp_path / "lo.policy")]
    command += ["-i", str(tmp_path / "lo.yaml"), "--engine", engine, "--pps", "500"]
    command += ["--evidence", "-o", str(out)]  # 65535 ports at 500/s: minutes, unless stopped
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    workers: list[int] = []
    try:
        wanted = 2 if policy is UDP_POLICY else 1  # the sensor's worker, and the prober's
        assert wait_for(lambda: len(children(proc.pid)) >= wanted, 30), "no worker started"
        workers = children(proc.pid)
        time.sleep(0.5)  # the sweep is under way
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert b"Traceback" not in err
        assert not [w for w in workers if running(w)], "a worker (or nmap) outlived the check"
        assert not (tmp_path / "reports").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
