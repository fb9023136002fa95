"""`reachproof discover backend-ai` and `check --discover` against a real Backend.AI manager.

The manager is backend.ai-manager 26.9.6 from PyPI in a pinned Python 3.13 venv (created once
under /var/cache/reachproof: pip 63-162 s for manager and client, +120 s for the agent; reused
after), with PostgreSQL 15, etcd and Redis from Debian, all in one lab namespace whose only
interface is its loopback (lab/backendai.py). Cost per run: ~50 s at a load average of 4 to
initialise the database and start the manager (150-230 s at a load of 20-40 on 2 cores), the
agent's registration, then seconds per test.

A real backend.ai-agent 26.9.6 runs beside it on its own dockerd (lab/dockerd.py) in the same
namespace, and registers with the manager. A session is created through the real API with the
Backend.AI client; the manager schedules and places it on that agent (what discovery reads).
Its image is only a record in the manager's database, so its containers never start: container
ids and vantages into containers are tested on GraphQL answers (tests/unit/discover).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import require_lab, unique_prefix

from prereq import require
from reachproof.lab import backendai
from reachproof.lab.netns import netns_path
from reachproof.lab.state import state_dir, teardown

pytestmark = pytest.mark.lab
require_lab("etcd", "redis-server", "runuser")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manager() -> Iterator[backendai.Manager]:
    require(programs=(str(backendai.PG_BIN / "initdb"),))
    venv = backendai.ensure_venv()
    prefix = unique_prefix("bdm")
    try:
        started = backendai.start_manager(prefix, venv)
        backendai.start_agent(started, venv)
        yield started
    finally:
        teardown(prefix)  # the lab's one teardown: it finds the agent's dockerd too
    # Nothing of it is left: no namespace, no state, no manager, database, etcd or Redis.
    assert not netns_path(f"{prefix}-mgmt").exists()
    assert not state_dir(prefix).exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/reachproof-{prefix}-agent1"))
    assert not Path(f"/var/lib/reachproof/lab/{prefix}").exists()
    assert not [p for p in Path("/proc").glob("[0-9]*") if _mentions(p, state_dir(prefix))]


def _mentions(proc: Path, directory: Path) -> bool:
    try:
        return str(directory) in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _run(
    manager: backendai.Manager, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BACKEND_")}
    return subprocess.run(
        ["nsenter", f"--net={netns_path(manager.netns)}", sys.executable, "-m", "reachproof",
         *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=clean | (env or {}),
        check=False,
    )  # fmt: skip


def test_discovery_signs_as_the_client_and_the_manager_accepts(
    manager: backendai.Manager, tmp_path: Path
) -> None:
    out = tmp_path / "site.yaml"
    done = _run(
        manager, "discover", "backend-ai", "--endpoint", manager.endpoint, "-o", str(out),
        "--agent-vantage", "ssh -T audit@{agent_addr}",
        env=manager.env(manager.admin),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"manager {backendai.VERSION}, API v9.20250722" in done.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["hosts"]["manager"] == {"role": "manager", "zone": "management", "ipv4": "127.0.0.1"}
    # The scaling group's AppProxy address, as the manager's database holds it.
    assert doc["hosts"]["appproxy-default"]["ipv4"] == "127.0.0.1"
    # The real agent, as it registered itself (its RPC address, the default port).
    assert doc["hosts"][backendai.AGENT_ID] == {
        "role": "agent",
        "zone": "compute",
        "ipv4": "127.0.0.1",
        "vantage": backendai.AGENT_ID,
    }
    assert doc["vantages"][backendai.AGENT_ID]["command"] == ["ssh", "-T", "audit@127.0.0.1"]
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_a_session_created_through_the_api_is_discovered_on_its_agent(
    manager: backendai.Manager, tmp_path: Path
) -> None:
    venv = backendai.ensure_venv()
    created = subprocess.run(
        ["nsenter", f"--net={netns_path(manager.netns)}", str(venv / "bin/backend.ai"),
         "session", "create", "--enqueue-only", "-t", "rpdiscover", "--cluster-size", "2",
         "-r", "cpu=1", "-r", "mem=512m", backendai.IMAGE],
        capture_output=True, text=True, timeout=120, check=False,
        env=os.environ | manager.env(manager.admin) | {"BACKEND_ENDPOINT": manager.endpoint},
    )  # fmt: skip
    assert "is enqueued for scheduling" in created.stdout + created.stderr, created.stderr
    out = tmp_path / "site.yaml"
    sessions: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while not sessions and time.monotonic() < deadline:
        done = _run(
            manager, "discover", "backend-ai", "--endpoint", manager.endpoint, "-o", str(out),
            "--skip-pending", env=manager.env(manager.admin),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        sessions = yaml.safe_load(out.read_text()).get("sessions") or {}
        time.sleep(1)
    ((session_id, session),) = sessions.items()
    assert str(uuid.UUID(session_id)) == session_id  # the id Backend.AI gave it
    assert session["mode"] == "single-node"
    assert session["containers"] == [
        {"hostname": "main1", "role": "main", "index": 1, "agent": backendai.AGENT_ID},
        {"hostname": "sub1", "role": "sub", "index": 1, "agent": backendai.AGENT_ID},
    ]


def test_a_wrong_secret_is_exit_2_and_never_shown(manager: backendai.Manager) -> None:
    wrong = backendai.Key(manager.admin.access_key, "not-the-secret-" + "x" * 25)
    done = _run(
        manager, "discover", "backend-ai", "--endpoint", manager.endpoint, env=manager.env(wrong)
    )
    assert done.returncode == 2, done.stderr
    assert "HTTP 401: the credentials were rejected" in done.stderr
    assert wrong.secret_key not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_a_key_without_superadmin_rights_is_exit_2(manager: backendai.Manager) -> None:
    done = _run(
        manager, "discover", "backend-ai", "--endpoint", manager.endpoint,
        env=manager.env(manager.user),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "superadmin privilege required" in done.stderr


def test_an_unreachable_endpoint_is_exit_2(manager: backendai.Manager) -> None:
    done = _run(
        manager, "discover", "backend-ai", "--endpoint", "http://127.0.0.1:8082",
        env=manager.env(manager.admin),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot reach http://127.0.0.1:8082: Connection refused" in done.stderr


def test_check_discover_records_the_inventory_and_its_digest(
    manager: backendai.Manager, tmp_path: Path
) -> None:
    site = tmp_path / "site-base.yaml"
    site.write_text("name: real-manager\nhosts:\n  user: {role: user, zone: internet}\n")
    out = tmp_path / "reports"
    # R3 (deny user -> agent): the user has no vantage, so no probe and INCONCLUSIVE (exit 3).
    done = _run(
        manager, "check", "-P", "policies/backend-ai.policy", "--discover", "backend-ai",
        "--endpoint", manager.endpoint, "--site", str(site), "-r", "R3", "-f", "json",
        "-o", str(out), env=manager.env(manager.admin),
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    report = json.loads((out / "report.json").read_text())
    text = (out / "inventory.yaml").read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert report["inventory"] == {"path": str(out / "inventory.yaml"), "sha256": digest}
    discovery = report["discovery"]
    assert (discovery["sha256"], discovery["inventory"]) == (digest, text)
    assert discovery["manager_version"] == backendai.VERSION
    hosts = yaml.safe_load(text)["hosts"]
    assert hosts["user"] == {"role": "user", "zone": "internet"}  # from the site file
    assert hosts[backendai.AGENT_ID]["role"] == "agent"  # from the manager
