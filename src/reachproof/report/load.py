"""Reading a JSON report back (for `reachproof diff`): the schema version is checked first, so
an old or foreign file is a clear input error, not a KeyError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reachproof.errors import InputError, read_text
from reachproof.report.model import READABLE_SCHEMAS, SCHEMA


def load_report(path: Path) -> dict[str, Any]:
    """The report as a dict; InputError (exit 2) when the file is not a readable report."""
    text = read_text(path, "report")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: not a JSON report: {exc.msg}") from exc
    check_report(document, str(path))
    loaded: dict[str, Any] = document
    return loaded


def check_report(document: object, where: str) -> None:
    """Raise InputError unless `document` is a report of this schema version with the fields
    the diff reads (rules with hops and evidence)."""
    if not isinstance(document, dict):
        raise InputError(f"{where}: not a reachproof report (a JSON object is expected)")
    found = document.get("schema")
    if found is None:
        raise InputError(f"{where}: not a reachproof report (no 'schema' field)")
    if found not in READABLE_SCHEMAS:
        raise InputError(
            f"{where}: report schema {found!r} is not the one this reachproof reads ({SCHEMA!r});"
            " re-run `reachproof check` with this version to get a comparable report"
        )
    rules = document.get("rules")
    if not isinstance(rules, list):
        raise InputError(f"{where}: malformed report: 'rules' is not a list")
    for index, rule in enumerate(rules):
        _require(rule, ("id", "title", "severity", "verdict", "reason", "hops"), where, index)
        for hop in rule["hops"]:
            _require(hop, ("label", "verdict", "evidence"), where, index)
            for item in hop["evidence"]:
                _require(item, ("spec", "source", "target", "kind", "ports", "state"), where, index)


def _require(value: object, keys: tuple[str, ...], where: str, index: int) -> None:
    if not isinstance(value, dict) or any(k not in value for k in keys):
        raise InputError(
            f"{where}: malformed report: rule #{index + 1} lacks one of {', '.join(keys)}"
        )
