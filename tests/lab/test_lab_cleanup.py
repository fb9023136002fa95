"""Cleanup: `lab down` leaves nothing, also after a SIGKILLed supervisor; prefixes coexist."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import poll, require_lab, state, unique_prefix

from prereq import interruptible
from reachproof.errors import LabError
from reachproof.lab.build import LabHandle, build_lab
from reachproof.lab.netns import ETC_NETNS_DIR, Connect, list_netns
from reachproof.lab.state import state_dir, supervisor_pid, teardown
from reachproof.lab.topology import LabOptions

pytestmark = pytest.mark.lab
require_lab()

AGENTS = 2
SESSIONS = "single-node:2,multi-node:2"


def _build(tmp: Path, tag: str) -> LabHandle:
    prefix = unique_prefix(tag)
    try:
        return build_lab(LabOptions.create(AGENTS, SESSIONS, prefix=prefix), tmp / f"{prefix}.yaml")
    except BaseException:
        teardown(prefix)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def _assert_gone(handle: LabHandle, pid: int | None) -> None:
    prefix = handle.prefix
    assert list_netns(prefix) == ()
    assert not list(ETC_NETNS_DIR.glob(f"{prefix}-*")) if ETC_NETNS_DIR.exists() else True
    assert not state_dir(prefix).exists()  # pidfile, plan, ready: all in there
    assert not handle.inventory_path.exists()
    if pid is not None:
        assert poll(lambda: not _pid_alive(pid), 5.0), f"supervisor {pid} still runs"


def test_down_removes_everything_and_is_idempotent(tmp_path: Path) -> None:
    handle = _build(tmp_path, "dwn")
    try:
        pid = handle.supervisor_pid
        assert pid is not None and _pid_alive(pid)
        assert (ETC_NETNS_DIR / handle.topology.containers[0].netns / "hosts").exists()
    finally:
        teardown(handle.prefix)
    _assert_gone(handle, pid)
    assert teardown(handle.prefix) == []  # a second `down` finds nothing and does not fail


def test_down_after_sigkill_of_the_supervisor(tmp_path: Path) -> None:
    handle = _build(tmp_path, "kil")
    try:
        pid = supervisor_pid(handle.prefix)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert poll(lambda: supervisor_pid(handle.prefix) is None, 5.0)
        assert list_netns(handle.prefix)  # the network outlives its supervisor
    finally:
        teardown(handle.prefix)
    _assert_gone(handle, pid)


def test_two_prefixes_coexist_and_come_down_independently(tmp_path: Path) -> None:
    first = _build(tmp_path, "one")
    try:
        second = _build(tmp_path, "two")
        try:
            # Same address plan, separate namespaces: both answer.
            for h in (first, second):
                web = h.topology.mgmt("webserver").addr.v4.ip
                assert state(h.topology.user.netns, web, 443) is Connect.OPEN
            teardown(first.prefix)
            _assert_gone(first, first.supervisor_pid)
            web6 = second.topology.mgmt("webserver").addr.v6.ip
            assert state(second.topology.user.netns, web6, 443) is Connect.OPEN
            assert supervisor_pid(second.prefix) is not None
        finally:
            teardown(second.prefix)
        _assert_gone(second, second.supervisor_pid)
    finally:
        teardown(first.prefix)


def test_a_second_lab_with_the_same_prefix_is_refused(tmp_path: Path) -> None:
    handle = _build(tmp_path, "dup")
    try:
        with pytest.raises(LabError, match="already exists"):
            build_lab(LabOptions.create(AGENTS, SESSIONS, prefix=handle.prefix))
        assert len(list_netns(handle.prefix)) == len(handle.topology.namespaces())
    finally:
        teardown(handle.prefix)


def test_a_failed_build_removes_what_it_made(tmp_path: Path) -> None:
    prefix = unique_prefix("bad")

    def broken(plan: Path, directory: Path) -> list[str]:
        return ["/bin/false", "--state-dir", str(directory)]

    with pytest.raises(LabError, match="exited with status"):
        build_lab(
            LabOptions.create(AGENTS, SESSIONS, prefix=prefix),
            tmp_path / "inv.yaml",
            supervisor=broken,
        )
    assert list_netns(prefix) == ()
    assert not state_dir(prefix).exists()
    assert not (tmp_path / "inv.yaml").exists()


def test_down_keeps_an_inventory_file_the_lab_did_not_create(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text("a file that was here before `lab up`\n")
    prefix = unique_prefix("own")
    options = LabOptions.create(1, "single-node:1", prefix=prefix)
    try:
        handle = build_lab(options, theirs, supervisor=None)
        assert handle.inventory_path == theirs and "vantages:" in theirs.read_text()
    finally:
        teardown(prefix)
    assert theirs.exists()  # overwritten by `up` as asked, but never deleted by `down`
    assert list_netns(prefix) == () and not state_dir(prefix).exists()


def test_interrupted_up_removes_what_it_made() -> None:
    prefix = unique_prefix("int")
    sessions = ",".join(["multi-node:4"] * 16)
    command = [sys.executable, "-m", "reachproof", "lab", "up", "--agents", "8"]
    command += ["--sessions", sessions, "--prefix", prefix]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    try:
        # Interrupt while namespaces are being created and wired, as a terminal's Ctrl-C does.
        assert poll(lambda: len(list_netns(prefix)) > 10, 30.0)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err  # "interrupted", never 1 ("a rule failed")
        assert list_netns(prefix) == ()
        assert not state_dir(prefix).exists()
        assert not list(ETC_NETNS_DIR.glob(f"{prefix}-*"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        teardown(prefix)


# Run in a mount namespace of its own whose /run is a fresh tmpfs: /run/netns is then a plain
# directory, as on a machine where no namespace was ever made, and everything made here (the
# namespace files, their mounts) vanishes with the mount namespace.
_FRESH_RUN = """
import subprocess
from pathlib import Path
from reachproof.lab.netns import create_netns, remove_netns
create_netns("rpmnt-lab")
subprocess.run(["ip", "netns", "add", "rpmnt-other"], check=True)
remove_netns("rpmnt-lab")
assert not Path("/run/netns/rpmnt-lab").exists(), "the lab's namespace file is still there"
subprocess.run(["ip", "netns", "del", "rpmnt-other"], check=True)
print("removed")
"""


def _on_a_fresh_run(script: str) -> str:
    """Run `script` in the mount namespace described above; its stdout (stderr on failure)."""
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount -t tmpfs tmpfs /run && exec "$0" -c "$1"',
            sys.executable,
            script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_namespace_stays_removable_after_ip_netns_add_on_a_fresh_machine() -> None:
    assert _on_a_fresh_run(_FRESH_RUN) == "removed"


# The state a machine is left in when `ip netns add` ran while a namespace made the old way
# (no shared /run/netns) existed: that namespace's mount is hidden under the recursive bind.
_HIDDEN_MOUNT = """
import subprocess
from pathlib import Path
from reachproof.errors import LabError
from reachproof.lab.netns import create_netns
from reachproof.lab.state import teardown
Path("/run/netns").mkdir()
Path("/run/netns/rpstk-old").touch()
subprocess.run(["unshare", "--net=/run/netns/rpstk-old", "true"], check=True)
subprocess.run(["mount", "--rbind", "/run/netns", "/run/netns"], check=True)
create_netns("rpstk-new")
try:
    teardown("rpstk")
except LabError as exc:
    assert "rpstk-old" in str(exc) and "everything else" in str(exc), exc
else:
    raise AssertionError("a namespace that cannot be removed was not reported")
assert not Path("/run/netns/rpstk-new").exists(), "the removable namespace was left"
print("reported")
"""


def test_down_removes_the_rest_and_names_a_namespace_held_by_a_hidden_mount() -> None:
    assert _on_a_fresh_run(_HIDDEN_MOUNT) == "reported"
