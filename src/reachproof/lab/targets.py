"""Where each fault lands in a given topology (pure): which session, agent or container.

Chosen deterministically (the first that fits), so a test knows where to look; a fault that
has nothing to land on is a UsageError naming what the lab needs for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from reachproof.errors import UsageError
from reachproof.inventory.model import SessionMode
from reachproof.lab.topology import App, Container, Session, Topology


@dataclass(frozen=True)
class FaultTargets:
    bridge_filtered: Session | None  # first single-node session with 2+ containers
    overlay_blocked: tuple[int, int] | None  # two agents of the first spread multi-node session
    cross_session_agent: int | None  # first agent running containers of 2+ sessions
    appproxy_broken: App | None  # the first app (jupyter of the first session)
    env_wrong: Container | None  # last container of the first session with 2+ containers
    ssh_broken: Container | None  # the same container
    app_outside_main: Container | None  # sub1 of the first session with 2+ containers
    agent_down: int | None  # the last agent, when there are two or more (the first serves checks)


def fault_targets(topo: Topology) -> FaultTargets:
    multi = [c for c in topo.sessions if len(c.containers) > 1]
    bridge = next((s for s in multi if s.mode is SessionMode.SINGLE_NODE), None)
    overlay: tuple[int, int] | None = None
    for session in topo.sessions:
        if session.mode is SessionMode.MULTI_NODE and len(session.agents()) > 1:
            first = session.containers[0].agent
            other = next(c.agent for c in session.containers if c.agent != first)
            overlay = (first, other)
            break
    cross = next(
        (
            a.number
            for a in topo.agents
            if len({c.session for c in topo.containers_on(a.number)}) > 1
        ),
        None,
    )
    targets = FaultTargets(
        bridge_filtered=bridge,
        overlay_blocked=overlay,
        cross_session_agent=cross,
        appproxy_broken=topo.apps[0] if topo.apps else None,
        env_wrong=multi[0].containers[-1] if multi else None,
        ssh_broken=multi[0].containers[-1] if multi else None,
        app_outside_main=multi[0].containers[1] if multi else None,
        agent_down=topo.agents[-1].number if len(topo.agents) > 1 else None,
    )
    _check(topo, targets)
    return targets


_NEEDS = {
    "bridge-filtered": ("bridge_filtered", "a single-node session with 2 or more containers"),
    "overlay-blocked": ("overlay_blocked", "a multi-node session spread over 2 or more agents"),
    "cross-session": ("cross_session_agent", "two sessions with containers on one agent"),
    "appproxy-broken": ("appproxy_broken", "at least one session (apps run in main1)"),
    "cluster-env-wrong": ("env_wrong", "a session with 2 or more containers"),
    "training-env-inconsistent": ("env_wrong", "a session with 2 or more containers"),
    "ssh-mesh-broken": ("ssh_broken", "a session with 2 or more containers"),
    "app-outside-main": ("app_outside_main", "a session with 2 or more containers"),
    "app-on-default-address": ("app_outside_main", "a session with 2 or more containers"),
    "agent-down": ("agent_down", "2 or more agents (the first one must stay up)"),
}


def _check(topo: Topology, targets: FaultTargets) -> None:
    for name, (attr, needs) in _NEEDS.items():
        if topo.has_fault(name) and getattr(targets, attr) is None:
            raise UsageError(f"fault {name} needs {needs}; adjust --agents or --sessions")
