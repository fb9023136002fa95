"""The cluster environment contract (backend-ai-facts.md) as a pure check."""

from __future__ import annotations

import json

import pytest

from reachproof.checks.cluster_env import cluster_env_problems, training_env_problems

HOSTS = ["main1", "sub1", "sub2", "sub3"]


def env_for(host: str, hosts: list[str] = HOSTS, base: int = 29500) -> dict[str, str]:
    """The environment Backend.AI documents for `host` of a session with `hosts`."""
    rank = hosts.index(host)
    role = host.rstrip("0123456789")
    subs = sum(1 for h in hosts if h.startswith("sub"))
    env = {
        "BACKENDAI_CLUSTER_SIZE": str(len(hosts)),
        "BACKENDAI_CLUSTER_HOSTS": ",".join(hosts),
        "BACKENDAI_CLUSTER_REPLICAS": "main:1" + (f",sub:{subs}" if subs else ""),
        "BACKENDAI_CLUSTER_HOST": host,
        "BACKENDAI_CLUSTER_IDX": host[len(role) :],
        "BACKENDAI_CLUSTER_ROLE": role,
        "BACKENDAI_CLUSTER_LOCAL_RANK": str(rank),
    }
    if len(hosts) > 1:
        env["MASTER_ADDR"] = hosts[0]
        env["MASTER_PORT"] = str(base)
        env["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": [f"{h}:{base + i}" for i, h in enumerate(hosts)]},
                "task": {"type": "worker", "index": rank},
            }
        )
    return env


@pytest.mark.parametrize("host", HOSTS)
def test_documented_environment_holds(host: str) -> None:
    env = env_for(host)
    expected = {"hosts": ",".join(HOSTS), "host": host, "local_rank": str(HOSTS.index(host))}
    assert cluster_env_problems(env, expected) == []
    assert training_env_problems(env) == []


def test_single_container_session() -> None:
    env = env_for("main1", ["main1"])
    assert cluster_env_problems(env) == []
    assert training_env_problems(env) == []
    env["MASTER_ADDR"] = "main1"
    assert training_env_problems(env) == ["MASTER_ADDR is set in a single-container session"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"BACKENDAI_CLUSTER_SIZE": "3"}, "BACKENDAI_CLUSTER_SIZE=3 but"),
        ({"BACKENDAI_CLUSTER_SIZE": "four"}, "not an integer"),
        ({"BACKENDAI_CLUSTER_REPLICAS": "main:1,sub:2"}, "sums to 3"),
        ({"BACKENDAI_CLUSTER_REPLICAS": "main=1"}, "is not role:count"),
        ({"BACKENDAI_CLUSTER_HOST": "sub9"}, "is not in BACKENDAI_CLUSTER_HOSTS"),
        ({"BACKENDAI_CLUSTER_LOCAL_RANK": "0"}, "LOCAL_RANK=0 but sub2 is at position 2"),
        ({"BACKENDAI_CLUSTER_IDX": "1"}, "does not match"),
        ({"BACKENDAI_CLUSTER_ROLE": "worker"}, "is not in BACKENDAI_CLUSTER_REPLICAS"),
        ({"BACKENDAI_CLUSTER_HOSTS": "main1,sub1,sub2,sub2"}, "lists a host twice"),
    ],
)
def test_inconsistencies_are_named(change: dict[str, str], fragment: str) -> None:
    env = env_for("sub2") | change
    problems = cluster_env_problems(env)
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("missing", ["BACKENDAI_CLUSTER_SIZE", "BACKENDAI_CLUSTER_LOCAL_RANK"])
def test_missing_variable(missing: str) -> None:
    env = env_for("sub1")
    del env[missing]
    assert f"{missing} is not set" in cluster_env_problems(env)


def test_disagreement_with_inventory() -> None:
    problems = cluster_env_problems(env_for("sub1"), {"host": "sub2"})
    assert problems == ["host is 'sub1' here but the inventory says 'sub2'"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"MASTER_ADDR": "sub1"}, "is not the first host main1"),
        ({"MASTER_PORT": "1234"}, "but the base port is 29500"),
        ({"WORLD_SIZE": "4"}, "WORLD_SIZE is set"),
        ({"RANK": "0"}, "RANK is set"),
        ({"TF_CONFIG": "{not json"}, "TF_CONFIG is not JSON"),
    ],
)
def test_training_variables(change: dict[str, str], fragment: str) -> None:
    problems = training_env_problems(env_for("sub1") | change)
    assert any(fragment in p for p in problems), problems


def test_tf_config_ports_follow_the_base_port() -> None:
    env = env_for("sub1", base=40000)
    assert any("but the base port is 29500" in p for p in training_env_problems(env))
    env["BACKENDAI_DIST_MASTER_PORT"] = "40000"
    assert training_env_problems(env) == []


def test_tf_config_task_index_is_local_rank() -> None:
    env = env_for("sub1")
    config = json.loads(env["TF_CONFIG"])
    config["task"]["index"] = 0
    env["TF_CONFIG"] = json.dumps(config)
    assert any("task.index=0" in p for p in training_env_problems(env))


def test_missing_derived_variables() -> None:
    env = env_for("sub1")
    del env["TF_CONFIG"]
    assert "TF_CONFIG is not set" in training_env_problems(env)
