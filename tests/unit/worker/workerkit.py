"""A test-side client of the real shipped worker: spawn it through the bootstrap, talk JSON lines.

Independent of the engine's transports on purpose: these tests pin the wire protocol itself.
Lab tests reuse it by putting this folder on sys.path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from reachproof.worker.bundle import worker_source
from reachproof.worker.protocol import BOOTSTRAP
from reachproof.worker.rawhub import RawHub

Message = dict[str, Any]
REPLY_TIMEOUT = 30.0


class Worker:
    """One worker process; `probe()` sends a request and waits for its `result`."""

    def __init__(
        self,
        prefix: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.proc = subprocess.Popen(
            [*prefix, python, "-u", "-c", BOOTSTRAP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
        )
        self.messages: list[Message] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._counter = 0
        source = worker_source().encode("utf-8")
        self.write_raw(b"%d\n" % len(source) + source)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            with self._changed:
                self.messages.append(message)
                self._changed.notify_all()

    def write_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Message) -> None:
        self.write_raw(json.dumps(message).encode() + b"\n")

    def wait_for(
        self, op: str, probe_id: str | None = None, timeout: float = REPLY_TIMEOUT
    ) -> Message:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for message in self.messages:
                    if message["op"] == op and (probe_id is None or message.get("id") == probe_id):
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no {op} reply for {probe_id} in {timeout}s; got {self.messages}; "
                        f"stderr {self.stderr_if_dead()}"
                    )
                self._changed.wait(min(left, 0.2))

    def stderr_if_dead(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def hello(self) -> Message:
        self.send({"op": "hello"})
        return self.wait_for("hello")

    def submit(
        self,
        kind: str,
        address: str | None = None,
        ports: Sequence[tuple[int, int]] = (),
        timeout: float = 1.0,
        attempts: int = 2,
        pps: int = 0,
        params: Mapping[str, str] | None = None,
        family: int | None = None,
        resolve: str | None = None,
        scope: Sequence[str] | None = None,
    ) -> str:
        """Send a probe; `scope` defaults to the address itself, as the engine sends it."""
        self._counter += 1
        probe_id = f"p{self._counter}"
        self.send(
            {
                "op": "probe",
                "id": probe_id,
                "kind": kind,
                "address": address,
                "family": family,
                "resolve": resolve,
                "ports": [list(r) for r in ports],
                "timeout": timeout,
                "attempts": attempts,
                "pps": pps,
                "params": dict(params or {}),
                "scope": list(scope if scope is not None else [address] if address else []),
            }
        )
        return probe_id

    def probe(self, kind: str, *args: Any, wait: float = REPLY_TIMEOUT, **kwargs: Any) -> Message:
        return self.wait_for("result", self.submit(kind, *args, **kwargs), timeout=wait)

    def close(self, timeout: float = 30.0) -> int:
        """`bye`, EOF, and the exit status."""
        if self.proc.poll() is None:
            try:
                self.send({"op": "bye"})
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def port_states(result: Message) -> dict[int, tuple[str, str]]:
    """port → (state, reason) from a `result` reply."""
    found: dict[int, tuple[str, str]] = {}
    for record in result["results"]:
        for first, last in record["ports"]:
            for port in range(first, last + 1):
                assert port not in found, f"port {port} reported twice"
                found[port] = (record["state"], record["reason"])
    return found


def record_of(result: Message, port: int) -> Message:
    for record in result["results"]:
        if any(first <= port <= last for first, last in record["ports"]):
            return dict(record)
    raise AssertionError(f"port {port} missing from {result}")


class KeyTable(RawHub):
    """RawHub's own key table (register/unregister), without raw sockets or a reader thread."""

    def __init__(self) -> None:
        self._handlers = {}
        self._lock = threading.Lock()


def detail(result: Message, key: str) -> list[str]:
    """The values of one detail key of a `result` reply, in order."""
    return [value for name, value in result["detail"] if name == key]
