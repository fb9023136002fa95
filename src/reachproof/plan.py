"""The plan: frozen probe specs, each tied to the rule and hop it serves.

A spec names one vantage × target address × family × probe kind × port set. Port sets stay
ranges; the engine expands them while probing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reachproof.policy.ast import Action, Severity
from reachproof.ports import PortSet


class ProbeKind(StrEnum):
    TCP = "tcp"  # SYN or connect, the engine decides
    UDP = "udp"
    ICMP = "icmp"
    HTTP = "http"  # fetch a path, record status and the identity the app answers with
    WEBSOCKET = "websocket"  # complete the 101 handshake and exchange one message
    TLS = "tls"  # complete a verified TLS handshake; record version, cipher, certificate
    CHECK = "check"  # an in-container check (cluster-env, training-env, hostnames, listeners)


@dataclass(frozen=True)
class Expectation:
    """What the observation must show for the spec to pass."""

    action: Action
    closed_ok: bool = False
    status: int | None = None  # http/websocket: the status the final answer must have
    identity: str | None = None  # http/websocket: text the app's answer must contain


@dataclass(frozen=True)
class ProbeSpec:
    id: str  # unique and stable within the plan: rule/statement/hop/…
    rule_id: str
    statement: int  # index of the statement in the rule's body
    hop: int  # index of the hop in the statement's chain (0 for single-step statements)
    vantage: str | None  # None: the source host has no vantage; the spec cannot be observed
    source: str  # host name
    target: str  # host name
    address: str | None  # None for in-container checks
    family: int | None  # 4 or 6; None for in-container checks
    kind: ProbeKind
    ports: PortSet
    expect: Expectation
    resolve: str | None = None  # a hostname to resolve at the vantage instead of `address`
    params: tuple[
        tuple[str, str], ...
    ] = ()  # kind-specific: http path, check name, expected values

    def param(self, key: str) -> str | None:
        return next((v for k, v in self.params if k == key), None)


@dataclass(frozen=True)
class HopFamilies:
    """Which address families a hop judged for some of its targets, and why (policy/families.py)."""

    judged: tuple[int, ...]  # 4 and/or 6
    skipped: tuple[int, ...]  # families those targets have addresses of, not judged on this path
    why: str  # the inventory entry that chose them, or the rule that applies (deny, hostname)
    targets: int  # how many target hosts this line covers

    def text(self) -> str:
        judged = ", ".join(f"IPv{f}" for f in self.judged) or "no family"
        skipped = ", ".join(f"IPv{f}" for f in self.skipped)
        extra = f"; {skipped} not judged" if skipped else ""
        plural = "s" if self.targets != 1 else ""
        return f"{judged} ({self.targets} target{plural}{extra}): {self.why}"


@dataclass(frozen=True)
class HopPlan:
    """One hop of one statement of a rule, with the specs that observe it."""

    statement: int
    hop: int
    label: str  # "user → webserver:web"
    action: Action
    spec_ids: tuple[str, ...]
    empty_reason: str | None = None  # why the hop has no targets, when it has none
    families: tuple[HopFamilies, ...] = ()  # which families were judged, per group of targets
    # False: a hop with no targets has nothing to hold (an `app * speaking P` selection that
    # the site's inventory leaves empty) and is left out of the rule's verdict; True: no
    # targets is INCONCLUSIVE.
    applicable: bool = True
    shortfall: str | None = None  # fewer targets than the rule needs: a PASS is INCONCLUSIVE


@dataclass(frozen=True)
class RulePlan:
    rule_id: str
    title: str
    severity: Severity
    advisory: bool
    line: int
    sources: tuple[str, ...]
    hops: tuple[HopPlan, ...]


LIVENESS_RULE = "liveness"  # rule_id of the specs planned only to show a deny target alive


@dataclass(frozen=True)
class Witness:
    """A deny target address and the specs planned to show it was up during the run.

    Any answer (open or closed) from the address to any spec counts, or its own host's
    vantage reporting that it holds it; `spec_ids` are the ones the compiler counted on,
    reusing other rules' probes first. Empty: nothing can show it alive, and its deny hops
    stay INCONCLUSIVE.
    """

    address: str
    target: str  # host name
    spec_ids: tuple[str, ...]
    how: str  # "probes of other rules", "own vantage holds it", "ICMP echo from X", or why none


@dataclass(frozen=True)
class Plan:
    policy_name: str
    rules: tuple[RulePlan, ...]
    specs: tuple[ProbeSpec, ...]
    witnesses: tuple[Witness, ...] = ()

    def witness(self, address: str) -> Witness | None:
        return next((w for w in self.witnesses if w.address == address), None)

    def spec(self, spec_id: str) -> ProbeSpec:
        for spec in self.specs:
            if spec.id == spec_id:
                return spec
        raise KeyError(spec_id)
