"""What the lab supervisor must run: the contract between the lab builder and the services.

The builder writes a `ServicePlan` as JSON into the lab's state directory; the supervisor
reads it, opens every listener inside its namespace, and reports readiness.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class ServiceKind(StrEnum):
    BANNER = "banner"  # sends `identity` as a banner line on connect (SSH-like, databases, RPC)
    HTTP = "http"  # HTTP/1.1; every answer's body contains `identity`
    WS_ECHO = "ws-echo"  # `http` plus a WebSocket upgrade that echoes messages (ttyd-like)
    WEBSERVER = "webserver"  # HTTP; `/api/…` is forwarded to upstreams[0] (the manager)
    MANAGER = "manager"  # HTTP; `/api/agents` connects to each upstream (agent RPC), reports each
    APPPROXY_WORKER = "appproxy-worker"  # HTTP+WebSocket reverse proxy to upstreams[0]; none: 400


@dataclass(frozen=True)
class Listener:
    """One dual-stack TCP listener (bound to `::` with IPV6_V6ONLY off) inside `netns`.

    Upstream connections of forwarding kinds are made from inside the same namespace.
    """

    netns: str
    port: int
    kind: ServiceKind
    identity: str
    upstreams: tuple[tuple[str, int], ...] = ()
    tls_cert: str = ""  # PEM paths: when set, the listener speaks TLS (the lab's CA signs it)
    tls_key: str = ""
    bind: str = ""  # "": the supervisor's bind address (`::`); else the one address to listen on


@dataclass(frozen=True)
class ServicePlan:
    listeners: tuple[Listener, ...]

    def to_json(self) -> str:
        return json.dumps([asdict(item) for item in self.listeners], indent=1)

    @classmethod
    def from_json(cls, text: str) -> ServicePlan:
        raw: list[dict[str, Any]] = json.loads(text)
        return cls(
            tuple(
                Listener(
                    netns=str(item["netns"]),
                    port=int(item["port"]),
                    kind=ServiceKind(item["kind"]),
                    identity=str(item["identity"]),
                    upstreams=tuple((str(a), int(p)) for a, p in item.get("upstreams", ())),
                    tls_cert=str(item.get("tls_cert", "")),
                    tls_key=str(item.get("tls_key", "")),
                    bind=str(item.get("bind", "")),
                )
                for item in raw
            )
        )
