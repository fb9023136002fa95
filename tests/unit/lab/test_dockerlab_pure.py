"""The docker runtime's pure parts: the daemon's command line, the agent firewall, names."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachproof.errors import LabError, UsageError
from reachproof.lab.dockerd import Dockerd
from reachproof.lab.dockerlab import agent_daemon, container_plan, exec_command, network_name
from reachproof.lab.image import rootfs_command
from reachproof.lab.nft import docker_agent_ruleset
from reachproof.lab.topology import LabOptions, Topology, build_topology


def _topo() -> Topology:
    return build_topology(LabOptions.create(3, prefix="dku", runtime="docker"))


def test_dockerd_runs_inside_the_namespace_with_its_own_paths() -> None:
    topo = _topo()
    daemon = agent_daemon(topo, topo.agent(2))
    argv = daemon.command()
    assert argv[:2] == ["nsenter", "--net=/run/netns/dku-agent2"]
    assert argv[2:4] == ["unshare", "--uts"]
    for flag, value in (
        ("--data-root", "/var/lib/reachproof/lab/dku/agent2"),
        ("--exec-root", "/run/reachproof/lab/dku/docker/agent2/exec"),
        ("--cgroup-parent", "/reachproof-dku-agent2"),
        ("--bip", "172.17.2.1/24"),
    ):
        assert argv[argv.index(flag) + 1] == value
    assert "--icc=false" in argv


def test_a_daemon_never_runs_outside_a_named_namespace() -> None:
    with pytest.raises(LabError):
        Dockerd("../x", "h", Path("/tmp/r"), Path("/tmp/d"), "cg").command()


def test_agent_firewall_keeps_containers_out_of_management_but_lets_replies_through() -> None:
    topo = _topo()
    text = docker_agent_ruleset(topo, topo.agent(1))
    forward = text[text.index("chain forward") :]
    assert forward.index("ct state established,related accept") < forward.index(
        "ip daddr 10.0.1.0/24 drop"
    )
    assert "DOCKER" not in text  # Docker's chains are dockerd's alone
    assert "policy drop" in text[: text.index("chain forward")]


def test_names_vantages_and_plans() -> None:
    topo = _topo()
    s1, s2 = topo.sessions[0], topo.sessions[1]
    assert network_name(s1) == "bai-singlenode-s1"
    assert network_name(s2) == "bai-multinode-s2"
    main1 = s1.containers[0]
    assert exec_command(topo, main1) == (
        "docker", "-H", "unix:///run/reachproof/lab/dku/docker/agent"
        f"{main1.agent}/docker.sock", "exec", "-i", "s1-main1",
    )  # fmt: skip
    ports = {item.port for item in container_plan(main1, with_app=True).listeners}
    assert ports == {7681, 8080}  # 2200 is the image's dropbear, not a stand-in


def test_image_recipe_is_debian_minbase_with_python_and_dropbear() -> None:
    argv = rootfs_command(Path("/x.tar"))
    assert argv[0] == "mmdebstrap" and "--variant=minbase" in argv
    include = next(a for a in argv if a.startswith("--include="))
    assert {"python3", "dropbear-bin", "openssh-client"} <= set(include[10:].split(","))


def test_a_fault_exists_only_on_the_runtimes_the_table_names() -> None:
    LabOptions.create(faults=("cluster-env-wrong",), runtime="docker")
    with pytest.raises(UsageError, match="does not exist on --runtime docker"):
        LabOptions.create(faults=("bridge-filtered",), runtime="docker")
    with pytest.raises(UsageError, match="--runtime must be netns or docker"):
        LabOptions.create(runtime="k8s")


def test_cross_session_on_docker_leaves_icc_on_for_one_agent_only() -> None:
    from reachproof.lab.targets import fault_targets

    topo = build_topology(
        LabOptions.create(3, faults=("cross-session",), prefix="dku", runtime="docker")
    )
    targets = fault_targets(topo)
    icc = {a.number: "--icc=false" in agent_daemon(topo, a, targets).args for a in topo.agents}
    assert icc == {a.number: a.number != targets.cross_session_agent for a in topo.agents}
