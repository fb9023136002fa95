"""Robustness: for any text, the loader returns an Inventory or raises InventoryError."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reachproof.errors import InventoryError
from reachproof.inventory.load import dump_inventory, parse_inventory
from reachproof.inventory.model import Inventory

EXAMPLE = (Path(__file__).resolve().parents[3] / "examples" / "lab-small.yaml").read_text()
SMALL = """\
version: 1
vantages:
  v1: {transport: netns, netns: rp-v1, env: {A: "1"}}
  x: {transport: exec, command: [ssh, -T, h]}
hosts:
  a1: {role: agent, ipv4: 10.0.2.11, ipv6: [fd00::1], vantage: v1, services: {s: tcp/1}}
  px: {role: appproxy, zone: management, ipv4: 10.0.1.12}
sessions:
  s1:
    mode: multi-node
    containers:
      - {hostname: main1, role: main, index: 1, agent: a1, cluster_ipv4: 10.200.1.2}
apps:
  - {session: s1, name: j, proxy: px, port: 10205, container: main1, container_port: 8080}
"""
YAML_BITS = [
    ":",
    "-",
    " ",
    "\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    "#",
    "&a",
    "*a",
    "!!str",
    "|",
    ">",
    "'",
    '"',
    "%",
    "@",
    "`",
    "\t",
    "0",
    "1",
    "a",
    "~",
    "<<",
    "?",
    "\x07",
    "\ufeff",
]


def parse_or_inventory_error(text: str) -> Inventory | None:
    try:
        inventory = parse_inventory(text, "fuzz.yaml")
    except InventoryError as exc:
        assert exc.diagnostics
        assert all(d.path == "fuzz.yaml" and d.line >= 1 and d.column >= 1 for d in exc.diagnostics)
        return None
    again = parse_inventory(dump_inventory(inventory), "fuzz.yaml")
    assert replace(again, sha256=inventory.sha256) == inventory
    return inventory


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    parse_or_inventory_error(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(YAML_BITS)).map("".join))
def test_yaml_shaped_text(text: str) -> None:
    parse_or_inventory_error("version: 1\n" + text)


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    lines = base.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "truncate"]))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            at = draw(st.integers(0, len(lines[i])))
            bit = draw(st.sampled_from(YAML_BITS) | st.text(max_size=3))
            lines[i] = lines[i][:at] + bit + lines[i][at:]
        else:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    return "".join(lines)


@settings(max_examples=150, deadline=None)
@given(mutated(SMALL))
def test_mutations_of_a_small_inventory(text: str) -> None:
    parse_or_inventory_error(text)


@settings(max_examples=40, deadline=None)
@given(mutated(EXAMPLE))
def test_mutations_of_the_example(text: str) -> None:
    parse_or_inventory_error(text)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 2000,
        "a: &x [*x]\n",
        "version: 1\nhosts: &h {a: {role: *h}}\n",
        "version: 1\napps:\n  - &a {session: *a}\n",
        "version: 1\nhosts:\n  a: {role: agent, ipv4: " + "1" * 5000 + "}\n",
        "version: " + "9" * 5000 + "\n",
        "version: 1\n---\nversion: 1\n",
        "version: 1\nhosts:\n  ? [a]\n  : {role: x}\n",
        "version: 1\nhosts:\n  <<: {a: {role: x}}\n",
        "\ufeffversion: 1\n",
        "version: 1\x00\n",
    ],
)
def test_nasty_inputs(text: str) -> None:
    parse_or_inventory_error(text)
