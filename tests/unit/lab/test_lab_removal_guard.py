"""What `lab down` may remove as root: only paths a valid prefix names inside the lab's own
directories, and the inventory only when the lab created it. The lab's roots are moved to a
temporary directory, so a guard that fails shows as files missing there, not in /run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reachproof.errors import LabError, UsageError
from reachproof.lab import state as lab_state
from reachproof.lab.cli import app
from reachproof.lab.state import LabState, digest, inside, teardown

BAD_PREFIXES = ["../..", "..", "*", "rp*", "", "/", "a/b", "RP", "rp-x", "toolongprefix"]


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake /run/reachproof/lab and /etc/netns holding a lab `keep` and files beside them."""
    state_root = tmp_path / "run" / "reachproof" / "lab"
    etc_netns = tmp_path / "etc" / "netns"
    for directory in (state_root / "keep", etc_netns / "keep-user", etc_netns / "other-x"):
        directory.mkdir(parents=True)
        (directory / "file").write_text("precious\n")
    (tmp_path / "run" / "elsewhere").write_text("precious\n")
    monkeypatch.setattr(lab_state, "STATE_ROOT", state_root)
    monkeypatch.setattr(lab_state, "ETC_NETNS_DIR", etc_netns)
    yield tmp_path


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command", ["down", "status", "up"])
@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_a_bad_prefix_is_exit_2_and_removes_nothing(roots: Path, command: str, prefix: str) -> None:
    before = files(roots)
    result = CliRunner().invoke(app, [command, "--prefix", prefix], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--prefix'" in result.output
    assert "use 1-8 lowercase letters and digits" in result.output
    assert files(roots) == before


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_teardown_itself_refuses_a_bad_prefix(roots: Path, prefix: str) -> None:
    before = files(roots)
    with pytest.raises(UsageError, match="lab prefix"):
        teardown(prefix)
    assert files(roots) == before


def test_a_good_prefix_removes_its_own_lab_and_nothing_else(roots: Path) -> None:
    teardown("keep")
    left = {p.relative_to(roots).as_posix() for p in files(roots)}
    assert left == {"etc/netns/other-x/file", "run/elsewhere"}


def test_removals_stay_inside_the_lab_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "lab").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    assert inside(root / "lab", root) == root / "lab"
    for path in (root, root / "..", root / "lab" / ".." / "..", root / "link", tmp_path):
        with pytest.raises(LabError, match="refusing to remove"):
            inside(path, root)


def record(prefix: str, inventory: Path, sha: str) -> None:
    (lab_state.STATE_ROOT / prefix).mkdir(parents=True, exist_ok=True)
    LabState(prefix, 1, "", (), "drop", str(inventory), 0, inventory_sha256=sha).write()


def test_down_deletes_the_inventory_only_when_the_lab_created_it(roots: Path) -> None:
    theirs = roots / "theirs.yaml"
    theirs.write_text("the user's own inventory\n")
    record("keep", theirs, "")  # it was there before `lab up`
    teardown("keep")
    assert theirs.read_text() == "the user's own inventory\n"

    ours = roots / "ours.yaml"
    ours.write_bytes(b"written by the lab\n")
    record("keep", ours, digest(b"written by the lab\n"))
    ours.write_text("edited since by someone\n")
    teardown("keep")
    assert ours.exists()

    record("keep", ours, digest(ours.read_bytes()))
    assert str(ours) in teardown("keep")
    assert not ours.exists()
