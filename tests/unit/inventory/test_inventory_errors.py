"""Every class of inventory mistake is reported at file:line:col with what was expected.

Each case changes one thing in a valid inventory and expects exactly the diagnostics listed.
"""

from __future__ import annotations

import pytest

from reachproof.errors import InventoryError
from reachproof.inventory.load import parse_inventory

BASE = """\
version: 1
name: t
vantages:
  v1: {transport: netns, netns: rp-v1}
  ssh: {transport: exec, command: [ssh, -T, audit@h]}
hosts:
  a1: {role: agent, ipv4: 10.0.2.11, vantage: v1}
  a2: {role: agent, ipv4: 10.0.2.12}
  px: {role: appproxy, ipv4: 10.0.1.12, ipv6: "fd00:1::12", services: {web: tcp/443}}
sessions:
  s1:
    mode: single-node
    containers:
      - {hostname: main1, role: main, index: 1, agent: a1}
      - {hostname: sub1, role: sub, index: 1, agent: a1}
apps:
  - {session: s1, name: j, proxy: px, port: 10205, container: main1, container_port: 8080}
"""


def diagnostics(text: str) -> list[str]:
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, "inv.yaml")
    return [f"{d.path}:{d.line}:{d.column}: {d.message}" for d in info.value.diagnostics]


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def test_base_is_valid() -> None:
    parse_inventory(BASE)


