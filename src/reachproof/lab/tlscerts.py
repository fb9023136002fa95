"""The lab's certificate authority: a CA and server certificates, made with the `openssl` CLI.

`lab up` makes one CA per lab (its private key never leaves the lab's state directory) and a
certificate per TLS service, valid for the host's name and addresses; the inventory carries
the CA's certificate so the checker can verify. A fault can ask for a certificate whose
validity ended in the past (`expired=True`), which `openssl ca` signs with explicit dates.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from reachproof.errors import LabError
from reachproof.lab.topology import Topology

# A fixed window long past: an expired certificate is expired whatever the clock says.
EXPIRED_START, EXPIRED_END = "20200101000000Z", "20200201000000Z"
VALID_DAYS = 30
_CURVE = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclass(frozen=True)
class ServerCert:
    cert: Path  # PEM, the server certificate
    key: Path  # PEM, its private key


def _openssl(*args: str, cwd: Path) -> None:
    try:
        subprocess.run(
            ["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError as exc:
        raise LabError(
            "the lab's TLS services need the openssl command (apt-get install openssl)"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise LabError(f"openssl {args[0]} failed: {exc.stderr.strip()[-400:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"openssl {args[0]} did not finish in 60 s") from exc


def make_ca(directory: Path, name: str) -> Path:
    """A new CA in `directory` (created, mode 0700); the path of its certificate (PEM)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", *_CURVE, "-keyout", "ca.key", "-out", "ca.pem", "-days", str(VALID_DAYS),
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    (directory / "index.txt").write_text("", encoding="utf-8")
    (directory / "serial").write_text("1000\n", encoding="utf-8")
    (directory / "ca.cnf").write_text(_CA_CONFIG, encoding="utf-8")
    return directory / "ca.pem"


_CA_CONFIG = """\
[ca]
default_ca = lab
[lab]
dir = .
database = ./index.txt
new_certs_dir = .
certificate = ./ca.pem
private_key = ./ca.key
serial = ./serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
"""


def issue(
    directory: Path, stem: str, name: str, addresses: tuple[str, ...] = (), expired: bool = False
) -> ServerCert:
    """A server certificate signed by the CA in `directory`, valid for `name` and `addresses`
    (subjectAltName DNS and IP), or one whose validity ended in 2020 (`expired`)."""
    sans = ",".join([f"DNS:{name}", *(f"IP:{a}" for a in addresses)])
    (directory / f"{stem}.ext").write_text(
        f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        encoding="utf-8",
    )
    _openssl(
        "req", "-new", *_CURVE, "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
        "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    dates = (
        ("-startdate", EXPIRED_START, "-enddate", EXPIRED_END)
        if expired
        else ("-days", str(VALID_DAYS))
    )
    _openssl(
        "ca", "-batch", "-notext", "-config", "ca.cnf", "-in", f"{stem}.csr",
        "-out", f"{stem}.pem", "-extfile", f"{stem}.ext", *dates,
        cwd=directory,
    )  # fmt: skip
    return ServerCert(directory / f"{stem}.pem", directory / f"{stem}.key")


# The lab hosts that serve TLS to users ("all external-facing services"), and the faults that
# take it away: plain HTTP on the webserver, an expired certificate on the AppProxy.
TLS_HOSTS = ("webserver", "appproxy")
PLAIN_HTTP_FAULT = "webserver-plain-http"
EXPIRED_FAULT = "appproxy-cert-expired"


def tls_name(topo: Topology, host: str) -> str:
    """The name the lab's certificate for `host` is valid for (the inventory's tls_name)."""
    return f"{host}.{topo.prefix}.lab"


def cert_paths(directory: Path, host: str) -> ServerCert:
    return ServerCert(directory / f"{host}.pem", directory / f"{host}.key")


def lab_certificates(topo: Topology, directory: Path) -> str:
    """Make the lab's CA and one certificate per TLS host in `directory`; the CA's PEM."""
    ca = make_ca(directory, f"reachproof lab {topo.prefix} CA")
    for host in TLS_HOSTS:
        node = topo.mgmt(host)
        addresses = (str(node.addr.v4.ip), str(node.addr.v6.ip))
        expired = host == "appproxy" and topo.has_fault(EXPIRED_FAULT)
        issue(directory, host, tls_name(topo, host), addresses, expired=expired)
    return ca.read_text(encoding="utf-8")
