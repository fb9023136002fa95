"""The vantage's own failures to send: `error`, never a port state (DESIGN.md, Round 2).

A packet the vantage cannot even send proves nothing about the path: no route here, the
vantage's own firewall (EPERM/EACCES from its output hook or a `prohibit` route), an address
or interface it does not have. An ICMP unreachable sent back by a router stays `unreachable`;
only what the local kernel refuses synchronously, before a packet leaves, lands here.
"""

from __future__ import annotations

import errno
import socket

from reachproof.worker.wire import Outcome

_WHAT = {
    errno.ENETUNREACH: "no route",
    errno.EHOSTUNREACH: "no route",
    errno.EINVAL: "no route (blackhole)",
    errno.EPERM: "refused by the vantage's own firewall",
    errno.EACCES: "refused by the vantage's own firewall",
    errno.ENODEV: "no such interface",
    errno.EADDRNOTAVAIL: "address not available",
    errno.ENETDOWN: "network down",
}


def local_reason(code: int) -> str:
    """`local: no route (ENETUNREACH)` and the like."""
    name = errno.errorcode.get(code, str(code))
    return f"local: {_WHAT.get(code, 'send failed')} ({name})"


def local_failure(code: int, attempt: int) -> Outcome:
    return Outcome("error", local_reason(code), attempt)


def route_failure(address: str, family: int) -> str | None:
    """Why the vantage cannot send to `address` at all, or None when it has a route.

    A UDP connect() asks the routing table only (no packet leaves), so it tells "no route
    here" apart from an EHOSTUNREACH that a router's ICMP caused later on a TCP connect().
    """
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect((address, 9))
    except OSError as exc:
        return local_reason(exc.errno or 0)
    finally:
        probe.close()
    return None
