"""http and websocket probes through the real bundle against the lab's services on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from workerkit import Worker, detail, port_states

from reachproof.lab.services.spec import Listener, ServiceKind, ServicePlan
from reachproof.lab.services.supervisor import serve


@dataclass(frozen=True)
class Services:
    app: int  # HTTP, answers its identity
    ttyd: int  # HTTP + WebSocket echo
    proxy: int  # AppProxy worker forwarding to the app
    banner: int  # not HTTP


def _ports(supervisor: object) -> list[int]:
    return [int(p) for p in supervisor.ports]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def start() -> None:
        app = Listener("", 0, ServiceKind.HTTP, "session=s1 host=main1 app=jupyter")
        sup1 = await serve(ServicePlan((app,)), netns_enter=False, bind="127.0.0.1")
        app_port = _ports(sup1)[0]
        rest = (
            Listener("", 0, ServiceKind.WS_ECHO, "session=s1 host=main1 app=ttyd"),
            Listener("", 0, ServiceKind.APPPROXY_WORKER, "appproxy", (("127.0.0.1", app_port),)),
            Listener("", 0, ServiceKind.BANNER, "SSH-2.0-dropbear"),
        )
        sup2 = await serve(ServicePlan(rest), netns_enter=False, bind="127.0.0.1")
        box["sups"] = (sup1, sup2)
        box["ports"] = Services(app_port, *_ports(sup2))
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield box["ports"]  # type: ignore[misc]
    finally:
        for sup in box["sups"]:  # type: ignore[attr-defined]
            asyncio.run_coroutine_threadsafe(sup.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker() as running:
        yield running


def test_http_status_and_identity(worker: Worker, services: Services) -> None:
    result = worker.probe(
        "http", "127.0.0.1", [(services.app, services.app)], params={"path": "/x"}
    )
    assert port_states(result) == {services.app: ("open", "syn-ack")}
    assert detail(result, "status") == ["200"]
    assert detail(result, "identity")[0].startswith("session=s1 host=main1 app=jupyter path=/x")


def test_http_through_the_proxy_reaches_the_app(worker: Worker, services: Services) -> None:
    result = worker.probe("http", "127.0.0.1", [(services.proxy, services.proxy)])
    assert detail(result, "status") == ["200"]
    assert "app=jupyter" in detail(result, "identity")[0]


def test_websocket_upgrade_and_echo(worker: Worker, services: Services) -> None:
    result = worker.probe("websocket", "127.0.0.1", [(services.ttyd, services.ttyd)])
    assert detail(result, "status") == ["101"]
    assert detail(result, "websocket") == ["ok"]


def test_websocket_on_a_plain_http_app_says_no_upgrade(worker: Worker, services: Services) -> None:
    result = worker.probe("websocket", "127.0.0.1", [(services.app, services.app)])
    assert detail(result, "status") == ["200"]
    assert detail(result, "websocket") == ["no upgrade: status 200"]


def test_not_http_is_explained_without_a_status(worker: Worker, services: Services) -> None:
    result = worker.probe("http", "127.0.0.1", [(services.banner, services.banner)])
    assert port_states(result) == {services.banner: ("open", "syn-ack")}
    assert detail(result, "status") == []
    assert "not an HTTP status line" in detail(result, "http-error")[0]


def test_closed_port_gives_the_connect_state(worker: Worker) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = worker.probe("http", "127.0.0.1", [(port, port)])
    assert port_states(result) == {port: ("closed", "rst")}
    assert detail(result, "status") == []


def test_redirects_are_followed_on_the_same_host(worker: Worker) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    answers = [
        f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/b\r\n"
        "Set-Cookie: permit=yes; Path=/\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 301 Moved\r\nLocation: /c\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ]
    seen: list[bytes] = []

    def serve_three() -> None:
        for answer in answers:
            conn, _ = server.accept()
            with conn:
                seen.append(conn.recv(4096))
                conn.sendall(answer.encode())

    thread = threading.Thread(target=serve_three, daemon=True)
    thread.start()
    try:
        result = worker.probe("http", "127.0.0.1", [(port, port)], params={"path": "/a"})
    finally:
        thread.join(10)
        server.close()
    assert detail(result, "status") == ["200"]
    assert detail(result, "identity") == ["hello"]
    assert detail(result, "location") == [f"http://127.0.0.1:{port}/b", "/c"]
    assert seen[0].startswith(b"GET /a ") and seen[2].startswith(b"GET /c ")
    assert b"Cookie: permit=yes" in seen[2]
