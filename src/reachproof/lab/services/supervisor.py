"""The supervisor: every listener of a ServicePlan, opened in its namespace, run on one loop.

Listening sockets are created in one throwaway thread that steps from namespace to namespace
(one setns per namespace, however many ports it has), then handed to asyncio. One connection's
failure is logged and contained; the number of live connections is capped so a flood cannot
exhaust file descriptors needed by everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import ssl
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType

from reachproof.errors import LabError
from reachproof.lab.services.http import STREAM_LIMIT
from reachproof.lab.services.kinds import Service, Timeouts, handle
from reachproof.lab.services.nsock import NetnsFds, arun_in_thread, enter_netns
from reachproof.lab.services.proxy import Connect, Streams, connect_from
from reachproof.lab.services.spec import Listener, ServicePlan
from reachproof.lab.services.websocket import WebSocketError

log = logging.getLogger("reachproof.lab.services")

BACKLOG = 128
MAX_CONNECTIONS = 4096
CLOSE_TIMEOUT = 5.0
# Errors a client can cause by being slow, rude or gone: worth a debug line, not a traceback.
_CLIENT_ERRORS = (
    ConnectionError,
    TimeoutError,
    asyncio.IncompleteReadError,
    WebSocketError,
    ssl.SSLError,
)


def listen_socket(port: int, bind: str = "::") -> socket.socket:
    """A non-blocking listening TCP socket; on `::` it is dual-stack (IPv4-mapped too)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if bind == "::" else 1)
        sock.bind((bind, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def check_plan(plan: ServicePlan) -> None:
    """Refuse a plan that asks for the same fixed port twice in one namespace."""
    seen: set[tuple[str, int]] = set()
    for item in plan.listeners:
        key = (item.netns, item.port)
        if item.port and key in seen:
            raise LabError(f"service plan lists port {item.port} twice in namespace {item.netns!r}")
        if not 0 <= item.port <= 65535:
            raise LabError(f"service plan: port {item.port} out of range")
        seen.add(key)


def open_listeners(
    listeners: tuple[Listener, ...], *, bind: str, fds: NetnsFds | None
) -> list[socket.socket]:
    """Sockets for `listeners`, in order; call in a throwaway thread when `fds` is given.

    `fds` None means "stay in the current namespace" (tests, or a plan without namespaces).
    """
    by_netns: dict[str, list[int]] = {}
    for index, item in enumerate(listeners):
        by_netns.setdefault(item.netns if fds is not None else "", []).append(index)
    opened: dict[int, socket.socket] = {}
    try:
        # "" (the thread's own namespace) first: once the thread has moved, it is gone.
        for netns in sorted(by_netns):
            enter_netns(netns, fds)
            for index in by_netns[netns]:
                port = listeners[index].port
                try:
                    opened[index] = listen_socket(port, listeners[index].bind or bind)
                except OSError as exc:
                    where = f"namespace {netns!r}" if netns else "the current namespace"
                    raise LabError(
                        f"{where}: cannot listen on port {port}: {exc.strerror}"
                    ) from exc
    except BaseException:
        for sock in opened.values():
            sock.close()
        raise
    return [opened[index] for index in range(len(listeners))]


def raise_nofile_limit(needed: int) -> int:
    """Lift RLIMIT_NOFILE towards `needed` (the hard limit too when allowed); the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):
            pass  # not privileged: the hard limit is what we get
    target = max(soft, min(needed, hard))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


@dataclass(frozen=True)
class Running:
    service: Service
    server: asyncio.Server


@dataclass
class Supervisor:
    """Runs a ServicePlan: `await start()`, then `await stop()` (or `async with`)."""

    plan: ServicePlan
    netns_enter: bool = True
    bind: str = "::"
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_connections: int = MAX_CONNECTIONS
    running: list[Running] = field(init=False, default_factory=list)
    _fds: NetnsFds = field(init=False, default_factory=NetnsFds)
    _connections: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    _connectors: dict[str, Connect] = field(init=False, default_factory=dict)
    _contexts: dict[str, ssl.SSLContext] = field(init=False, default_factory=dict)

    @property
    def ports(self) -> tuple[int, ...]:
        """The bound port of each listener, in plan order (plan port 0: the kernel's pick)."""
        return tuple(item.service.port for item in self.running)

    @property
    def namespaces(self) -> frozenset[str]:
        return frozenset(item.netns for item in self.plan.listeners)

    async def start(self) -> None:
        check_plan(self.plan)
        listeners = self.plan.listeners
        fds = self._fds if self.netns_enter else None
        reserve = len(listeners) + len(self.namespaces) + 64
        soft = raise_nofile_limit(reserve + 2 * self.max_connections)
        if soft < reserve + 64:
            raise LabError(f"RLIMIT_NOFILE {soft} is too low for {len(listeners)} listeners")
        # Each proxied connection holds two descriptors.
        self.max_connections = min(self.max_connections, (soft - reserve) // 2)
        sockets = await arun_in_thread(partial(open_listeners, listeners, bind=self.bind, fds=fds))
        try:
            for item, sock in zip(listeners, sockets, strict=True):
                service = Service(
                    item, sock.getsockname()[1], self._connector(item.netns), self.timeouts
                )
                server = await asyncio.start_server(
                    partial(self._on_connection, service),
                    sock=sock,
                    limit=STREAM_LIMIT,
                    ssl=self._tls(item),
                    ssl_handshake_timeout=self.timeouts.head if item.tls_cert else None,
                )
                self.running.append(Running(service, server))
        except BaseException:
            for sock in sockets:
                sock.close()
            await self.stop()
            raise
        log.info(
            "listening: %d listeners in %d namespaces", len(self.running), len(self.namespaces)
        )

    async def stop(self) -> None:
        """Close every listener and connection; safe to call twice."""
        for item in self.running:
            item.server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        if connections:
            await asyncio.wait(connections, timeout=CLOSE_TIMEOUT)
        for item in self.running:
            await item.server.wait_closed()
        self.running.clear()
        self._fds.close()

    def _tls(self, item: Listener) -> ssl.SSLContext | None:
        """The server context of a TLS listener (one per certificate), None for plain TCP."""
        if not item.tls_cert:
            return None
        context = self._contexts.get(item.tls_cert)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(item.tls_cert, item.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise LabError(f"port {item.port}: cannot load {item.tls_cert}: {exc}") from exc
            self._contexts[item.tls_cert] = context
        return context

    def _connector(self, netns: str) -> Connect:
        source = netns if self.netns_enter else ""
        connector = self._connectors.get(source)
        if connector is None:

            async def connect(host: str, port: int, timeout: float) -> Streams:
                return await connect_from(source, host, port, timeout, fds=self._fds)

            connector = self._connectors[source] = connect
        return connector

    async def _on_connection(
        self, service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is None or len(self._connections) >= self.max_connections:
            writer.transport.abort()
            return
        self._connections.add(task)
        where = f"{service.listener.netns or '-'}:{service.port} ({service.listener.kind})"
        try:
            await handle(service, reader, writer)
        except asyncio.CancelledError:
            # Only stop() cancels these tasks. Ending normally matters on 3.11: the stream
            # callback calls task.exception(), which raises for a cancelled task and makes
            # asyncio log a spurious error for every connection open at shutdown.
            log.debug("%s: connection closed by shutdown", where)
        except _CLIENT_ERRORS as exc:
            log.debug("%s: connection ended: %r", where, exc)
        except Exception:
            log.exception("%s: connection failed", where)
        finally:
            self._connections.discard(task)
            await _close(writer)

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def _close(writer: asyncio.StreamWriter) -> None:
    """Flush and close, but never wait on a peer that stopped reading."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except (OSError, TimeoutError):
        writer.transport.abort()


async def serve(
    plan: ServicePlan,
    *,
    netns_enter: bool = True,
    bind: str = "::",
    timeouts: Timeouts | None = None,
) -> Supervisor:
    """Start every listener of `plan` on the running loop; stop it with `await sup.stop()`.

    `netns_enter=False` ignores each listener's namespace (unit tests on loopback: pass
    `bind="127.0.0.1"` or `"::1"`); a listener whose netns is "" always stays in the current one.
    """
    supervisor = Supervisor(
        plan, netns_enter=netns_enter, bind=bind, timeouts=timeouts or Timeouts()
    )
    await supervisor.start()
    return supervisor
