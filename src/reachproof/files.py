"""Files reachproof writes, often as root: private, and never seen half-written.

A report or a pcap is a map of the site's weaknesses: files are 0600 in directories created
0700. Each file is written to a `tempfile` in its own directory (an unpredictable name, so no
one can plant a link there first) and renamed over its final name, so a reader, a crash or a
Ctrl-C never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

PRIVATE_DIR = 0o700


def private_dirs(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents 0700; returns those it created, outermost
    first (for `remove_created` to take back). Directories that exist keep their mode."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    created: list[Path] = []
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # someone else made it meanwhile: theirs
            path.mkdir(mode=PRIVATE_DIR)
            created.append(path)
    return created


def remove_created(created: Sequence[Path]) -> None:
    """Remove the directories `private_dirs` made, innermost first, where they are empty."""
    for path in reversed(created):
        with contextlib.suppress(OSError):
            path.rmdir()


@contextlib.contextmanager
def private_file(path: Path) -> Iterator[BinaryIO]:
    """A binary handle whose content becomes `path` (mode 0600) when the block ends normally;
    on any exception, including KeyboardInterrupt, the temporary file is removed."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write_private(path: Path, data: bytes) -> None:
    with private_file(path) as handle:
        handle.write(data)
