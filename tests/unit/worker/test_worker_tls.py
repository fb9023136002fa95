"""tls probes (and http/websocket over TLS) through the real bundle against the lab's services
on loopback, with certificates from the lab's own CA (lab/tlscerts.py, the openssl CLI).

Cost: one CA and four certificates (~0.3 s), one worker, one supervisor.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from workerkit import Worker, detail, port_states

from reachproof.lab.services.spec import Listener, ServiceKind, ServicePlan
from reachproof.lab.services.supervisor import serve
from reachproof.lab.tlscerts import issue, make_ca

NAME = "web.sg.lab"


@dataclass(frozen=True)
class Ports:
    valid: int  # HTTP + WebSocket over TLS, certificate for NAME and 127.0.0.1
    expired: int  # TLS, certificate valid in January 2020 only
    other_name: int  # TLS, certificate for another name
    plain: int  # plain HTTP


@pytest.fixture(scope="module")
def lab_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ports, str]]:
    directory: Path = tmp_path_factory.mktemp("ca")
    ca = make_ca(directory, "sg test CA")
    valid = issue(directory, "valid", NAME, ("127.0.0.1",))
    expired = issue(directory, "expired", NAME, expired=True)
    other = issue(directory, "other", "elsewhere.sg.lab")

    def listener(kind: ServiceKind, cert: Path | None = None, key: Path | None = None) -> Listener:
        return Listener("", 0, kind, "session=s1 host=main1", (), str(cert or ""), str(key or ""))

    plan = ServicePlan(
        (
            listener(ServiceKind.WS_ECHO, valid.cert, valid.key),
            listener(ServiceKind.HTTP, expired.cert, expired.key),
            listener(ServiceKind.HTTP, other.cert, other.key),
            listener(ServiceKind.HTTP),
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sup = asyncio.run_coroutine_threadsafe(
        serve(plan, netns_enter=False, bind="127.0.0.1"), loop
    ).result(30)
    try:
        yield Ports(*sup.ports), ca.read_text(encoding="utf-8")
    finally:
        asyncio.run_coroutine_threadsafe(sup.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker() as running:
        yield running


def _tls(worker: Worker, port: int, ca: str | None, name: str = NAME) -> dict[str, object]:
    params = {"server-name": name, **({"tls-ca": ca} if ca else {})}
    return worker.probe("tls", "127.0.0.1", [(port, port)], params=params)


def test_a_valid_certificate_gives_version_cipher_and_expiry(
    worker: Worker, lab_tls: tuple[Ports, str]
) -> None:
    ports, ca = lab_tls
    result = _tls(worker, ports.valid, ca)
    assert port_states(result) == {ports.valid: ("open", "syn-ack")}
    assert detail(result, "tls-error") == []
    version = detail(result, "tls-version")[0]
    assert version in (f"{ports.valid} TLSv1.2", f"{ports.valid} TLSv1.3")
    assert detail(result, "tls-cipher")[0].split()[1]  # a cipher name
    assert detail(result, "tls-not-after")[0].endswith("GMT")
    assert f"commonName={NAME}" in detail(result, "tls-subject")[0]


# (port, CA given, name asked for, what the error must say)
REJECTED = [
    ("expired", True, NAME, "certificate has expired"),
    ("other_name", True, NAME, "Hostname mismatch"),
    ("valid", True, "not-the-name.sg.lab", "Hostname mismatch"),
    ("valid", False, NAME, "unable to get local issuer certificate"),
    ("plain", True, NAME, "handshake failed"),
]


@pytest.mark.parametrize(("which", "with_ca", "name", "says"), REJECTED)
def test_a_certificate_or_port_that_fails_is_explained(
    worker: Worker, lab_tls: tuple[Ports, str], which: str, with_ca: bool, name: str, says: str
) -> None:
    ports, ca = lab_tls
    port = getattr(ports, which)
    result = _tls(worker, port, ca if with_ca else None, name)
    assert port_states(result) == {port: ("open", "syn-ack")}
    errors = detail(result, "tls-error")
    assert len(errors) == 1 and says in errors[0], errors
    if which != "plain":  # a rejected certificate still shows what the port negotiates
        assert detail(result, "tls-version")[0].startswith(f"{port} TLSv1.")
    else:
        assert detail(result, "tls-version") == []


def test_http_and_websocket_speak_tls_when_asked(
    worker: Worker, lab_tls: tuple[Ports, str]
) -> None:
    ports, _ = lab_tls
    params = {"tls": "1", "server-name": NAME}
    http = worker.probe("http", "127.0.0.1", [(ports.valid, ports.valid)], params=params)
    assert detail(http, "status") == ["200"]
    assert "host=main1" in detail(http, "identity")[0]
    ws = worker.probe("websocket", "127.0.0.1", [(ports.valid, ports.valid)], params=params)
    assert detail(ws, "websocket") == ["ok"]
    # Unverified on purpose (the tls probe judges certificates): an expired one still serves.
    old = worker.probe("http", "127.0.0.1", [(ports.expired, ports.expired)], params=params)
    assert detail(old, "status") == ["200"]
    plain = worker.probe("http", "127.0.0.1", [(ports.plain, ports.plain)], params=params)
    assert "TLS handshake failed" in detail(plain, "http-error")[0]
