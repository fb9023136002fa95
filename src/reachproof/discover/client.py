"""The I/O edge of discovery: HMAC-signed requests to a Backend.AI manager, unsigned ones to
an AppProxy coordinator, with urllib. Every low-level failure becomes a DiscoveryError that
names the endpoint and never contains a secret.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from reachproof.discover.signing import signed_headers
from reachproof.errors import DiscoveryError, InputError, UsageError, read_text

# API versions this code was written against: the Backend.AI client's MIN_API_VERSION and
# API_VERSION of 26.9 (ai/backend/client/config.py). Newer majors may change the schema.
MIN_API = (7, "20230615")
MAX_API = (9, "20250722")
ENV_ACCESS_KEY = "BACKEND_ACCESS_KEY"  # the names the Backend.AI client reads
ENV_SECRET_KEY = "BACKEND_SECRET_KEY"
_API_VERSION = re.compile(r"^v(\d+)\.(\d{8})$")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)


def load_credentials(
    access_key: str | None, secret_key: str | None, path: Path | None
) -> Credentials:
    """From the options, else a file (`access_key:` / `secret_key:` YAML), else the
    environment (BACKEND_ACCESS_KEY / BACKEND_SECRET_KEY, as the Backend.AI client)."""
    if path is not None:
        if access_key or secret_key:
            raise UsageError("--credentials FILE and --access-key/--secret-key exclude each other")
        text = read_text(path, "credentials")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: invalid YAML") from exc
        if not isinstance(data, dict) or set(data) != {"access_key", "secret_key"}:
            raise InputError(f"{path}: expected exactly the keys access_key and secret_key")
        access_key, secret_key = str(data["access_key"]), str(data["secret_key"])
    access_key = access_key or os.environ.get(ENV_ACCESS_KEY)
    secret_key = secret_key or os.environ.get(ENV_SECRET_KEY)
    if not access_key or not secret_key:
        raise UsageError(
            "no credentials: give --credentials FILE, --access-key and --secret-key, or set "
            f"{ENV_ACCESS_KEY} and {ENV_SECRET_KEY}"
        )
    return Credentials(access_key.strip(), secret_key.strip())


def parse_api_version(text: object) -> tuple[int, str]:
    match = _API_VERSION.match(text) if isinstance(text, str) else None
    if match is None:
        raise DiscoveryError(f"the manager reports API version {text!r}, not vN.YYYYMMDD")
    return int(match.group(1)), match.group(2)


def check_api_version(version: tuple[int, str]) -> str:
    """The version to send (the server's own), or DiscoveryError when outside what this code
    understands."""
    shown = f"v{version[0]}.{version[1]}"
    understood = f"v{MIN_API[0]}.{MIN_API[1]} to v{MAX_API[0]}.x"
    if version < MIN_API or version[0] > MAX_API[0]:
        raise DiscoveryError(
            f"the manager speaks API {shown}; this reachproof understands {understood}"
        )
    return shown


def check_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--endpoint {endpoint!r}: expected http(s)://HOST[:PORT][/PATH]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(f"--endpoint {endpoint!r}: no user, query or fragment allowed")
    return endpoint.rstrip("/")


@dataclass(frozen=True)
class ServerInfo:
    api_version: str  # vN.YYYYMMDD, what requests are signed with
    manager_version: str


class ManagerApi:
    """Signed requests to one manager. `timeout` bounds every connect and read."""

    def __init__(self, endpoint: str, credentials: Credentials, timeout: float = 15.0) -> None:
        self.endpoint = check_endpoint(endpoint)
        self._parts = urlsplit(self.endpoint)
        self._credentials = credentials
        self._timeout = timeout
        self._context = ssl.create_default_context() if self._parts.scheme == "https" else None
        self.info: ServerInfo | None = None

    def server_info(self) -> ServerInfo:
        """`GET /` (unsigned, as the client negotiates): the API and manager versions."""
        data = self._request("GET", "/", None, signed=False)
        if not isinstance(data, dict):
            raise DiscoveryError(f"{self.endpoint}: GET / is not a Backend.AI manager's answer")
        version = check_api_version(parse_api_version(data.get("version")))
        self.info = ServerInfo(version, str(data.get("manager", "")))
        return self.info

    def graphql(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """POST /admin/gql; GraphQL errors (unknown fields of another schema, permission)
        become a DiscoveryError with the server's messages."""
        body = json.dumps({"query": query, "variables": dict(variables)}).encode()
        data = self._request("POST", "/admin/gql", body, signed=True)
        if not isinstance(data, dict):
            raise DiscoveryError(f"{self.endpoint}: /admin/gql answered {type(data).__name__}")
        errors = data.get("errors")
        if errors:
            messages = "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors
            )
            raise DiscoveryError(f"{self.endpoint}: GraphQL error: {messages}")
        result = data.get("data")
        if not isinstance(result, dict):
            raise DiscoveryError(f"{self.endpoint}: /admin/gql answered no data")
        return result

    def _request(self, method: str, path: str, body: bytes | None, signed: bool) -> Any:
        rel_url = f"{self._parts.path}{path}" if path != "/" else (self._parts.path or "/")
        url = f"{self._parts.scheme}://{self._parts.netloc}{rel_url}"
        headers = {"User-Agent": "reachproof-discover", "Accept": "application/json"}
        if signed:
            if self.info is None:
                self.server_info()
            assert self.info is not None
            headers |= signed_headers(
                method=method,
                rel_url=rel_url,
                host=self._parts.netloc,
                content_type="application/json",
                api_version=self.info.api_version,
                date=datetime.now(UTC),
                access_key=self._credentials.access_key,
                secret_key=self._credentials.secret_key,
            )
        return fetch_json(url, method, headers, body, self._timeout, self._context, self.endpoint)


def fetch_json(
    url: str,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: float,
    context: ssl.SSLContext | None,
    endpoint: str,
) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        title = _problem(exc)
        if exc.code in (401, 403):
            raise DiscoveryError(
                f"{endpoint}: {method} {urlsplit(url).path}: HTTP {exc.code}: the credentials "
                f"were rejected ({title}); check the access and secret key, and that the "
                "key may read what discovery asks for (a superadmin key sees every agent)"
            ) from exc
        raise DiscoveryError(
            f"{endpoint}: {method} {urlsplit(url).path}: HTTP {exc.code} ({title})"
        ) from exc
    except urllib.error.URLError as exc:
        raise DiscoveryError(f"cannot reach {endpoint}: {_reason(exc.reason)}") from exc
    except TimeoutError as exc:
        raise DiscoveryError(f"cannot reach {endpoint}: timed out after {timeout:g} s") from exc
    except OSError as exc:
        raise DiscoveryError(f"cannot reach {endpoint}: {_reason(exc)}") from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise DiscoveryError(f"{endpoint}: {method} {urlsplit(url).path}: not JSON") from exc


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _problem(exc: urllib.error.HTTPError) -> str:
    """The title of an application/problem+json answer, else the HTTP reason."""
    try:
        data = json.loads(exc.read() or b"null")
    except (ValueError, OSError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("title"), str):
        return str(data["title"])
    return str(exc.reason)
