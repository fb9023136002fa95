"""Vantages over real OpenSSH (root): `lab up --ssh` runs an sshd in every lab host but the
containers; the worker starts through ssh (as root: raw sockets), through an agent's ssh into a
container, and through `sh -c` and nsenter pipes (nsenter passes an argument list on, as
`docker exec` does); `lab down` ends every sshd and its sessions, also after the sshd and the
supervisor were SIGKILLed.

Every probe goes from a lab namespace to lab addresses; ssh clients run inside the namespace
of the sshd they log in to.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from labkit import SSH_PROGRAMS, lab, poll, require_lab

from reachproof.api import Prepared, prepare, run_check
from reachproof.engine.vantage import Worker
from reachproof.inventory.load import load_inventory
from reachproof.inventory.model import Transport, Vantage
from reachproof.lab.build import LabHandle
from reachproof.lab.inventory import ssh_hosts
from reachproof.lab.netns import list_netns, netns_pids
from reachproof.lab.sshd import ssh_files
from reachproof.lab.state import state_dir, supervisor_pid, teardown
from reachproof.policy.compile import compile_plan
from reachproof.verdict import Verdict
from reachproof.worker.bundle import worker_source

pytestmark = pytest.mark.lab
require_lab(*SSH_PROGRAMS)

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "backend-ai.policy"


@pytest.fixture(scope="module")
def ssh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with lab(
        tmp_path_factory.mktemp("ssh"), "ssh", 2, "single-node:2,multi-node:2", ssh=True
    ) as handle:
        yield handle


def _ssh_vantage(handle: LabHandle, name: str) -> Vantage:
    assert handle.ssh_inventory_path is not None
    vantage = load_inventory(handle.ssh_inventory_path).vantage(name)
    assert vantage is not None and vantage.transport is Transport.EXEC
    return vantage


def test_the_worker_starts_over_ssh_as_root_with_raw_sockets(ssh_lab: LabHandle) -> None:
    user = ssh_lab.topology.user.netns

    async def hello() -> tuple[int, bool, bool]:
        worker = await Worker.start(
            _ssh_vantage(ssh_lab, "user"), str(worker_source()), start_timeout=30.0
        )
        try:
            assert worker.hello is not None
            # The far end: a process of the user host's namespace, under its sshd.
            inside = worker.hello.pid in netns_pids([user])
            return worker.hello.uid, worker.hello.raw, inside
        finally:
            await worker.close()

    assert asyncio.run(hello()) == (0, True, True)


def test_check_over_ssh_probes_chains_containers_and_their_environment(
    ssh_lab: LabHandle,
) -> None:
    assert ssh_lab.ssh_inventory_path is not None
    rules = ("R1", "R2", "R10", "R12", "R14", "R15")
    report = run_check(prepare(POLICY, ssh_lab.ssh_inventory_path, rules))
    verdicts = {r.rule_id: r.verdict for r in report.rules}
    assert verdicts == dict.fromkeys(rules, Verdict.PASS), [
        (r.rule_id, r.reason) for r in report.rules
    ]
    assert report.observations and all(o.degraded is None for o in report.observations)


@pytest.mark.parametrize(
    "pipe",
    [
        pytest.param(("sh", "-c", 'exec "$@"', "sh", "ip", "netns", "exec", "{ns}"), id="sh-c"),
        pytest.param(("nsenter", "--net=/run/netns/{ns}", "--"), id="nsenter-as-docker-exec"),
    ],
)
def test_pipes_that_pass_an_argument_list_keep_working(
    ssh_lab: LabHandle, pipe: tuple[str, ...]
) -> None:
    ns = ssh_lab.topology.user.netns
    user = Vantage("user", Transport.EXEC, command=tuple(w.format(ns=ns) for w in pipe))
    assert not user.through_remote_shell
    prepared = prepare(POLICY, ssh_lab.inventory_path, ("R1", "R3"))
    vantages = tuple(user if v.name == "user" else v for v in prepared.inventory.vantages)
    inventory = replace(prepared.inventory, vantages=vantages)
    report = run_check(
        Prepared(prepared.policy, inventory, compile_plan(prepared.policy, inventory))
    )
    assert {r.rule_id: r.verdict for r in report.rules} == {"R1": Verdict.PASS, "R3": Verdict.PASS}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> bytes:
    """A process of the namespace may be gone by the time it is read (ssh's login children)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_down_ends_sshd_and_its_sessions_after_sigkill(tmp_path: Path) -> None:
    with lab(tmp_path, "sdk", 1, "single-node:1", ssh=True) as handle:
        files = ssh_files(handle.state_dir)
        hosts = ssh_hosts(handle.topology)
        user = next(h for h in hosts if h.netns == handle.topology.user.netns)
        sshd = {int(files.pid_file(h).read_text()) for h in hosts}
        assert sshd <= netns_pids(list_netns(handle.prefix))
        client = subprocess.Popen(
            files.client_command(user, ("sleep", "600")),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            def session() -> set[int]:
                return {
                    pid for pid in netns_pids([user.netns]) if _cmdline(pid).startswith(b"sleep\0")
                }

            assert poll(lambda: session(), 15.0), "the ssh session did not start"
            sleeper = session()
            supervisor = supervisor_pid(handle.prefix)
            assert supervisor is not None
            for pid in (*sshd, supervisor):
                os.kill(pid, signal.SIGKILL)
            assert poll(lambda: not any(_alive(p) for p in sshd), 5.0)
            assert all(_alive(p) for p in sleeper)  # a session outlives its sshd
            teardown(handle.prefix)
            assert not any(_alive(p) for p in sleeper | sshd | {supervisor})
            assert client.wait(10) != 0
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        assert list_netns(handle.prefix) == ()
        assert not state_dir(handle.prefix).exists()
        assert handle.ssh_inventory_path is not None and not handle.ssh_inventory_path.exists()
