"""The one prerequisite helper of the test suite: skip on a developer's machine, fail in CI."""

from __future__ import annotations

import os
import sys

import pytest

from prereq import missing, require, require_or_skip

ABSENT = "reachproof-no-such-program"


def test_missing_names_every_absent_prerequisite() -> None:
    assert missing(programs=["sh"], modules=["json"]) is None
    reason = missing(programs=["sh", ABSENT, "sshd-" + ABSENT], modules=["no_such_mod_rp"])
    assert reason == f"needs {ABSENT}, sshd-{ABSENT}, Python module no_such_mod_rp"
    assert (missing(root=True) is None) == (os.geteuid() == 0)


def test_a_missing_prerequisite_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"needs {ABSENT}"):
        require(programs=[ABSENT])
    require_or_skip(None)  # nothing missing: nothing happens
    require(programs=[os.path.basename(sys.executable)])


@pytest.mark.parametrize("ci", ["1", "true"])
def test_a_missing_prerequisite_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=f"needs {ABSENT} \\(CI is set"):
        require(programs=[ABSENT])
    require_or_skip(None)
