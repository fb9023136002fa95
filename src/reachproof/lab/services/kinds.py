"""What each service kind does with one accepted connection.

Every handler bounds its reads and writes with the listener's timeouts; the supervisor closes
the connection afterwards and contains whatever a handler raises.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

from reachproof.lab.services.http import (
    HttpError,
    Request,
    read_request,
    render_response,
    text_response,
)
from reachproof.lab.services.proxy import Connect, UpstreamError, forward, hostport
from reachproof.lab.services.spec import Listener, ServiceKind
from reachproof.lab.services.websocket import echo, handshake, is_upgrade

BANNER_DISCARD = 64 * 1024
AGENT_PROBE_CONCURRENCY = 64
HEALTH_PATHS = frozenset({"/livez", "/readyz"})


@dataclass(frozen=True)
class Timeouts:
    """Seconds; each one bounds a single wait, so no connection lives on without traffic."""

    head: float = 10.0  # to receive a complete request head and body
    connect: float = 3.0  # to connect to an upstream
    idle: float = 60.0  # silence allowed while relaying or writing
    websocket_idle: float = 300.0  # silence allowed on an echo WebSocket
    banner_linger: float = 30.0  # how long a banner service keeps reading after its banner
    agent_probe: float = 2.0  # the manager's connect to one agent


@dataclass(frozen=True)
class Service:
    """A listener as it runs: its spec, the port it got, and how it reaches upstreams."""

    listener: Listener
    port: int
    connect: Connect
    timeouts: Timeouts


Route = Callable[[Service, Request, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def handle(
    service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one connection according to the listener's kind."""
    kind = service.listener.kind
    if kind == ServiceKind.BANNER:
        await _banner(service, reader, writer)
        return
    await _http(service, reader, writer, _ROUTES[kind])
    await asyncio.wait_for(writer.drain(), service.timeouts.idle)


async def _banner(
    service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(service.listener.identity.encode("utf-8") + b"\r\n")
    await asyncio.wait_for(writer.drain(), service.timeouts.idle)
    # Like sshd waiting for the client's version line: read (and drop) until EOF or linger.
    discarded = 0
    try:
        async with asyncio.timeout(service.timeouts.banner_linger):
            while discarded < BANNER_DISCARD:
                data = await reader.read(4096)
                if not data:
                    return
                discarded += len(data)
    except TimeoutError:
        return


async def _http(
    service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Route
) -> None:
    try:
        async with asyncio.timeout(service.timeouts.head):
            request = await read_request(reader)
    except HttpError as exc:
        writer.write(text_response(exc.status, exc.detail))
        return
    except TimeoutError:
        writer.write(text_response(HTTPStatus.REQUEST_TIMEOUT, "request not received in time"))
        return
    if request is not None:
        await route(service, request, reader, writer)


def _identity(service: Service, request: Request) -> bytes:
    head_only = request.method == "HEAD"
    if request.path in HEALTH_PATHS:
        return text_response(HTTPStatus.OK, "ok", head_only=head_only)
    text = f"{service.listener.identity} path={request.path}"
    return text_response(HTTPStatus.OK, text, head_only=head_only)


async def _plain(
    service: Service, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(_identity(service, request))


async def _ws_echo(
    service: Service, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if not is_upgrade(request):
        writer.write(_identity(service, request))
        return
    answer = handshake(request)
    writer.write(answer)
    if answer.startswith(b"HTTP/1.1 101 "):
        await asyncio.wait_for(writer.drain(), service.timeouts.idle)
        await echo(reader, writer, service.timeouts.websocket_idle)


async def _forward_to(
    service: Service,
    request: Request,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    await forward(
        request,
        (reader, writer),
        service.listener.upstreams[0],
        service.connect,
        connect_timeout=service.timeouts.connect,
        idle=service.timeouts.idle,
    )


async def _webserver(
    service: Service, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if not (request.path == "/api" or request.path.startswith("/api/")):
        writer.write(_identity(service, request))
    elif not service.listener.upstreams:
        writer.write(text_response(HTTPStatus.BAD_GATEWAY, "webserver has no manager upstream"))
    else:
        await _forward_to(service, request, reader, writer)


async def _probe_agent(service: Service, host: str, port: int, gate: asyncio.Semaphore) -> str:
    async with gate:
        try:
            _, agent = await service.connect(host, port, service.timeouts.agent_probe)
        except UpstreamError as exc:
            return f"error: {exc}"
        agent.transport.abort()
        return "ok"


async def _manager(
    service: Service, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if request.path != "/api/agents":
        writer.write(_identity(service, request))
        return
    # Really connect to every agent's RPC port from the manager's namespace, a bounded few at once.
    gate = asyncio.Semaphore(AGENT_PROBE_CONCURRENCY)
    agents = service.listener.upstreams
    states = await asyncio.gather(
        *(_probe_agent(service, host, port, gate) for host, port in agents)
    )
    report = {
        "agents": {hostport(*agent): state for agent, state in zip(agents, states, strict=True)}
    }
    body = json.dumps(report, sort_keys=True).encode("utf-8") + b"\n"
    writer.write(render_response(HTTPStatus.OK, body, content_type="application/json"))


async def _appproxy_worker(
    service: Service, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if not service.listener.upstreams:
        text = f"port {service.port}: unregistered slot (no app circuit on this worker port)"
        writer.write(text_response(HTTPStatus.BAD_REQUEST, text))
        return
    await _forward_to(service, request, reader, writer)


_ROUTES: dict[ServiceKind, Route] = {
    ServiceKind.HTTP: _plain,
    ServiceKind.WS_ECHO: _ws_echo,
    ServiceKind.WEBSERVER: _webserver,
    ServiceKind.MANAGER: _manager,
    ServiceKind.APPPROXY_WORKER: _appproxy_worker,
}
