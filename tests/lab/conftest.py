"""The clean reference lab, built once per test session (root only).

A snapshot of the host's own namespace (links, the sysctls the lab sets inside its
namespaces) is taken before the lab exists, so a test can prove the lab left the host alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from labkit import CleanLab, host_snapshot, lab, require_lab


@pytest.fixture(scope="session")
def clean_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CleanLab]:
    require_lab()
    before = host_snapshot()
    # The default lab of `reachproof lab up`, under a prefix of its own.
    with lab(
        tmp_path_factory.mktemp("lab"),
        "cln",
        agents=3,
        sessions="single-node:3,multi-node:4,single-node:1",
    ) as handle:
        yield CleanLab(handle, before)
