"""The docker runtime, ground truth with plain tools (docker, ssh, connect), not the checker.

One lab (2 agents, a single-node and a multi-node session; cost ~45 s with a cached image,
~2 min more the first time the image is built): main1 reaches sub1:2200 by name over the swarm
overlay (sub1 on the other agent), a real `ssh sub1 true` from main1 exits 0 there and on the
bridge, the published app port is reached from the AppProxy and not from the user, and `lab
down` after a SIGKILL of every dockerd and containerd leaves no namespace, daemon, mount,
cgroup or directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from labkit import require_lab, unique_prefix

from reachproof.lab import dockerd
from reachproof.lab.build import build_lab
from reachproof.lab.dockerlab import DATA_ROOT, RUN_ROOT, agent_daemon, container_name
from reachproof.lab.netns import Connect, list_netns, tcp_connect
from reachproof.lab.state import teardown
from reachproof.lab.topology import LabOptions

pytestmark = pytest.mark.lab
require_lab("dockerd", "docker", "mmdebstrap")


def test_docker_lab_ground_truth_and_cleanup_after_sigkill(tmp_path: Path) -> None:
    prefix = unique_prefix("dkt")
    options = LabOptions.create(2, "single-node:2,multi-node:2", prefix=prefix, runtime="docker")
    try:
        handle = build_lab(options, tmp_path / "inventory.yaml")
        topo = handle.topology
        for session in topo.sessions:
            main1, sub1 = session.containers[0], session.containers[1]
            daemon = agent_daemon(topo, topo.agent(main1.agent))
            main = container_name(main1)
            if session.id == "s2":  # the overlay: sub1 runs on the other agent
                assert sub1.agent != main1.agent
                code = 'import socket; socket.create_connection(("sub1", 2200), timeout=5)'
                reach = subprocess.run(
                    daemon.cli("exec", main, "python3", "-c", code),
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
                assert reach.returncode == 0, reach.stderr
            login = subprocess.run(
                daemon.cli("exec", "-u", "work", main, "ssh", sub1.hostname, "true"),
                capture_output=True,
                timeout=30,
                check=False,
            )
            assert login.returncode == 0, (session.id, login.stderr)
        app = next(a for a in topo.apps if a.session == "s1" and a.name == "jupyter")
        agent_ip = str(topo.agent(app.agent).node.addr.v4.ip)
        proxy = tcp_connect(topo.mgmt("appproxy").netns, agent_ip, app.published_port, 3.0)
        user = tcp_connect(topo.user.netns, agent_ip, app.published_port, 1.0)
        assert proxy.state is Connect.OPEN, proxy
        assert user.state is not Connect.OPEN, user
        daemons = [agent_daemon(topo, a) for a in topo.agents]
        pids = set().union(*(dockerd.daemon_pids(d) for d in daemons))
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    finally:
        teardown(prefix)
    assert list_netns(prefix) == ()
    assert not (DATA_ROOT / prefix).exists() and not (RUN_ROOT / prefix).exists()
    for d in daemons:
        assert dockerd.daemon_pids(d) == set()
        assert dockerd.cgroup_pids(d.cgroup_parent) == set()
        assert dockerd.mounts_under((d.run_dir, d.data_dir)) == []
        assert not any(p.joinpath(d.cgroup_parent).exists() for p in dockerd.CGROUP_ROOT.iterdir())
