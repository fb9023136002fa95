"""The Backend.AI cluster environment contract (backend-ai-facts.md, seeds/000 and 004).

`cluster_env_problems` checks the BACKENDAI_CLUSTER_* variables for presence and internal
consistency and, when the inventory's view of the container is given, agreement with it.
`training_env_findings` checks the derived MASTER_ADDR / MASTER_PORT / TF_CONFIG variables and
tells contradictions (wrong whatever the release) from absences. Each returns human-readable
findings; none means the contract holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

CLUSTER_VARS = (
    "BACKENDAI_CLUSTER_SIZE",
    "BACKENDAI_CLUSTER_HOSTS",
    "BACKENDAI_CLUSTER_REPLICAS",
    "BACKENDAI_CLUSTER_HOST",
    "BACKENDAI_CLUSTER_IDX",
    "BACKENDAI_CLUSTER_ROLE",
    "BACKENDAI_CLUSTER_LOCAL_RANK",
)
DERIVED_VARS = ("MASTER_ADDR", "MASTER_PORT", "TF_CONFIG")
# Launchers such as torchrun set these per process; the container must not pre-set them.
LAUNCHER_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
DEFAULT_MASTER_PORT = 29500

# Keys of the `expected` mapping: the inventory's view of this container.
EXPECTED_KEYS = ("hosts", "host", "role", "idx", "local_rank")


def _int(env: Mapping[str, str], name: str, problems: list[str]) -> int | None:
    value = env.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        problems.append(f"{name}={value!r} is not an integer")
        return None


def _replicas(text: str, problems: list[str]) -> dict[str, int] | None:
    counts: dict[str, int] = {}
    for pair in text.split(","):
        role, sep, count = pair.partition(":")
        if not sep or not role or not count.isdigit():
            problems.append(f"BACKENDAI_CLUSTER_REPLICAS={text!r}: {pair!r} is not role:count")
            return None
        counts[role] = int(count)
    return counts


def cluster_env_problems(
    env: Mapping[str, str], expected: Mapping[str, str] | None = None
) -> list[str]:
    problems = [f"{name} is not set" for name in CLUSTER_VARS if name not in env]
    size = _int(env, "BACKENDAI_CLUSTER_SIZE", problems)
    idx = _int(env, "BACKENDAI_CLUSTER_IDX", problems)
    rank = _int(env, "BACKENDAI_CLUSTER_LOCAL_RANK", problems)
    hosts_text = env.get("BACKENDAI_CLUSTER_HOSTS")
    hosts = hosts_text.split(",") if hosts_text else []
    host = env.get("BACKENDAI_CLUSTER_HOST")
    role = env.get("BACKENDAI_CLUSTER_ROLE")
    replicas_text = env.get("BACKENDAI_CLUSTER_REPLICAS")
    replicas = _replicas(replicas_text, problems) if replicas_text else None

    if size is not None and hosts_text is not None and size != len(hosts):
        problems.append(
            f"BACKENDAI_CLUSTER_SIZE={size} but BACKENDAI_CLUSTER_HOSTS has {len(hosts)}"
        )
    if replicas is not None and size is not None and sum(replicas.values()) != size:
        problems.append(
            f"BACKENDAI_CLUSTER_REPLICAS={replicas_text} sums to {sum(replicas.values())}, "
            f"not BACKENDAI_CLUSTER_SIZE={size}"
        )
    if len(set(hosts)) != len(hosts):
        problems.append(f"BACKENDAI_CLUSTER_HOSTS={hosts_text} lists a host twice")
    if host is not None and hosts_text is not None:
        if host not in hosts:
            problems.append(f"BACKENDAI_CLUSTER_HOST={host} is not in BACKENDAI_CLUSTER_HOSTS")
        elif rank is not None and hosts.index(host) != rank:
            problems.append(
                f"BACKENDAI_CLUSTER_LOCAL_RANK={rank} but {host} is at position "
                f"{hosts.index(host)} of BACKENDAI_CLUSTER_HOSTS"
            )
    if host is not None and role is not None and idx is not None and host != f"{role}{idx}":
        problems.append(
            f"BACKENDAI_CLUSTER_HOST={host} does not match "
            f"BACKENDAI_CLUSTER_ROLE={role} and BACKENDAI_CLUSTER_IDX={idx}"
        )
    if replicas is not None and role is not None:
        if role not in replicas:
            problems.append(f"BACKENDAI_CLUSTER_ROLE={role} is not in BACKENDAI_CLUSTER_REPLICAS")
        elif idx is not None and not 1 <= idx <= replicas[role]:
            problems.append(
                f"BACKENDAI_CLUSTER_IDX={idx} is outside 1..{replicas[role]} for role {role}"
            )
    if replicas is not None and hosts_text is not None:
        for r, count in replicas.items():
            named = sum(1 for h in hosts if h.rstrip("0123456789") == r)
            if named != count:
                problems.append(
                    f"BACKENDAI_CLUSTER_REPLICAS says {r}:{count} but BACKENDAI_CLUSTER_HOSTS "
                    f"names {named} {r} host(s)"
                )
    if expected is not None:
        actual = {
            "hosts": hosts_text,
            "host": host,
            "role": role,
            "idx": env.get("BACKENDAI_CLUSTER_IDX"),
            "local_rank": env.get("BACKENDAI_CLUSTER_LOCAL_RANK"),
        }
        for key in EXPECTED_KEYS:
            want = expected.get(key)
            if want is not None and actual[key] is not None and actual[key] != want:
                problems.append(f"{key} is {actual[key]!r} here but the inventory says {want!r}")
    return problems


@dataclass(frozen=True)
class TrainingFindings:
    """What `training_env_findings` found, in two kinds that a verdict treats differently.

    `contradictions`: variables that contradict each other (TF_CONFIG's base port and
    MASTER_PORT, its task index and BACKENDAI_CLUSTER_LOCAL_RANK, …): wrong whatever release
    the site runs, so they FAIL even where the policy marks the rule advisory.
    `problems`: the derived variables are absent or differ from the derivation's defaults,
    which a release without them (or a user's own value, which wins) explains: advisory.
    """

    contradictions: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def training_env_findings(env: Mapping[str, str]) -> TrainingFindings:
    """The derived distributed-training variables (only for sessions of more than one container).

    A value the user or image set first wins, so a MASTER_PORT other than the default is only
    a problem (the checker cannot tell a user override from a wrong value); two variables
    that cannot both be right are a contradiction.
    """
    problems: list[str] = []
    contradictions: list[str] = []
    hosts_text = env.get("BACKENDAI_CLUSTER_HOSTS")
    if hosts_text is None:
        return TrainingFindings(
            problems=("BACKENDAI_CLUSTER_HOSTS is not set: cannot derive the training variables",)
        )
    hosts = hosts_text.split(",")
    for name in LAUNCHER_VARS:
        if name in env:
            problems.append(f"{name} is set ({env[name]!r}); launchers must set it per process")
    if len(hosts) <= 1:
        problems.extend(
            f"{name} is set in a single-container session" for name in DERIVED_VARS if name in env
        )
        return TrainingFindings(problems=tuple(problems))
    problems.extend(f"{name} is not set" for name in DERIVED_VARS if name not in env)
    if env.get("MASTER_ADDR") not in (None, hosts[0]):
        contradictions.append(
            f"MASTER_ADDR={env['MASTER_ADDR']} is not the first host {hosts[0]} of "
            f"BACKENDAI_CLUSTER_HOSTS"
        )
    declared = env.get("BACKENDAI_DIST_MASTER_PORT")
    base = DEFAULT_MASTER_PORT
    if declared is not None:
        try:
            base = int(declared)
        except ValueError:
            contradictions.append(f"BACKENDAI_DIST_MASTER_PORT={declared!r} is not an integer")
            return TrainingFindings(tuple(contradictions), tuple(problems))
    master_port = env.get("MASTER_PORT")
    if master_port is not None and master_port != str(base):
        if declared is not None:
            contradictions.append(
                f"MASTER_PORT={master_port} but BACKENDAI_DIST_MASTER_PORT={declared}"
            )
        else:
            problems.append(f"MASTER_PORT={master_port} but the base port is {base}")
    if "TF_CONFIG" in env:
        _tf_config(env["TF_CONFIG"], hosts, base, env, contradictions, problems)
    return TrainingFindings(tuple(contradictions), tuple(problems))


def _tf_config(
    text: str,
    hosts: list[str],
    base: int,
    env: Mapping[str, str],
    contradictions: list[str],
    problems: list[str],
) -> None:
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if not isinstance(workers, list):
            raise TypeError(workers)
        pairs = [str(w).rpartition(":") for w in workers]
        names = [name for name, _, _ in pairs]
        ports = [int(port) for _, _, port in pairs]
    except (ValueError, KeyError, TypeError):
        contradictions.append(
            f"TF_CONFIG is not JSON of the form {{cluster: {{worker: [host:port, …]}}, "
            f"task: …}}: {text!r}"
        )
        return
    if names != hosts:
        contradictions.append(
            f"TF_CONFIG cluster.worker names {names}, not BACKENDAI_CLUSTER_HOSTS {hosts}"
        )
    if ports and ports != [ports[0] + i for i in range(len(ports))]:
        contradictions.append(
            f"TF_CONFIG cluster.worker ports {ports} do not follow their base port {ports[0]} "
            "one per host"
        )
    if ports:
        master_port = env.get("MASTER_PORT")
        declared = env.get("BACKENDAI_DIST_MASTER_PORT")
        if master_port is not None and master_port != str(ports[0]):
            contradictions.append(f"TF_CONFIG base port {ports[0]} but MASTER_PORT={master_port}")
        elif declared is not None and declared != str(ports[0]):
            contradictions.append(
                f"TF_CONFIG base port {ports[0]} but BACKENDAI_DIST_MASTER_PORT={declared}"
            )
        elif master_port is None and declared is None and ports[0] != base:
            problems.append(f"TF_CONFIG base port {ports[0]} but the default base port is {base}")
    if not isinstance(task, dict) or task.get("type") != "worker":
        contradictions.append(f"TF_CONFIG task.type is not 'worker': {task!r}")
    elif str(task.get("index")) != env.get("BACKENDAI_CLUSTER_LOCAL_RANK"):
        contradictions.append(
            f"TF_CONFIG task.index={task.get('index')} but "
            f"BACKENDAI_CLUSTER_LOCAL_RANK={env.get('BACKENDAI_CLUSTER_LOCAL_RANK')}"
        )
