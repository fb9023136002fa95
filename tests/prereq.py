"""Prerequisites of tests that need the real thing (root, nft, sshd, …): skip where they are
missing on a developer's machine, fail where `CI` is set, so CI never goes green with the lab
silently unrun. Every such test goes through `require_or_skip`; none calls pytest.skip for a
missing prerequisite itself.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Sequence
from importlib.util import find_spec

import pytest


def missing(
    root: bool = False, programs: Sequence[str] = (), modules: Sequence[str] = ()
) -> str | None:
    """What this machine lacks of root, `programs` (on PATH) and `modules`, in words; None
    when it has everything."""
    lacks = ["root"] if root and os.geteuid() != 0 else []
    lacks += [p for p in programs if shutil.which(p) is None]
    lacks += [f"Python module {m}" for m in modules if find_spec(m) is None]
    return f"needs {', '.join(lacks)}" if lacks else None


def require_or_skip(reason: str | None) -> None:
    """Nothing when `reason` is None; else skip the test (or the module, at import), or under
    CI fail it: a prerequisite missing in CI is a broken CI image, not a passing test."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing prerequisite fails, never skips)", False)
    pytest.skip(reason, allow_module_level=True)


def require(root: bool = False, programs: Sequence[str] = (), modules: Sequence[str] = ()) -> None:
    require_or_skip(missing(root, programs, modules))


def interruptible() -> None:
    """A `preexec_fn` for a child that a test interrupts with SIGINT: the default action
    restored, so Python installs its KeyboardInterrupt handler. A test run started in the
    background of a non-interactive shell inherits SIGINT ignored, and an ignored signal stays
    ignored across exec, so the child would never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
