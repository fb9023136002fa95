"""Exit codes a CI job can trust: a bug is 4 with its traceback, Ctrl-C is 130, and neither
looks like 1 ("a rule failed")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from reachproof import api
from reachproof.cli import app, main
from reachproof.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, UsageError

ROOT = Path(__file__).resolve().parents[3]
CHECK = [
    "check",
    "-P",
    str(ROOT / "policies/backend-ai.policy"),
    "-i",
    str(ROOT / "examples/lab-small.yaml"),
]


def exit_of(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        main(argv)
    code = done.value.code
    assert isinstance(code, int)
    return code


def raising(exc: BaseException) -> Callable[..., object]:
    def fail(*_args: object, **_kwargs: object) -> object:
        raise exc

    return fail


def test_an_internal_error_exits_4_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(api, "prepare", raising(RuntimeError("injected bug")))
    assert exit_of(CHECK) == EXIT_INTERNAL == 4
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "RuntimeError: injected bug" in err
    assert "internal error" in err and "please report it" in err


def test_ctrl_c_in_a_command_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(api, "prepare", raising(KeyboardInterrupt()))
    assert exit_of(CHECK) == EXIT_INTERRUPTED == 130
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("exc", "code"),
    [(KeyboardInterrupt(), 130), (ValueError("bug"), 4), (UsageError("bad use"), 2)],
)
def test_what_escapes_the_command_layer_keeps_its_meaning(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    code: int,
) -> None:
    monkeypatch.setattr(typer.main, "get_command", lambda _app: raising(exc))
    assert exit_of(["plan"]) == code
    err = capsys.readouterr().err
    assert ("Traceback" in err) == (code == 4)
    if code == 2:
        assert "error: bad use" in err


def test_help_documents_every_exit_code() -> None:
    text = " ".join(CliRunner().invoke(app, ["--help"], env={"COLUMNS": "300"}).output.split())
    for phrase in (
        "0 every rule holds",
        "1 a rule failed",
        "2 invalid input",
        "4 internal error",
        "130 interrupted",
    ):
        assert phrase in text
