"""Report files and pcaps: 0600 in directories made 0700, written through unpredictable
temporary names, and never left half-written (an interrupted write takes back what it made)."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from world import documented_world

from reachproof import files
from reachproof.api import build_report, prepare
from reachproof.evidence import EvidenceRecorder
from reachproof.inventory.model import Host, Inventory, Transport, Vantage
from reachproof.report import writers
from reachproof.report.model import Report
from reachproof.report.writers import FILES, Format, write_reports

ROOT = Path(__file__).resolve().parents[3]
FILE_FORMATS = [f for f in Format if f in FILES]


@pytest.fixture(scope="module")
def report() -> Report:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        prepared = prepare(
            Path("tests/unit/report/golden/compact.policy"), Path("examples/lab-small.yaml")
        )
    finally:
        os.chdir(cwd)
    observed = documented_world(prepared.inventory).observe(prepared.plan)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return build_report(prepared, observed, now, now)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_reports_are_0600_in_directories_made_0700(report: Report, tmp_path: Path) -> None:
    directory = tmp_path / "reports" / "run"
    written = write_reports(report, FILE_FORMATS, directory)
    assert {p.name for p in written} == {FILES[f].filename for f in FILE_FORMATS}
    assert {p.name for p in directory.iterdir()} == {p.name for p in written}  # no temp left
    assert {mode(p) for p in written} == {0o600}
    assert mode(directory) == mode(tmp_path / "reports") == 0o700


def test_an_existing_directory_keeps_its_mode(report: Report, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    (path,) = write_reports(report, [Format.JSON], tmp_path)
    assert mode(tmp_path) == 0o755 and mode(path) == 0o600


def test_a_link_planted_at_a_predictable_temp_name_is_not_followed(
    report: Report, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    directory = tmp_path / "out"
    directory.mkdir()
    for name in (".report.json.partial", ".report.json.tmp", "report.json.tmp"):
        (directory / name).symlink_to(victim)
    write_reports(report, [Format.JSON], directory)
    assert victim.read_text() == "untouched\n"
    assert not (directory / "report.json").is_symlink()


def test_an_interrupted_write_leaves_no_partial_report(
    report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = files.write_private
    calls: list[Path] = []

    def interrupted_on_the_third(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(writers, "write_private", interrupted_on_the_third)
    directory = tmp_path / "reports" / "run"
    with pytest.raises(KeyboardInterrupt):
        write_reports(report, FILE_FORMATS, directory)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []  # the files, and the directories made for them


def local_inventory() -> Inventory:
    here = Vantage("here", Transport.LOCAL)
    return Inventory(
        path="x.yaml", sha256="", vantages=(here,), hosts=(Host("me", "user", vantage="here"),)
    )


@pytest.fixture
def capture_dir(tmp_path: Path) -> Path:
    return tmp_path / "run" / "pcap"


def test_pcaps_are_private(capture_dir: Path) -> None:
    with EvidenceRecorder(local_inventory(), ["here"], capture_dir) as recorder:
        pass
    (capture,) = recorder.captures
    if capture.note:  # no AF_PACKET without root: then nothing was written at all
        assert list(capture_dir.iterdir()) == []
    else:
        assert [p.name for p in capture_dir.iterdir()] == ["here.pcap"]
        assert mode(capture_dir / "here.pcap") == 0o600
    assert mode(capture_dir) == mode(capture_dir.parent) == 0o700


def test_an_interrupted_run_leaves_no_pcap_and_no_directory(capture_dir: Path) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        EvidenceRecorder(local_inventory(), ["here"], capture_dir),
    ):
        raise KeyboardInterrupt
    assert not capture_dir.parent.exists()
