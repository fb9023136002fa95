"""`tls` probes: a verified TLS handshake per port, and TLS for the http/websocket client.

Stdlib only (`ssl`) and Python 3.8+ (this module runs at the far end of an ssh pipe).

Params: `server-name` (SNI and the name the certificate must be valid for), `tls-ca` (PEM of
the CA(s) to trust; without it the system's trust store). Detail, each value prefixed with
the port: `tls-version` and `tls-cipher` of the negotiated session (also when verification
failed, from a second, unverified handshake, so the evidence shows what the port offers),
`tls-not-after` and `tls-subject` of a verified certificate, `tls-error` when the handshake
or the verification failed. Versions below TLS 1.2 are refused by the context itself.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from reachproof.worker.connect import connect_blocking
from reachproof.worker.target import Target
from reachproof.worker.wire import ProbeReport, Progress, Request

HANDSHAKE_TIMEOUT = 5.0


def client_context(params: dict[str, str], verify: bool) -> ssl.SSLContext:
    """A client context that refuses anything below TLS 1.2; `verify` checks chain and name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    ca = params.get("tls-ca")
    if ca:
        context.load_verify_locations(cadata=ca)
    else:
        context.load_default_certs()
    return context


def wrap(
    sock: socket.socket, params: dict[str, str], verify: bool, timeout: float
) -> ssl.SSLSocket:
    """`sock` after a completed handshake (closed on failure, which raises ssl/OS errors)."""
    name = params.get("server-name") or None
    sock.settimeout(timeout)
    try:
        return client_context(params, verify).wrap_socket(sock, server_hostname=name)
    except BaseException:
        sock.close()
        raise


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate rejected: {exc.verify_message or exc.reason or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"handshake failed: {exc.reason or exc}"
    if isinstance(exc, socket.timeout):
        return "handshake failed: no answer before the timeout"
    return f"handshake failed: {exc}"


def _session(report: ProbeReport, port: int, tls: ssl.SSLSocket) -> None:
    cipher = tls.cipher()
    report.add_detail("tls-version", f"{port} {tls.version() or '?'}")
    report.add_detail("tls-cipher", f"{port} {cipher[0] if cipher else '?'}")


def _subject(cert: Any) -> str:
    """`CN=… san=a,b` of a certificate as `getpeercert()` returns it."""
    parts = [f"{key}={value}" for rdn in cert.get("subject", ()) for key, value in rdn]
    names = [v for kind, v in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    text = ",".join(parts)
    return f"{text} san={','.join(names)}" if names else text


def probe_port(request: Request, target: Target, report: ProbeReport, port: int) -> None:
    sock, outcome = connect_blocking(target, port, request.timeout, request.attempts)
    report.outcomes[port] = outcome
    if sock is None:
        return
    timeout = max(HANDSHAKE_TIMEOUT, request.timeout * 4)
    try:
        tls = wrap(sock, request.params, True, timeout)
    except (ssl.SSLError, OSError) as exc:
        report.add_detail("tls-error", f"{port} {_describe(exc)}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            _unverified(request, target, report, port, timeout)
        return
    try:
        _session(report, port, tls)
        cert = tls.getpeercert() or {}
        report.add_detail("tls-not-after", f"{port} {cert.get('notAfter', '?')}")
        report.add_detail("tls-subject", f"{port} {_subject(cert)}")
    finally:
        tls.close()


def _unverified(
    request: Request, target: Target, report: ProbeReport, port: int, timeout: float
) -> None:
    """What the port negotiates when its certificate is not checked (evidence only)."""
    sock, _ = connect_blocking(target, port, request.timeout, request.attempts)
    if sock is None:
        return
    try:
        tls = wrap(sock, request.params, False, timeout)
    except (ssl.SSLError, OSError):
        return
    try:
        _session(report, port, tls)
    finally:
        tls.close()


def run_tls(request: Request, target: Target, report: ProbeReport, progress: Progress) -> None:
    for port in request.ports:
        probe_port(request, target, report, port)
