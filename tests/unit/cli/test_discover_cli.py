"""`discover backend-ai` and `check --discover` on the command line: every mistake and every
answer it cannot use is exit 2 with one line, never a traceback, never the secret.

The answers served here on 127.0.0.1 are recorded shapes of a manager's `GET /` (for the
version check); the real manager is tests/lab/test_discover_manager.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SECRET = "s3cr3t-never-printed-0123456789abcdef"
KEYS = {"BACKEND_ACCESS_KEY": "AKIATESTTESTTESTTEST", "BACKEND_SECRET_KEY": SECRET}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("BACKEND_")}
    return subprocess.run(
        [sys.executable, "-m", "reachproof", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env=clean | (env or {}),
        check=False,
    )


def _fails(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr + done.stdout


@pytest.fixture
def answering() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback HTTP server (its port) answering every request with the list's last body."""
    bodies: list[bytes] = [b"{}"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(bodies[-1])

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], bodies
    finally:
        server.shutdown()
        server.server_close()


def test_no_credentials_is_exit_2() -> None:
    done = run("discover", "backend-ai", "--endpoint", "http://127.0.0.1:9")
    _fails(done, "no credentials")


def test_an_endpoint_that_is_no_url_is_exit_2() -> None:
    done = run("discover", "backend-ai", "--endpoint", "manager:8081", env=KEYS)
    _fails(done, "expected http(s)://HOST[:PORT][/PATH]")


def test_a_template_with_an_unknown_field_is_exit_2_before_any_request() -> None:
    done = run(
        "discover", "backend-ai", "--endpoint", "http://127.0.0.1:9",
        "--agent-vantage", "ssh {agent_secret}", env=KEYS,
    )  # fmt: skip
    _fails(done, "unknown field {agent_secret}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": "v10.20270101", "manager": "27.1.0"}', "understands v7.20230615 to v9.x"),
        (b'{"version": "v4.20190615", "manager": "19.09.0"}', "understands v7.20230615 to v9.x"),
        (b"<html>login</html>", "not JSON"),
        (b'{"status": "ok"}', "API version None, not vN.YYYYMMDD"),
    ],
)
def test_answers_that_are_not_a_manager_it_understands_are_exit_2(
    answering: tuple[int, list[bytes]], body: bytes, message: str
) -> None:
    port, bodies = answering
    bodies.append(body)
    done = run("discover", "backend-ai", "--endpoint", f"http://127.0.0.1:{port}", env=KEYS)
    _fails(done, message)


def test_check_needs_exactly_one_of_inventory_and_discover() -> None:
    policy = "policies/backend-ai.policy"
    _fails(run("check", "-P", policy), "check needs --inventory FILE or --discover backend-ai")
    done = run(
        "check", "-P", policy, "-i", "examples/lab-small.yaml", "--discover", "backend-ai",
        "--endpoint", "http://127.0.0.1:9", env=KEYS,
    )  # fmt: skip
    _fails(done, "--inventory and --discover exclude each other")
    _fails(run("check", "-P", policy, "--discover", "k8s"), "--discover 'k8s': expected backend-ai")


def test_discover_help_names_every_option() -> None:
    done = run("discover", "backend-ai", "--help")
    assert done.returncode == 0
    for option in (
        "--endpoint",
        "--credentials",
        "--site",
        "--agent-vantage",
        "--container-vantage",
        "--appproxy",
        "--skip-pending",
        "--output",
    ):
        assert option in done.stdout
