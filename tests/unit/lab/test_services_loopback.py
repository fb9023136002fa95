"""Every service kind, run in-process by `serve()` on loopback (127.0.0.1 and ::1), no root.

The client side is written independently of the server code (its own WebSocket key check and
frame encoding), so a bug shared by both cannot hide.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TypeVar

import pytest

from reachproof.lab.services.kinds import Timeouts
from reachproof.lab.services.spec import Listener, ServiceKind, ServicePlan
from reachproof.lab.services.supervisor import Supervisor, serve

T = TypeVar("T")
IO_TIMEOUT = 5.0
HOSTS = ["127.0.0.1", "::1"]


def run(factory: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(factory(), 30)

    return asyncio.run(bounded())


def listener(kind: ServiceKind, identity: str, *upstreams: tuple[str, int]) -> Listener:
    return Listener(netns="", port=0, kind=kind, identity=identity, upstreams=tuple(upstreams))


@asynccontextmanager
async def running(
    host: str, *listeners: Listener, timeouts: Timeouts | None = None
) -> AsyncIterator[Supervisor]:
    supervisor = await serve(
        ServicePlan(tuple(listeners)), netns_enter=False, bind=host, timeouts=timeouts
    )
    try:
        yield supervisor
    finally:
        await supervisor.stop()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), IO_TIMEOUT)


def parse_answer(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split(" ")[1]), headers, body)


async def http_get(host: str, port: int, path: str, *extra: str) -> Answer:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = [f"GET {path} HTTP/1.1", f"Host: lab:{port}", *extra, "", ""]
        writer.write("\r\n".join(head).encode())
        return parse_answer(await read_all(reader))
    finally:
        writer.close()


def expected_accept(key: str) -> str:
    magic = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    return base64.b64encode(hashlib.sha1(key.encode() + magic).digest()).decode()


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final client frame (payloads under 64 KiB are all the tests need)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        size = bytes([0x80 | len(payload)])
    else:
        size = bytes([0x80 | 126]) + struct.pack(">H", len(payload))
    return bytes([0x80 | opcode]) + size + mask + masked


async def server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await asyncio.wait_for(reader.readexactly(2), IO_TIMEOUT)
    assert second & 0x80 == 0, "server frames must not be masked"
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack(">H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack(">Q", await reader.readexactly(8))
    return first & 0x0F, await asyncio.wait_for(reader.readexactly(size), IO_TIMEOUT)


async def websocket_session(host: str, port: int, path: str = "/ws") -> None:
    """Handshake (accept key checked independently), then echo of text, binary and ping."""
    key = base64.b64encode(os.urandom(16)).decode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = [
            f"GET {path} HTTP/1.1",
            f"Host: lab:{port}",
            "Upgrade: websocket",
            "Connection: keep-alive, Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            "",
            "",
        ]
        writer.write("\r\n".join(request).encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
        answer = parse_answer(head)
        assert answer.status == 101
        assert answer.headers["upgrade"].lower() == "websocket"
        assert answer.headers["sec-websocket-accept"] == expected_accept(key)
        writer.write(client_frame(0x1, "héllo".encode()))
        assert await server_frame(reader) == (0x1, "héllo".encode())
        blob = os.urandom(300)
        writer.write(client_frame(0x2, blob))
        assert await server_frame(reader) == (0x2, blob)
        writer.write(client_frame(0x9, b"are-you-there"))
        assert await server_frame(reader) == (0xA, b"are-you-there")
        writer.write(client_frame(0x8, struct.pack(">H", 1000)))
        assert await server_frame(reader) == (0x8, struct.pack(">H", 1000))
        assert await read_all(reader) == b""
    finally:
        writer.close()


@contextmanager
def refusing_port(host: str) -> Iterator[int]:
    """A loopback port that is bound but not listening: connecting to it is refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        yield sock.getsockname()[1]


@pytest.fixture(params=HOSTS)
def host(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    if ":" in value and not socket.has_ipv6:
        pytest.skip("no IPv6 loopback")
    return value


def test_banner_sends_identity_line(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.BANNER, "SSH-2.0-dropbear_2022.83")) as sup:
            reader, writer = await asyncio.open_connection(host, sup.ports[0])
            line = await asyncio.wait_for(reader.readline(), IO_TIMEOUT)
            writer.write(b"SSH-2.0-probe\r\n")
            writer.write_eof()
            assert await read_all(reader) == b""
            writer.close()
            assert line == b"SSH-2.0-dropbear_2022.83\r\n"

    run(scenario)


