"""Can this machine build the lab? Each missing piece is a PrerequisiteError that names it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pyroute2 import IPRoute

from reachproof.errors import PrerequisiteError
from reachproof.lab.netns import create_netns, remove_netns, run_in_netns
from reachproof.lab.nft import apply_ruleset

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21  # mounting /run/netns/<name> needs it, as `ip netns add` does


def _effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_privileges() -> None:
    caps = _effective_caps()
    missing = [
        name
        for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
        if not caps & (1 << bit)
    ]
    if missing:
        who = "not root" if os.geteuid() != 0 else "root without"
        raise PrerequisiteError(
            f"the lab needs root ({who} {' and '.join(missing)}): run `sudo reachproof lab …`"
        )


def check_tools() -> None:
    for tool, package in (("nft", "nftables"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            raise PrerequisiteError(f"`{tool}` not found on PATH: install the {package} package")


def check_kernel(prefix: str) -> None:
    """Create one of each link kind and an nft table in a scratch namespace, then drop it."""
    scratch = f"{prefix}-preflight"
    remove_netns(scratch)
    create_netns(scratch)
    try:
        run_in_netns(scratch, _try_links)
        try:
            apply_ruleset(scratch, "table inet preflight {\n}\ntable bridge preflight {\n}\n")
        except Exception as exc:
            raise PrerequisiteError(f"the kernel refuses nftables tables: {exc}") from exc
    finally:
        remove_netns(scratch)


def _try_links() -> None:
    with IPRoute() as ipr:
        for kind, extra in (
            ("veth", {"peer": "pf-peer"}),
            ("bridge", {}),
            ("vxlan", {"vxlan_id": 42, "vxlan_port": 4789}),
        ):
            try:
                ipr.link("add", ifname=f"pf-{kind}", kind=kind, **extra)
            except Exception as exc:
                raise PrerequisiteError(
                    f"the kernel cannot create {kind} links ({exc}); load its module "
                    f"(`modprobe {kind}`)"
                ) from exc


def preflight(prefix: str) -> None:
    check_privileges()
    check_tools()
    check_kernel(prefix)
