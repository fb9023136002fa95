"""`python -m reachproof.lab.services --plan PLAN --state-dir DIR`: the supervisor as a daemon.

The launcher double-forks; the daemon (own session, stdin /dev/null, output to DIR/supervisor.log)
writes its pidfile, opens every listener, then writes DIR/ready or DIR/failed. The launcher waits
for that verdict over a pipe and exits 0 (ready) or 1 (failed, reason on stderr), so a caller can
either run it to completion or start it and poll the files. SIGTERM or SIGINT: close everything,
remove the pidfile and ready, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import select
import signal
import sys
import time
from pathlib import Path

from reachproof.errors import InputError, LabError, read_text
from reachproof.lab.services.control import (
    FAILED_FILE,
    LOG_FILE,
    PID_FILE,
    READY_FILE,
    supervisor_pid,
    write_atomic,
)
from reachproof.lab.services.spec import ServicePlan
from reachproof.lab.services.supervisor import Supervisor

log = logging.getLogger("reachproof.lab.services")

READY_BYTE = b"R"
FAILED_BYTE = b"F"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reachproof.lab.services", description=__doc__)
    parser.add_argument("--plan", required=True, type=Path, help="ServicePlan JSON file")
    parser.add_argument("--state-dir", required=True, type=Path, help="pid, ready, failed, log")
    parser.add_argument("--foreground", action="store_true", help="do not daemonize")
    parser.add_argument(
        "--wait", type=float, default=120.0, help="seconds the launcher waits for ready/failed"
    )
    parser.add_argument("--debug", action="store_true", help="log every connection error")
    parser.add_argument(
        "--bind",
        default="::",
        help="address every listener binds (default `::`, dual-stack); tests use 127.0.0.1",
    )
    return parser


def _fail(state_dir: Path, reason: str) -> None:
    write_atomic(state_dir / FAILED_FILE, reason + "\n")
    print(f"reachproof services: {reason}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    for name in (READY_FILE, FAILED_FILE):
        (state_dir / name).unlink(missing_ok=True)
    running = supervisor_pid(state_dir)
    if running is not None:
        _fail(state_dir, f"a supervisor already runs for {state_dir} (pid {running})")
        return 1
    try:
        plan = ServicePlan.from_json(read_text(args.plan.resolve(), "service plan"))
    except InputError as exc:
        _fail(state_dir, str(exc))
        return 2
    except (ValueError, KeyError, TypeError) as exc:
        _fail(state_dir, f"{args.plan}: not a service plan: {exc}")
        return 2
    level = logging.DEBUG if args.debug else logging.INFO
    if args.foreground:
        return _run(plan, state_dir, level, args.bind, notify=None)
    return _daemonize(plan, state_dir, level, args.bind, args.wait)


def _daemonize(plan: ServicePlan, state_dir: Path, level: int, bind: str, wait: float) -> int:
    read_end, write_end = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(write_end)
        os.waitpid(first, 0)
        return _await_verdict(read_end, state_dir, wait)
    os.close(read_end)
    # Own session, no controlling terminal; the second fork means we can never reacquire one.
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(state_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    code = 1
    try:
        code = _run(plan, state_dir, level, bind, notify=write_end)
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        # Never unwind into the launcher's caller (a test runner that imported main()).
        os._exit(code)


def _await_verdict(read_end: int, state_dir: Path, wait: float) -> int:
    try:
        readable, _, _ = select.select([read_end], [], [], wait)
        verdict = os.read(read_end, 1) if readable else b""
    finally:
        os.close(read_end)
    if verdict == READY_BYTE:
        return 0
    if not readable:
        print(
            f"reachproof services: not ready after {wait:g} s; see {state_dir / LOG_FILE}",
            file=sys.stderr,
        )
        return 1
    reason = (state_dir / FAILED_FILE).read_text(encoding="utf-8").strip() if verdict else ""
    print(f"reachproof services: {reason or 'daemon died while starting'}", file=sys.stderr)
    return 1


def _run(plan: ServicePlan, state_dir: Path, level: int, bind: str, *, notify: int | None) -> int:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    pidfile = state_dir / PID_FILE
    write_atomic(pidfile, f"{os.getpid()}\n")
    try:
        return asyncio.run(_serve(plan, state_dir, bind, notify))
    finally:
        pidfile.unlink(missing_ok=True)


def _tell(notify: int | None, verdict: bytes) -> None:
    if notify is None:
        return
    try:
        os.write(notify, verdict)
        os.close(notify)
    except OSError:
        pass  # the launcher gave up waiting; the files still say it all


async def _serve(plan: ServicePlan, state_dir: Path, bind: str, notify: int | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    started = time.monotonic()
    supervisor = Supervisor(plan, bind=bind)
    try:
        await supervisor.start()
    except LabError as exc:
        _fail(state_dir, str(exc))
        _tell(notify, FAILED_BYTE)
        return 1
    except Exception as exc:
        log.exception("supervisor failed to start")
        _fail(state_dir, f"internal error: {exc!r}")
        _tell(notify, FAILED_BYTE)
        return 1
    ready = {
        "listeners": len(supervisor.running),
        "namespaces": len(supervisor.namespaces),
        "pid": os.getpid(),
        "seconds": round(time.monotonic() - started, 3),
    }
    write_atomic(state_dir / READY_FILE, json.dumps(ready) + "\n")
    _tell(notify, READY_BYTE)
    log.info("ready: %s", ready)
    await stop.wait()
    log.info("stopping")
    await supervisor.stop()
    (state_dir / READY_FILE).unlink(missing_ok=True)
    return 0