def test_http_answers_identity_path_and_livez(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.HTTP, "session=s1 host=main1")) as sup:
            answer = await http_get(host, sup.ports[0], "/some/page?q=1")
            assert answer.status == 200
            assert answer.headers["content-type"].startswith("text/plain")
            assert b"session=s1 host=main1" in answer.body
            assert b"/some/page" in answer.body
            assert int(answer.headers["content-length"]) == len(answer.body)
            live = await http_get(host, sup.ports[0], "/livez")
            assert (live.status, live.body) == (200, b"ok\n")

    run(scenario)


def test_ws_echo_handshake_and_echo(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.WS_ECHO, "ttyd main1")) as sup:
            await websocket_session(host, sup.ports[0])
            plain = await http_get(host, sup.ports[0], "/")
            assert plain.status == 200 and b"ttyd main1" in plain.body

    run(scenario)


def test_ws_echo_rejects_bad_handshake_and_unmasked_frames(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.WS_ECHO, "ttyd")) as sup:
            port = sup.ports[0]
            bad = await http_get(
                host, port, "/", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: x"
            )
            assert bad.status == 400
            key = base64.b64encode(os.urandom(16)).decode()
            reader, writer = await asyncio.open_connection(host, port)
            upgrade = (
                f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            writer.write(upgrade.encode())
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
            writer.write(bytes([0x81, 0x02]) + b"hi")  # unmasked: a protocol error
            assert await server_frame(reader) == (0x8, struct.pack(">H", 1002) + b"wrong masking")
            writer.close()

    run(scenario)


def test_webserver_forwards_api_to_manager(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.MANAGER, "manager mgr1")) as mgr:
            web = listener(ServiceKind.WEBSERVER, "webserver web1", (host, mgr.ports[0]))
            async with running(host, web) as sup:
                api = await http_get(host, sup.ports[0], "/api/sessions")
                assert api.status == 200
                assert b"manager mgr1" in api.body and b"/api/sessions" in api.body
                home = await http_get(host, sup.ports[0], "/")
                assert b"webserver web1" in home.body

    run(scenario)


def test_manager_reports_each_agent(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.BANNER, "agent-rpc")) as agent:
            agent_port = agent.ports[0]
            with refusing_port(host) as dead:
                agents = ((host, agent_port), (host, dead))
                mgr = listener(ServiceKind.MANAGER, "manager", *agents)
                async with running(host, mgr) as sup:
                    answer = await http_get(host, sup.ports[0], "/api/agents")
                    web = listener(ServiceKind.WEBSERVER, "web", (host, sup.ports[0]))
                    async with running(host, web) as front:
                        via_web = await http_get(host, front.ports[0], "/api/agents")
        key = f"[{host}]" if ":" in host else host
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/json"
        report = json.loads(answer.body)["agents"]
        assert report[f"{key}:{agent_port}"] == "ok"
        assert report[f"{key}:{dead}"].startswith("error: ")
        assert "refused" in report[f"{key}:{dead}"].lower()
        assert json.loads(via_web.body) == json.loads(answer.body)

    run(scenario)


