"""`http` and `websocket` path probes: a small HTTP/1.1 client over a plain TCP socket.

http: GET `path` (param, default "/") with `Host` (param `host`, default the address),
following up to 5 redirects that stay on the same host (cookies carried, as a browser going
through the AppProxy's permit redirect would). Detail: `status`, `identity` (the first 512
characters of the final body: the lab's apps name their session and host), `location` (the
last redirect target, also one that was not followed).

websocket: an RFC 6455 upgrade (random key, Sec-WebSocket-Accept verified), then one masked
text frame that must come back: detail `status` = "101" and `websocket` = "ok" or what went
wrong. A connection that fails gives the port the state a `tcp-connect` would.

Param `tls` = "1": every connection is wrapped in TLS first (SNI `server-name`), unverified:
the certificate is judged by the `tls` probe (worker/tls.py), this one proves the path.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import ssl
import struct
import time
from urllib.parse import urlsplit

from reachproof.worker.connect import connect_blocking
from reachproof.worker.target import Target
from reachproof.worker.tls import wrap
from reachproof.worker.wire import ProbeReport, Progress, Request

MAX_REDIRECTS = 5
IDENTITY_CHARS = 512
MAX_RESPONSE = 1024 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class HttpError(Exception):
    """The answer was not HTTP we can read; the message goes into the probe's detail."""