CASES = [
    (
        "malformed-yaml",
        edit("name: t", "name: [t"),
        "inv.yaml:3:9: invalid YAML: while parsing a flow sequence expected ',' or ']', "
        "but got ':'",
    ),
    (
        "yaml-forbidden-character",
        edit("name: t", "name: t\x07"),
        "inv.yaml:2:8: invalid YAML: character '\\x07' is not allowed "
        "(special characters are not allowed)",
    ),
    (
        "not-a-mapping",
        "- version: 1\n",
        "inv.yaml:1:1: inventory: expected a mapping, got a list",
    ),
    (
        "missing-version",
        edit("version: 1\n", ""),
        "inv.yaml:1:1: inventory: missing required key 'version'",
    ),
    (
        "wrong-version",
        edit("version: 1", "version: 2"),
        "inv.yaml:1:10: unsupported inventory version 2 (expected 1)",
    ),
    (
        "unknown-top-key",
        edit("name: t", "nmae: t"),
        "inv.yaml:2:1: unknown key 'nmae' in inventory "
        "(expected one of: version, name, tls_ca, vantages, hosts, sessions, apps, families)",
    ),
    (
        "duplicate-key",
        edit("  a2: {role: agent", "  a1: {role: agent"),
        "inv.yaml:8:3: duplicate key 'a1' in hosts (first at line 7)",
    ),
    (
        "duplicate-vantage",
        edit("  ssh: {transport: exec", "  v1: {transport: exec"),
        "inv.yaml:5:3: duplicate key 'v1' in vantages (first at line 4)",
    ),
    (
        "duplicate-nested-key",
        edit("role: agent, ipv4: 10.0.2.12", "role: agent, role: user"),
        "inv.yaml:8:21: duplicate key 'role' in host 'a2' (first at line 8)",
    ),
    (
        "vantage-without-transport",
        edit("{transport: netns, netns: rp-v1}", "{netns: rp-v1}"),
        "inv.yaml:4:3: vantage 'v1': missing required key 'transport'",
    ),
    (
        "unknown-transport",
        edit("{transport: netns, netns: rp-v1}", "{transport: ssh}"),
        "inv.yaml:4:19: vantage 'v1': unknown transport 'ssh' (expected local, netns or exec)",
    ),
    (
        "netns-without-netns",
        edit("{transport: netns, netns: rp-v1}", "{transport: netns}"),
        "inv.yaml:4:3: vantage 'v1': transport netns needs key 'netns'",
    ),
    (
        "netns-on-local",
        edit("{transport: netns, netns: rp-v1}", "{transport: local, netns: rp-v1}"),
        "inv.yaml:4:33: vantage 'v1': 'netns' applies only to transport netns",
    ),
    (
        "bad-netns-name",
        edit("netns: rp-v1", "netns: ../etc"),
        "inv.yaml:4:33: vantage 'v1': netns: '../etc' is not a valid name "
        "(letters, digits, '.', '_' and '-', starting with a letter or digit)",
    ),
    (
        "exec-without-command",
        edit("{transport: exec, command: [ssh, -T, audit@h]}", "{transport: exec}"),
        "inv.yaml:5:3: vantage 'ssh': transport exec needs key 'command'",
    ),
    (
        "command-as-shell-string",
        edit("command: [ssh, -T, audit@h]", "command: ssh -T audit@h"),
        "inv.yaml:5:35: vantage 'ssh': command must be a list of arguments, not a shell "
        "string (write it as [ssh, -T, audit@host]; no shell on this machine parses it)",
    ),
    (
        "empty-command",
        edit("command: [ssh, -T, audit@h]", "command: []"),
        "inv.yaml:5:35: vantage 'ssh': command: expected a non-empty list of arguments",
    ),
    (
        "python-on-netns",
        edit("netns: rp-v1}", "netns: rp-v1, python: python3}"),
        "inv.yaml:4:48: vantage 'v1': 'python' applies only to transport exec",
    ),
    (
        "remote-shell-on-netns",
        edit("netns: rp-v1}", "netns: rp-v1, remote_shell: true}"),
        "inv.yaml:4:54: vantage 'v1': 'remote_shell' applies only to transport exec",
    ),
    (
        "remote-shell-not-a-boolean",
        edit("audit@h]}", "audit@h], remote_shell: sometimes}"),
        "inv.yaml:5:69: vantage 'ssh': remote_shell: expected true or false, got 'sometimes'",
    ),
    (
        "env-list-value",
        edit("netns: rp-v1}", "netns: rp-v1, env: {A: [1]}}"),
        "inv.yaml:4:49: vantage 'v1': env A: expected a string or an integer, got a list "
        "(quote it)",
    ),
    (
        "env-bad-name",
        edit("netns: rp-v1}", "netns: rp-v1, env: {A-B: x}}"),
        "inv.yaml:4:46: vantage 'v1': env: 'A-B' is not a valid name "
        "(letters, digits and '_', not starting with a digit)",
    ),
    (
        "host-without-role",
        edit("{role: agent, ipv4: 10.0.2.12}", "{ipv4: 10.0.2.12}"),
        "inv.yaml:8:3: host 'a2': missing required key 'role'",
    ),
    (
        "unknown-host-key",
        edit("{role: agent, ipv4: 10.0.2.12}", "{role: agent, ip: 10.0.2.12}"),
        "inv.yaml:8:21: unknown key 'ip' in host 'a2' "
        "(expected one of: role, zone, ipv4, ipv6, services, vantage, tls_name, families)",
    ),
    (
        "reserved-container-role",
        edit("{role: agent, ipv4: 10.0.2.12}", "{role: container}"),
        "inv.yaml:8:14: host 'a2': role 'container' is reserved for session containers "
        "(declare them under sessions)",
    ),
    (
        "host-name-with-slash",
        edit("  a2: {role: agent", "  s1/main1: {role: agent"),
        "inv.yaml:8:3: host name: 's1/main1' is not a valid name "
        "(letters, digits, '.', '_' and '-', starting with a letter or digit)",
    ),
    (
        "unparseable-address",
        edit("ipv4: 10.0.2.12", "ipv4: 10.0.2.312"),
        "inv.yaml:8:27: host 'a2': ipv4: '10.0.2.312' is not an IPv4 address",
    ),
    (
        "network-is-not-an-address",
        edit("ipv4: 10.0.2.12", "ipv4: 10.0.2.0/24"),
        "inv.yaml:8:27: host 'a2': ipv4: '10.0.2.0/24' is not an IPv4 address",
    ),
    (
        "v4-under-ipv6",
        edit('ipv6: "fd00:1::12"', "ipv6: [fd00:1::12, 10.0.1.13]"),
        "inv.yaml:9:60: host 'px': ipv6: '10.0.1.13' is an IPv4 address, expected IPv6 "
        "(put it under ipv4)",
    ),
    (
        "v6-under-ipv4",
        edit("ipv4: 10.0.2.12", "ipv4: fd00::1"),
        "inv.yaml:8:27: host 'a2': ipv4: 'fd00::1' is an IPv6 address, expected IPv4 "
        "(put it under ipv6)",
    ),
    (
        "address-twice",
        edit("ipv4: 10.0.2.12", "ipv4: [10.0.2.12, 10.0.2.12]"),
        "inv.yaml:8:39: host 'a2': ipv4: address 10.0.2.12 is listed twice",
    ),
    (
        "bad-port",
        edit("web: tcp/443", "web: tcp/443-80"),
        "inv.yaml:9:77: host 'px': service 'web': reversed port range '443-80' "
        "(expected ports such as 'tcp/443,8443' or 'udp/4789')",
    ),
    (
        "port-without-protocol",
        edit("web: tcp/443", "web: [tcp/443, '8443']"),
        "inv.yaml:9:87: host 'px': service 'web': expected protocol/ports such as tcp/443, "
        "got '8443' (expected ports such as 'tcp/443,8443' or 'udp/4789')",
    ),
    (
        "undeclared-host-vantage",
        edit("vantage: v1}", "vantage: v2}"),
        "inv.yaml:7:47: host 'a1': vantage 'v2' is not declared under vantages",
    ),
    (
        "unknown-session-mode",
        edit("mode: single-node", "mode: single"),
        "inv.yaml:12:11: session 's1': unknown mode 'single' (expected single-node or multi-node)",
    ),
    (
        "empty-containers",
        edit(
            "containers:\n      - {hostname: main1, role: main, index: 1, agent: a1}\n"
            "      - {hostname: sub1, role: sub, index: 1, agent: a1}",
            "containers: []",
        ),
        "inv.yaml:13:17: session 's1': containers: expected a non-empty list",
    ),
    (
        "undeclared-agent",
        edit(
            "index: 1, agent: a1}\n      - {hostname: sub1",
            "index: 1, agent: a9}\n      - {hostname: sub1",
        ),
        "inv.yaml:14:56: session 's1': container 'main1': agent 'a9' is not a declared host",
    ),
    (
        "agent-without-agent-role",
        edit(
            "index: 1, agent: a1}\n      - {hostname: sub1",
            "index: 1, agent: px}\n      - {hostname: sub1",
        ),
        "inv.yaml:14:56: session 's1': container 'main1': agent 'px' is not a host with "
        "role agent (its role is 'appproxy')",
    ),
    (
        "single-node-across-agents",
        edit("role: sub, index: 1, agent: a1", "role: sub, index: 1, agent: a2"),
        "inv.yaml:15:54: single-node session 's1' must run on one agent: "
        "'sub1' is on 'a2', 'main1' on 'a1'",
    ),
    (
        "session-without-main1",
        edit("role: main, index: 1", "role: main, index: 2"),
        "inv.yaml:11:3: session 's1' has no main1 (a container with role main, index 1)",
    ),
    (
        "duplicate-hostname",
        edit("{hostname: sub1, role: sub, index: 1", "{hostname: main1, role: sub, index: 1"),
        "inv.yaml:15:20: session 's1': duplicate hostname 'main1' (first at line 14)",
    ),
    (
        "duplicate-index",
        edit("{hostname: sub1, role: sub, index: 1", "{hostname: sub1, role: main, index: 1"),
        "inv.yaml:15:32: session 's1': container 'sub1': duplicate index 1 for role main "
        "(first at line 14)",
    ),
    (
        "index-below-one",
        edit("role: sub, index: 1", "role: sub, index: 0"),
        "inv.yaml:15:44: session 's1': container 'sub1': index: "
        "expected an integer 1-1000000, got 0",
    ),
    (
        "unknown-cluster-role",
        edit("role: sub, index: 1", "role: worker, index: 1"),
        "inv.yaml:15:32: session 's1': container 'sub1': role: expected main or sub, got 'worker'",
    ),
    (
        "bad-hostname",
        edit("hostname: sub1", "hostname: sub_1"),
        "inv.yaml:15:20: session 's1': container: hostname: 'sub_1' is not a valid name "
        "(a DNS label: letters, digits and '-', at most 63 characters)",
    ),
    (
        "container-missing-keys",
        edit("{hostname: sub1, role: sub, index: 1, agent: a1}", "{hostname: sub1}"),
        "inv.yaml:15:9: session 's1': container: missing required keys 'role', 'index', 'agent'",
    ),
    (
        "app-undeclared-session",
        edit("session: s1, name: j", "session: s2, name: j"),
        "inv.yaml:17:15: app 'j': session 's2' is not declared",
    ),
    (
        "app-unknown-container",
        edit("container: main1, container_port", "container: sub9, container_port"),
        "inv.yaml:17:63: app 'j': session 's1' has no container 'sub9' (it has main1, sub1)",
    ),
    (
        "app-undeclared-proxy",
        edit("proxy: px", "proxy: py"),
        "inv.yaml:17:35: app 'j': proxy 'py' is not a declared host",
    ),
    (
        "app-foreign-address",
        edit("proxy: px,", "proxy: px, address: 10.0.2.11,"),
        "inv.yaml:17:48: app 'j': address 10.0.2.11 is not an address of proxy 'px'",
    ),
    (
        "app-port-out-of-range",
        edit("port: 10205", "port: 70000"),
        "inv.yaml:17:45: app 'j': port: expected an integer 1-65535, got 70000",
    ),
    (
        "app-relative-path",
        edit("container_port: 8080}", "container_port: 8080, path: lab}"),
        "inv.yaml:17:98: app 'j': path must start with '/', got 'lab'",
    ),
    (
        "app-speaks-unknown",
        edit("container_port: 8080}", "container_port: 8080, speaks: [http, ssh]}"),
        "inv.yaml:17:107: app 'j': speaks: unknown protocol 'ssh' (known: http, websocket)",
    ),
    (
        "app-speaks-not-a-list",
        edit("container_port: 8080}", "container_port: 8080, speaks: websocket}"),
        "inv.yaml:17:100: app 'j': speaks: expected a non-empty list of protocols (http, "
        "websocket), got 'websocket'",
    ),
    (
        "app-twice",
        BASE + "  - {session: s1, name: j, proxy: px, port: 1, container: main1, "
        "container_port: 1}\n",
        "inv.yaml:18:25: app 'j': session 's1' already has an app named 'j' (line 17)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error(text: str, expected: str) -> None:
    assert diagnostics(text) == [expected]


def test_empty_file() -> None:
    assert diagnostics("") == [
        "inv.yaml:1:1: empty inventory: expected a mapping with 'version: 1'"
    ]


def test_all_problems_are_reported_together_in_file_order() -> None:
    text = edit("ipv4: 10.0.2.12", "ipv4: nope")
    text = text.replace("mode: single-node", "mode: solo").replace("port: 10205", "port: x")
    assert diagnostics(text) == [
        "inv.yaml:8:27: host 'a2': ipv4: 'nope' is not an IPv4 address",
        "inv.yaml:12:11: session 's1': unknown mode 'solo' (expected single-node or multi-node)",
        "inv.yaml:17:45: app 'j': port: expected an integer 1-65535, got 'x'",
    ]


def test_rendered_error_shows_the_line_and_a_caret() -> None:
    with pytest.raises(InventoryError) as info:
        parse_inventory(edit("mode: single-node", "mode: single"), "inv.yaml")
    assert str(info.value).splitlines()[1:] == ["        mode: single", " " * 14 + "^"]
