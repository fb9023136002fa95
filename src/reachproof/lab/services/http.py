"""A small, strict HTTP/1.x request reader and response writer for the lab's services.

One request per connection (`Connection: close` on every answer), bounded everywhere: request
line, header count and size, and body size. Chunked request bodies are refused (501); the lab's
clients (probes, curl, browsers doing GET and WebSocket upgrades) never need them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

MAX_LINE = 8 * 1024
MAX_HEADERS = 100
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY = 1024 * 1024
# The StreamReader's own buffer limit must exceed MAX_LINE so an over-long line is ours to judge.
STREAM_LIMIT = 2 * MAX_LINE

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class HttpError(Exception):
    """The request cannot be served; `status` is the answer to send."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(f"{status.value} {status.phrase}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def tokens(self, name: str) -> frozenset[str]:
        """Lower-cased comma-separated tokens over every `name` header (Connection, Upgrade)."""
        wanted = name.lower()
        return frozenset(
            part.strip().lower()
            for key, value in self.headers
            if key.lower() == wanted
            for part in value.split(",")
            if part.strip()
        )

    @property
    def path(self) -> str:
        """The path without query; absolute-form targets (`http://h/p`) reduced to their path."""
        if "://" in self.target:
            return urlsplit(self.target).path or "/"
        return self.target.split("?", 1)[0] or "/"

    @property
    def origin_target(self) -> str:
        """The target in origin form (`/p?q`), as it is sent on to an upstream."""
        if "://" not in self.target:
            return self.target
        parts = urlsplit(self.target)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


async def _read_line(reader: asyncio.StreamReader) -> str | None:
    """One header-section line without its CRLF (bare LF tolerated); None on EOF at its start."""
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise HttpError(
            HTTPStatus.BAD_REQUEST, "connection closed inside the request head"
        ) from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "line too long") from exc
    if len(raw) > MAX_LINE:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "line too long")
    line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    # A CR or NUL left inside a line could smuggle a second header past an upstream.
    if b"\r" in line or b"\0" in line:
        raise HttpError(HTTPStatus.BAD_REQUEST, "control character inside a line")
    return line.decode("latin-1")


def _parse_request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed request line {line[:80]!r}")
    method, target, version = parts
    if not set(method) <= _TOKEN_CHARS:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed method {method[:20]!r}")
    if not version.startswith("HTTP/"):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed version {version[:20]!r}")
    if version not in {"HTTP/1.0", "HTTP/1.1"}:
        raise HttpError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"{version[:20]} not supported")
    if not (target.startswith("/") or "://" in target or target == "*"):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed target {target[:80]!r}")
    return method, target, version


def _parse_header(line: str) -> tuple[str, str]:
    if line[:1] in {" ", "\t"}:
        raise HttpError(HTTPStatus.BAD_REQUEST, "obsolete header line folding")
    name, sep, value = line.partition(":")
    if not sep or not name or not set(name) <= _TOKEN_CHARS:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed header {line[:80]!r}")
    return name, value.strip(" \t")


def _content_length(headers: list[tuple[str, str]]) -> int:
    values = {value for key, value in headers if key.lower() == "content-length"}
    if not values:
        return 0
    if len(values) > 1:
        raise HttpError(HTTPStatus.BAD_REQUEST, "conflicting Content-Length headers")
    (value,) = values
    if not value.isdigit() or not value.isascii():
        raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed Content-Length {value[:20]!r}")
    length = int(value)
    if length > MAX_BODY:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
    return length


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request, or None when the client closed before sending a byte."""
    line = await _read_line(reader)
    # RFC 9112 §2.2: ignore at least one empty line before the request line.
    for _ in range(2):
        if line != "":
            break
        line = await _read_line(reader)
    if line is None:
        return None
    method, target, version = _parse_request_line(line)
    headers: list[tuple[str, str]] = []
    head_bytes = len(line)
    while True:
        field = await _read_line(reader)
        if field is None:
            raise HttpError(HTTPStatus.BAD_REQUEST, "connection closed inside the request head")
        if field == "":
            break
        head_bytes += len(field)
        if len(headers) >= MAX_HEADERS or head_bytes > MAX_HEAD_BYTES:
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header bytes")
        headers.append(_parse_header(field))
    if any(key.lower() == "transfer-encoding" for key, _ in headers):
        raise HttpError(HTTPStatus.NOT_IMPLEMENTED, "Transfer-Encoding in requests")
    length = _content_length(headers)
    try:
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise HttpError(HTTPStatus.BAD_REQUEST, "connection closed inside the body") from exc
    return Request(method, target, version, tuple(headers), body)


def render_response(
    status: HTTPStatus,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: tuple[tuple[str, str], ...] = (),
    head_only: bool = False,
) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection after it."""
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{key}: {value}" for key, value in headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def text_response(status: HTTPStatus, text: str, *, head_only: bool = False) -> bytes:
    return render_response(status, (text + "\n").encode("utf-8"), head_only=head_only)


def render_request(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> bytes:
    """A request head plus body, for forwarding to an upstream."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{key}: {value}" for key, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
