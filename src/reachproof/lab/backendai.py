"""The real Backend.AI manager in a lab namespace: PostgreSQL, etcd and Redis from Debian, and
`backend.ai-manager` from PyPI (pinned) in its own Python 3.13 virtual environment.

    CACHE/bai-venv-<version>/       the venv (pip install of PINS, ~65 s once; reused after)
    /run/netns/P-mgmt               the management namespace: only its loopback is up, so
                                    nothing here is reachable from, or reaches, the host
    /run/reachproof/lab/P/bai/      pg/ (data, socket, log), etcd/, redis/, manager/ (manager.toml,
                                    alembic.ini, the RPC keypair, fixtures.json, logs),
                                    agent1/ (agent.toml, its ipc/var/scratch dirs, log)
    /run/reachproof/lab/P/docker/agent1/, /var/lib/reachproof/lab/P/agent1/
                                    the agent's dockerd (lab/dockerd.py), where the Docker
                                    runtime keeps its agent 1's: `lab down` removes it

Every process runs inside P-mgmt, so the lab's one teardown (`lab down --prefix P`,
state.teardown) ends them, removes the agent's dockerd with its containers, mounts and
cgroups, the namespace and the state directory, also after a crash.

`backend.ai-agent` runs on its own dockerd in the same namespace for now (all on one loopback);
it registers with the manager, which then schedules sessions onto it. The image a session asks
for is a record in the manager's database only, so containers are placed but never started.

What runs is the real thing, set up as the manager's install guide says
(docs/install/install-from-package/install-manager.rst of lablup/backend.ai): `backend.ai mgr
schema oneshot`, `backend.ai mgr fixture populate` of a fixture with keys generated here (the
shape of the project's fixtures/manager/example-users.json and example-keypairs.json, with the
tables 26.9.6 has), `etcd put config/redis/addr`, then `python -m ai.backend.manager.server`.

One thing is missing on purpose: no Docker daemon runs in the management namespace. The
manager's overlay network plugin asks the local Docker for swarm information at start and logs
that it cannot reach it (DOCKER_HOST points at a socket nobody serves); the API serves without
it. Multi-node sessions need it (the Docker runtime of the lab, not here).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reachproof.errors import LabError, PrerequisiteError
from reachproof.lab import dockerd
from reachproof.lab.dockerd import Dockerd
from reachproof.lab.dockerlab import DATA_ROOT, RUN_ROOT
from reachproof.lab.netns import create_netns, netns_path, run_in_netns
from reachproof.lab.state import state_dir

VERSION = "26.9.6"
PINS = (
    f"backend.ai-manager=={VERSION}",
    f"backend.ai-client=={VERSION}",
    f"backend.ai-agent=={VERSION}",
)
DEFAULT_CACHE = Path(os.environ.get("REACHPROOF_CACHE", "/var/cache/reachproof"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# The package-install ports of the install guide; all on the namespace's loopback.
PG_PORT, REDIS_PORT, ETCD_PORT, ETCD_PEER_PORT, API_PORT = 8100, 8110, 8120, 8121, 8081
DOMAIN_ID = "b9e676dc-e23e-54c6-b350-e83fba4127e9"
GROUP_ID = "2de2b969-1d04-48a6-af16-0bc8adb3c831"
SGROUP_ID = "4d1e9b32-90c7-5b32-8f0e-6f470b8ed24a"
REGISTRY_ID = "6a2b3c4d-0000-4000-8000-000000000001"
IMAGE_ROW_ID = "6a2b3c4d-0000-4000-8000-0000000000a1"
IMAGE = "lab.local/lab/python:3.11"
AGENT_ID = "i-labagent1"


@dataclass(frozen=True)
class Key:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class Manager:
    prefix: str
    netns: str
    endpoint: str
    admin: Key  # superadmin: sees every agent
    user: Key  # a plain user of the default domain
    root: Path  # its state directory

    def env(self, key: Key) -> dict[str, str]:
        """The environment a Backend.AI client (or `reachproof discover`) reads its key from."""
        return {"BACKEND_ACCESS_KEY": key.access_key, "BACKEND_SECRET_KEY": key.secret_key}


def python313() -> Path:
    """The Python 3.13 Backend.AI 26.9 requires (`>=3.13,<3.14`): pyenv's, as these machines
    carry it (Debian 12 has none)."""
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv"), "/root/.pyenv"]
    for root in filter(None, roots):
        for found in sorted(Path(root, "versions").glob("3.13.*/bin/python3")):
            return found
    raise PrerequisiteError(
        "Backend.AI 26.9 needs Python 3.13 (pyenv's versions/3.13.*/bin/python3): none found"
    )


def ensure_venv(cache: Path = DEFAULT_CACHE) -> Path:
    """The pinned venv, created once under `cache` (outside the project's .venv)."""
    import fcntl

    venv = cache / f"bai-venv-{VERSION}"
    marker = venv / "reachproof-pins.txt"
    wanted = "\n".join(PINS) + "\n"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"bai-venv-{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once: one installs, one waits
        if marker.is_file() and marker.read_text() == wanted:
            return venv
        if not (venv / "bin/pip").exists():
            shutil.rmtree(venv, ignore_errors=True)  # a half-made one
            _run(["nice", "-n", "10", str(python313()), "-m", "venv", str(venv)], "create the venv")
        # Pins added later install into the venv there is; those already there are kept.
        pip = [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", *PINS]
        _run(["nice", "-n", "10", *pip], f"pip install {' '.join(PINS)}", timeout=900)
        marker.write_text(wanted)
    return venv


def _run(
    argv: Sequence[str],
    what: str,
    timeout: float = 120,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=None if env is None else os.environ | env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"cannot {what}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise LabError(f"cannot {what} (exit {done.returncode}):\n{tail}")
    return done.stdout


def _key() -> Key:
    upper = string.ascii_uppercase + string.digits
    access = "AKIA" + "".join(secrets.choice(upper) for _ in range(16))
    return Key(access, secrets.token_urlsafe(30)[:40])


def fixtures(admin: Key, user: Key) -> dict[str, object]:
    """The initial data: one domain, group and scaling group, a superadmin and a user."""
    admin_id, user_id = str(uuid.uuid4()), str(uuid.uuid4())
    users = []
    for uid, name, role in ((admin_id, "admin", "superadmin"), (user_id, "user", "user")):
        users.append(
            {
                "uuid": uid,
                "username": name,
                "email": f"{name}@lab.invalid",
                "password": secrets.token_urlsafe(16),
                "need_password_change": False,
                "full_name": name,
                "description": "reachproof lab",
                "status": "active",
                "status_info": "admin-requested",
                "domain_name": "default",
                "domain_id": DOMAIN_ID,
                "resource_policy": "default",
                "role": role,
            }
        )
    keypairs = [
        {
            "access_key": key.access_key,
            "secret_key": key.secret_key,
            "is_active": True,
            "resource_policy": "default",
            "rate_limit": 30000,
            "num_queries": 0,
            "is_admin": role == "superadmin",
            "is_default": True,
            "user": uid,
        }
        for key, uid, role in ((admin, admin_id, "superadmin"), (user, user_id, "user"))
    ]
    return {
        "domains": [
            {
                "id": DOMAIN_ID,
                "name": "default",
                "description": "The default domain",
                "is_active": True,
                "total_resource_slots": {},
                "allowed_vfolder_hosts": {},
                "allowed_docker_registries": [],
            }
        ],
        "user_resource_policies": [
            {
                "name": "default",
                "max_vfolder_count": 0,
                "max_quota_scope_size": -1,
                "max_session_count_per_model_session": 10,
            }
        ],
        "project_resource_policies": [
            {
                "name": "default",
                "max_vfolder_count": 0,
                "max_quota_scope_size": -1,
                "max_network_count": 3,
            }
        ],
        "groups": [
            {
                "id": GROUP_ID,
                "name": "default",
                "description": "The default user group",
                "is_active": True,
                "domain_name": "default",
                "resource_policy": "default",
                "total_resource_slots": {},
                "allowed_vfolder_hosts": {},
                "type": "general",
            }
        ],
        "scaling_groups": [
            {
                "id": SGROUP_ID,
                "name": "default",
                "description": "The default agent scaling group",
                "is_active": True,
                "is_default": True,
                "driver": "static",
                "driver_opts": {},
                "scheduler": "fifo",
                "scheduler_opts": {},
                # Where this group's AppProxy coordinator is (none runs in this lab yet).
                "wsproxy_addr": "http://127.0.0.1:10200",
                "wsproxy_api_token": secrets.token_urlsafe(16),
            }
        ],
        "sgroups_for_domains": [{"resource_group_id": SGROUP_ID, "domain_id": DOMAIN_ID}],
        "users": users,
        "association_groups_users": [
            {"group_id": GROUP_ID, "user_id": uid} for uid in (admin_id, user_id)
        ],
        "keypair_resource_policies": [
            {
                "name": "default",
                "is_default": True,
                "default_for_unspecified": "UNLIMITED",
                "total_resource_slots": {},
                "max_session_lifetime": 0,
                "max_concurrent_sessions": 5,
                "max_containers_per_session": 8,
                "idle_timeout": 3600,
                "allowed_vfolder_hosts": {},
            }
        ],
        "keypairs": keypairs,
        # The slot types of the manager's fixtures/manager/example-resource-slot-types.json:
        # without them no agent serves a slot and every session is refused.
        "resource_slot_types": [
            {
                "uuid": "eff6619c-a85c-40f4-ae59-608b0f683b4f",
                "slot_name": "cpu",
                "slot_type": "count",
                "required": True,
                "display_name": "CPU",
                "description": "CPU",
                "display_unit": "Core",
                "display_icon": "cpu",
                "number_format": {"binary": False, "round_length": 0},
                "rank": 100,
            },
            {
                "uuid": "9d1a589e-2a78-491e-97d0-32d2a0079564",
                "slot_name": "mem",
                "slot_type": "bytes",
                "required": True,
                "display_name": "RAM",
                "description": "Memory",
                "display_unit": "GiB",
                "display_icon": "ram",
                "number_format": {"binary": True, "round_length": 0},
                "rank": 200,
            },
        ],
        # An image record as `image rescan` of a registry would write it. No registry runs
        # here and no such image exists on the agent: a session is scheduled and placed (what
        # discovery reads) but its containers are never started.
        "container_registries": [
            {
                "id": REGISTRY_ID,
                "url": "http://127.0.0.1:5000",
                "registry_name": "lab.local",
                "type": "local",
                "project": "lab",
                "is_global": True,
            }
        ],
        "images": [
            {
                "id": IMAGE_ROW_ID,
                "name": IMAGE,
                "project": "lab",
                "image": "lab/python",
                "tag": "3.11",
                "registry": "lab.local",
                "registry_id": REGISTRY_ID,
                "architecture": "x86_64",
                "config_digest": "sha256:" + "0" * 64,
                "size_bytes": 1,
                "is_local": True,
                "type": "compute",
                "status": "ALIVE",
                "labels": {
                    "ai.backend.kernelspec": "1",
                    "ai.backend.features": "batch",
                    "ai.backend.base-distro": "debian12",
                    "ai.backend.runtime-type": "python",
                    "ai.backend.runtime-path": "/usr/bin/python3",
                    "ai.backend.resource.min.cpu": "1",
                    "ai.backend.resource.min.mem": "256m",
                },
                "resources": {
                    "cpu": {"min": "1", "max": None},
                    "mem": {"min": "256m", "max": None},
                },
            }
        ],
    }


def fixture_users(path: Path) -> list[dict[str, str]]:
    users: list[dict[str, str]] = json.loads(path.read_text())["users"]
    return users


MANAGER_TOML = """\
[etcd]
namespace = "local"
addr = {{ host = "127.0.0.1", port = {etcd} }}
user = ""
password = ""

[db]
type = "postgresql"
addr = {{ host = "127.0.0.1", port = {pg} }}
name = "backend"
user = "postgres"
password = ""

[manager]
num-proc = 1
service-addr = {{ host = "127.0.0.1", port = {api} }}
ssl-enabled = false
heartbeat-timeout = 40.0
rpc-auth-manager-keypair = "manager.key_secret"
pid-file = "manager.pid"
disabled-plugins = []
hide-agents = true
distributed-lock = "filelock"

[docker-registry]
ssl-verify = false

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "simple"

[debug]
enabled = false
"""

ALEMBIC_INI = """\
[alembic]
script_location = ai.backend.manager.models:alembic
sqlalchemy.url = postgresql+asyncpg://postgres:@127.0.0.1:{pg}/backend

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""


def _psql(netns: str, database: str, sql: str, what: str) -> str:
    """One statement through psql, as the postgres user, inside `netns`; its rows unaligned."""
    return _run(
        ["nsenter", f"--net={netns_path(netns)}", "runuser", "-u", "postgres", "--",
         str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres",
         "-d", database, "-qAtc", sql],
        what,
    )  # fmt: skip


def _daemon(
    netns: str,
    argv: Sequence[str],
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Start `argv` inside `netns` in its own session (no terminal, no parent to wait for)."""
    with log.open("ab") as out:
        subprocess.Popen(
            ["nsenter", f"--net={netns_path(netns)}", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else os.environ | env,
            cwd=cwd,
        )


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(netns: str, port: int, what: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run_in_netns(netns, _listening, port):
            return
        time.sleep(0.3)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
    raise LabError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g} s:\n{tail}")


def _get_root(port: int) -> object:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as response:
        return json.loads(response.read())


def start_manager(prefix: str, venv: Path, timeout: float = 180.0) -> Manager:
    """Bring up PostgreSQL, etcd, Redis and the manager in namespace PREFIX-mgmt; returns when
    the manager's API answers `GET /`. On any failure the caller tears the lab down."""
    netns = f"{prefix}-mgmt"
    root = state_dir(prefix) / "bai"
    for sub in ("pg", "etcd", "redis", "manager"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    create_netns(netns)
    _run(["ip", "-n", netns, "link", "set", "lo", "up"], "bring up the loopback")
    pg = root / "pg"
    shutil.chown(pg, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    _run(
        ["nice", "-n", "10", *as_pg, str(PG_BIN / "initdb"), "-D", str(pg / "data"), "-U",
         "postgres", "--auth=trust", "-E", "UTF8"],
        "initialise PostgreSQL",
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {PG_PORT} -k {pg} -c fsync=off"
    _run(
        ["nsenter", f"--net={netns_path(netns)}", *as_pg, str(PG_BIN / "pg_ctl"), "-D",
         str(pg / "data"), "-l", str(pg / "pg.log"), "-o", options, "-w", "start"],
        "start PostgreSQL",
    )  # fmt: skip
    etcd = root / "etcd"
    _daemon(
        netns,
        ["etcd", "--name", "lab", "--data-dir", str(etcd / "data"),
         "--listen-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
         "--advertise-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
         "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
         "--initial-cluster", f"lab=http://127.0.0.1:{ETCD_PEER_PORT}"],
        etcd / "etcd.log",
    )  # fmt: skip
    redis = root / "redis"
    _daemon(
        netns,
        ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--dir", str(redis),
         "--save", "", "--appendonly", "no"],
        redis / "redis.log",
    )  # fmt: skip
    _wait_port(netns, ETCD_PORT, "etcd", etcd / "etcd.log", 30)
    _wait_port(netns, REDIS_PORT, "redis-server", redis / "redis.log", 30)
    in_ns = ["nsenter", f"--net={netns_path(netns)}"]
    _psql(netns, "postgres", "CREATE DATABASE backend", "create the database")
    mgr = root / "manager"
    (mgr / "manager.toml").write_text(MANAGER_TOML.format(etcd=ETCD_PORT, pg=PG_PORT, api=API_PORT))
    (mgr / "alembic.ini").write_text(ALEMBIC_INI.format(pg=PG_PORT))
    cli = [*in_ns, "nice", "-n", "10", str(venv / "bin/backend.ai"), "mgr", "-f", "manager.toml"]
    _run([*cli, "generate-rpc-keypair", ".", "manager"], "generate the RPC keypair", cwd=mgr)
    _run([*cli, "schema", "oneshot"], "create the manager's schema", cwd=mgr, timeout=300)
    admin, user = _key(), _key()
    fixture = mgr / "fixtures.json"
    fixture.write_text(json.dumps(fixtures(admin, user), indent=1))
    fixture.chmod(0o600)
    _run([*cli, "fixture", "populate", str(fixture)], "populate the fixtures", cwd=mgr)
    # 26.9 checks project membership in its RBAC graph, not in association_groups_users:
    # the superadmin's own sessions need the edge project → user there.
    admin_uuid = next(u["uuid"] for u in fixture_users(fixture) if u["role"] == "superadmin")
    _psql(
        netns,
        "backend",
        "INSERT INTO entity_memberships (virtual_entity_id, member_entity_id) "
        "SELECT p.id, u.id FROM virtual_entities p, virtual_entities u "
        f"WHERE p.entity_type = 'project' AND p.entity_id = '{GROUP_ID}' "
        f"AND u.entity_type = 'user' AND u.entity_id = '{admin_uuid}' ON CONFLICT DO NOTHING",
        "make the superadmin a member of the default project",
    )
    _run(
        [*cli, "etcd", "put", "config/redis/addr", f"127.0.0.1:{REDIS_PORT}"],
        "configure Redis in etcd",
        cwd=mgr,
    )
    no_docker = f"unix://{mgr / 'no-docker-here.sock'}"
    _daemon(
        netns,
        ["nice", "-n", "5", str(venv / "bin/python"), "-m", "ai.backend.manager.server",
         "-f", str(mgr / "manager.toml")],
        mgr / "manager.log",
        env={"DOCKER_HOST": no_docker},
        cwd=mgr,
    )  # fmt: skip
    _wait_port(netns, API_PORT, "the manager", mgr / "manager.log", timeout)
    answer = run_in_netns(netns, _get_root, API_PORT)
    if not isinstance(answer, dict) or answer.get("manager") != VERSION:
        raise LabError(f"the manager's GET / answered {answer!r}, expected manager {VERSION}")
    return Manager(prefix, netns, f"http://127.0.0.1:{API_PORT}", admin, user, root)


AGENT_TOML = """\
[etcd]
namespace = "local"
addr = {{ host = "127.0.0.1", port = {etcd} }}
user = ""
password = ""

[agent]
mode = "docker"
backend = "docker"
rpc-listen-addr = {{ host = "127.0.0.1", port = 6001 }}
id = "{agent_id}"
initial-resource-group-name = "default"
pid-file = "{root}/agent.pid"
ipc-base-path = "{root}/ipc"
var-base-path = "{root}/var"
image-commit-path = "{root}/commit"
event-loop = "asyncio"

[container]
port-range = [30000, 31000]
kernel-uid = 1000
kernel-gid = 1000
bind-host = "127.0.0.1"
stats-type = "docker"
sandbox-type = "docker"
jail-args = []
scratch-type = "hostdir"
scratch-root = "{root}/scratches"
scratch-size = "1G"

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "simple"

[resource]
reserved-cpu = 0
reserved-mem = "256M"
reserved-disk = "1G"

[debug]
enabled = false
"""


def agent_daemon(manager: Manager) -> Dockerd:
    """The agent's own dockerd (lab/dockerd.py), in the management namespace for now. Its
    directories and cgroup are those of the Docker runtime's agent 1 (dockerlab._daemon), so
    `lab down` finds and removes it (dockerlab.stop_compute) also after a crash."""
    prefix = manager.prefix
    return Dockerd(
        netns=manager.netns,
        hostname="agent1",
        run_dir=RUN_ROOT / prefix / "docker" / "agent1",
        data_dir=DATA_ROOT / prefix / "agent1",
        cgroup_parent=f"reachproof-{prefix}-agent1",
    )


def start_agent(manager: Manager, venv: Path, timeout: float = 240.0) -> str:
    """backend.ai-agent (the same pinned venv) on its own dockerd; returns its id once the
    manager lists it ALIVE. state.teardown removes both."""
    daemon = agent_daemon(manager)
    dockerd.start(daemon, timeout=120)
    root = manager.root / "agent1"
    for sub in ("ipc", "var", "scratches", "commit"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "agent.toml").write_text(
        AGENT_TOML.format(etcd=ETCD_PORT, agent_id=AGENT_ID, root=root)
    )
    _daemon(
        manager.netns,
        ["nice", "-n", "5", str(venv / "bin/python"), "-m", "ai.backend.agent.server",
         "-f", str(root / "agent.toml")],
        root / "agent.log",
        env={"DOCKER_HOST": daemon.host},
        cwd=root,
    )  # fmt: skip
    query = f"SELECT status FROM agents WHERE id = '{AGENT_ID}'"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _psql(manager.netns, "backend", query, "read the agents table").strip() == "ALIVE":
            return AGENT_ID
        time.sleep(2)
    log = root / "agent.log"
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
    raise LabError(f"backend.ai-agent did not register within {timeout:g} s:\n{tail}")