class Response:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Conn:
    """A blocking socket with an overall deadline and a read buffer."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""

    def read_more(self) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise HttpError("no complete answer before the timeout")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except OSError as exc:  # socket.timeout is not TimeoutError before Python 3.10
            raise HttpError(f"reading the answer failed: {exc or 'timed out'}") from exc
        self.buffer += chunk
        if len(self.buffer) > MAX_RESPONSE:
            raise HttpError("answer larger than 1 MiB")
        return bool(chunk)

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self.read_more():
                raise HttpError(f"connection closed before {marker!r}")
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def read_exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self.read_more():
                raise HttpError("connection closed mid-answer")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_to_end(self) -> bytes:
        while self.read_more():
            pass
        data, self.buffer = self.buffer, b""
        return data

    def send(self, data: bytes) -> None:
        self.sock.settimeout(max(0.001, self.deadline - time.monotonic()))
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise HttpError(f"sending the request failed: {exc}") from exc


def read_head(conn: Conn) -> tuple[int, list[tuple[str, str]]]:
    # The status line first: a banner service (SSH, a database) answers one line and waits.
    status_line = conn.read_until(b"\r\n").decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP status line: {status_line[:80]!r}")
    while len(conn.buffer) < 2 and conn.read_more():
        pass
    if conn.buffer.startswith(b"\r\n"):
        conn.buffer = conn.buffer[2:]
        lines: list[str] = []
    else:
        lines = conn.read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(f"malformed header line: {line[:80]!r}")
        headers.append((name.strip().lower(), value.strip()))
    return int(parts[1]), headers


def read_body(conn: Conn, headers: list[tuple[str, str]]) -> bytes:
    values = dict(headers)
    if values.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(conn.read_until(b"\r\n").split(b";")[0].strip() or b"0", 16)
            if size == 0:
                conn.read_until(b"\r\n")
                return body
            body += conn.read_exactly(size)
            conn.read_until(b"\r\n")
    if "content-length" in values:
        return conn.read_exactly(int(values["content-length"]))
    return conn.read_to_end()


def host_header(host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == 80 else f"{name}:{port}"


def request_bytes(path: str, host: str, extra: list[str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "User-Agent: reachproof", *extra, "", ""]
    return "\r\n".join(lines).encode("latin-1")


class Client:
    """One probe's HTTP conversation with the target (several connections for redirects)."""

    def __init__(self, request: Request, target: Target, report: ProbeReport) -> None:
        self.request = request
        self.target = target
        self.report = report
        self.host = request.params.get("host") or target.resolved_from or target.address
        self.io_timeout = max(5.0, request.timeout * 4)

    def open(self, port: int) -> Conn | None:
        sock, outcome = connect_blocking(
            self.target, port, self.request.timeout, self.request.attempts
        )
        self.report.outcomes.setdefault(port, outcome)
        if sock is None:
            return None
        if self.request.params.get("tls") == "1":
            # The path is what this probe proves; the certificate is the tls probe's to judge.
            try:
                sock = wrap(sock, self.request.params, False, self.io_timeout)
            except (ssl.SSLError, OSError) as exc:
                raise HttpError(f"TLS handshake failed: {exc}") from exc
        return Conn(sock, time.monotonic() + self.io_timeout)

    def get(self, port: int) -> None:
        path = self.request.params.get("path", "/")
        cookies: dict[str, str] = {}
        for _ in range(MAX_REDIRECTS + 1):
            conn = self.open(port)
            if conn is None:
                return
            try:
                extra = ["Connection: close", "Accept: */*"]
                if cookies:
                    extra.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
                conn.send(request_bytes(path, host_header(self.host, port), extra))
                status, headers = read_head(conn)
                body = read_body(conn, headers)
            finally:
                conn.sock.close()
            for name, value in headers:
                if name == "set-cookie":
                    key, _, rest = value.partition("=")
                    cookies[key.strip()] = rest.split(";")[0].strip()
            location = dict(headers).get("location")
            if status not in REDIRECTS or not location:
                self.report.add_detail("status", str(status))
                self.report.add_detail("identity", body.decode("utf-8", "replace")[:IDENTITY_CHARS])
                return
            self.report.add_detail("location", location)
            url = urlsplit(location)
            if url.hostname and url.hostname not in (self.host.split(":")[0], self.target.address):
                self.report.add_detail("status", str(status))
                self.report.add_detail("redirect", "not followed: another host")
                return
            port = url.port or port
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self.report.add_detail("redirect", f"more than {MAX_REDIRECTS} redirects")

    def websocket(self, port: int) -> None:
        conn = self.open(port)
        if conn is None:
            return
        try:
            self._websocket(conn, port)
        finally:
            conn.sock.close()

    def _websocket(self, conn: Conn, port: int) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        extra = [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        path = self.request.params.get("path", "/")
        conn.send(request_bytes(path, host_header(self.host, port), extra))
        status, headers = read_head(conn)
        self.report.add_detail("status", str(status))
        if status != 101:
            body = read_body(conn, headers) if status >= 200 else b""
            self.report.add_detail("identity", body.decode("utf-8", "replace")[:IDENTITY_CHARS])
            self.report.add_detail("websocket", f"no upgrade: status {status}")
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if dict(headers).get("sec-websocket-accept") != accept:
            self.report.add_detail("websocket", "Sec-WebSocket-Accept does not match the key")
            return
        message = f"reachproof {secrets.token_hex(8)}".encode()
        conn.send(masked_text_frame(message))
        opcode, payload = read_frame(conn)
        if opcode == 0x1 and payload == message:
            self.report.add_detail("websocket", "ok")
        else:
            self.report.add_detail("websocket", f"echo mismatch: opcode {opcode}, {payload[:64]!r}")


def masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    if length < 126:
        header = bytes([0x81, 0x80 | length])
    else:
        header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", length)
    return header + mask + masked


def read_frame(conn: Conn) -> tuple[int, bytes]:
    first, second = conn.read_exactly(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", conn.read_exactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", conn.read_exactly(8))[0]
    mask = conn.read_exactly(4) if second & 0x80 else b""
    data = conn.read_exactly(length)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return first & 0x0F, data


def _run(request: Request, target: Target, report: ProbeReport, websocket: bool) -> None:
    client = Client(request, target, report)
    for port in request.ports:
        try:
            if websocket:
                client.websocket(port)
            else:
                client.get(port)
        except HttpError as exc:
            report.add_detail("http-error", str(exc))


def run_http(request: Request, target: Target, report: ProbeReport, progress: Progress) -> None:
    _run(request, target, report, websocket=False)


def run_websocket(
    request: Request, target: Target, report: ProbeReport, progress: Progress
) -> None:
    _run(request, target, report, websocket=True)
