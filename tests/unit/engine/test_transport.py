"""The vantage transport and the scheduler against a scripted fake worker (no root)."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import pytest
from enginekit import check_spec, fake_worker, local_inventory, tcp_spec

from reachproof.engine import EngineOptions, ProbeProgress, TcpEngine, run_specs
from reachproof.engine.vantage import worker_argv, worker_env
from reachproof.inventory.model import Transport, Vantage
from reachproof.observation import PortState
from reachproof.plan import Plan
from reachproof.ports import PortSet
from reachproof.verdict import Verdict, judge_spec
from reachproof.worker.protocol import BOOTSTRAP


def options(mode: str = "ok", **kw: object) -> EngineOptions:
    opts: dict[str, object] = {"worker_source": fake_worker(mode, (22, 23, 80)), "grace": 2.0}
    opts.update(kw)
    return EngineOptions(**opts)  # type: ignore[arg-type]


def test_argv_per_transport_is_a_list_never_a_local_shell_string() -> None:
    local = worker_argv(Vantage("a", Transport.LOCAL))
    assert local == [sys.executable, "-u", "-c", BOOTSTRAP]
    netns = worker_argv(Vantage("b", Transport.NETNS, netns="rp-user"))
    assert netns[:4] == ["ip", "netns", "exec", "rp-user"] and netns[-1] == BOOTSTRAP
    pipe = ("docker", "exec", "-i", "a b; rm")
    docker = worker_argv(Vantage("c", Transport.EXEC, command=pipe, python="py3"))
    assert docker == [*pipe, "py3", "-u", "-c", BOOTSTRAP]


@pytest.mark.parametrize("python", ["python3", "/opt/my python/bin/python3; rm -rf ~ $(id)"])
@pytest.mark.parametrize("program", ["ssh", "/usr/bin/ssh"])
def test_ssh_gets_the_remote_part_quoted_exactly_once(program: str, python: str) -> None:
    command = (program, "-T", "-o", "BatchMode=yes", "audit@host")
    argv = worker_argv(Vantage("s", Transport.EXEC, command=command, python=python))
    assert argv[: len(command)] == list(command)
    (remote,) = argv[len(command) :]
    # What the remote shell makes of the one string ssh sends: exactly the invocation.
    assert shlex.split(remote) == [python, "-u", "-c", BOOTSTRAP]


def test_remote_shell_is_decided_by_the_inventory_over_the_program_name() -> None:
    ssh = ("ssh", "audit@host")
    plain = worker_argv(Vantage("s", Transport.EXEC, command=ssh, remote_shell=False))
    assert plain == [*ssh, "python3", "-u", "-c", BOOTSTRAP]
    wrapped = ("ssh-wrapper", "host")
    quoted = worker_argv(Vantage("w", Transport.EXEC, command=wrapped, remote_shell=True))
    assert quoted[:2] == list(wrapped) and shlex.split(quoted[2])[-1] == BOOTSTRAP
    assert not Vantage("n", Transport.NETNS, netns="x", remote_shell=True).through_remote_shell


def _fake_ssh(directory: Path) -> Path:
    """An `ssh` that does to its arguments what OpenSSH does: the first is the destination,
    the rest are joined with spaces and run by a POSIX shell at the "far end"."""
    ssh = directory / "ssh"
    ssh.write_text('#!/bin/sh\nshift\nexec sh -c "$*"\n')
    ssh.chmod(0o755)
    return ssh


def test_the_worker_starts_through_a_shell_that_re_splits_its_command(tmp_path: Path) -> None:
    # A python path that a shell would split and expand if it were not quoted.
    odd = tmp_path / "my python (3)"
    odd.mkdir()
    (odd / "py;thon").symlink_to(sys.executable)
    ssh = _fake_ssh(tmp_path)
    vantage = Vantage(
        "far", Transport.EXEC, command=(str(ssh), "audit@far"), python=str(odd / "py;thon")
    )
    (obs,) = run_specs([tcp_spec("80", "far")], local_inventory(vantage), options())
    assert obs.error is None and obs.results[0].state is PortState.OPEN


def test_sh_c_pipes_keep_their_arguments(tmp_path: Path) -> None:
    vantage = Vantage(
        "sh", Transport.EXEC, command=("sh", "-c", 'exec "$@"', "sh"), python=sys.executable
    )
    (obs,) = run_specs([tcp_spec("80", "sh")], local_inventory(vantage), options())
    assert obs.error is None and obs.results[0].state is PortState.OPEN


def test_environment_is_exactly_the_vantages_plus_path_and_lang() -> None:
    assert worker_env(Vantage("a", Transport.LOCAL)) is None
    env = worker_env(Vantage("a", Transport.LOCAL, env=(("X", "1"),)))
    assert env is not None and env["X"] == "1"
    assert set(env) <= {"X", "PATH", "LANG"}


def test_results_become_observations_in_ranges() -> None:
    seen: list[ProbeProgress] = []
    spec = tcp_spec("1-1000")
    (obs,) = run_specs([spec], local_inventory(), options(), seen.append)
    assert obs.error is None
    by_state: dict[PortState, PortSet] = {}
    for r in obs.results:
        by_state[r.state] = by_state.get(r.state, PortSet()).union(r.ports)
    assert by_state[PortState.OPEN] == PortSet.parse("22-23,80")
    assert by_state[PortState.CLOSED] == PortSet.parse("1-21,24-79,81-1000")
    assert obs.degraded == "raw sockets not permitted at here: connect probes used"
    assert seen[-1] == ProbeProgress("here", spec.id, 1000, 1000)
    assert any(p.done == 500 for p in seen)


def test_syn_is_used_where_raw_sockets_work() -> None:
    opts = EngineOptions(worker_source=fake_worker("ok", raw=True))
    (obs,) = run_specs([tcp_spec("22")], local_inventory(), opts)
    assert obs.degraded is None
    opts = EngineOptions(worker_source=fake_worker("ok", raw=True), engine=TcpEngine.CONNECT)
    (obs,) = run_specs([tcp_spec("22")], local_inventory(), opts)
    assert obs.degraded is None  # connect was asked for: nothing degraded


def test_hello_timeout_turns_every_probe_into_an_error() -> None:
    started = time.monotonic()
    specs = [tcp_spec("22"), tcp_spec("80")]
    obs = run_specs(specs, local_inventory(), options("silent", start_timeout=1.0))
    assert time.monotonic() - started < 10
    assert [o.error for o in obs] == ["vantage 'here': no hello from the worker within 1s"] * 2


def test_worker_dying_mid_probe_is_an_error_with_its_last_words() -> None:
    (obs,) = run_specs([tcp_spec("1-100")], local_inventory(), options("die"))
    assert obs.error is not None
    assert "exit status 3" in obs.error and "worker exploded" in obs.error
    assert judge_spec(tcp_spec("1-100"), obs)[0].verdict is Verdict.INCONCLUSIVE


def test_a_hung_worker_misses_its_deadline_and_is_killed() -> None:
    started = time.monotonic()
    opts = options("hang", timeout=0.2, attempts=2, grace=1.0)
    obs = run_specs([tcp_spec("22"), tcp_spec("23")], local_inventory(), opts)
    assert time.monotonic() - started < 10
    assert all(o.error and "no result for probe" in o.error for o in obs)


def test_progress_keeps_a_slow_probe_alive_past_its_deadline() -> None:
    # deadline = grace 1.0 + 2 attempts × 0.2 s + 1 s of sending ≈ 2.4 s < the 3 s it takes
    opts = options("slow", timeout=0.2, attempts=2, grace=1.0)
    (obs,) = run_specs([tcp_spec("22")], local_inventory(), opts)
    assert obs.error is None and obs.results[0].state is PortState.OPEN


def test_garbage_on_the_pipe_is_a_protocol_error() -> None:
    (obs,) = run_specs([tcp_spec("22")], local_inventory(), options("garbage"))
    assert obs.error is not None and "protocol error" in obs.error


def test_omitted_ports_stay_unobserved_and_never_pass() -> None:
    spec = tcp_spec("1000-1010")  # deny: every port closed would FAIL, unobserved INCONCLUSIVE
    (obs,) = run_specs([spec], local_inventory(), options("omit"))
    covered = PortSet.of(r for res in obs.results for r in res.ports.ranges)
    assert covered == PortSet.parse("1000-1009")
    assert dict(obs.detail)["unobserved"] == "1010"
    evidence = judge_spec(spec, obs)
    assert evidence[-1].verdict is Verdict.INCONCLUSIVE and evidence[-1].ports == "1010"


def test_a_port_reported_twice_is_left_unobserved() -> None:
    (obs,) = run_specs([tcp_spec("22-24")], local_inventory(), options("twice"))
    covered = PortSet.of(r for res in obs.results for r in res.ports.ranges)
    assert covered == PortSet.parse("23-24")


def test_a_vantage_that_cannot_start_errors_only_its_own_specs(tmp_path: Path) -> None:
    good = Vantage("here", Transport.LOCAL)
    bad = Vantage("gone", Transport.EXEC, command=("false",))
    missing = Vantage("nope", Transport.EXEC, command=(str(tmp_path / "no-such-program"),))
    inventory = local_inventory(good, bad, missing)
    specs = [tcp_spec("22"), tcp_spec("22", "gone"), tcp_spec("22", "nope"), tcp_spec("22", None)]
    obs = run_specs(specs, inventory, options(start_timeout=5.0))
    assert [o.spec_id for o in obs] == [s.id for s in specs[:3]]  # no vantage: not sent
    assert obs[0].error is None
    assert obs[1].error is not None and "exit status 1" in obs[1].error
    assert obs[2].error is not None and "cannot start" in obs[2].error


def test_unknown_vantage_is_an_error_observation() -> None:
    (obs,) = run_specs([tcp_spec("22", "elsewhere")], local_inventory(), options())
    assert obs.error == "vantage 'elsewhere' is not in the inventory"


def test_exec_vantage_through_a_command_prefix() -> None:
    vantage = Vantage("pipe", Transport.EXEC, command=("env", "--"), python=sys.executable)
    (obs,) = run_specs([tcp_spec("80", "pipe")], local_inventory(vantage), options())
    assert obs.results[0].state is PortState.OPEN


def test_the_worker_runs_with_the_vantages_environment() -> None:
    vantage = Vantage("ctr", Transport.LOCAL, env=(("BACKENDAI_CLUSTER_SIZE", "2"),))
    (obs,) = run_specs([check_spec("ctr")], local_inventory(vantage), options("env"))
    names = {v.split("=", 1)[0] for v in obs.details("env")}
    # The interpreter may add a few of its own (LC_CTYPE coercion); nothing of ours leaks.
    assert "BACKENDAI_CLUSTER_SIZE" in names
    assert names - {"BACKENDAI_CLUSTER_SIZE", "PATH", "LANG", "LC_CTYPE"} == set()
    assert os.environ.get("HOME") is None or "HOME" not in names


def test_pps_is_split_between_a_vantages_requests() -> None:
    opts = options(pps=1000, vantage_pps=1000, in_flight=4)
    specs = [tcp_spec(str(p)) for p in (22, 23, 80, 81, 82, 83)]
    obs = run_specs(specs, local_inventory(), opts)
    assert all(o.error is None for o in obs)


def test_run_plan_is_run_specs_over_the_plan() -> None:
    from reachproof.engine import run_plan

    plan = Plan("p", (), (tcp_spec("22"),))
    (obs,) = run_plan(plan, local_inventory(), options())
    assert obs.results[0].state is PortState.OPEN


@pytest.mark.parametrize("attempts", [0, 1])
def test_fewer_than_two_attempts_is_refused(attempts: int) -> None:
    from reachproof.errors import UsageError

    with pytest.raises(UsageError):
        EngineOptions(attempts=attempts)
