"""Vantage transports: start the shipped worker at a vantage point and speak the wire protocol.

    local  [python, -u, -c, BOOTSTRAP]
    netns  [ip, netns, exec, NS, python, -u, -c, BOOTSTRAP]
    exec   [*command, vantage.python, -u, -c, BOOTSTRAP]
    exec through a remote shell (ssh):  [*command, shlex.join([vantage.python, -u, -c, BOOTSTRAP])]

`ip netns exec` also bind-mounts /etc/netns/NS/hosts over /etc/hosts, which is how a lab
container resolves its peers by hostname, so netns vantages go through it rather than setns.
Argument lists only: no value from the inventory ever reaches a local shell. ssh is the one
exception at the far end: it joins the remote arguments into one string for the remote user's
shell, so there the invocation (the inventory's `python` included) is quoted exactly once, and
the shell gives back exactly these arguments (`Vantage.through_remote_shell` decides).

One `Worker` per vantage; probe requests are multiplexed over its pipe by id. Anything that
goes wrong (cannot start, dies, garbles the protocol, misses a deadline) fails every
outstanding probe with one VantageError naming the cause, and the process group is killed:
a vantage never hangs the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reachproof.errors import VantageError
from reachproof.inventory.model import Transport, Vantage
from reachproof.worker.protocol import BOOTSTRAP, VERSION

log = logging.getLogger(__name__)

# A vantage with its own environment keeps only these from ours: enough to find programs
# and decode text, nothing that could leak our cluster's settings into its checks.
KEPT_ENVIRONMENT = ("PATH", "LANG")
STDERR_TAIL = 2000  # bytes of the worker's stderr kept for the error message
LINE_LIMIT = 1 << 26  # a result line of a full-range sweep of alternating states is a few MB
CLOSE_TIMEOUT = 2.0

JSON = dict[str, Any]
ProgressCallback = Callable[[int, int], None]


def worker_argv(vantage: Vantage, python: str | None = None) -> list[str]:
    """The argument list that starts the worker's bootstrap at `vantage`."""
    local_python = python or sys.executable
    tail = ["-u", "-c", BOOTSTRAP]
    if vantage.transport is Transport.LOCAL:
        return [local_python, *tail]
    if vantage.transport is Transport.NETNS:
        if not vantage.netns:
            raise VantageError(vantage.name, "netns vantage without a namespace name")
        return ["ip", "netns", "exec", vantage.netns, local_python, *tail]
    if not vantage.command:
        raise VantageError(vantage.name, "exec vantage without a command")
    invocation = [vantage.python, *tail]
    if vantage.through_remote_shell:
        return [*vantage.command, shlex.join(invocation)]
    return [*vantage.command, *invocation]


def worker_env(vantage: Vantage) -> dict[str, str] | None:
    """The worker's environment: the vantage's own plus PATH/LANG, or ours when it has none."""
    if not vantage.env:
        return None
    env = {k: os.environ[k] for k in KEPT_ENVIRONMENT if k in os.environ}
    env.update(vantage.environment())
    return env


@dataclass(frozen=True)
class Hello:
    """What the worker says about the place it runs in."""

    version: int
    pid: int
    uid: int
    python: str
    raw: bool  # raw sockets permitted: SYN and ICMP probes possible
    hostname: str


@dataclass
class _Pending:
    future: asyncio.Future[JSON]
    on_progress: ProgressCallback | None
    touched: float  # loop time of the last sign of life (sent, or a progress line)


