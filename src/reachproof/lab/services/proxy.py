"""Reverse proxying for the webserver and the AppProxy worker: connect, forward, relay.

Upstream sockets are created inside the listener's namespace (see nsock), so the hop really
crosses the lab's network and its firewalls, as the real component's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from reachproof.lab.services.http import (
    STREAM_LIMIT,
    Request,
    render_request,
    text_response,
)
from reachproof.lab.services.nsock import NetnsFds, arun_in_netns
from reachproof.lab.services.websocket import is_upgrade

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# connect(host, port, timeout): streams to an upstream, made from the listener's namespace.
Connect = Callable[[str, int, float], Awaitable[Streams]]

CHUNK = 64 * 1024
# Hop-by-hop headers (RFC 9110 §7.6.1) plus those the proxy sets itself.
_DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
    }
)


class UpstreamError(Exception):
    """An upstream could not be reached; the message says why, for a 502 body or a report."""


def hostport(host: str, port: int) -> str:
    """`addr:port`, with IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_address(writer: asyncio.StreamWriter) -> str:
    """The peer's address, IPv4-mapped IPv6 (dual-stack listeners) shown as plain IPv4."""
    peer = writer.get_extra_info("peername")
    if not peer:
        return "unknown"
    address = str(peer[0])
    return address.removeprefix("::ffff:") if "." in address else address


async def connect_from(
    netns: str, host: str, port: int, timeout: float, *, fds: NetnsFds | None = None
) -> Streams:
    """Open a TCP connection to `host:port` (an IP literal) from inside `netns`."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError as exc:
        raise UpstreamError(f"{host!r} is not an IP address") from exc
    sock = await arun_in_netns(netns, lambda: socket.socket(family, socket.SOCK_STREAM), fds=fds)
    try:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        return await asyncio.open_connection(sock=sock, limit=STREAM_LIMIT)
    except TimeoutError as exc:
        sock.close()
        raise UpstreamError(f"connect timed out after {timeout:g} s") from exc
    except OSError as exc:
        sock.close()
        # asyncio's own strerror is "Connect call failed (addr)"; the errno says more.
        raise UpstreamError(os.strerror(exc.errno) if exc.errno else str(exc)) from exc


@dataclass
class _Activity:
    """When bytes last moved in either direction: a relay ends after `idle` s of silence."""

    last: float
    moved: dict[str, int] = field(default_factory=dict)


async def _pipe(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    idle: float,
    activity: _Activity,
    name: str,
) -> None:
    loop = asyncio.get_running_loop()
    activity.moved.setdefault(name, 0)
    while True:
        try:
            data = await asyncio.wait_for(src.read(CHUNK), idle)
        except TimeoutError:
            if loop.time() - activity.last >= idle:
                raise
            continue
        if not data:
            break
        activity.last = loop.time()
        activity.moved[name] += len(data)
        dst.write(data)
        await asyncio.wait_for(dst.drain(), idle)
    # The other side may already be gone; then there is nobody left to tell.
    if dst.can_write_eof() and not dst.is_closing():
        with contextlib.suppress(OSError):
            dst.write_eof()


async def relay(a: Streams, b: Streams, idle: float) -> None:
    """Pipe bytes both ways until both sides finish or everything is silent for `idle` s."""
    activity = _Activity(asyncio.get_running_loop().time())
    tasks = {
        asyncio.create_task(_pipe(a[0], b[1], idle, activity, "a->b")),
        asyncio.create_task(_pipe(b[0], a[1], idle, activity, "b->a")),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def forwarded_headers(
    request: Request, upstream: str, client: str, *, upgrade: bool
) -> list[tuple[str, str]]:
    """The request's end-to-end headers, Host rewritten, the X-Forwarded-* chain extended."""
    named_hop = request.tokens("connection")
    headers = [("Host", upstream)]
    headers += [
        (key, value)
        for key, value in request.headers
        if key.lower() not in _DROPPED and key.lower() not in named_hop
    ]
    prior = request.header("x-forwarded-for")
    headers.append(("X-Forwarded-For", f"{prior}, {client}" if prior else client))
    headers.append(("X-Forwarded-Host", request.header("host") or ""))
    headers.append(("X-Forwarded-Proto", "http"))
    if upgrade:
        headers += [("Connection", "Upgrade"), ("Upgrade", request.header("upgrade") or "")]
    else:
        headers.append(("Connection", "close"))
    return headers


async def forward(
    request: Request,
    client: Streams,
    upstream: tuple[str, int],
    connect: Connect,
    *,
    connect_timeout: float,
    idle: float,
) -> None:
    """Send `request` to `upstream` and stream its answer back; 502 when it cannot answer.

    A WebSocket upgrade is forwarded as is, then bytes flow both ways, so the upstream's own
    101 and frames reach the client unchanged.
    """
    _, writer = client
    target = hostport(*upstream)
    try:
        up_reader, up_writer = await connect(upstream[0], upstream[1], connect_timeout)
    except UpstreamError as exc:
        writer.write(text_response(HTTPStatus.BAD_GATEWAY, f"upstream {target} unreachable: {exc}"))
        return
    upgrade = is_upgrade(request)
    headers = forwarded_headers(request, target, client_address(writer), upgrade=upgrade)
    activity = _Activity(asyncio.get_running_loop().time())
    try:
        up_writer.write(
            render_request(request.method, request.origin_target, headers, request.body)
        )
        await asyncio.wait_for(up_writer.drain(), idle)
        if upgrade:
            await relay(client, (up_reader, up_writer), idle)
        else:
            await _pipe(up_reader, writer, idle, activity, "answer")
    except (OSError, TimeoutError) as exc:
        if upgrade or activity.moved.get("answer", 0):
            raise
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        writer.write(text_response(HTTPStatus.BAD_GATEWAY, f"upstream {target} failed: {reason}"))
        return
    finally:
        up_writer.transport.abort()
    if not upgrade and not activity.moved.get("answer", 0):
        writer.write(
            text_response(HTTPStatus.BAD_GATEWAY, f"upstream {target} closed without answering")
        )