async def capturing_upstream(host: str, seen: list[bytes]) -> asyncio.Server:
    """A bare upstream that records the request head it got and answers `captured`."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\ncaptured\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(on_client, host, 0)


def test_appproxy_worker_proxies_to_the_app(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.HTTP, "session=s1 host=main1")) as app:
            worker = listener(ServiceKind.APPPROXY_WORKER, "worker 10205", (host, app.ports[0]))
            async with running(host, worker) as sup:
                answer = await http_get(host, sup.ports[0], "/lab?x=1")
        assert answer.status == 200
        assert b"session=s1 host=main1" in answer.body and b"/lab" in answer.body

    run(scenario)


def test_appproxy_worker_rewrites_host_and_adds_forwarded_for(host: str) -> None:
    async def scenario() -> None:
        seen: list[bytes] = []
        upstream = await capturing_upstream(host, seen)
        port = upstream.sockets[0].getsockname()[1]
        try:
            worker = listener(ServiceKind.APPPROXY_WORKER, "worker", (host, port))
            async with running(host, worker) as sup:
                answer = await http_get(
                    host, sup.ports[0], "/p", "Connection: keep-alive", "X-Forwarded-For: 192.0.2.7"
                )
        finally:
            upstream.close()
            await upstream.wait_closed()
        assert (answer.status, answer.body) == (200, b"captured\n")
        head = _request_headers(seen[0])
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        assert head["host"] == target
        assert head["x-forwarded-for"] == f"192.0.2.7, {host}"
        assert head["connection"] == "close"
        assert head["x-forwarded-host"].startswith("lab:")

    run(scenario)


def _request_headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.partition(":") for line in lines if line)
    return {name.strip().lower(): value.strip() for name, _, value in pairs}


def test_appproxy_worker_unregistered_slot_is_400(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.APPPROXY_WORKER, "worker")) as sup:
            answer = await http_get(host, sup.ports[0], "/")
            assert answer.status == 400
            assert b"unregistered" in answer.body

    run(scenario)


def test_appproxy_worker_upstream_down_is_502(host: str) -> None:
    async def scenario() -> None:
        with refusing_port(host) as dead:
            worker = listener(ServiceKind.APPPROXY_WORKER, "worker", (host, dead))
            async with running(host, worker) as sup:
                answer = await http_get(host, sup.ports[0], "/")
        assert answer.status == 502
        assert str(dead).encode() in answer.body and b"unreachable" in answer.body

    run(scenario)


def test_websocket_through_the_appproxy_end_to_end(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.WS_ECHO, "ttyd main1")) as app:
            worker = listener(ServiceKind.APPPROXY_WORKER, "worker", (host, app.ports[0]))
            async with running(host, worker) as sup:
                await websocket_session(host, sup.ports[0])

    run(scenario)


def test_slow_and_bad_clients_do_not_block_others(host: str) -> None:
    async def scenario() -> None:
        fast = Timeouts(head=0.5)
        async with running(host, listener(ServiceKind.HTTP, "h"), timeouts=fast) as sup:
            port = sup.ports[0]
            idle = [await asyncio.open_connection(host, port) for _ in range(5)]
            answer = await http_get(host, port, "/")
            assert answer.status == 200
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            assert parse_answer(await read_all(reader)).status == 400
            writer.close()
            # The silent clients get 408 once their head timeout passes, then the close.
            timed_out = parse_answer(await read_all(idle[0][0]))
            assert timed_out.status == 408
            for _, idle_writer in idle:
                idle_writer.close()
            assert (await http_get(host, port, "/livez")).status == 200

    run(scenario)


async def upgraded(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    key = base64.b64encode(os.urandom(16)).decode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 ")
    return reader, writer


def test_ws_echo_reassembles_fragments_around_a_ping(host: str) -> None:
    async def scenario() -> None:
        async with running(host, listener(ServiceKind.WS_ECHO, "ttyd")) as sup:
            reader, writer = await upgraded(host, sup.ports[0])
            first = client_frame(0x1, b"hel")
            writer.write(bytes([first[0] & 0x7F]) + first[1:])  # FIN clear: more to come
            writer.write(client_frame(0x9, b"p"))
            writer.write(client_frame(0x0, b"lo"))
            assert await server_frame(reader) == (0xA, b"p")
            assert await server_frame(reader) == (0x1, b"hello")
            writer.write(client_frame(0x1, b"\xff\xfe"))
            code, payload = await server_frame(reader)
            assert (code, payload[:2]) == (0x8, struct.pack(">H", 1007))
            assert await read_all(reader) == b""
            writer.close()

    run(scenario)


def test_garbage_never_kills_the_supervisor_nor_logs_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = "127.0.0.1"
    random = __import__("random").Random(6455)
    upgrade = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    prefixes = [
        b"",
        b"GET / HTTP/1.1\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n",
        upgrade,
    ]

    async def poke(port: int, blob: bytes) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(blob)
            writer.write_eof()
            await asyncio.wait_for(reader.read(), IO_TIMEOUT)
        except ConnectionError:
            pass  # the server may reset a connection it refused: that is fine
        finally:
            writer.close()

    async def scenario() -> None:
        quick = Timeouts(head=0.5, idle=1.0, websocket_idle=1.0, banner_linger=0.5, connect=0.5)
        async with running(host, listener(ServiceKind.WS_ECHO, "ttyd"), timeouts=quick) as app:
            app_port = app.ports[0]
            kinds = [
                listener(ServiceKind.BANNER, "SSH-2.0-x"),
                listener(ServiceKind.HTTP, "h"),
                listener(ServiceKind.WS_ECHO, "w"),
                listener(ServiceKind.WEBSERVER, "web", (host, app_port)),
                listener(ServiceKind.MANAGER, "m", (host, app_port)),
                listener(ServiceKind.APPPROXY_WORKER, "p", (host, app_port)),
            ]
            async with running(host, *kinds, timeouts=quick) as sup:
                blobs = [
                    random.choice(prefixes) + random.randbytes(random.randrange(0, 3000))
                    for _ in range(40)
                ]
                await asyncio.gather(*(poke(port, blob) for port in sup.ports for blob in blobs))
                for port in sup.ports[1:]:
                    assert (await http_get(host, port, "/livez")).status in (200, 502)
                await websocket_session(host, sup.ports[5])

    with caplog.at_level("WARNING", logger="reachproof.lab.services"):
        run(scenario)
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "WARNING")]
