"""One exception tree for reachproof.

    ReachproofError                 base; the CLI catches only this
    ├── InputError                  the user's input is wrong: exit 2, no traceback
    │   ├── PolicyError             policy file: parse or semantic errors, with positions
    │   ├── InventoryError          inventory file: schema or consistency errors, with positions
    │   ├── WaiverError             waiver file: schema errors or unknown rules, with positions
    │   └── UsageError              command-line arguments that do not fit together
    ├── PrerequisiteError           this machine lacks what a command needs (root, nft, …): exit 2
    ├── LabError                    building or tearing down the lab failed
    ├── DiscoveryError              a cluster's API could not be read into an inventory: exit 2
    └── VantageError                a vantage point could not run probes (its probes become `error`)

Every boundary that does I/O translates low-level errors (OSError, timeouts, subprocess
failures) into one of these with `raise … from exc`, so the CLI never shows a traceback for
a user mistake and never exits 0 after an internal failure.

Exit codes, one meaning everywhere (a CI job reads 1 as "a rule failed", so nothing else
may use it): 0 every rule holds, 1 a rule FAILED, 2 invalid input or a missing prerequisite,
3 nothing failed but something is INCONCLUSIVE, 4 an internal error (any exception that is
not a ReachproofError: a bug, shown with its traceback), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INVALID = 2
EXIT_INCONCLUSIVE = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


@dataclass(frozen=True)
class Pos:
    """A 1-based line and column in an input file (0, 0: unknown)."""

    line: int
    column: int


NOWHERE = Pos(0, 0)


@dataclass(frozen=True)
class Diagnostic:
    """One problem in an input file, at a 1-based line and column."""

    path: str
    line: int
    column: int
    message: str

    @classmethod
    def at(cls, path: str, pos: Pos, message: str) -> Diagnostic:
        return cls(path, pos.line, pos.column, message)

    def render(self, source: str | None = None) -> str:
        """`path:line:col: message`, then the offending line and a caret when the text is known."""
        head = f"{self.path}:{self.line}:{self.column}: {self.message}"
        if source is None:
            return head
        # Count lines as the parsers do: only "\n" ends a line (not U+2028 and friends).
        lines = source.split("\n")
        if not 1 <= self.line <= len(lines):
            return head
        text = lines[self.line - 1].rstrip("\r").expandtabs(1)
        caret = " " * (max(self.column, 1) - 1) + "^"
        return f"{head}\n    {text}\n    {caret}"


class ReachproofError(Exception):
    """Base of every error reachproof raises on purpose."""

    exit_code = EXIT_INVALID


class InputError(ReachproofError):
    """The user's input is wrong; the message says where and what was expected."""


class _DiagnosticsError(InputError):
    """An input error made of one or more positioned diagnostics of one file."""

    def __init__(self, diagnostics: list[Diagnostic], source: str | None = None) -> None:
        if not diagnostics:
            raise ValueError("an input error needs at least one diagnostic")
        self.diagnostics = tuple(sorted(diagnostics, key=lambda d: (d.path, d.line, d.column)))
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self.source) for d in self.diagnostics)


class PolicyError(_DiagnosticsError):
    """The policy file does not parse, or refers to something it does not declare."""


class InventoryError(_DiagnosticsError):
    """The inventory file is malformed or inconsistent (with itself or with the policy)."""


class WaiverError(_DiagnosticsError):
    """The waiver file is malformed or names a rule the policy does not have."""


class UsageError(InputError):
    """Command-line arguments that cannot work together."""


class PrerequisiteError(ReachproofError):
    """This machine lacks something the command needs; the message names it."""


class LabError(ReachproofError):
    """Building, inspecting or removing the lab failed."""

    exit_code = EXIT_INVALID


class DiscoveryError(ReachproofError):
    """Discovery could not build an inventory from a cluster's API: bad credentials, an
    unreachable endpoint, an API version it does not understand, or a cluster state that has
    no complete inventory yet (a session whose containers have no agent). The message says
    which and never contains a secret."""


class VantageError(ReachproofError):
    """A vantage point could not start, died or timed out."""

    def __init__(self, vantage: str, cause: str) -> None:
        self.vantage = vantage
        self.cause = cause
        super().__init__(f"vantage {vantage!r}: {cause}")


def read_text(path: Path, what: str) -> str:
    """Read an input file, turning OS errors into an InputError that names the file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such {what} file") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {what} file is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} file: {exc.strerror}") from exc