class Worker:
    """A running worker at one vantage; create with `await Worker.start(...)`."""

    def __init__(self, vantage: Vantage, process: asyncio.subprocess.Process) -> None:
        self.vantage = vantage
        self.process = process
        self.hello: Hello | None = None
        self._hello: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._pending: dict[str, _Pending] = {}
        self._failure: VantageError | None = None
        self._stderr = bytearray()
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls, vantage: Vantage, source: str, start_timeout: float, python: str | None = None
    ) -> Worker:
        argv = worker_argv(vantage, python)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=worker_env(vantage),
                start_new_session=True,  # its own process group, so a kill takes its children
                limit=LINE_LIMIT,
            )
        except OSError as exc:
            raise VantageError(vantage.name, f"cannot start {argv[0]!r}: {exc}") from exc
        worker = cls(vantage, process)
        try:
            payload = source.encode("utf-8")
            await worker._send_raw(f"{len(payload)}\n".encode() + payload)
            await worker._send({"op": "hello"})
            try:
                reply = await asyncio.wait_for(asyncio.shield(worker._hello), start_timeout)
            except TimeoutError:
                worker._fail(f"no hello from the worker within {start_timeout:g}s")
                reply = await worker._hello  # raises the failure
            worker.hello = _parse_hello(vantage.name, reply)
        except BaseException:
            await worker.kill()
            raise
        return worker

    @property
    def failure(self) -> VantageError | None:
        return self._failure

    async def probe(
        self,
        request: JSON,
        deadline: float,
        on_progress: ProgressCallback | None = None,
        idle: float | None = None,
    ) -> JSON:
        """Send one probe request; its result message, or VantageError if the worker fails.

        The worker counts as hung when `deadline` seconds pass without a result and, when
        `idle` is given, `idle` seconds pass without a progress line for the probe (a busy
        machine may send slower than asked: progress proves it is still at work). A hung
        worker is killed and every other outstanding probe fails with the same cause.
        """
        if self._failure is not None:
            raise self._failure
        probe_id = str(request["id"])
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JSON] = loop.create_future()
        pending = _Pending(future, on_progress, loop.time())
        self._pending[probe_id] = pending
        started = loop.time()
        try:
            await self._send({"op": "probe", **request})
            while True:
                end = started + deadline
                if idle is not None:
                    end = max(end, pending.touched + idle)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), end - loop.time())
                except TimeoutError:
                    if idle is not None and loop.time() < pending.touched + idle:
                        continue  # progress arrived meanwhile: still at work
                    waited = loop.time() - started
                    self._fail(f"no result for probe {probe_id!r} within {waited:.1f}s")
                    return await future  # raises the failure
        finally:
            self._pending.pop(probe_id, None)

    async def tell(self, message: JSON) -> None:
        """Send a message that has no reply of its own (a running probe's `sense-stop`)."""
        if self._failure is not None:
            raise self._failure
        await self._send(message)

    async def close(self) -> None:
        """Say bye and wait briefly for the worker to leave; kill it if it does not."""
        if self._failure is None and self.process.returncode is None:
            with contextlib.suppress(VantageError):
                await self._send({"op": "bye"})
            if self.process.stdin is not None:
                self.process.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), CLOSE_TIMEOUT)
        await self.kill()

    async def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- internals ------------------------------------------------------------------------

    async def _send(self, message: JSON) -> None:
        await self._send_raw(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def _send_raw(self, data: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            await self._wait_exit()
            self._fail(f"worker closed its input: {self._exit_text()}")
            raise self._failure or VantageError(self.vantage.name, str(exc)) from exc

    async def _read_stdout(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                self._dispatch(line)
                if self._failure is not None:
                    return
        except (ValueError, asyncio.LimitOverrunError) as exc:
            self._fail(f"protocol error: {exc}")
            return
        await self._wait_exit()
        self._fail(f"worker ended: {self._exit_text()}")

    async def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        while chunk := await stderr.read(4096):
            self._stderr += chunk
            del self._stderr[:-STDERR_TAIL]

    async def _wait_exit(self) -> None:
        # Give stderr a moment to drain so the message can quote the worker's last words.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 1.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._tasks[1]), 0.5)

    def _exit_text(self) -> str:
        code = self.process.returncode
        status = "still running" if code is None else f"exit status {code}"
        tail = self._stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return status + (f": {' / '.join(tail)}" if tail else "")

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self._fail(f"protocol error: not a JSON line: {line[:120]!r}")
            return
        if not isinstance(message, dict):
            self._fail(f"protocol error: not a JSON object: {line[:120]!r}")
            return
        op = message.get("op")
        if op == "hello":
            if not self._hello.done():
                self._hello.set_result(message)
        elif op == "result":
            pending = self._pending.get(str(message.get("id")))
            if pending is not None and not pending.future.done():
                pending.future.set_result(message)
        elif op == "progress":
            pending = self._pending.get(str(message.get("id")))
            if pending is not None:
                pending.touched = asyncio.get_running_loop().time()
            if pending is not None and pending.on_progress is not None:
                with contextlib.suppress(TypeError, ValueError):
                    pending.on_progress(int(message["done"]), int(message["total"]))
        elif op == "log":
            log.info("%s: %s", self.vantage.name, message.get("message"))

    def _fail(self, cause: str) -> None:
        """Record the first failure, fail everything outstanding, kill the process group."""
        if self._failure is not None:
            return
        self._failure = VantageError(self.vantage.name, cause)
        futures = [self._hello, *(p.future for p in self._pending.values())]
        for future in futures:
            if not future.done():
                future.set_exception(self._failure)
        # Nobody may be awaiting the hello any more; keep asyncio quiet about it.
        if self._hello.done() and not self._hello.cancelled():
            self._hello.exception()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


def _parse_hello(vantage: str, reply: JSON) -> Hello:
    try:
        hello = Hello(
            version=int(reply["version"]),
            pid=int(reply.get("pid", 0)),
            uid=int(reply.get("uid", -1)),
            python=str(reply.get("python", "")),
            raw=bool(reply.get("raw", False)),
            hostname=str(reply.get("hostname", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VantageError(vantage, f"protocol error: malformed hello {reply!r}") from exc
    if hello.version != VERSION:
        raise VantageError(
            vantage, f"worker speaks protocol version {hello.version}, engine {VERSION}"
        )
    return hello
