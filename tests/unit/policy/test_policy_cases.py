"""One test per DSL case in `cases/`: a policy file and what parsing it must give.

- `NAME.policy` + `NAME.ast.json`: the policy is valid; the JSON is its AST (positions left
  out, except for cases named `positions-*`, which prove the positions are right).
- `NAME.policy` + `NAME.err`: the policy is invalid; the file is the exact rendered error
  (`path:line:col: message`, the line, a caret), all problems of the file in source order.

To add a case, write `NAME.policy`, regenerate the expected files (a stale expected file of
the other kind is removed) and review the diff before committing it:

    REACHPROOF_REGEN=1 .venv/bin/pytest tests/unit/policy/test_policy_cases.py
"""

from __future__ import annotations

import dataclasses
import json
import os
from enum import Enum
from pathlib import Path

import pytest

from reachproof.errors import PolicyError, Pos
from reachproof.policy.parse import parse_policy

CASES = Path(__file__).with_name("cases")
REGEN = os.environ.get("REACHPROOF_REGEN") == "1"

Json = None | bool | int | str | list["Json"] | dict[str, "Json"]


def ast_json(node: object, positions: bool) -> Json:
    """The AST as plain JSON: node type, fields in declaration order, enums as their values.

    Fields excluded from equality are positions (or the file's path and text); they appear
    only when `positions` is set, as `"line:column"`.
    """
    if isinstance(node, Pos):
        return f"{node.line}:{node.column}"
    if isinstance(node, Enum):
        return str(node.value)
    if isinstance(node, tuple):
        return [ast_json(item, positions) for item in node]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Json] = {"type": type(node).__name__}
        for field in dataclasses.fields(node):
            value = getattr(node, field.name)
            if field.compare or (positions and isinstance(value, Pos)):
                out[field.name] = ast_json(value, positions)
        return out
    if node is None or isinstance(node, bool | int | str):
        return node
    raise TypeError(f"no JSON form for {type(node).__name__}")


def _case_names() -> list[str]:
    return sorted(p.stem for p in CASES.glob("*.policy"))


def _outcome(name: str) -> tuple[Path, str]:
    """The expected-output file of a case and the text the parser produces for it."""
    source = CASES / f"{name}.policy"
    text = source.read_text(encoding="utf-8")
    path = f"cases/{source.name}"
    err_file = CASES / f"{name}.err"
    try:
        policy = parse_policy(text, path)
    except PolicyError as exc:
        return err_file, exc.render() + "\n"
    tree = ast_json(policy, positions=name.startswith("positions-"))
    return CASES / f"{name}.ast.json", json.dumps(tree, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", _case_names())
def test_case(name: str) -> None:
    expected_file, actual = _outcome(name)
    other = {CASES / f"{name}.err", CASES / f"{name}.ast.json"} - {expected_file}
    if REGEN:
        expected_file.write_text(actual, encoding="utf-8")
        for stale in other:
            stale.unlink(missing_ok=True)
    assert expected_file.exists(), f"{name}: expected {expected_file.name}, found {other}"
    assert not any(p.exists() for p in other), f"{name}: the case now gives {expected_file.name}"
    assert actual == expected_file.read_text(encoding="utf-8")


def test_there_are_enough_cases() -> None:
    names = _case_names()
    valid = [n for n in names if (CASES / f"{n}.ast.json").exists()]
    invalid = [n for n in names if (CASES / f"{n}.err").exists()]
    assert len(valid) >= 10
    assert len(invalid) >= 25
    assert len(valid) + len(invalid) == len(names)
