"""The lab's ssh inventory and the README's ssh example (pure): what a remote shell makes of
every vantage command, and that the README shows the ssh invocation the lab tests run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from reachproof.engine.vantage import worker_argv
from reachproof.inventory.dump import dump_inventory
from reachproof.inventory.load import parse_inventory
from reachproof.inventory.model import Inventory, Transport, Vantage
from reachproof.lab.inventory import CONTAINER_PATH, lab_inventory, ssh_hosts, ssh_inventory
from reachproof.lab.sshd import SshFiles, ssh_client_argv
from reachproof.lab.targets import fault_targets
from reachproof.lab.topology import LabOptions, Topology, build_topology
from reachproof.worker.protocol import BOOTSTRAP

README = Path(__file__).resolve().parents[3] / "README.md"
FILES = SshFiles(Path("/run/reachproof/lab/rp/ssh"))


def _far_end(argv: list[str]) -> list[str]:
    """What runs at the far end of `ip netns exec NS ssh … DEST remote…`: ssh joins the words
    after the destination with spaces and the remote shell splits them again."""
    destination = next(i for i, word in enumerate(argv) if word.startswith("root@"))
    return shlex.split(" ".join(argv[destination + 1 :]))


def _lab() -> tuple[Topology, Inventory, Inventory]:
    topo = build_topology(LabOptions.create(sessions="single-node:1,multi-node:3"))
    netns = lab_inventory(topo, fault_targets(topo))
    return topo, netns, ssh_inventory(topo, netns, FILES, "ssh.yaml")


def test_every_vantage_is_ssh_from_inside_the_lab_and_survives_the_remote_shell() -> None:
    topo, netns, ssh = _lab()
    assert [v.name for v in ssh.vantages] == [v.name for v in netns.vantages]
    assert ssh.hosts == netns.hosts
    served = {h.netns: h for h in ssh_hosts(topo)}
    for before, after in zip(netns.vantages, ssh.vantages, strict=True):
        assert after.transport is Transport.EXEC and after.through_remote_shell
        assert not after.env  # the container's environment travels in the command
        argv = worker_argv(after)
        assert argv[:3] == ["ip", "netns", "exec"] and argv[4] == "ssh"
        server = served[argv[3]]  # the client runs in the namespace of the sshd it logs in to
        assert argv[4:19] == ssh_client_argv(
            str(FILES.client_key), str(FILES.known_hosts), f"root@{server.address}"
        )
        far = _far_end(argv)
        if before.netns in served:
            assert before.netns == server.netns
            assert far == ["python3", "-u", "-c", BOOTSTRAP]
        else:
            env = [f"{k}={v}" for k, v in (("PATH", CONTAINER_PATH), *before.env)]
            assert far == ["ip", "netns", "exec", before.netns, "env", "-i", *env,
                           "python3", "-u", "-c", BOOTSTRAP]  # fmt: skip


def test_the_ssh_inventory_round_trips_through_yaml() -> None:
    _, _, ssh = _lab()
    text = dump_inventory(ssh)
    assert "remote_shell: true" in text
    assert parse_inventory(text).vantages == ssh.vantages


def test_the_readme_example_uses_the_ssh_invocation_the_lab_tests_run() -> None:
    text = README.read_text().split("### Checking a real deployment", 1)[1].split("\n### ")[0]
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    inventory = parse_inventory(block.group(1) + "\n", "README.md")
    commands = [v.command for v in inventory.vantages if v.command[:1] == ("ssh",)]
    assert len(commands) >= 2
    for command in commands:
        identity = command[command.index("-i") + 1]
        known = next(w for w in command if w.startswith("UserKnownHostsFile="))
        destination = next(i for i, w in enumerate(command) if "@" in w)
        expected = ssh_client_argv(identity, known.split("=", 1)[1], command[destination])
        assert list(command[: destination + 1]) == expected
        assert worker_argv(Vantage("v", Transport.EXEC, command=command))[-1] == shlex.join(
            ["python3", "-u", "-c", BOOTSTRAP]
        )
