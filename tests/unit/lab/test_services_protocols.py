"""The lab services' HTTP reader and WebSocket framing, fed from in-memory streams."""

from __future__ import annotations

import asyncio
import os
from http import HTTPStatus

import pytest

from reachproof.errors import LabError
from reachproof.lab.services.http import MAX_BODY, MAX_HEADERS, HttpError, Request, read_request
from reachproof.lab.services.nsock import arun_in_netns, run_in_netns, socket_in_netns
from reachproof.lab.services.proxy import forwarded_headers
from reachproof.lab.services.websocket import (
    CloseCode,
    Opcode,
    WebSocketError,
    accept_key,
    encode_frame,
    read_frame,
)


def feed(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=16 * 1024)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def parse(data: bytes) -> Request | None:
    async def go() -> Request | None:
        return await read_request(feed(data))

    return asyncio.run(go())


def refused(data: bytes) -> HTTPStatus:
    with pytest.raises(HttpError) as caught:
        parse(data)
    return caught.value.status


def test_request_with_headers_and_body() -> None:
    request = parse(
        b"\r\nPOST /api/x?y=1 HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n"
        b"Connection: keep-alive, Upgrade\r\n\r\nhello"
    )
    assert request is not None
    assert (request.method, request.target, request.path, request.body) == (
        "POST",
        "/api/x?y=1",
        "/api/x",
        b"hello",
    )
    assert request.header("HOST") == "web"
    assert request.tokens("connection") == {"keep-alive", "upgrade"}


def test_bare_lf_and_absolute_form_are_accepted() -> None:
    request = parse(b"GET http://h:1/p?q HTTP/1.0\nHost: h\n\n")
    assert request is not None
    assert (request.path, request.origin_target) == ("/p", "/p?q")


def test_eof_before_any_byte_is_no_request() -> None:
    assert parse(b"") is None


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/2.0\r\n\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
        (b"GET nope HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nA: b\rX-Injected: 1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", HTTPStatus.BAD_REQUEST),
        (
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            HTTPStatus.BAD_REQUEST,
        ),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nshort", HTTPStatus.BAD_REQUEST),
        (
            b"GET / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        ),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", HTTPStatus.NOT_IMPLEMENTED),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),
        (
            b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\n\r\n",
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        (
            b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * (MAX_HEADERS + 1) + b"\r\n",
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
    ],
)
def test_bad_requests_get_the_right_status(data: bytes, status: HTTPStatus) -> None:
    assert refused(data) == status


def test_forwarded_headers_drop_hop_by_hop_and_extend_the_chain() -> None:
    request = parse(
        b"GET / HTTP/1.1\r\nHost: front\r\nConnection: close, X-Secret\r\nX-Secret: s\r\n"
        b"Keep-Alive: 5\r\nX-Forwarded-For: 192.0.2.1\r\nAccept: */*\r\n\r\n"
    )
    assert request is not None
    headers = forwarded_headers(request, "10.0.0.9:30001", "198.51.100.4", upgrade=False)
    names = [name.lower() for name, _ in headers]
    assert "x-secret" not in names and "keep-alive" not in names
    assert dict(headers)["Host"] == "10.0.0.9:30001"
    assert dict(headers)["X-Forwarded-For"] == "192.0.2.1, 198.51.100.4"
    assert dict(headers)["Accept"] == "*/*"
    assert dict(headers)["Connection"] == "close"


def test_accept_key_matches_rfc_6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_masked_frames_round_trip(size: int) -> None:
    payload = os.urandom(size)
    wire = encode_frame(Opcode.BINARY, payload, mask=os.urandom(4))

    async def go() -> None:
        frame = await read_frame(feed(wire))
        assert (frame.fin, frame.opcode, frame.payload) == (True, Opcode.BINARY, payload)

    asyncio.run(go())


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (bytes([0xC1, 0x80]) + b"\0" * 4, CloseCode.PROTOCOL_ERROR),  # RSV1 without extension
        (bytes([0x83, 0x80]) + b"\0" * 4, CloseCode.PROTOCOL_ERROR),  # reserved opcode
        (bytes([0x09, 0x80]) + b"\0" * 4, CloseCode.PROTOCOL_ERROR),  # fragmented ping
        (bytes([0x89, 0xFE, 0x00, 0x80]) + b"\0" * 132, CloseCode.PROTOCOL_ERROR),  # long ping
        (bytes([0x82, 0xFF]) + (1 << 40).to_bytes(8, "big"), CloseCode.TOO_BIG),
        (bytes([0x81, 0x01]) + b"x", CloseCode.PROTOCOL_ERROR),  # unmasked client frame
    ],
)
def test_bad_frames_are_refused_with_a_close_code(wire: bytes, code: CloseCode) -> None:
    async def go() -> None:
        with pytest.raises(WebSocketError) as caught:
            await read_frame(feed(wire))
        assert caught.value.code == code

    asyncio.run(go())


def test_netns_helpers_in_the_current_namespace() -> None:
    assert run_in_netns("", lambda: 7) == 7

    async def go() -> int:
        return await arun_in_netns("", lambda: 8)

    assert asyncio.run(go()) == 8
    with socket_in_netns("") as sock:
        assert sock.fileno() >= 0


@pytest.mark.parametrize("name", ["rpsvc-surely-missing-0f3a", "../etc", "a/b"])
def test_netns_helpers_name_what_is_wrong(name: str) -> None:
    with pytest.raises(LabError, match="namespace"):
        socket_in_netns(name)

    async def go() -> None:
        await arun_in_netns(name, lambda: None)

    with pytest.raises(LabError, match="namespace"):
        asyncio.run(go())
