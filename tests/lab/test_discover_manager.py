"""`reachproof discover backend-ai` and `check --discover` against a real Backend.AI manager.

The manager is backend.ai-manager 26.9.6 from PyPI in a pinned Python 3.13 venv (created once
under /var/cache/reachproof, ~65 s of pip on an idle machine, reused after), with PostgreSQL
15, etcd and Redis from Debian, all in one lab namespace whose only interface is its loopback
(lab/backendai.py). Cost per run: ~50 s at a load average of 4 to initialise the database and
start the manager (150-230 s at a load of 20-40 on 2 cores), then seconds per test.

No agent runs here, so the agent list is empty and there are no sessions: the real manager
refuses to create one while its resource group has no agent (docs/backend-ai.md, the state of
each component). Sessions and containers are tested on GraphQL answers (tests/unit/discover).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
        yield backendai.start_manager(prefix, venv)
    finally:
        teardown(prefix)
    # Nothing of it is left: no namespace, no state, no manager, database, etcd or Redis.
    assert not netns_path(f"{prefix}-mgmt").exists()
    assert not state_dir(prefix).exists()
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
        env=manager.env(manager.admin),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"manager {backendai.VERSION}, API v9.20250722" in done.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["hosts"]["manager"] == {"role": "manager", "zone": "management", "ipv4": "127.0.0.1"}
    # The scaling group's AppProxy address, as the manager's database holds it.
    assert doc["hosts"]["appproxy-default"]["ipv4"] == "127.0.0.1"
    assert "sessions" not in doc  # nothing asked for yet
    assert [h for h in doc["hosts"].values() if h["role"] == "agent"] == []  # no agent runs
    assert oct(out.stat().st_mode & 0o777) == "0o600"


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
    site.write_text(
        "name: real-manager\nvantages:\n  here: {transport: local}\n"
        "hosts:\n  user: {role: user, zone: internet, vantage: here}\n"
    )
    out = tmp_path / "reports"
    # R3 (deny user -> agent): no agent is discovered, so no probe and INCONCLUSIVE (exit 3).
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
    assert yaml.safe_load(text)["hosts"]["user"]["vantage"] == "here"
