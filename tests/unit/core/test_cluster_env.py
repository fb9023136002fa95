"""The cluster environment contract (backend-ai-facts.md) as a pure check."""

from __future__ import annotations

import json

import pytest

from reachproof.checks.cluster_env import (
    TrainingFindings,
    cluster_env_problems,
    training_env_findings,
)

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
    assert training_env_findings(env) == TrainingFindings()


def test_single_container_session() -> None:
    env = env_for("main1", ["main1"])
    assert cluster_env_problems(env) == []
    assert training_env_findings(env) == TrainingFindings()
    env["MASTER_ADDR"] = "main1"
    assert training_env_findings(env) == TrainingFindings(
        problems=("MASTER_ADDR is set in a single-container session",)
    )


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


def _tf_config(env: dict[str, str], **edit: object) -> dict[str, str]:
    config = json.loads(env["TF_CONFIG"])
    for key, value in edit.items():
        section, _, field = key.partition("_")
        config[section][field] = value
    return env | {"TF_CONFIG": json.dumps(config)}


SUB1 = env_for("sub1")
# (environment of sub1, which kind of finding, a fragment of it). Contradictions are wrong
# whatever the release (they FAIL an advisory rule); problems are what a release without the
# derived variables, or a user's own value, explains (advisory: WARN).
TRAINING_CASES = [
    ("master-addr", SUB1 | {"MASTER_ADDR": "sub1"}, "contradiction", "not the first host main1"),
    (
        "master-port-vs-tf-config",
        SUB1 | {"MASTER_PORT": "1234"},
        "contradiction",
        "TF_CONFIG base port 29500 but MASTER_PORT=1234",
    ),
    (
        "master-port-vs-declared",
        SUB1 | {"BACKENDAI_DIST_MASTER_PORT": "29500", "MASTER_PORT": "1234"},
        "contradiction",
        "MASTER_PORT=1234 but BACKENDAI_DIST_MASTER_PORT=29500",
    ),
    (
        "tf-config-vs-declared",
        env_for("sub1", base=40000)
        | {"BACKENDAI_DIST_MASTER_PORT": "41000", "MASTER_PORT": "41000"},
        "contradiction",
        "TF_CONFIG base port 40000 but MASTER_PORT=41000",
    ),
    ("task-index", _tf_config(SUB1, task_index=0), "contradiction", "task.index=0 but"),
    ("task-type", _tf_config(SUB1, task_type="chief"), "contradiction", "task.type is not"),
    (
        "worker-hosts",
        _tf_config(SUB1, cluster_worker=["main1:29500", "sub2:29501", "sub1:29502", "sub3:29503"]),
        "contradiction",
        "not BACKENDAI_CLUSTER_HOSTS",
    ),
    (
        "worker-ports",
        _tf_config(SUB1, cluster_worker=["main1:29500", "sub1:29500", "sub2:29502", "sub3:29503"]),
        "contradiction",
        "do not follow their base port 29500",
    ),
    ("not-json", SUB1 | {"TF_CONFIG": "{not json"}, "contradiction", "TF_CONFIG is not JSON"),
    (
        "declared-not-int",
        SUB1 | {"BACKENDAI_DIST_MASTER_PORT": "x"},
        "contradiction",
        "is not an integer",
    ),
    ("world-size", SUB1 | {"WORLD_SIZE": "4"}, "problem", "WORLD_SIZE is set"),
    ("rank", SUB1 | {"RANK": "0"}, "problem", "RANK is set"),
    (
        "master-port-default",
        {k: v for k, v in SUB1.items() if k != "TF_CONFIG"} | {"MASTER_PORT": "1234"},
        "problem",
        "MASTER_PORT=1234 but the base port is 29500",
    ),
    (
        "own-base-port",
        {k: v for k, v in env_for("sub1", base=40000).items() if k != "MASTER_PORT"},
        "problem",
        "TF_CONFIG base port 40000 but the default base port is 29500",
    ),
    (
        "absent",
        {k: v for k, v in SUB1.items() if k != "TF_CONFIG"},
        "problem",
        "TF_CONFIG is not set",
    ),
]


@pytest.mark.parametrize(
    ("env", "kind", "fragment"),
    [case[1:] for case in TRAINING_CASES],
    ids=[case[0] for case in TRAINING_CASES],
)
def test_training_variables(env: dict[str, str], kind: str, fragment: str) -> None:
    findings = training_env_findings(env)
    found = findings.contradictions if kind == "contradiction" else findings.problems
    other = findings.problems if kind == "contradiction" else findings.contradictions
    assert any(fragment in f for f in found), findings
    assert not any(fragment in f for f in other), findings


def test_tf_config_ports_follow_the_base_port() -> None:
    env = env_for("sub1", base=40000)
    findings = training_env_findings(env)
    assert findings.contradictions == ()
    assert any("but the base port is 29500" in p for p in findings.problems)
    env["BACKENDAI_DIST_MASTER_PORT"] = "40000"
    assert training_env_findings(env) == TrainingFindings()
