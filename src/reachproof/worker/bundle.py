"""The shipped worker: one script that carries every worker module's source.

The engine writes `worker_source()` after `protocol.BOOTSTRAP`. The script installs an import
hook that serves the carried sources as real modules (packages `reachproof`,
`reachproof.worker`, `reachproof.checks`), so the worker code keeps its ordinary imports; the
bootstrap then calls the script's `main()`. The hook goes first on `sys.meta_path`, so a
`reachproof` installed at the vantage (or the engine's own, for local vantages) is never
mixed with the shipped code.

Every shipped module imports only the standard library and other shipped modules (a unit test
enforces it), and runs on Python 3.8+.
"""

from __future__ import annotations

from importlib import resources

# Modules shipped to the vantage point, by import name.
SHIPPED_MODULES = (
    "reachproof.checks",
    "reachproof.checks.cluster_env",
    "reachproof.checks.listeners",
    "reachproof.worker",
    "reachproof.worker.protocol",
    "reachproof.worker.wire",
    "reachproof.worker.local",
    "reachproof.worker.addresses",
    "reachproof.worker.pacing",
    "reachproof.worker.loss",
    "reachproof.worker.icmp_errors",
    "reachproof.worker.target",
    "reachproof.worker.connect",
    "reachproof.worker.packets",
    "reachproof.worker.rawhub",
    "reachproof.worker.batch",
    "reachproof.worker.hops",
    "reachproof.worker.syn",
    "reachproof.worker.udp",
    "reachproof.worker.sensor",
    "reachproof.worker.icmp",
    "reachproof.worker.tls",
    "reachproof.worker.http",
    "reachproof.worker.checks",
    "reachproof.worker.main",
)
PACKAGES = ("reachproof", "reachproof.checks", "reachproof.worker")

_LOADER = """\
import importlib.abc
import importlib.util
import sys

_SOURCES = {sources}
_PACKAGES = {packages}


class _ShippedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name not in _SOURCES:
            return None
        return importlib.util.spec_from_loader(name, self, is_package=name in _PACKAGES)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__
        filename = "<reachproof-worker>/" + name.replace(".", "/") + ".py"
        exec(compile(_SOURCES[name], filename, "exec"), module.__dict__)


sys.meta_path.insert(0, _ShippedModules())


def main():
    from reachproof.worker.main import main as run

    run()
"""


def module_source(name: str) -> str:
    """The source text of a shipped module, read from the installed package."""
    package, _, leaf = name.rpartition(".")
    if name in PACKAGES:
        package, leaf = name, "__init__"
    return resources.files(package).joinpath(f"{leaf}.py").read_text(encoding="utf-8")


def shipped_sources() -> dict[str, str]:
    sources = {name: module_source(name) for name in SHIPPED_MODULES}
    # The top-level package carries nothing the worker needs.
    sources["reachproof"] = '"""reachproof, as shipped to a vantage point."""\n'
    return sources


def worker_source() -> str:
    """The complete script the engine sends after `protocol.BOOTSTRAP`."""
    return _LOADER.format(sources=repr(shipped_sources()), packages=repr(PACKAGES))
