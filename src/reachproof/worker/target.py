"""Which address a probe goes to: the given one, or a hostname resolved at the vantage.

Either way the address must be in the request's scope before a single packet leaves: the
engine vouched for the scope, not for what the vantage's resolver returns.
"""

from __future__ import annotations

import socket
from ipaddress import ip_address
from typing import NamedTuple

from reachproof.worker.wire import Request


class NoSuchHost(Exception):
    """The vantage could not resolve the probe's hostname (a real finding, not a bug)."""


class OutOfScope(Exception):
    """The probe's address (given or resolved) is not one the request allows."""


class Target(NamedTuple):
    address: str
    family: int  # socket.AF_INET or socket.AF_INET6
    resolved_from: str | None


def family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def resolve_target(request: Request) -> Target:
    """The probe's target, checked against `request.scope` (OutOfScope when outside it)."""
    target = _target(request)
    if str(ip_address(target.address.split("%")[0])) not in request.scope:
        allowed = ", ".join(sorted(request.scope)) or "nothing"
        named = f"{request.resolve} resolved at the vantage to " if target.resolved_from else ""
        raise OutOfScope(
            f"{named}{target.address}, outside the probe's scope ({allowed}): nothing sent"
        )
    return target


def resolve_all(request: Request) -> list[Target]:
    """Every address `request.resolve` has, in the order the vantage's clients try them
    (getaddrinfo with AF_UNSPEC, as ssh and curl do), each checked against `request.scope`
    before any packet: one address outside it refuses the whole probe (OutOfScope)."""
    assert request.resolve
    try:
        infos = socket.getaddrinfo(request.resolve, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise NoSuchHost(f"{request.resolve}: {exc}") from exc
    found: dict[str, int] = {}
    for family, _type, _proto, _name, addr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            found.setdefault(str(addr[0]), family)
    if not found:
        raise NoSuchHost(f"{request.resolve}: no IPv4/IPv6 address")
    outside = [a for a in found if str(ip_address(a.split("%")[0])) not in request.scope]
    if outside:
        allowed = ", ".join(sorted(request.scope)) or "nothing"
        raise OutOfScope(
            f"{request.resolve} resolved at the vantage to {', '.join(outside)}, outside the "
            f"probe's scope ({allowed}): nothing sent"
        )
    return [Target(a, family, request.resolve) for a, family in found.items()]


def _target(request: Request) -> Target:
    if request.resolve:
        wanted = {4: socket.AF_INET, 6: socket.AF_INET6}.get(request.family or 0, 0)
        try:
            infos = socket.getaddrinfo(request.resolve, None, wanted, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise NoSuchHost(f"{request.resolve}: {exc}") from exc
        for family, _type, _proto, _name, addr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                return Target(str(addr[0]), family, request.resolve)
        raise NoSuchHost(f"{request.resolve}: no IPv4/IPv6 address")
    if not request.address:
        raise ValueError("the probe names neither an address nor a hostname to resolve")
    try:
        socket.inet_pton(family_of(request.address), request.address)
    except OSError as exc:
        raise ValueError(f"{request.address!r} is not an IP address") from exc
    return Target(request.address, family_of(request.address), None)


def route_source(target: Target) -> str:
    """The local address the kernel would use toward the target (no packet is sent)."""
    probe = socket.socket(target.family, socket.SOCK_DGRAM)
    try:
        probe.connect((target.address, 9))
        return str(probe.getsockname()[0])
    finally:
        probe.close()
