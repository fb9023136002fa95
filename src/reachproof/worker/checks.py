"""`check` probes: in-container checks against the environment of the worker's own process.

Only the expected values (`expect.*` params: the inventory's view of this container) come
from the engine; the environment checked is always `os.environ` here, at the vantage.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from reachproof.checks.cluster_env import cluster_env_problems, training_env_findings
from reachproof.checks.listeners import TABLES, parse_ports, parse_table, stray_listeners
from reachproof.worker.addresses import held_addresses
from reachproof.worker.wire import ProbeReport, Request

EXPECT_PREFIX = "expect."
# A finding that no release explains (variables contradicting each other): the verdict
# FAILs it even in an advisory rule; "problem" findings an advisory rule reports as WARN.
CONTRADICTION = "contradiction"


def hostname_problems(env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(problems, resolved): every peer of BACKENDAI_CLUSTER_HOSTS must resolve here."""
    hosts_text = env.get("BACKENDAI_CLUSTER_HOSTS")
    if not hosts_text:
        return ["BACKENDAI_CLUSTER_HOSTS is not set: no peers to resolve"], []
    me = env.get("BACKENDAI_CLUSTER_HOST")
    problems: list[str] = []
    resolved: list[str] = []
    for host in hosts_text.split(","):
        if not host or host == me:
            continue
        try:
            infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            problems.append(f"peer {host} does not resolve: {exc}")
            continue
        addresses = sorted({str(info[4][0]) for info in infos})
        if not addresses:
            problems.append(f"peer {host} resolves to no address")
        else:
            resolved.append(f"{host}={','.join(addresses)}")
    return problems, resolved


def held_of(asked: str, held: set[str]) -> list[str]:
    """The asked addresses (comma-separated) that are among `held`, compared as addresses."""
    packed = {_packed(a) for a in held}
    return [a for a in asked.split(",") if a and _packed(a) in packed]


def _packed(address: str) -> bytes | str:
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
    except OSError:
        return address


def listener_problems(watched_text: str) -> tuple[list[str], list[str]]:
    """(problems, tables read): a socket listening on a watched port, off loopback, is one."""
    listeners = []
    read: list[str] = []
    for table, family in TABLES:
        try:
            with open(table, encoding="ascii") as handle:
                text = handle.read()
        except FileNotFoundError:
            continue  # no IPv6 in this kernel: no tcp6 sockets either
        except OSError as exc:
            return [f"cannot read {table}: {exc}"], read
        read.append(table)
        listeners += parse_table(text, table, family)
    if not read:
        return ["neither /proc/net/tcp nor /proc/net/tcp6 exists here"], read
    return stray_listeners(listeners, parse_ports(watched_text)), read


def run_check(request: Request, report: ProbeReport) -> None:
    name = request.params.get("check", "")
    env = dict(os.environ)
    contradictions: tuple[str, ...] = ()
    if name == "cluster-env":
        expected = {
            key[len(EXPECT_PREFIX) :]: value
            for key, value in request.params.items()
            if key.startswith(EXPECT_PREFIX)
        }
        problems = cluster_env_problems(env, expected or None)
    elif name == "training-env":
        findings = training_env_findings(env)
        problems, contradictions = list(findings.problems), findings.contradictions
    elif name == "hostnames":
        problems, resolved = hostname_problems(env)
        for entry in resolved:
            report.add_detail("resolved", entry)
    elif name == "listeners":
        problems, read = listener_problems(request.params.get("ports", ""))
        for table in read:
            report.add_detail("read", table)
    elif name == "addresses":
        problems = []
        for address in held_of(request.params.get("addresses", ""), held_addresses()):
            report.add_detail("holds", address)
    else:
        report.error = (
            f"unknown check {name!r} (cluster-env, training-env, hostnames, listeners, addresses)"
        )
        return
    report.add_detail("ran", name)
    for problem in problems:
        report.add_detail("problem", problem)
    for contradiction in contradictions:
        report.add_detail(CONTRADICTION, contradiction)
