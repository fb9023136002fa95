"""RFC 6455 WebSocket for the lab's ttyd-like echo service: handshake, frames, echo loop.

Server side only: client frames must be masked, server frames are not. Every read has an idle
timeout and every frame and message a size cap, so a slow or hostile client costs one task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum
from http import HTTPStatus

from reachproof.lab.services.http import Request, render_response

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 1024 * 1024
MAX_MESSAGE = 1024 * 1024


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_DATA = 1007
    TOO_BIG = 1009


class WebSocketError(Exception):
    """The peer broke the protocol; the connection ends with close `code`."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(f"{code.value}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: Opcode
    payload: bytes


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def is_upgrade(request: Request) -> bool:
    """The request asks for a WebSocket (it may still be a bad handshake)."""
    return "websocket" in request.tokens("upgrade")


def handshake(request: Request) -> bytes:
    """The 101 answer to a valid upgrade request, or the error answer to send instead."""
    key = request.header("sec-websocket-key") or ""
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if request.method != "GET" or "upgrade" not in request.tokens("connection") or not valid_key:
        body = b"bad WebSocket handshake\n"
        return render_response(HTTPStatus.BAD_REQUEST, body)
    if request.header("sec-websocket-version") != "13":
        return render_response(
            HTTPStatus.UPGRADE_REQUIRED,
            b"WebSocket version 13 only\n",
            headers=(("Sec-WebSocket-Version", "13"),),
        )
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def apply_mask(payload: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key; one big-integer XOR instead of a Python loop per byte."""
    if not payload:
        return payload
    size = len(payload)
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")


def encode_frame(opcode: Opcode, payload: bytes, *, fin: bool = True, mask: bytes = b"") -> bytes:
    """One frame; `mask` (4 bytes) only for a client's frames."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    mask_bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack(">H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", size)
    if mask:
        return head + mask + apply_mask(payload, mask)
    return head + payload


async def read_frame(
    reader: asyncio.StreamReader, *, max_payload: int = MAX_FRAME, masked: bool = True
) -> Frame:
    """The next frame; `masked` says the peer must mask (a server reading a client)."""
    first, second = await reader.readexactly(2)
    if first & 0x70:
        raise WebSocketError(CloseCode.PROTOCOL_ERROR, "reserved bits set")
    try:
        opcode = Opcode(first & 0x0F)
    except ValueError as exc:
        raise WebSocketError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {first & 0x0F}") from exc
    fin = bool(first & 0x80)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack(">H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack(">Q", await reader.readexactly(8))
    if opcode >= Opcode.CLOSE and (size > 125 or not fin):
        raise WebSocketError(CloseCode.PROTOCOL_ERROR, "bad control frame")
    if size > max_payload:
        raise WebSocketError(CloseCode.TOO_BIG, f"frame over {max_payload} bytes")
    if bool(second & 0x80) != masked:
        raise WebSocketError(CloseCode.PROTOCOL_ERROR, "wrong masking")
    key = await reader.readexactly(4) if masked else b""
    payload = await reader.readexactly(size)
    return Frame(fin, opcode, apply_mask(payload, key) if masked else payload)


def _close_payload(code: CloseCode | int, reason: str = "") -> bytes:
    return struct.pack(">H", code) + reason.encode("utf-8")[:120]


def _echo_close_code(payload: bytes) -> int:
    """The code to answer a peer's close with: its own, or 1000 when it sent none."""
    if len(payload) == 1:
        raise WebSocketError(CloseCode.PROTOCOL_ERROR, "one-byte close payload")
    if not payload:
        return CloseCode.NORMAL
    (code,) = struct.unpack(">H", payload[:2])
    return int(code)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle: float) -> None:
    """Echo every text and binary message until the peer closes, errs or idles for `idle` s."""
    parts: list[bytes] = []
    size = 0
    kind: Opcode | None = None
    try:
        while True:
            try:
                frame = await asyncio.wait_for(read_frame(reader), idle)
            except TimeoutError:
                writer.write(encode_frame(Opcode.CLOSE, _close_payload(CloseCode.GOING_AWAY)))
                return
            if frame.opcode == Opcode.PING:
                writer.write(encode_frame(Opcode.PONG, frame.payload))
            elif frame.opcode == Opcode.CLOSE:
                code = _echo_close_code(frame.payload)
                writer.write(encode_frame(Opcode.CLOSE, _close_payload(code)))
                return
            elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                if (frame.opcode == Opcode.CONTINUATION) != (kind is not None):
                    raise WebSocketError(CloseCode.PROTOCOL_ERROR, "bad fragmentation")
                kind = kind or frame.opcode
                parts.append(frame.payload)
                size += len(frame.payload)
                if size > MAX_MESSAGE:
                    raise WebSocketError(CloseCode.TOO_BIG, f"message over {MAX_MESSAGE} bytes")
                if frame.fin:
                    message = b"".join(parts)
                    if kind == Opcode.TEXT:
                        _check_utf8(message)
                    writer.write(encode_frame(kind, message))
                    parts, size, kind = [], 0, None
            await asyncio.wait_for(writer.drain(), idle)
    except WebSocketError as exc:
        writer.write(encode_frame(Opcode.CLOSE, _close_payload(exc.code, exc.reason)))
        raise


def _check_utf8(message: bytes) -> None:
    try:
        message.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebSocketError(CloseCode.INVALID_DATA, "text message is not UTF-8") from exc
