"""The waiver file: YAML read with positions (the inventory's reader), every problem of the
file reported at once as `file:line:col`, rule ids checked against the policy.

    waivers:
      - rule: R3
        hop: 1                      # optional: its number in the report, or its label
        target: agent1              # optional: host name or address
        ports: tcp/6001             # optional: the policy's port syntax
        justification: legacy RPC monitoring until the new probe ships (CHG-1234)
        accepted_by: J. Doe (CISO)
        expires: 2027-03-31         # valid through this day
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from datetime import date
from pathlib import Path

from yaml.nodes import Node

from reachproof.errors import Pos, WaiverError, read_text
from reachproof.inventory.yamlpos import NodeReader, compose, pos_of
from reachproof.ports import parse_ports
from reachproof.waivers.model import Waiver, WaiverFile

_REQUIRED = ("rule", "justification", "accepted_by", "expires")
_OPTIONAL = ("hop", "target", "ports")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HOP_NUMBER = re.compile(r"[0-9]{1,4}")


def load_waivers(path: Path, rules: Collection[str]) -> WaiverFile:
    """Load a waiver file whose rules must be among `rules` (the policy's rule ids)."""
    text = read_text(path, "waiver")
    loaded = parse_waivers(text, str(path), rules)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return WaiverFile(str(path), digest, loaded)


def parse_waivers(text: str, path: str, rules: Collection[str]) -> tuple[Waiver, ...]:
    root = compose(text, path, WaiverError)
    reader = NodeReader(path)
    waivers: list[Waiver] = []
    if root is None:
        reader.error(Pos(1, 1), "empty waiver file: expected a mapping with 'waivers'")
    else:
        top = reader.fields(root, "waiver file", root, ("waivers",), ())
        if top is not None and "waivers" in top:
            for item in reader.items(top["waivers"], "waivers"):
                waiver = _waiver(reader, item, path, rules)
                if waiver is not None:
                    waivers.append(waiver)
    if reader.diagnostics:
        raise WaiverError(reader.diagnostics, text)
    return tuple(waivers)


def _waiver(reader: NodeReader, node: Node, path: str, rules: Collection[str]) -> Waiver | None:
    line = pos_of(node).line
    what = f"waiver at line {line}"
    fields = reader.fields(node, what, node, _REQUIRED, _OPTIONAL)
    if fields is None or any(key not in fields for key in _REQUIRED):
        return None
    before = len(reader.diagnostics)
    rule = reader.string(fields["rule"], f"{what}: rule")
    if rule is not None and rule not in rules:
        known = ", ".join(rules) or "none"
        reader.error(fields["rule"], f"{what}: the policy has no rule {rule!r} (rules: {known})")
    justification = reader.string(fields["justification"], f"{what}: justification")
    accepted_by = reader.string(fields["accepted_by"], f"{what}: accepted_by")
    expires = _date(reader, fields["expires"], f"{what}: expires")
    hop = _hop(reader, fields["hop"], f"{what}: hop") if "hop" in fields else None
    target = reader.string(fields["target"], f"{what}: target") if "target" in fields else None
    ports = None
    if "ports" in fields:
        text = reader.string(fields["ports"], f"{what}: ports")
        if text is not None:
            try:
                ports = parse_ports(text)
            except ValueError as exc:
                reader.error(fields["ports"], f"{what}: ports: {exc}")
    if rule is None or justification is None or accepted_by is None or expires is None:
        return None
    if len(reader.diagnostics) > before:
        return None
    return Waiver(
        ref=f"{path}:{line}",
        line=line,
        rule=rule,
        hop=hop,
        target=target,
        ports=ports,
        justification=justification,
        accepted_by=accepted_by,
        expires=expires,
    )


def _date(reader: NodeReader, node: Node, what: str) -> date | None:
    text = reader.string(node, what)
    if text is None:
        return None
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        reader.error(node, f"{what}: expected a date YYYY-MM-DD, got {text!r}")
        return None


def _hop(reader: NodeReader, node: Node, what: str) -> int | str | None:
    text = reader.string(node, what)
    if text is None:
        return None
    if _HOP_NUMBER.fullmatch(text):
        return reader.integer(node, what, 1, 9999)
    return text
