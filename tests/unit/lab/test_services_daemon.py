"""The supervisor daemon's life cycle, run as a real process on 127.0.0.1 (no root needed)."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reachproof.errors import LabError
from reachproof.lab.services.control import (
    FAILED_FILE,
    LOG_FILE,
    PID_FILE,
    PLAN_FILE,
    READY_FILE,
    process_alive,
    read_failed,
    start_supervisor,
    stop_supervisor,
    supervisor_pid,
)
from reachproof.lab.services.spec import Listener, ServiceKind, ServicePlan

LOOPBACK = "127.0.0.1"
DEADLINE = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def banner_line(port: int) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        return sock.makefile("rb").readline()


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while process_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive"
        time.sleep(0.02)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_supervisor(tmp_path, timeout=5)


def plan_on(*ports: int) -> ServicePlan:
    return ServicePlan(
        tuple(Listener("", port, ServiceKind.BANNER, f"SSH-2.0-lab-{port}") for port in ports)
    )


def test_ready_then_sigterm_removes_pidfile(state_dir: Path) -> None:
    ports = (free_port(), free_port())
    ready = start_supervisor(plan_on(*ports), state_dir, timeout=DEADLINE, bind=LOOPBACK)
    assert (ready.listeners, ready.namespaces) == (2, 1)
    assert supervisor_pid(state_dir) == ready.pid
    assert banner_line(ports[1]) == f"SSH-2.0-lab-{ports[1]}\r\n".encode()
    os.kill(ready.pid, signal.SIGTERM)
    wait_gone(ready.pid)
    assert not (state_dir / PID_FILE).exists()
    assert not (state_dir / READY_FILE).exists()
    with pytest.raises(ConnectionRefusedError):
        banner_line(ports[0])


def test_port_in_use_fails_with_reason(state_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LabError, match="already in use"):
            start_supervisor(plan_on(port), state_dir, timeout=DEADLINE, bind=LOOPBACK)
    assert f"port {port}" in (read_failed(state_dir) or "")
    assert not (state_dir / PID_FILE).exists()


def test_missing_namespace_fails_with_its_name(state_dir: Path) -> None:
    name = f"rpsvc-missing-{uuid.uuid4().hex[:8]}"
    plan = ServicePlan((Listener(name, free_port(), ServiceKind.HTTP, "h"),))
    with pytest.raises(LabError, match=name):
        start_supervisor(plan, state_dir, timeout=DEADLINE, bind=LOOPBACK)
    assert (state_dir / FAILED_FILE).exists()
    assert not (state_dir / PID_FILE).exists()


def test_second_supervisor_on_one_state_dir_is_refused(state_dir: Path) -> None:
    start_supervisor(plan_on(free_port()), state_dir, timeout=DEADLINE, bind=LOOPBACK)
    with pytest.raises(LabError, match="already runs"):
        start_supervisor(plan_on(free_port()), state_dir, timeout=DEADLINE, bind=LOOPBACK)


def test_sigkill_leaves_only_files(state_dir: Path) -> None:
    port = free_port()
    ready = start_supervisor(plan_on(port), state_dir, timeout=DEADLINE, bind=LOOPBACK)
    os.kill(ready.pid, signal.SIGKILL)
    wait_gone(ready.pid)
    names = {path.name for path in state_dir.iterdir()}
    assert names <= {PLAN_FILE, PID_FILE, READY_FILE, LOG_FILE}
    assert supervisor_pid(state_dir) is None
    with pytest.raises(ConnectionRefusedError):
        banner_line(port)
    stop_supervisor(state_dir)
    assert not (state_dir / PID_FILE).exists()
