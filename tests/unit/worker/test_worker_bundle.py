"""The shipped bundle: stdlib-only, Python 3.8-compatible, and a clean protocol round trip."""

from __future__ import annotations

import ast
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from workerkit import Worker, port_states

import reachproof.worker
from reachproof.worker.bundle import SHIPPED_MODULES, module_source, worker_source
from reachproof.worker.protocol import VERSION

# pyenv shims exist on PATH even when the version is not selected, so each candidate is run.
PY38_CANDIDATES = ("/root/.pyenv/versions/3.8.18/bin/python3.8", "python3.8")


def imports_of(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from package import module` may name a submodule.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("name", SHIPPED_MODULES)
def test_shipped_modules_import_only_the_stdlib_and_each_other(name: str) -> None:
    for imported in imports_of(module_source(name)):
        top = imported.split(".")[0]
        if top == "reachproof":
            if imported in SHIPPED_MODULES or imported.rpartition(".")[0] in SHIPPED_MODULES:
                continue
            pytest.fail(f"{name} imports {imported}, which is not shipped")
        assert top in sys.stdlib_module_names or top == "__future__", f"{name} imports {imported}"


def test_every_worker_module_is_shipped() -> None:
    here = Path(reachproof.worker.__file__).parent
    on_disk = {f"reachproof.worker.{p.stem}" for p in here.glob("*.py") if p.stem != "__init__"}
    # bundle.py builds the shipment and stays with the engine.
    assert on_disk - set(SHIPPED_MODULES) == {"reachproof.worker.bundle"}


@pytest.mark.parametrize("name", SHIPPED_MODULES)
def test_shipped_modules_parse_as_python_3_8(name: str) -> None:
    ast.parse(module_source(name), feature_version=(3, 8))


def test_the_bundle_is_one_self_contained_script() -> None:
    compile(worker_source(), "<bundle>", "exec")


def test_round_trip_hello_probe_bye() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with listener, Worker() as worker:
        hello = worker.hello()
        assert hello["version"] == VERSION
        assert isinstance(hello["raw"], bool) and isinstance(hello["pid"], int)
        result = worker.probe("tcp-connect", "127.0.0.1", [(port, port)])
        assert port_states(result) == {port: ("open", "syn-ack")}
        assert result["error"] is None
        worker.send({"op": "bye"})
        worker.wait_for("bye")
        assert worker.close() == 0


def test_eof_ends_the_worker_cleanly() -> None:
    worker = Worker()
    worker.hello()
    assert worker.proc.stdin is not None
    worker.proc.stdin.close()
    assert worker.proc.wait(30) == 0
    worker.wait_for("bye")


def _python38() -> str | None:
    for candidate in PY38_CANDIDATES:
        found = shutil.which(candidate)
        if found and subprocess.run([found, "-c", "pass"], capture_output=True).returncode == 0:
            return found
    return None


def test_the_bundle_runs_on_python_3_8() -> None:
    python = _python38()
    if python is None:
        pytest.skip("no Python 3.8 on this machine")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with listener:
        worker = Worker(python=python)
        try:
            assert worker.hello()["python"].startswith("3.8")
            result = worker.probe("tcp-connect", "127.0.0.1", [(port - 1, port)])
            assert port_states(result)[port] == ("open", "syn-ack")
            check = worker.probe("check", params={"check": "training-env"})
            assert ["ran", "training-env"] in check["detail"]
        finally:
            assert worker.close() == 0
