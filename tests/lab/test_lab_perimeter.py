"""--perimeter: how the firewall blocks (drop / ICMP admin-prohibited / TCP reset by itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from labkit import CleanLab, lab, overlay_injection_arrives, reply_ttls, require_lab, state

from reachproof.lab.netns import Connect

pytestmark = pytest.mark.lab
require_lab()


def test_drop_is_silent_and_vxlan_cannot_be_injected(clean_lab: CleanLab) -> None:
    topo = clean_lab.handle.topology
    assert state(topo.user.netns, topo.agents[0].node.addr.v4.ip, 6001, 0.7) is Connect.TIMEOUT
    assert not overlay_injection_arrives(clean_lab.handle)


def test_reject_answers_admin_prohibited(tmp_path: Path) -> None:
    with lab(tmp_path, "rej", sessions="single-node:1", perimeter="reject", services=False) as h:
        topo = h.topology
        for address in (topo.agents[0].node.addr.v4.ip, topo.agents[0].node.addr.v6.ip):
            assert state(topo.user.netns, address, 6001, 2.0) is Connect.PROHIBITED


def test_reset_comes_from_the_firewall_with_its_own_ttl(tmp_path: Path) -> None:
    with lab(tmp_path, "rst", sessions="single-node:1", perimeter="reset") as h:
        topo = h.topology
        agent = str(topo.agents[0].node.addr.v4.ip)
        web = str(topo.mgmt("webserver").addr.v4.ip)
        assert state(topo.user.netns, agent, 6001, 2.0) is Connect.CLOSED
        reset = reply_ttls(h, agent, (6001,))[6001]
        answer = reply_ttls(h, web, (443,))[443]
        assert reset[1] == "rst" and answer[1] == "syn-ack"
        # The target is one routed hop behind the firewall: a real answer arrives with a TTL
        # one lower than the firewall's own reset.
        assert reset[0] != answer[0]
